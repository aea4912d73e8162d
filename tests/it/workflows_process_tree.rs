//! A job's processes die with its worker (issue 23, F4), with real processes: a `-m workers`
//! process runs a job whose shell has started two more processes, and is SIGKILLed; within a
//! second none of the job's processes runs on.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::helpers::*;

/// Whether process `pid` runs (a zombie waiting to be reaped does not).
fn runs(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|r| !r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn pid_in(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

#[tokio::test]
async fn a_killed_worker_s_job_leaves_no_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (bg, fg) = (d.join("bg.pid"), d.join("fg.pid"));
    std::fs::write(
        d.join("wf.yaml"),
        format!(
            "workflows:\n  w:\n    jobs:\n      j: {{command: 'sleep 301 & echo $! > {}; sleep 302 & echo $! > {}; wait'}}\n",
            bg.display(),
            fg.display()
        ),
    )
    .unwrap();
    let master = master_with(d, "").await;
    let config = local_config(
        d,
        "workers.yaml",
        master.port,
        &format!(
            "parser_params:\n  workflows_config: {}\n",
            d.join("wf.yaml").display()
        ),
    );
    let cfg = config.to_str().unwrap();
    pinball_ok(
        &config,
        &[&["import", "-f"], &["util", "-f", "-w", "w", "start"]],
        d,
    )
    .await;
    let mut workers = spawn_pinball(&["-c", cfg, "-m", "workers"], d);
    wait_until(
        Duration::from_secs(30),
        "the job's processes run",
        || async { pid_in(&bg).is_some_and(|p| runs(&p)) && pid_in(&fg).is_some_and(|p| runs(&p)) },
    )
    .await;
    let (bg, fg) = (pid_in(&bg).unwrap(), pid_in(&fg).unwrap());
    workers.start_kill().unwrap();
    workers.wait().await.unwrap();
    let killed = Instant::now();
    wait_until(
        Duration::from_secs(1),
        "every process of the job is gone",
        || async { !runs(&bg) && !runs(&fg) },
    )
    .await;
    eprintln!(
        "the job's processes were gone {:?} after its worker",
        killed.elapsed()
    );
}
