//! Runs one job command: `/bin/sh -c` in its own process group, stdout and stderr written to
//! per-execution log files as they are produced, `PINBALL:key=value` lines reported as they
//! appear, and the abort timeout or an abort request ending the whole group (SIGTERM, then
//! SIGKILL after a grace period). Called by the worker; knows nothing about tokens.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::fs::File;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

pub use super::launch::{JobUser, Launch};

/// The longest "line" written or parsed at once (PINBALL_SPEC §10.2).
pub const MAX_LINE: usize = 16 * 1024;

/// What to run and where its output goes.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    pub command: String,
    /// Who it runs as and the environment it starts from.
    pub launch: Arc<Launch>,
    /// Its own variables, over `launch.base_env`.
    pub env: Vec<(String, String)>,
    pub stdout_log: PathBuf,
    pub stderr_log: PathBuf,
    pub abort_timeout: Option<Duration>,
    pub warn_timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
}

/// Something the running command told us, as it happens.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// The command's process group exists (its id), before the command runs.
    Started(u32),
    /// A `PINBALL:key=value` line.
    Property(String, String),
    /// The warn timeout passed (once).
    WarnTimeout,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExecResult {
    /// 0 success; a killed process gives minus its signal number.
    pub exit_code: i32,
    /// Why Pinball ended it, if it did.
    pub killed_because: Option<String>,
    /// The logs (`stdout`, `stderr`) that are incomplete, and why.
    pub log_trouble: Vec<(&'static str, String)>,
}

/// Parses a magic line: `PINBALL:key=value` (surrounding whitespace ignored).
pub fn parse_magic(line: &str) -> Option<(String, String)> {
    let rest = line.trim().strip_prefix("PINBALL:")?;
    let (key, value) = rest.split_once('=')?;
    (!key.is_empty()).then(|| (key.to_owned(), value.to_owned()))
}

/// Copies `from` to the log file as it comes (a block at a time: a job printing megabytes a
/// second costs a write per block, not per line), and reports magic lines, each line at most
/// [`MAX_LINE`] bytes (a longer one is taken in pieces). The file is created with the first
/// output: a job that prints nothing costs no file (creating two empty files per job was most
/// of a fan-out's time). When the log cannot be opened or written (a full disk), the output is
/// still read to its end and its magic lines still reported, so the job never dies of a closed
/// pipe; the answer says where the log stops and why.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    path: PathBuf,
    reports: mpsc::UnboundedSender<Report>,
) -> std::io::Result<Option<String>> {
    let mut file: Option<File> = None;
    let mut written: u64 = 0;
    let mut trouble: Option<String> = None;
    // Most jobs print little or nothing: the block grows to its full size only for one that
    // fills it.
    let mut block = vec![0u8; FIRST_BLOCK];
    let mut line: Vec<u8> = Vec::with_capacity(256);
    loop {
        let n = from.read(&mut block).await?;
        if n == 0 {
            magic(&line, &reports);
            return Ok(trouble);
        }
        if n == block.len() && n < BLOCK {
            block.resize(BLOCK, 0);
        }
        let got = &block[..n];
        if trouble.is_none()
            && let Err(e) = write_block(&mut file, &path, got).await
        {
            tracing::error!(file = %path.display(), bytes_written = written, error = %e, "a job log cannot be written; its output is read on and dropped");
            trouble = Some(format!("cut short after {written} bytes: {e}"));
        }
        if trouble.is_none() {
            written += n as u64;
        }
        for piece in got.split_inclusive(|b| *b == b'\n') {
            line.extend_from_slice(piece);
            while line.len() >= MAX_LINE {
                let rest = line.split_off(MAX_LINE);
                magic(&line, &reports);
                line = rest;
            }
            if line.last() == Some(&b'\n') {
                magic(&line, &reports);
                line.clear();
            }
        }
    }
}

/// Bytes read from a job's output at once.
const BLOCK: usize = 64 * 1024;
/// Bytes read at once until a read fills them.
const FIRST_BLOCK: usize = 4 * 1024;

/// Reports `line` if it is a magic line.
fn magic(line: &[u8], reports: &mpsc::UnboundedSender<Report>) {
    if !line.trim_ascii_start().starts_with(b"PINBALL:") {
        return;
    }
    if let Some((k, v)) = parse_magic(&String::from_utf8_lossy(line)) {
        let _ = reports.send(Report::Property(k, v));
    }
}

