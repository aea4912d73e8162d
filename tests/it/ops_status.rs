//! `pinball status` and `pinball logs` against a real run: a master, a workers process and the
//! binary, reading what the dashboard reads.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::helpers::*;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn status_and_logs_answer_what_runs_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let app = spawn_app(&dir).await;
    let go = d.join("go");
    let workflows = format!(
        "workflows:\n  w:\n    jobs:\n      a: {{command: 'echo alpha-out; echo alpha-err >&2'}}\n      b:\n        depends_on: [a]\n        command: 'echo tick 1; while [ ! -e {} ]; do sleep 0.1; done; echo tick 2'\n",
        go.display()
    );
    let config = workflows_config(d, "pinball.yaml", app.addr.port(), &workflows, "");
    let cfg = config.to_str().unwrap();
    let run = |args: &'static [&'static str]| {
        let mut full = vec!["-c", cfg];
        full.extend_from_slice(args);
        let full: Vec<String> = full.iter().map(|s| s.to_string()).collect();
        async move {
            let args: Vec<&str> = full.iter().map(String::as_str).collect();
            pinball_out(&args, d).await
        }
    };
    let o = run(&["status"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("no workflows"),
        "{}",
        text(&o.stdout)
    );

    pinball_ok(
        &config,
        &[&["import", "-f"], &["util", "-f", "-w", "w", "start"]],
        d,
    )
    .await;
    let _workers = spawn_pinball(&["-c", cfg, "-m", "workers"], d);

    // Follow b's log while it runs: it ends by itself when b does, with every line.
    let mut follow = tokio::process::Command::new(env!("CARGO_BIN_EXE_pinball"));
    follow
        .args([
            "-c", cfg, "logs", "-w", "w", "-i", "latest", "-j", "b", "--follow",
        ])
        .current_dir(d)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    wait_until(Duration::from_secs(60), "b runs", || async {
        let o = run(&["status", "-w", "w", "-i", "latest"]).await;
        text(&o.stdout)
            .lines()
            .any(|l| l.starts_with("b ") && l.contains("RUNNING"))
    })
    .await;
    let o = run(&["status", "-w", "w"]).await;
    let runs = text(&o.stdout);
    assert!(
        runs.starts_with("INSTANCE") && runs.lines().nth(1).unwrap().contains("RUNNING"),
        "{runs}"
    );
    let mut child = follow.spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 256];
        while !text(&seen).contains("tick 1") {
            let n = out.read(&mut buf).await.unwrap();
            assert!(n > 0, "logs --follow ended early: {}", text(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("follow prints tick 1");
    assert!(!text(&seen).contains("tick 2"));
    std::fs::write(&go, "").unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        out.read_to_end(&mut seen).await.unwrap();
        child.wait().await.unwrap()
    })
    .await
    .expect("logs --follow ends when the job does");
    assert!(ended.success());
    assert_eq!(text(&seen), "tick 1\ntick 2\n");

    wait_until(Duration::from_secs(60), "the run ends", || async {
        let o = run(&["status", "-w", "w"]).await;
        text(&o.stdout)
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("SUCCESS"))
    })
    .await;
    let o = run(&["status", "-w", "w", "-i", "latest"]).await;
    let jobs = text(&o.stdout);
    assert!(jobs.contains(": SUCCESS (started "), "{jobs}");
    let a = jobs.lines().find(|l| l.starts_with("a ")).expect(&jobs);
    let cells: Vec<&str> = a.split_whitespace().collect();
    assert_eq!(
        (cells[1], cells[2], *cells.last().unwrap()),
        ("SUCCESS", "1", "0"),
        "{a}"
    );
    let o = run(&["status", "--json", "-w", "w", "-i", "latest"]).await;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "SUCCESS");
    assert_eq!(v["jobs"][1]["job"], "b");
    assert_eq!(v["jobs"][1]["exit_code"], 0);
    let o = run(&["status"]).await;
    let row = text(&o.stdout);
    assert!(
        row.lines()
            .any(|l| l.starts_with("w ") && l.contains("SUCCESS")),
        "{row}"
    );

    let o = run(&["logs", "-w", "w", "-i", "latest", "-j", "a", "--stderr"]).await;
    assert_eq!(
        (o.status.code(), text(&o.stdout)),
        (Some(0), "alpha-err\n".into())
    );
    let o = run(&["logs", "-w", "w", "-i", "latest", "-j", "a", "-e", "0"]).await;
    assert_eq!(text(&o.stdout), "alpha-out\n");
    for (args, says) in [
        (
            &["logs", "-w", "w", "-i", "latest", "-j", "zz"][..],
            "job zz of workflow w",
        ),
        (
            &["logs", "-w", "w", "-i", "latest", "-j", "a", "-e", "3"],
            "execution 3 of job a not found",
        ),
        (&["status", "-w", "nope"], "workflow nope has no runs"),
        (
            &["status", "-w", "w", "-i", "42"],
            "workflow w has no instance 42",
        ),
    ] {
        let mut full = vec!["-c", cfg];
        full.extend_from_slice(args);
        let o = pinball_out(&full, d).await;
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains(says),
            "{args:?}: {}",
            text(&o.stderr)
        );
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn status_without_a_database_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(dir.path(), "pinball.yaml", free_port(), "");
    let o = pinball_out(&["-c", config.to_str().unwrap(), "status"], dir.path()).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("no database at"),
        "{}",
        text(&o.stderr)
    );
    assert!(
        !dir.path().join("pinball.db").exists(),
        "status creates no database"
    );
}
