//! Lost answers are not losses (issue 23, F3), with real processes over real HTTP: a proxy
//! between the clients and the master lets the master answer (and commit) and then drops the
//! answer. The client's retry carries the same Idempotency-Key and gets the original answer,
//! so `util start` starts one instance, and a running job whose renewals' answers are lost is
//! neither killed nor run twice.

use std::time::Duration;

use pinball::token::name;

use crate::helpers::*;

#[tokio::test]
async fn a_lost_answer_to_util_start_starts_one_instance() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir).await;
    let yaml = "workflows:\n  w:\n    jobs:\n      a: {command: 'true'}\n      b: {command: 'true', depends_on: [a]}\n";
    import_yaml(&app.client, yaml).await;
    let lossy = Lossy::start(app.addr).await;
    let config = dir.path().join("cli.yaml");
    std::fs::write(&config, format!("master_port: {}\n", lossy.port)).unwrap();
    let cfg = config.to_str().unwrap();
    for attempt in 1..=3 {
        lossy.lose("/api/v1/modify", "/job/", 1, 1);
        let out = pinball_out(&["-c", cfg, "util", "-f", "-w", "w", "start"], dir.path()).await;
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(lossy.lost(), attempt, "the start's answer was lost");
        let started = started_instance(&said);
        let all = instances(&app.client, "w").await;
        assert_eq!(all.len(), attempt, "one instance per start: {all:?}");
        assert!(all.contains(&started), "{started} is not among {all:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn lost_answers_to_a_running_job_s_renewals_neither_kill_it_nor_run_it_twice() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir).await;
    let marks = dir.path().join("runs");
    let yaml = format!(
        "workflows:\n  r:\n    jobs:\n      j: {{command: 'echo x >> {}; sleep 6'}}\n",
        marks.display()
    );
    import_yaml(&app.client, &yaml).await;
    let lossy = Lossy::start(app.addr).await;
    let config = dir.path().join("workers.yaml");
    std::fs::write(
        &config,
        format!(
            "master_port: {}\nlease_sec: 3\nworker_poll_time_sec: 1\nworkers: 1\nlocal_logs_dir_prefix: {}\n",
            lossy.port,
            dir.path().display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    // The start record and renewals carry the lease: lose every other answer, the first too.
    lossy.lose("/api/v1/modify", "\"lease_sec\"", 4, 2);
    let _workers = spawn_pinball(&["-c", cfg, "-m", "workers"], dir.path());
    let out = pinball_out(&["-c", cfg, "util", "-f", "-w", "r", "start"], dir.path()).await;
    let i = started_instance(&String::from_utf8_lossy(&out.stdout));
    let waiting = name::job_token(&wf("r"), &inst(&i), name::JobState::Waiting, &job("j"));
    wait_until(Duration::from_secs(60), "the job ends", || async {
        job_at(&app.client, &waiting)
            .await
            .is_some_and(|jt| !jt.job.history.is_empty())
    })
    .await;
    let history = job_at(&app.client, &waiting).await.unwrap().job.history;
    assert_eq!(history.len(), 1, "one execution: {history:?}");
    assert_eq!(history[0].exit_code, Some(0), "{history:?}");
    assert!(
        history[0].lost.is_none() && history[0].killed.is_none(),
        "{history:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&marks).unwrap().lines().count(),
        1,
        "the command ran once"
    );
    assert!(lossy.lost() >= 3, "only {} answers were lost", lossy.lost());
    app.stop().await;
}
