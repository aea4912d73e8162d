//! Sends an execution's logs to the master while the job runs, so any UI shows them live and
//! after this host is gone. The executor writes the log files as before; this task reads what
//! is new in them every [`EVERY`] and sends it in order (`/api/v1/logs`, at most
//! [`MAX_LOG_CHUNK`] bytes a request). A chunk counts as sent once the master answered it, so
//! a master that is away only delays the logs: they are on this disk and go once it is back.
//! The master says when it keeps no more of a log (`log_max_bytes`); then that log is left.
//! Once the job ended, the last bytes of its logs (a chunk shorter than a whole one) are not
//! sent alone: they go with the run's end, in its commit (`/modify`'s `logs`).

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::sync::watch;

use super::run::RunEnd;
use crate::master::MasterClient;
use crate::token::{LogRequest, MAX_LOG_CHUNK, MAX_LOGS_IN_MODIFY, MasterError};
use crate::workflow::instance::JobToken;
use crate::workflow::job::ExecutionRecord;
use crate::workflow::logs;

/// How often new output is sent: well within the second a live log may lag.
const EVERY: Duration = Duration::from_millis(250);
/// Chunks one log sends per round at most, so one loud log does not starve the others.
const CHUNKS_PER_ROUND: usize = 4;
/// How long the last sending may take once the job ended, before its end is committed
/// anyway (the bytes left stay in the log files on this host).
const LAST_ROUND: Duration = Duration::from_secs(10);

/// Which execution's logs.
#[derive(Debug, Clone)]
pub struct LogOf {
    pub workflow: String,
    pub instance: String,
    pub job: String,
    pub execution: u32,
    pub host: String,
    /// The worker's log directory, which every log it sends is inside.
    pub root: PathBuf,
    /// The worker's owner name (the master takes a job's log only from its holder).
    pub owner: String,
}

#[derive(Debug)]
struct Log {
    kind: String,
    path: PathBuf,
    sent: u64,
    /// The master keeps no more of it.
    full: bool,
    /// A sending of it went unanswered: the master may hold more than `sent`, which only a
    /// chunk sent alone finds out (a run's end does not carry such a log).
    unsure: bool,
}

/// What the job left when it ended: every log its record names, and whether the run's end
/// carries the last bytes of them.
#[derive(Debug, Clone, Default)]
struct Ended {
    paths: Vec<(String, PathBuf)>,
    keep: bool,
}

/// The task sending one execution's logs.
pub struct Shipper {
    done: watch::Sender<Option<Ended>>,
    task: tokio::task::JoinHandle<Vec<LogRequest>>,
}

impl Shipper {
    /// Starts sending the logs `record` names.
    pub fn start(client: Arc<dyn MasterClient>, of: LogOf, record: &ExecutionRecord) -> Shipper {
        let (done, done_rx) = watch::channel(None);
        let logs = paths(record).into_iter().map(new_log).collect();
        let task = tokio::spawn(run(client, of, logs, done_rx));
        Shipper { done, task }
    }

    /// Sends what is left, the logs `record` names now included (a pinlog written at the
    /// end), and stops: bounded by [`LAST_ROUND`]. With `keep`, the last bytes of each log (up
    /// to [`MAX_LOGS_IN_MODIFY`] together) are not sent but returned, for the run's end.
    pub async fn finish(self, record: &ExecutionRecord, keep: bool) -> Vec<LogRequest> {
        let paths = paths(record);
        let _ = self.done.send(Some(Ended { paths, keep }));
        self.task.await.unwrap_or_default()
    }
}

/// Sends logs a run's end was to carry, when it cannot (its master takes none): each as
/// `/logs` takes it. A log the master refuses stays on this host.
pub async fn send_tails(client: &dyn MasterClient, tails: Vec<LogRequest>) {
    for req in tails {
        let (job, kind) = (req.job.clone(), req.kind.clone());
        if let Err(e) = client.append_log(req).await {
            tracing::warn!(%job, log = %kind, error = %e, "the end of the job's log did not reach the master; it stays on this host");
        }
    }
}

