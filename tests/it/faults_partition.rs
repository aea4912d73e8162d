//! A worker cut off from a healthy master (issue 23, F2), with real processes over real HTTP:
//! worker A reaches the master through a proxy the test cuts while A's job runs; worker B
//! reaches it directly and takes the job once A's lease runs out. A freezes its job's
//! processes before the master could give the job to B, so no line of A's run is written
//! after B's run began; once the cut heals, A learns B has the job and ends its frozen copy.

use std::time::Duration;

use pinball::token::name;

use crate::helpers::*;

fn workers_config(dir: &std::path::Path, name: &str, port: u16) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "master_port: {port}\nlease_sec: 3\nworker_poll_time_sec: 1\nworkers: 1\nlost_lease_retries: 1\nlocal_logs_dir_prefix: {}\n",
            dir.display()
        ),
    )
    .unwrap();
    path
}

/// The lines `EXECUTION NANOS` the job wrote.
fn marks(path: &std::path::Path) -> Vec<(u32, u128)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (e, t) = l.split_once(' ')?;
            Some((e.parse().ok()?, t.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn a_partitioned_worker_freezes_its_job_before_another_worker_can_run_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let app = spawn_app(&dir).await;
    let out = d.join("marks");
    // About 8 s of work, a line every 0.2 s, each naming its execution.
    let yaml = format!(
        "workflows:\n  p:\n    jobs:\n      j: {{command: 'for n in $(seq 40); do echo \"$PINBALL_EXECUTION $(date +%s%N)\" >> {}; sleep 0.2; done'}}\n",
        out.display()
    );
    import_yaml(&app.client, &yaml).await;
    let proxy = Proxy::start(app.addr).await;
    let a = workers_config(d, "a.yaml", proxy.port);
    let b = workers_config(d, "b.yaml", app.addr.port());
    let _a = spawn_pinball(&["-c", a.to_str().unwrap(), "-m", "workers"], d);
    let started = pinball_out(
        &["-c", b.to_str().unwrap(), "util", "-f", "-w", "p", "start"],
        d,
    )
    .await;
    let i = started_instance(&String::from_utf8_lossy(&started.stdout));
    wait_until(Duration::from_secs(30), "worker A runs the job", || async {
        marks(&out).len() >= 3
    })
    .await;
    proxy.cut();
    let _b = spawn_pinball(&["-c", b.to_str().unwrap(), "-m", "workers"], d);
    let waiting = name::job_token(&wf("p"), &inst(&i), name::JobState::Waiting, &job("j"));
    wait_until(
        Duration::from_secs(60),
        "worker B runs the job to its end",
        || async { job_at(&app.client, &waiting).await.is_some() },
    )
    .await;
    let lines = marks(&out);
    let b_began = lines
        .iter()
        .filter(|(e, _)| *e == 1)
        .map(|(_, t)| *t)
        .min()
        .expect("B's run wrote lines");
    let a_last = lines
        .iter()
        .filter(|(e, _)| *e == 0)
        .map(|(_, t)| *t)
        .max()
        .unwrap();
    assert!(
        a_last < b_began,
        "A's run wrote a line {} ms after B's run began",
        (a_last - b_began) / 1_000_000
    );
    assert_eq!(
        lines.iter().filter(|(e, _)| *e == 1).count(),
        40,
        "B ran to its end"
    );
    // The cut heals: A learns B had the job and ends its frozen copy; it never writes again.
    proxy.restore();
    let history = job_at(&app.client, &waiting).await.unwrap().job.history;
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(
        history[0].lost.is_some() && history[0].exit_code.is_none(),
        "{history:?}"
    );
    assert_eq!(history[1].exit_code, Some(0));
    let a_lines = |ls: &[(u32, u128)]| ls.iter().filter(|(e, _)| *e == 0).count();
    let before = a_lines(&lines);
    // A's next renewal (within a second of the heal) finds the job gone and kills the copy; a
    // thawed copy would write a line every 0.2 s.
    wait_until(
        Duration::from_secs(10),
        "A's frozen job is gone",
        || async {
            !std::process::Command::new("pgrep")
                .args(["-f", &out.display().to_string()])
                .status()
                .unwrap()
                .success()
        },
    )
    .await;
    assert_eq!(a_lines(&marks(&out)), before, "A's frozen run went on");
    app.stop().await;
}
