//! Disks that fill up, for real: a tmpfs of a few megabytes (the tests run as root in CI and
//! skip, saying so, where mounts are not permitted).
//!
//! - The SQLite database on a 2 MB tmpfs: writes are refused while it is full, saying the disk
//!   is full and that nothing was committed; health and `/ready` say so; reads go on; once the
//!   file system is grown the master takes every write again by itself, and what it holds is
//!   exactly what it acknowledged (a restarted master reads the same).
//! - The log directory full: a job printing 1 MB into it ends with its own exit code (not
//!   SIGPIPE), its record and the UI's log and execution pages say the log is incomplete and
//!   why.

use std::time::Duration;

use pinball::master::client::RetryPolicy;
use pinball::master::{HttpMasterClient, MasterClient, MasterError};
use pinball::token::*;
use pinball::workflow::worker::run_workers;

use crate::helpers::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn write(name: &str, bytes: usize) -> ModifyRequest {
    ModifyRequest {
        updates: vec![Token::new(name, Some("d".repeat(bytes)))],
        ..Default::default()
    }
}

#[tokio::test]
async fn a_full_sqlite_disk_refuses_writes_and_heals_when_grown_without_a_restart() {
    let test = "full_disks::a_full_sqlite_disk";
    let Some(disk) = Tmpfs::mount(test, "2m") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("pinball.yaml");
    std::fs::write(
        &cfg,
        format!(
            "database_url: sqlite://{}\nmaster_port: {port}\n",
            disk.join("pinball.db").display()
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let mut master = spawn_pinball(&["-c", cfg, "-m", "master"], dir.path());
    let one_try = RetryPolicy {
        attempts: 1,
        ..Default::default()
    };
    let client = HttpMasterClient::new("127.0.0.1", port, one_try);
    wait_until(secs(60), "the master is ready", || is_ready(port)).await;

    // Fill it: 20 KB tokens until the disk refuses one.
    let mut acked = Vec::new();
    let full = loop {
        let name = format!("/fill/{:05}", acked.len());
        match client.modify(write(&name, 20_000)).await {
            Ok(_) => acked.push(name),
            Err(MasterError::Held(m) | MasterError::Unavailable(m)) => break m,
            Err(e) => panic!("{e}"),
        }
        assert!(acked.len() < 1000, "a 2 MB disk never filled");
    };
    assert!(
        full.contains("not committed") && full.contains("the disk is full"),
        "{full}"
    );
    let h = client.health().await.unwrap();
    assert_eq!(
        (h.status.as_str(), h.database.as_str()),
        ("degraded", "failing")
    );
    assert_eq!(h.database_trouble.as_deref(), Some("the disk is full"));
    let (code, why) = ready(port).await;
    assert_eq!(code, 503);
    assert_eq!(why["reason"], "the disk is full");
    assert_eq!(
        client.query_prefix("/fill/").await.unwrap().len(),
        acked.len(),
        "reads go on from memory"
    );
    let mut refused = Vec::new();
    for n in 0..10 {
        let name = format!("/refused/{n}");
        let err = client.modify(write(&name, 20_000)).await.unwrap_err();
        assert!(err.to_string().contains("the disk is full"), "{err}");
        refused.push(name);
    }

    // Grown: the master finds out by itself (a load balancer gating on /ready sends nothing
    // until then), and takes writes again, every one of them.
    disk.resize("64m");
    let healed = std::time::Instant::now();
    wait_until(
        secs(10),
        "/ready turns 200 with no client writing",
        || async { ready(port).await.0 == 200 },
    )
    .await;
    eprintln!("ready again {:?} after the disk grew", healed.elapsed());
    loop {
        let name = format!("/after/{}", acked.len());
        match client.modify(write(&name, 100)).await {
            Ok(_) => {
                acked.push(name);
                break;
            }
            Err(e) => assert!(
                healed.elapsed() < secs(10),
                "no write landed within 10 s of the disk growing: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("a write landed {:?} after the disk grew", healed.elapsed());
    for n in 0..40 {
        let name = format!("/more/{n:02}");
        client
            .modify(write(&name, 20_000))
            .await
            .unwrap_or_else(|e| panic!("write {n} after the disk grew: {e}"));
        acked.push(name);
    }
    assert_eq!(ready(port).await.0, 200);
    assert_eq!(client.health().await.unwrap().status, "ok");

    // Memory is what was acknowledged, and so is the database.
    assert_writes_kept(&client, "/", &acked, &refused).await;
    let _master = restart_master(&mut master, cfg, dir.path(), port).await;
    assert_writes_kept(&client, "/", &acked, &refused).await;
}

#[tokio::test]
async fn a_full_log_disk_never_kills_a_job_and_the_pages_say_the_log_is_cut() {
    let test = "full_disks::a_full_log_disk";
    let yaml = "workflows:\n  loud:\n    jobs:\n      talk:\n        command: \"head -c 1048576 /dev/zero | tr '\\\\0' x; echo; echo done >&2; exit 0\"\n        max_attempts: 2\n      quiet: {command: 'true', depends_on: [talk]}\n";
    let c = cluster(yaml, 0, 300).await;
    let Some(disk) = Tmpfs::mount_on(test, c.logs.path(), "1m") else {
        c.stop().await;
        return;
    };
    disk.fill();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(run_workers(
        std::sync::Arc::new(c.client.clone()),
        settings(c.logs.path(), 300),
        1,
        stopped,
    ));
    let i = c.start("loud").await;
    c.wait_finished("loud", &i, secs(60)).await;
    let jobs = c.jobs("loud", &i).await;
    let talk = &jobs["talk"].job.history;
    assert_eq!(
        talk.len(),
        1,
        "one run, no retry into the same death: {talk:?}"
    );
    assert_eq!(talk[0].exit_code, Some(0), "its own exit code, not SIGPIPE");
    let why = &talk[0].log_trouble["stdout"];
    assert!(
        why.contains("cut short") && why.contains("No space left"),
        "{why}"
    );
    assert!(
        talk[0].log_trouble.contains_key("stderr"),
        "{:?}",
        talk[0].log_trouble
    );
    assert_eq!(jobs["quiet"].job.history[0].exit_code, Some(0));

    let ui = ui_server(&c).await;
    let q = format!("workflow=loud&instance={i}&job=talk&execution=0");
    let log = reqwest::get(format!("{ui}/file/?{q}&log_type=stdout"))
        .await
        .unwrap();
    assert_eq!(log.status(), 200);
    let html = log.text().await.unwrap();
    assert!(
        html.contains("id=\"log-trouble\"") && html.contains("This log is incomplete: cut short"),
        "{html}"
    );
    let html = reqwest::get(format!("{ui}/execution/?{q}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("id=\"log-trouble\"") && html.contains("No space left"),
        "{html}"
    );
    let _ = stop.send(true);
    let _ = worker.await;
    drop(disk);
    c.stop().await;
}