/// Appends a block to the log, opening it first if needed.
async fn write_block(
    file: &mut Option<File>,
    path: &std::path::Path,
    line: &[u8],
) -> std::io::Result<()> {
    if file.is_none() {
        let opened = tokio::task::spawn_blocking({
            let path = path.to_owned();
            move || super::logs::open_append(&path)
        })
        .await
        .map_err(std::io::Error::other)??;
        *file = Some(File::from_std(opened));
    }
    let f = file.as_mut().expect("opened above");
    f.write_all(line).await?;
    f.flush().await
}

/// Stops every process of a job's group where it is (SIGSTOP): it does nothing more until
/// [`thaw`]. A worker that cannot confirm its lease freezes its job before the master could
/// give the job to another worker.
pub fn freeze(pgid: u32) {
    signal_group(pgid, libc::SIGSTOP);
}

/// Lets a frozen job's processes go on (SIGCONT).
pub fn thaw(pgid: u32) {
    signal_group(pgid, libc::SIGCONT);
}

/// Ends a frozen job's processes at once, without letting them run another instruction:
/// SIGKILL acts on stopped processes, and SIGCONT lets the kernel finish them.
pub fn kill_frozen(pgid: u32) {
    signal_group(pgid, libc::SIGKILL);
    signal_group(pgid, libc::SIGCONT);
}

fn signal_group(pgid: u32, signal: i32) {
    // SAFETY: killpg only sends a signal; a stale group id at worst fails with ESRCH.
    unsafe {
        libc::killpg(pgid as libc::pid_t, signal);
    }
}

/// The job's shell, in its own process group, dying with the worker: if the worker dies (even
/// by SIGKILL), the kernel ends the job's shell too, so a job whose lease runs out is not still
/// running when another worker starts it again (see [`super::spawn`]).
///
/// A gated command's shell waits for one line on its stdin before it runs the command (with
/// stdin back on /dev/null), so the process starts while the worker records the start, and
/// the command itself runs only once that is durable.
fn start(spec: &ExecSpec, gated: bool) -> std::io::Result<super::spawn::JobChild> {
    // One line, so the command's own line numbers (in the shell's errors) stay as written.
    let script = if gated {
        format!("read -r _ || exit 97; exec </dev/null; {}", spec.command)
    } else {
        spec.command.clone()
    };
    // The job's own variables over the launch's; the last of a name wins.
    let mut env: std::collections::BTreeMap<&std::ffi::OsStr, &std::ffi::OsStr> = spec
        .launch
        .base_env
        .iter()
        .map(|(k, v)| (k.as_os_str(), v.as_os_str()))
        .collect();
    env.extend(
        spec.env
            .iter()
            .map(|(k, v)| (std::ffi::OsStr::new(k), std::ffi::OsStr::new(v))),
    );
    super::spawn::spawn(&super::spawn::SpawnSpec {
        script: &script,
        env: env.into_iter().collect(),
        user: spec
            .launch
            .user
            .as_ref()
            .map(|u| (u.uid, u.gid, u.groups.clone())),
        stdin_piped: gated,
    })
}

/// Runs the command to its end. `abort` turning true ends it (SIGTERM, then SIGKILL).
pub async fn run(
    spec: ExecSpec,
    reports: mpsc::UnboundedSender<Report>,
    abort: watch::Receiver<bool>,
) -> std::io::Result<ExecResult> {
    run_inner(spec, reports, abort, None).await
}

/// [`run`], but the command starts only when `gate` is sent to: the process is spawned at
/// once and waits. A gate dropped unsent kills it before the command ran (an error). Without
/// a gate, [`run`].
pub async fn run_after(
    spec: ExecSpec,
    reports: mpsc::UnboundedSender<Report>,
    abort: watch::Receiver<bool>,
    gate: Option<oneshot::Receiver<()>>,
) -> std::io::Result<ExecResult> {
    run_inner(spec, reports, abort, gate).await
}

