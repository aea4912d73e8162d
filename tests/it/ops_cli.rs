//! The `pinball` binary as a user runs it: exit statuses, error messages, and `pinball token`
//! (PINBALL_SPEC §7.2, scenario 56) against a real master.

use std::process::Output;

use crate::helpers::*;

async fn pinball(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_pinball"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn version_and_help_exit_zero() {
    let v = pinball(&["--version"]).await;
    assert_eq!(v.status.code(), Some(0));
    assert!(stdout(&v).starts_with("pinball "));
    let h = pinball(&["--help"]).await;
    assert!(stdout(&h).contains("-m") && stdout(&h).contains("token"));
}

#[tokio::test]
async fn bad_usage_exits_two_with_one_clear_sentence() {
    let o = pinball(&["-m", "masters"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown mode `masters`"),
        "{}",
        stderr(&o)
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.yaml");
    std::fs::write(&config, "master_prot: 9\n").unwrap();
    let o = pinball(&["-c", config.to_str().unwrap(), "-m", "master"]).await;
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("master_prot") && err.contains("bad.yaml"),
        "{err}"
    );

    let o = pinball(&["-c", "/no/such/file.yaml", "-m", "master"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/no/such/file.yaml"));
}

#[tokio::test]
async fn token_commands_print_what_the_original_printed() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir).await;
    let port = app.addr.port().to_string();
    let tok = |extra: &[&str]| {
        let mut args = vec!["token", "-p", &port];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| async move {
        pinball(&args.iter().map(String::as_str).collect::<Vec<_>>()).await
    };

    let o = run(tok(&["ls", "/some_path"])).await;
    assert_eq!(stdout(&o), "total 0\n");

    let o = run(tok(&[
        "update",
        "-n",
        "/some_path/some_token",
        "-o",
        "some_owner",
        "-t",
        "10",
        "-d",
        "some_data",
    ]))
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let version = app.all("/some_path/").await[0].version.unwrap();
    let line = format!(
        "Token(version={version}, owner=some_owner, expirationTime=1970-01-01 00:00:10 UTC, priority=0.000000, name=/some_path/some_token, data=some_data)"
    );
    assert_eq!(stdout(&o), format!("inserted {line}\nupdated 1 token\n"));

    let o = run(tok(&["cat", "-r", "/some_path"])).await;
    assert_eq!(stdout(&o), format!("total 1\n{line}\n"));
    let o = run(tok(&["cat", "/some_path"])).await;
    assert_eq!(
        stdout(&o),
        "total 0\n",
        "without -r only the exact name is printed"
    );
    let o = run(tok(&["ls", "/some_path/"])).await;
    assert_eq!(stdout(&o), "total 1\n/some_path/some_token [1 token(s)]\n");

    let o = run(tok(&[
        "update",
        "-n",
        "/some_path/some_token",
        "-d",
        "again",
    ]))
    .await;
    assert_eq!(o.status.code(), Some(1), "inserting an existing name fails");
    assert!(stderr(&o).contains("different version"), "{}", stderr(&o));

    let o = run(tok(&["rm", "-r", "/some_path"])).await;
    assert_eq!(
        o.status.code(),
        Some(2),
        "a destructive command without -f and without a terminal is refused"
    );
    assert!(stderr(&o).contains("-f"));
    assert_eq!(app.all("/some_path/").await.len(), 1);

    let o = run(tok(&["rm", "-r", "-f", "/some_path"])).await;
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).ends_with("removed 1 token(s)\n"),
        "{}",
        stdout(&o)
    );
    assert!(app.all("/some_path/").await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_token_command_without_a_master_fails_with_status_one() {
    let o = pinball(&["token", "-p", "1", "ls", "/"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot reach the master"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test]
async fn a_closed_pipe_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir).await;
    let port = app.addr.port().to_string();
    let tokens: Vec<_> = (0..5000)
        .map(|n| pinball::token::Token::new(format!("/many/{n:05}"), Some("x".repeat(100))))
        .collect();
    app.insert(tokens).await;
    // As `pinball token ls /many | head -1`: the reader goes away after one line.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pinball"))
        .args(["token", "-p", &port, "-r", "cat", "/many"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut first = String::new();
    use tokio::io::AsyncBufReadExt;
    tokio::io::BufReader::new(stdout)
        .read_line(&mut first)
        .await
        .unwrap();
    // The pipe closes here, before the command has printed everything.
    let out = child.wait_with_output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!first.is_empty());
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

#[tokio::test]
async fn refusals_and_what_is_not_found_exit_one_with_the_reason_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir).await;
    let config = local_config(dir.path(), "pinball.yaml", app.addr.port(), "");
    let cfg = config.to_str().unwrap();
    for (args, says) in [
        (
            &["-w", "w", "-i", "1", "stop"][..],
            "workflow w instance 1 not found",
        ),
        (
            &["-w", "w", "-i", "1", "retry"],
            "workflow w instance 1 not found",
        ),
        (
            &["-w", "w", "-i", "1", "pause"],
            "workflow w instance 1 not found",
        ),
        (
            &["-w", "w", "-i", "1", "resume"],
            "workflow w instance 1 not found",
        ),
        (
            &["-w", "w", "-i", "1", "-j", "a", "disable"],
            "has no instance 1",
        ),
        (
            &["-w", "w", "unschedule"],
            "schedule for workflow w not found",
        ),
    ] {
        let mut full = vec!["-c", cfg, "util", "-f"];
        full.extend_from_slice(args);
        let o = pinball(&full).await;
        let shown = format!("{args:?}: {}{}", stdout(&o), stderr(&o));
        assert_eq!(o.status.code(), Some(1), "{shown}");
        assert!(stdout(&o).is_empty(), "nothing on stdout: {shown}");
        assert!(stderr(&o).contains(says), "{shown}");
        assert_eq!(
            stderr(&o).trim_end().lines().count(),
            1,
            "one sentence: {shown}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn validate_checks_definitions_offline_and_lists_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let defs = d.join("defs");
    std::fs::create_dir(&defs).unwrap();
    std::fs::write(
        defs.join("a.yaml"),
        "workflows:\n  w1:\n    jobs:\n      j: {command: 'true'}\n",
    )
    .unwrap();
    std::fs::write(
        defs.join("b.yaml"),
        "workflows:\n  w2:\n    jobs:\n      j: {command: 'true', depends_on: [nope]}\n",
    )
    .unwrap();
    std::fs::write(defs.join("c.yaml"), "workflows:\n  w3: [not, a, workflow\n").unwrap();
    std::fs::write(
        defs.join("d.yaml"),
        "workflows:\n  w1:\n    jobs:\n      k: {command: 'true'}\n",
    )
    .unwrap();
    // No master anywhere: the port is free.
    let config = local_config(d, "pinball.yaml", free_port(), "");
    let cfg = config.to_str().unwrap();
    let o = pinball(&["-c", cfg, "validate", defs.to_str().unwrap()]).await;
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("3 error(s) in the definitions"), "{err}");
    for says in [
        "b.yaml: workflow w2:",
        "c.yaml:",
        "d.yaml: workflow w1 is defined twice",
    ] {
        assert!(err.contains(says), "names {says}: {err}");
    }
    let valid = defs.join("a.yaml");
    let o = pinball(&["-c", cfg, "validate", valid.to_str().unwrap()]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("1 workflow(s) in {} are valid\n", valid.display())
    );
    // An import checks them before it asks the master anything.
    let broken = local_config(
        d,
        "broken.yaml",
        free_port(),
        &format!(
            "parser_params:\n  workflows_config: {}\n",
            defs.join("b.yaml").display()
        ),
    );
    let o = pinball(&["-c", broken.to_str().unwrap(), "import", "-f"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("workflow w2"), "{}", stderr(&o));
    // A master with workers in one process refuses to start on them (it ran with none).
    let args = ["-c", broken.to_str().unwrap(), "-m", "master,workers"];
    let o = tokio::time::timeout(std::time::Duration::from_secs(60), pinball_out(&args, d))
        .await
        .expect("it stops instead of serving");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the workflow definitions are not valid, so nothing was started"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test]
async fn util_help_says_what_each_command_does() {
    let o = pinball(&["util", "--help"]).await;
    assert_eq!(o.status.code(), Some(0));
    let help = stdout(&o);
    for c in pinball::ops::Command::ALL {
        let line = format!("- {}:", c.as_str());
        let said = help
            .lines()
            .find(|l| l.trim_start().starts_with(&line))
            .unwrap_or_else(|| panic!("{line} is listed: {help}"));
        assert!(said.contains(c.help()), "{said}");
    }
}

#[tokio::test]
async fn a_command_s_answer_is_alone_on_stdout_and_its_logs_need_verbose() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir).await;
    let config = workflows_config(
        dir.path(),
        "pinball.yaml",
        app.addr.port(),
        "workflows:\n  w:\n    jobs:\n      j: {command: 'true'}\n",
        "",
    );
    let cfg = config.to_str().unwrap();
    let o = pinball(&["-c", cfg, "import", "-f"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = pinball(&["-c", cfg, "util", "-f", "-w", "w", "start"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("exported workflow w instance "),
        "{}",
        stdout(&o)
    );
    assert_eq!(stderr(&o), "", "no log line beside the answer");
    let o = pinball(&["-c", cfg, "-v", "util", "-f", "-w", "w", "start"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("started an instance"),
        "-v logs: {}",
        stderr(&o)
    );
    app.stop().await;
}
