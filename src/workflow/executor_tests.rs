//! Unit tests of `executor`.

use super::*;

fn spec(dir: &tempfile::TempDir, command: &str) -> ExecSpec {
    ExecSpec {
        command: command.into(),
        launch: Default::default(),
        env: vec![("PINBALL_JOB".into(), "some_job".into())],
        stdout_log: dir.path().join("out"),
        stderr_log: dir.path().join("err"),
        abort_timeout: None,
        warn_timeout: None,
        kill_grace: Duration::from_millis(500),
    }
}

async fn exec(spec: ExecSpec) -> (ExecResult, Vec<Report>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_abort_tx, abort) = watch::channel(false);
    let result = run(spec, tx, abort).await.unwrap();
    let mut reports = vec![];
    while let Ok(r) = rx.try_recv() {
        match r {
            Report::Started(pgid) => assert!(reports.is_empty() && pgid > 0, "first"),
            r => reports.push(r),
        }
    }
    (result, reports)
}

#[tokio::test]
async fn what_a_job_leaves_running_ends_with_it_and_holds_nothing_open() {
    let dir = tempfile::tempdir().unwrap();
    // The background sleep keeps the job's stdout open and would run for five minutes.
    let started = std::time::Instant::now();
    let (result, _) = exec(spec(&dir, "sleep 300 & echo $!; exit 0")).await;
    assert_eq!(result.exit_code, 0);
    assert!(result.log_trouble.is_empty(), "{:?}", result.log_trouble);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the job's end waited for its background process"
    );
    let pid = std::fs::read_to_string(dir.path().join("out")).unwrap();
    let stat = std::path::PathBuf::from(format!("/proc/{}/stat", pid.trim()));
    // Running, or a zombie its new parent has not reaped yet (dead all the same).
    let alive = || {
        std::fs::read_to_string(&stat)
            .ok()
            .and_then(|s| {
                s.rsplit(')')
                    .next()
                    .map(|r| r.trim_start().starts_with('Z'))
            })
            .is_some_and(|zombie| !zombie)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while alive() && std::time::Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
    assert!(!alive(), "the background process outlived its job");
}

#[test]
fn magic_lines_split_at_the_first_equals_sign() {
    assert_eq!(
        parse_magic("  PINBALL:EVENT_ATTR:akey=a=b \n"),
        Some(("EVENT_ATTR:akey".into(), "a=b".into()))
    );
    assert_eq!(parse_magic("PINBALL:novalue"), None);
    assert_eq!(parse_magic("PINBALL:=x"), None);
    assert_eq!(parse_magic("echo PINBALL:a=b"), None);
}

#[tokio::test]
async fn output_goes_to_the_logs_and_magic_lines_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (r, reports) = exec(spec(
        &dir,
        "echo line1; echo $PINBALL_JOB; echo PINBALL:kill_id=7; echo oops >&2; exit 3",
    ))
    .await;
    assert_eq!(r.exit_code, 3);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out")).unwrap(),
        "line1\nsome_job\nPINBALL:kill_id=7\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("err")).unwrap(),
        "oops\n"
    );
    assert_eq!(
        reports,
        vec![Report::Property("kill_id".into(), "7".into())]
    );
}

#[tokio::test]
async fn a_long_line_without_a_newline_is_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = exec(spec(&dir, "head -c 20000 /dev/zero | tr '\\0' a")).await;
    assert_eq!(r.exit_code, 0);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out"))
            .unwrap()
            .len(),
        20000
    );
}

#[tokio::test]
async fn a_log_that_cannot_be_written_is_reported_and_never_kills_the_job() {
    // /dev/full answers every write with ENOSPC, as a full log disk does.
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(
        &dir,
        "head -c 1048576 /dev/zero | tr '\\0' x; echo; echo PINBALL:after=1; echo fine >&2; exit 4",
    );
    s.stdout_log = "/dev/full".into();
    let (r, reports) = exec(s).await;
    assert_eq!(r.exit_code, 4, "the job's own exit code, not SIGPIPE");
    assert_eq!(r.log_trouble.len(), 1, "{:?}", r.log_trouble);
    let (kind, why) = &r.log_trouble[0];
    assert_eq!(*kind, "stdout");
    assert!(
        why.contains("cut short after 0 bytes") && why.contains("space"),
        "{why}"
    );
    assert_eq!(
        reports,
        vec![Report::Property("after".into(), "1".into())],
        "output after the failure is still read"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("err")).unwrap(),
        "fine\n"
    );
}

#[tokio::test]
async fn a_gated_command_runs_only_once_its_gate_opens() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let cmd = format!(
        "touch {}; echo $PINBALL_JOB; read -r line; echo \"[$line]\"",
        marker.display()
    );
    let (tx, _rx) = mpsc::unbounded_channel();
    let (_abort_tx, abort) = watch::channel(false);

    let (closed, gate) = oneshot::channel();
    let run = tokio::spawn(run_after(
        spec(&dir, &cmd),
        tx.clone(),
        abort.clone(),
        Some(gate),
    ));
    drop(closed);
    assert!(
        run.await.unwrap().is_err(),
        "a gate dropped unsent runs nothing"
    );
    assert!(!marker.exists(), "the command did not start");

    let (open, gate) = oneshot::channel();
    let run = tokio::spawn(run_after(spec(&dir, &cmd), tx, abort, Some(gate)));
    open.send(()).unwrap();
    assert_eq!(run.await.unwrap().unwrap().exit_code, 0);
    assert!(marker.exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out")).unwrap(),
        "some_job\n[]\n",
        "its stdin is /dev/null, as ungated"
    );
}

#[tokio::test]
async fn the_abort_timeout_ends_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(&dir, "sleep 30 & sleep 30; echo never");
    s.abort_timeout = Some(Duration::from_millis(300));
    s.warn_timeout = Some(Duration::from_millis(100));
    let started = std::time::Instant::now();
    let (r, reports) = exec(s).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.exit_code, -libc::SIGTERM);
    assert!(r.killed_because.unwrap().contains("abort_timeout_sec"));
    assert_eq!(reports, vec![Report::WarnTimeout]);
}