impl super::Worker {
    /// Sends what is left of the run's logs, but for their last bytes, which it returns for
    /// the end to carry in its own commit (unless the job is handed back, or the master takes
    /// none there). The log is complete in the master once the end is (a pinlog written at
    /// the end included), so a finished job's log never shows less than it printed.
    pub(super) async fn finish_logs(
        &self,
        shipper: Shipper,
        end: &RunEnd,
        started: &ExecutionRecord,
        jt: &JobToken,
    ) -> Vec<LogRequest> {
        let last = end.job().and_then(|j| j.history.last()).unwrap_or(started);
        let keep = matches!(end, RunEnd::Finished(_) | RunEnd::Aborted(_))
            && !self.no_end_logs.load(std::sync::atomic::Ordering::Relaxed);
        tokio::select! {
            tails = shipper.finish(last, keep) => tails,
            () = self.stop_deadline() => {
                tracing::warn!(worker = %self.name, job = %jt.job.name, "stopping: the rest of the job's log stays on this host");
                Vec::new()
            }
        }
    }
}

fn paths(record: &ExecutionRecord) -> Vec<(String, PathBuf)> {
    record
        .logs
        .iter()
        .map(|(k, p)| (k.clone(), PathBuf::from(p)))
        .collect()
}

fn new_log((kind, path): (String, PathBuf)) -> Log {
    Log {
        kind,
        path,
        sent: 0,
        full: false,
        unsure: false,
    }
}

async fn run(
    client: Arc<dyn MasterClient>,
    of: LogOf,
    mut logs: Vec<Log>,
    mut done: watch::Receiver<Option<Ended>>,
) -> Vec<LogRequest> {
    // The first look a tick in: a job shorter than that sends its log once, at its end.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + EVERY, EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = done.changed() => break,
        }
        if let Err(e) = round(client.as_ref(), &of, &mut logs, CHUNKS_PER_ROUND, None).await
            && !warned
        {
            warned = true;
            tracing::warn!(job = %of.job, instance = %of.instance, error = %e, "cannot send the job's log to the master yet; it stays on this host until then");
        }
    }
    let Ended { paths, keep } = done.borrow().clone().unwrap_or_default();
    for (kind, path) in paths {
        if !logs.iter().any(|l| l.kind == kind) {
            logs.push(new_log((kind, path)));
        }
    }
    // The job has exited: each log is sent to its end (a chunk shorter than a whole one),
    // which the run's end may carry instead.
    let mut tails = keep.then(|| Tails {
        room: MAX_LOGS_IN_MODIFY,
        requests: Vec::new(),
    });
    let last = round(client.as_ref(), &of, &mut logs, usize::MAX, tails.as_mut());
    match tokio::time::timeout(LAST_ROUND, last).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(job = %of.job, instance = %of.instance, error = %e, "the end of the job's log did not reach the master; it stays on this host")
        }
        Err(_) => {
            tracing::warn!(job = %of.job, instance = %of.instance, "sending the end of the job's log took too long; the rest stays on this host")
        }
    }
    tails.map(|t| t.requests).unwrap_or_default()
}

/// The last bytes of the logs, kept for the run's end to carry.
struct Tails {
    /// How many more bytes the end may carry.
    room: usize,
    requests: Vec<LogRequest>,
}

/// Sends up to `passes` new chunks of each log, a chunk of each per pass; a log's last chunk
/// (shorter than a whole one) goes into `tails` instead while it has room. A pass follows
/// only while a log may hold more already (its last chunk read was a whole one).
async fn round(
    client: &dyn MasterClient,
    of: &LogOf,
    logs: &mut [Log],
    passes: usize,
    mut tails: Option<&mut Tails>,
) -> Result<(), MasterError> {
    for _ in 0..passes {
        let mut more = false;
        let chunks = next_chunks(of, logs).await;
        for (log, bytes) in logs.iter_mut().zip(chunks) {
            let Some(bytes) = bytes else { continue };
            let whole = bytes.len() == MAX_LOG_CHUNK;
            if let Some(t) = tails
                .as_deref_mut()
                .filter(|t| !whole && !log.unsure && bytes.len() <= t.room)
            {
                t.room -= bytes.len();
                t.requests.push(request(of, log, &bytes));
                // Handed to the end: not read again.
                log.sent += bytes.len() as u64;
                continue;
            }
            send(client, of, log, bytes).await?;
            more |= whole && !log.full;
        }
        if !more {
            break;
        }
    }
    Ok(())
}

