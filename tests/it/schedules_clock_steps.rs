//! The scheduler's clock stepped (issue 23, F6), with real processes and libfaketime: a
//! `-m scheduler` process whose clock jumps an hour ahead and back fires no run for a time in
//! the future of the master's clock (schedules are due by the master's clock, and the
//! scheduler decides by it), and after the step back every schedule fires on time again, none
//! silent for the hour.

use std::time::{Duration, Instant};

use crate::helpers::*;

fn libfaketime() -> Option<&'static str> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
}

#[tokio::test]
async fn a_scheduler_stepped_an_hour_ahead_and_back_fires_nothing_early_and_nothing_late() {
    let Some(lib) = libfaketime() else {
        crate::helpers::skipped(
            "(clock_steps): libfaketime is not installed (apt-get install faketime)",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let config = workflows_config(
        d,
        "pinball.yaml",
        port,
        "workflows:\n  caught:\n    schedule: {recurrence: 2S, overrun_policy: START_NEW, max_running_instances: 5000, catchup: true}\n    jobs:\n      j: {command: 'true'}\n  plain:\n    schedule: {recurrence: 2S, overrun_policy: START_NEW, max_running_instances: 5000}\n    jobs:\n      j: {command: 'true'}\n",
        "",
    );
    let cfg = config.to_str().unwrap();
    let _master = start_master_process(&config).await;
    pinball_ok(&config, &[&["import", "-f"]], d).await;
    let offset = d.join("faketime");
    std::fs::write(&offset, "+0\n").unwrap();
    let offset_path = offset.display().to_string();
    let _scheduler = pinball_with_env(
        &["-c", cfg, "-m", "scheduler"],
        d,
        &[
            ("LD_PRELOAD", lib),
            ("FAKETIME_TIMESTAMP_FILE", offset_path.as_str()),
            ("FAKETIME_NO_CACHE", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let client = pinball::master::HttpMasterClient::new("127.0.0.1", port, quick_policy());
    let c = &client;
    wait_until(Duration::from_secs(30), "both schedules fire", || async {
        instances(c, "caught").await.len() >= 2 && instances(c, "plain").await.len() >= 2
    })
    .await;
    // An hour ahead, for 8 s of real time: a run every 2 s at most, as before.
    let before = (
        instances(c, "caught").await.len(),
        instances(c, "plain").await.len(),
    );
    std::fs::write(&offset, "+3600\n").unwrap();
    let ahead = Instant::now();
    while ahead.elapsed() < Duration::from_secs(8) {
        let allowed = ahead.elapsed().as_secs() as usize / 2 + 3;
        for (w, had) in [("caught", before.0), ("plain", before.1)] {
            let now = instances(c, w).await.len();
            assert!(
                now <= had + allowed,
                "{w}: {} runs in {:?} with the clock an hour ahead",
                now - had,
                ahead.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // And back: both fire again within a few periods, not after the hour.
    let back = (
        instances(c, "caught").await.len(),
        instances(c, "plain").await.len(),
    );
    std::fs::write(&offset, "+0\n").unwrap();
    wait_until(
        Duration::from_secs(20),
        "both schedules fire after the step back",
        || async {
            instances(c, "caught").await.len() >= back.0 + 2
                && instances(c, "plain").await.len() >= back.1 + 2
        },
    )
    .await;
}