async fn run_inner(
    spec: ExecSpec,
    reports: mpsc::UnboundedSender<Report>,
    abort: watch::Receiver<bool>,
    gate: Option<oneshot::Receiver<()>>,
) -> std::io::Result<ExecResult> {
    let mut child = start(&spec, gate.is_some())?;
    let pgid = child.id();
    if pgid != 0 {
        let _ = reports.send(Report::Started(pgid));
    }
    // Told to the reaper until the group has ended, whichever way this function returns.
    let watched = spec
        .launch
        .reaper
        .as_ref()
        .filter(|_| pgid != 0)
        .map(|r| r.watch(pgid));
    if let Some(gate) = gate {
        let mut stdin = child.stdin.take().expect("piped");
        if gate.await.is_err() {
            signal_group(child.id(), libc::SIGKILL);
            let _ = child.wait().await;
            return Err(std::io::Error::other(
                "the command was not started: its start could not be recorded",
            ));
        }
        stdin.write_all(b"\n").await?;
        drop(stdin);
    }
    let out = tokio::spawn(pump(
        child.stdout.take().expect("piped"),
        spec.stdout_log.clone(),
        reports.clone(),
    ));
    let err = tokio::spawn(pump(
        child.stderr.take().expect("piped"),
        spec.stderr_log.clone(),
        reports.clone(),
    ));
    let (status, killed_because) = supervise(&mut child, &spec, &reports, abort).await?;
    // What the job left running in its group ends with it (after `job_linger_sec`), so no
    // background process outlives its job, and none holds the job's output open.
    end_leftovers(pgid, spec.launch.linger, spec.kill_grace, watched);
    // Output still buffered in the pipes is written out; a grandchild that keeps a pipe open
    // does not hold the job forever.
    let mut log_trouble = Vec::new();
    for (kind, pump) in [("stdout", out), ("stderr", err)] {
        let trouble = match tokio::time::timeout(Duration::from_secs(5), pump).await {
            Ok(Ok(Ok(None))) => None,
            Ok(Ok(Ok(Some(why)))) => Some(why),
            Ok(Ok(Err(e))) => Some(format!("reading the job's output failed: {e}")),
            Ok(Err(e)) => Some(format!("copying the job's output failed: {e}")),
            Err(_) => {
                tracing::warn!(
                    "a job's output stayed open after it exited; its log may be cut short"
                );
                Some("the job's output stayed open after it exited; the rest was not read".into())
            }
        };
        log_trouble.extend(trouble.map(|t| (kind, t)));
    }
    let exit_code = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(code), _) => code,
        (None, Some(sig)) => -sig,
        (None, None) => 1,
    };
    Ok(ExecResult {
        exit_code,
        killed_because,
        log_trouble,
    })
}

/// Waits for the child, sending the warn-timeout report, and ending its process group on the
/// abort timeout or an abort (SIGTERM, SIGKILL after the grace). Returns how it exited and why
/// Pinball ended it, if it did.
async fn supervise(
    child: &mut super::spawn::JobChild,
    spec: &ExecSpec,
    reports: &mpsc::UnboundedSender<Report>,
    mut abort: watch::Receiver<bool>,
) -> std::io::Result<(std::process::ExitStatus, Option<String>)> {
    let pgid = child.id();
    let started = Instant::now();
    let abort_at = spec.abort_timeout.map(|t| started + t);
    let mut warn_at = spec.warn_timeout.map(|t| started + t);
    let mut killed_because: Option<String> = None;
    let mut kill_at: Option<Instant> = None;
    let end = |why: String, killed: &mut Option<String>| {
        *killed = Some(why);
        signal_group(pgid, libc::SIGTERM);
        Some(Instant::now() + spec.kill_grace)
    };
    loop {
        tokio::select! {
            status = child.wait() => return Ok((status?, killed_because)),
            _ = sleep_until(warn_at) => {
                warn_at = None;
                let _ = reports.send(Report::WarnTimeout);
            }
            _ = sleep_until(abort_at), if killed_because.is_none() => {
                let limit = spec.abort_timeout.unwrap_or_default().as_secs();
                kill_at = end(format!("abort_timeout_sec of {limit}s exceeded"), &mut killed_because);
            }
            changed = abort.changed(), if killed_because.is_none() => {
                if changed.is_err() || *abort.borrow() {
                    kill_at = end("aborted".into(), &mut killed_because);
                }
            }
            _ = sleep_until(kill_at) => {
                signal_group(pgid, libc::SIGKILL);
                kill_at = None;
            }
        }
    }
}

/// Ends the processes a job left in its group once its shell exited: at once (SIGKILL) with no
/// linger, else SIGTERM after the linger and SIGKILL after the grace. The reaper forgets the
/// group when `watched` is dropped, once the group is ended.
fn end_leftovers(
    pgid: u32,
    linger: Duration,
    grace: Duration,
    watched: Option<super::reaper::Watched>,
) {
    if pgid == 0 {
        return;
    }
    if linger.is_zero() {
        signal_group(pgid, libc::SIGKILL);
        return;
    }
    tokio::spawn(async move {
        let _watched = watched;
        tokio::time::sleep(linger).await;
        signal_group(pgid, libc::SIGTERM);
        tokio::time::sleep(grace).await;
        signal_group(pgid, libc::SIGKILL);
    });
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[path = "executor_tests.rs"]
mod tests;