/// The next chunk of each log still taken by the master, read in one blocking task; none
/// without one when no log is longer than what was sent of it (a quiet job's logs do not
/// exist: a look at them costs a `stat` each, not two hand-offs to a blocking thread).
async fn next_chunks(of: &LogOf, logs: &[Log]) -> Vec<Option<Vec<u8>>> {
    let root = of.root.clone();
    let wanted: Vec<_> = logs
        .iter()
        .map(|l| (!l.full).then(|| (l.path.clone(), l.sent)))
        .collect();
    // Only a skip: a log that looks longer is read with every check of `read_from`.
    let longer = |(path, sent): &(PathBuf, u64)| {
        std::fs::symlink_metadata(path).is_ok_and(|m| m.len() > *sent)
    };
    if !wanted.iter().flatten().any(longer) {
        return vec![None; wanted.len()];
    }
    tokio::task::spawn_blocking(move || {
        wanted
            .into_iter()
            .map(|w| w.and_then(|(path, from)| read_from(&root, &path, from)))
            .collect()
    })
    .await
    .unwrap_or_default()
}

/// Sends one chunk of `log`: counted as sent once the master answered; the log is left when
/// the master takes no more of it.
async fn send(
    client: &dyn MasterClient,
    of: &LogOf,
    log: &mut Log,
    bytes: Vec<u8>,
) -> Result<(), MasterError> {
    let answer = client.append_log(request(of, log, &bytes)).await;
    let answer = match answer {
        Ok(a) => a,
        Err(why @ (MasterError::Forbidden(_) | MasterError::VersionConflict(_))) => {
            // This worker no longer holds the job (its lease was lost), or the master holds
            // other bytes here: whoever runs it now sends its own log.
            tracing::warn!(job = %of.job, log = %log.kind, reason = %why, "the master takes no more of this log from this worker; the rest stays on this host");
            log.full = true;
            return Ok(());
        }
        Err(e) => {
            log.unsure = true;
            return Err(e);
        }
    };
    log.sent += bytes.len() as u64;
    log.unsure = false;
    if let Some(at) = answer.truncated_at {
        tracing::info!(job = %of.job, log = %log.kind, kept_bytes = at, "the master keeps no more of this log (log_max_bytes); the rest stays on this host");
        log.full = true;
    }
    Ok(())
}

/// The request that stores `bytes` of `log` from what was sent of it.
fn request(of: &LogOf, log: &Log, bytes: &[u8]) -> LogRequest {
    LogRequest {
        workflow: of.workflow.clone(),
        instance: of.instance.clone(),
        job: of.job.clone(),
        execution: of.execution,
        kind: log.kind.clone(),
        offset: log.sent,
        data: base64::engine::general_purpose::STANDARD.encode(bytes),
        host: of.host.clone(),
        owner: of.owner.clone(),
    }
}

/// Up to [`MAX_LOG_CHUNK`] bytes of the log from `offset`, opened as the UI opens logs (inside
/// `root`, no symbolic link, a regular file); `None` when there are none (yet).
fn read_from(root: &std::path::Path, path: &std::path::Path, offset: u64) -> Option<Vec<u8>> {
    let (mut file, len) = logs::open_read(root, path).ok()?;
    if len <= offset {
        return None;
    }
    file.seek(SeekFrom::Start(offset)).ok()?;
    let mut bytes = Vec::with_capacity(((len - offset) as usize).min(MAX_LOG_CHUNK));
    file.take(MAX_LOG_CHUNK as u64)
        .read_to_end(&mut bytes)
        .ok()?;
    (!bytes.is_empty()).then_some(bytes)
}
