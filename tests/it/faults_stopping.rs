//! Workers stop when told to, master or not (issue 23, F7), with real processes: the master is
//! SIGKILLed while a job runs, the job ends, and the workers get SIGTERM. They exit within
//! `worker_shutdown_grace_sec` (not after `master_outage_grace_sec`), saving the run's end on
//! their host; the next workers process commits it once the master is back, and the job is
//! recorded once, not run again.

use std::time::Duration;

use pinball::token::name;

use crate::helpers::*;

#[tokio::test]
async fn workers_told_to_stop_during_a_master_outage_exit_within_their_grace_and_nothing_reruns() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let marks = d.join("marks");
    let port = free_port();
    let config = workflows_config(
        d,
        "pinball.yaml",
        port,
        &format!(
            "workflows:\n  s:\n    jobs:\n      j: {{command: 'echo start >> {m}; sleep 2; echo done >> {m}'}}\n",
            m = marks.display()
        ),
        "lease_sec: 4\nworker_poll_time_sec: 1\nworker_shutdown_grace_sec: 3\n",
    );
    let cfg = config.to_str().unwrap();
    let mut master = start_master_process(&config).await;
    pinball_ok(
        &config,
        &[&["import", "-f"], &["util", "-f", "-w", "s", "start"]],
        d,
    )
    .await;
    let mut workers = spawn_pinball(&["-c", cfg, "-m", "workers"], d);
    let lines = || std::fs::read_to_string(&marks).unwrap_or_default();
    wait_until(Duration::from_secs(30), "the job runs", || async {
        lines().contains("start")
    })
    .await;
    master.child.kill().await.unwrap();
    wait_until(Duration::from_secs(30), "the job ends", || async {
        lines().contains("done")
    })
    .await;
    // SAFETY: a signal to the child this test started.
    unsafe { libc::kill(workers.id().unwrap() as i32, libc::SIGTERM) };
    let stopped = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(15), workers.wait())
        .await
        .expect("the workers exit within their grace, not after master_outage_grace_sec")
        .unwrap();
    eprintln!("the workers exited {:?} after SIGTERM", stopped.elapsed());
    let saved = std::fs::read_dir(d.join("logs/pinball_job_logs/.pending-ends"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(saved, 1, "the run's end waits on this host");

    let _master = start_master_process(&config).await;
    let _workers = spawn_pinball(&["-c", cfg, "-m", "workers"], d);
    let client = pinball::master::HttpMasterClient::new("127.0.0.1", port, quick_policy());
    let i = instances(&client, "s").await.pop_first().unwrap();
    let waiting = name::job_token(&wf("s"), &inst(&i), name::JobState::Waiting, &job("j"));
    wait_until(
        Duration::from_secs(30),
        "the saved end is committed",
        || async { job_at(&client, &waiting).await.is_some() },
    )
    .await;
    let history = job_at(&client, &waiting).await.unwrap().job.history;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].exit_code, Some(0));
    assert_eq!(lines().matches("start").count(), 1, "the job ran once");
    wait_until(
        Duration::from_secs(10),
        "the saved end is removed",
        || async {
            std::fs::read_dir(d.join("logs/pinball_job_logs/.pending-ends"))
                .map_or(0, |r| r.count())
                == 0
        },
    )
    .await;
}
