//! Pinball as separate processes, as an operator runs it: a worker process killed with SIGKILL
//! mid-job, the README's `-m all` with the example workflows, and `import` rejecting bad YAML.

use std::path::Path;
use std::time::Duration;

use pinball::master::MasterClient;
use pinball::token::Token;
use pinball::token::name;
use pinball::workflow::definition;
use pinball::workflow::instance::JobToken;

use crate::helpers::*;

#[tokio::test]
async fn a_worker_killed_mid_job_without_lost_lease_retries_costs_an_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir).await;
    let yaml = "workflows:\n  k:\n    jobs:\n      j:\n        max_attempts: 2\n        command: 'if [ \"$PINBALL_EXECUTION\" = 0 ]; then sleep 30; fi; echo done'\n";
    import_yaml(&app.client, yaml).await;
    let config = dir.path().join("workers.yaml");
    std::fs::write(
        &config,
        format!(
            "master_port: {}\nlease_sec: 2\nworker_poll_time_sec: 1\nworkers: 1\nlost_lease_retries: 0\nlocal_logs_dir_prefix: {}\n",
            app.addr.port(),
            dir.path().display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let mut first = spawn_pinball(&["-c", cfg, "-m", "workers"], dir.path());
    let out = pinball_out(&["-c", cfg, "util", "-f", "-w", "k", "start"], dir.path()).await;
    let i = started_instance(&String::from_utf8_lossy(&out.stdout));
    let runnable = name::job_token(&wf("k"), &inst(&i), name::JobState::Runnable, &job("j"));
    wait_until(
        Duration::from_secs(20),
        "the first worker runs the job",
        || async {
            job_at(&app.client, &runnable)
                .await
                .is_some_and(|jt| jt.job.history.len() == 1 && jt.token.owner.is_some())
        },
    )
    .await;
    let first_owner = job_at(&app.client, &runnable)
        .await
        .unwrap()
        .token
        .owner
        .unwrap();
    first.start_kill().unwrap();
    first.wait().await.unwrap();

    let _second = spawn_pinball(&["-c", cfg, "-m", "workers"], dir.path());
    let waiting = name::job_token(&wf("k"), &inst(&i), name::JobState::Waiting, &job("j"));
    wait_until(
        Duration::from_secs(30),
        "another worker reruns the job",
        || async { job_at(&app.client, &waiting).await.is_some() },
    )
    .await;
    let history = job_at(&app.client, &waiting).await.unwrap().job.history;
    assert_eq!(history.len(), 2);
    assert_eq!(
        history[0].exit_code, None,
        "no exit code the process never returned"
    );
    assert!(
        history[0].lost.is_some() && history[0].counted,
        "the killed attempt counts as a failed one"
    );
    assert_eq!(history[0].worker, first_owner);
    assert!(
        std::fs::read_to_string(&history[0].logs["pinlog"])
            .unwrap()
            .contains("failed to renew job ownership")
    );
    assert_eq!(history[1].exit_code, Some(0));
    assert_ne!(history[1].worker, first_owner, "a different worker ran it");
    for r in &history {
        assert_eq!(
            r.host,
            pinball::config::host_name(),
            "each execution names its host"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn the_readme_command_runs_the_example_workflows() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join("pinball.example.yaml")).unwrap();
    let port = free_port();
    let ui_port = free_port();
    let config = example
        .replace("master_port: 9090", &format!("master_port: {port}"))
        .replace(
            "workflows_config: examples/workflows.yaml",
            &format!(
                "workflows_config: {}",
                root.join("examples/workflows.yaml").display()
            ),
        )
        .replace("archive_delay_sec: 300", "archive_delay_sec: 1")
        .replace("ui_port: 8080", &format!("ui_port: {ui_port}"));
    assert!(
        config.contains(&format!("master_port: {port}")),
        "the example sets master_port"
    );
    std::fs::write(dir.path().join("pinball.yaml"), config).unwrap();
    let _all = spawn_pinball(&["-m", "all"], dir.path());
    let client = pinball::master::HttpMasterClient::new("127.0.0.1", port, quick_policy());
    wait_until(
        Duration::from_secs(30),
        "-m all serves and has loaded the definitions",
        || async {
            definition::read(&client, &wf("daily_report"))
                .await
                .is_ok_and(|d| d.is_some())
        },
    )
    .await;
    let out = pinball_out(&["util", "-f", "-w", "daily_report", "start"], dir.path()).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("exported workflow daily_report instance "),
        "{stdout}"
    );
    let i = started_instance(&stdout);
    wait_until(
        Duration::from_secs(60),
        "the example workflow finishes and is archived",
        || async {
            let left = client
                .query_prefix(&name::instance_prefix(&wf("daily_report"), &inst(&i)))
                .await;
            if let Err(e) = &left {
                let logs = logs_of(dir.path());
                panic!("the master does not answer: {e}\n{logs}");
            }
            left.unwrap().is_empty()
        },
    )
    .await;
    let store = pinball::storage::open(&format!(
        "sqlite://{}",
        dir.path().join("pinball.db").display()
    ))
    .unwrap();
    let archived: Vec<Token> = store
        .read(
            "default",
            pinball::storage::Table::Archived,
            &name::job_prefix(&wf("daily_report"), &inst(&i)),
        )
        .await
        .unwrap();
    let jobs: std::collections::BTreeMap<String, JobToken> = archived
        .into_iter()
        .map(|t| JobToken::parse(t).unwrap())
        .map(|jt| (jt.job.name.to_string(), jt))
        .collect();
    let transform = &jobs["transform"].job.history[0];
    assert_eq!(
        std::fs::read_to_string(&transform.logs["stdout"]).unwrap(),
        "transforming 1024 rows of events_daily\n"
    );
    let flaky: Vec<i32> = jobs["flaky_upload"]
        .job
        .history
        .iter()
        .map(|r| r.exit_code.unwrap())
        .collect();
    assert_eq!(
        flaky,
        vec![1, 0],
        "the flaky upload failed once and succeeded on its retry"
    );
    assert_eq!(jobs["final"].job.history[0].exit_code, Some(0));

    // The dashboard shows the finished instance.
    let html = reqwest::get(format!("http://127.0.0.1:{ui_port}/workflows/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let row = &html[html.find("data-workflow=\"daily_report\"").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains(">SUCCESS<") && row.contains(&i), "{row}");
}

#[tokio::test]
async fn import_rejects_bad_definitions_naming_the_file_workflow_and_job() {
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("bad.yaml");
    std::fs::write(
        &wf,
        "workflows:\n  wf:\n    jobs:\n      a: {command: x, depends_on: [ghost]}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("pinball.yaml"), "master_port: 1\nclient_connect_attempts: 1\nparser_params:\n  workflows_config: bad.yaml\n").unwrap();
    let out = pinball_out(&["import", "-f", "reschedule"], dir.path()).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml")
            && err.contains("workflow wf")
            && err.contains("job a")
            && err.contains("ghost"),
        "{err}"
    );
    let out = pinball_out(&["import", "-f", "sideways"], dir.path()).await;
    assert_eq!(out.status.code(), Some(2));
    // A cron expression that matches no date is named with its file, workflow and field.
    std::fs::write(
        &wf,
        "workflows:\n  feb:\n    schedule: {cron: '0 0 30 2 *'}\n    jobs:\n      a: {command: 'true'}\n",
    )
    .unwrap();
    let out = pinball_out(&["import", "-f", "reschedule"], dir.path()).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml")
            && err.contains("workflow feb")
            && err.contains("schedule.cron")
            && err.contains("never matches"),
        "{err}"
    );
}

#[tokio::test]
async fn sigterm_while_the_database_is_unreachable_stops_the_master_within_5_s() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("down.yaml");
    // A MariaDB address where nothing listens: the master retries, and must still stop.
    std::fs::write(
        &config,
        format!(
            "database_url: mysql://pinball:secret@127.0.0.1:{}/pinball\nmaster_port: 0\n",
            free_port()
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pinball"))
        .args(["-c", config.to_str().unwrap(), "-m", "master"])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    // From this line on it is trying to reach the database.
    while !seen.contains("starting master") {
        seen = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the master says it starts")
            .unwrap()
            .expect("the master runs until told to stop");
    }
    assert!(
        !seen.contains("secret"),
        "the password is not logged: {seen}"
    );
    // SAFETY: kill only sends SIGTERM to the child this test started.
    unsafe { libc::kill(child.id().unwrap() as libc::pid_t, libc::SIGTERM) };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("the master exits within 5 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}
