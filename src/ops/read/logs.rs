//! Reading an execution's log, for the dashboard and `pinball logs`: from the chunks the worker
//! sent to the master, or else found inside this host's log directory from what the
//! execution's record says (`workflow::logs::locate`, so no token can point it at another
//! file); read from the end up to a bound, or streamed in chunks, never held in memory at once.

use std::path::PathBuf;

use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{DataLayer, execution_status};
use crate::config::Config;
use crate::storage::{LogKey, StorageError};
use crate::token::name::{InstanceId, JobName, WorkflowName};
use crate::workflow::logs;
use crate::workflow::status::Status;

/// The most of a log one answer shows at once; the whole file is streamed instead.
pub const MAX_TAIL: u64 = 4 << 20;
const CHUNK: usize = 64 * 1024;

/// Why a log cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// No such job, execution or log.
    #[error("{0}")]
    NotFound(String),
    /// The log exists and may not or cannot be read (outside the log directory, unreadable).
    #[error("{0}")]
    Refused(String),
    #[error("the database cannot be read: {0}")]
    Database(#[from] StorageError),
}

/// Where a log is read: the database and this host's configuration (its log directory and
/// `log_retention_days`).
#[derive(Clone, Copy)]
pub struct LogReader<'a> {
    pub data: &'a DataLayer,
    pub config: &'a Config,
}

/// Where an opened log's bytes come from.
enum Source {
    /// The chunks the worker sent to the master, in the database (wherever the job ran).
    Stored(DataLayer, StoredLog),
    /// A file in this UI's log directory (a worker on this host, before logs were sent).
    File(tokio::fs::File),
    /// Nothing to read: the job printed nothing, or see `missing`.
    Nothing,
}

/// An execution's log, opened: where its bytes are, its size when opened, whether the
/// execution still runs, and the kinds of log it has.
pub struct OpenLog {
    source: Source,
    pub size: u64,
    pub running: bool,
    pub kinds: Vec<String>,
    /// Why the log is incomplete, when the worker could not write or send all of it.
    pub trouble: Option<String>,
    /// Why nothing of the log can be shown, when that is not because the job printed nothing.
    pub missing: Option<String>,
    /// How the execution ended and how long it ran: `exit code 3 after 2m 5s`.
    pub outcome: String,
}

/// The last bytes of a log, as text.
pub struct LogText {
    pub text: String,
    pub size: u64,
    pub running: bool,
    pub kinds: Vec<String>,
    pub trouble: Option<String>,
    pub missing: Option<String>,
    pub outcome: String,
}

/// Which stored log: [`LogKey`], owned.
#[derive(Clone)]
struct StoredLog {
    name: String,
    execution: i64,
    kind: String,
}

impl StoredLog {
    fn key(&self) -> LogKey<'_> {
        LogKey {
            name: &self.name,
            execution: self.execution,
            kind: &self.kind,
        }
    }
}

/// Chunks read from the database at once.
const CHUNKS_PER_READ: u32 = 256;

/// `exit code 3 after 2m 5s`, `running for 12s`, `lost after 40s: ...`.
fn outcome(record: &crate::workflow::job::ExecutionRecord) -> String {
    let ran = crate::clock::duration(
        record.end_time.unwrap_or_else(crate::clock::now_f64) - record.start_time,
    );
    match (&record.lost, record.exit_code, record.end_time) {
        (Some(why), _, _) if record.paused => format!("{why} after {ran}"),
        (Some(why), _, _) => format!("lost after {ran}: {why}"),
        (None, Some(code), _) => format!("exit code {code} after {ran}"),
        (None, None, None) => format!("running for {ran}"),
        (None, None, Some(_)) => format!("ended after {ran}, no exit code"),
    }
}

impl LogReader<'_> {
    pub async fn open_log(
        self,
        (w, i, job): (&WorkflowName, &InstanceId, &JobName),
        n: usize,
        kind: &str,
    ) -> Result<OpenLog, LogError> {
        let jt = self.data.job(w, i, job).await?.ok_or_else(|| {
            LogError::NotFound(format!("job {job} of workflow {w} instance {i} not found"))
        })?;
        self.open_job_log(&jt, n, kind).await
    }

    /// [`LogReader::open_log`] of a job already read.
    pub async fn open_job_log(
        self,
        jt: &crate::workflow::instance::JobToken,
        n: usize,
        kind: &str,
    ) -> Result<OpenLog, LogError> {
        let (w, i, job) = (&jt.workflow, &jt.instance, &jt.job.name);
        let record =
            jt.job.history.get(n).ok_or_else(|| {
                LogError::NotFound(format!("execution {n} of job {job} not found"))
            })?;
        let Some(recorded) = record.logs.get(kind) else {
            return Err(LogError::NotFound(format!(
                "execution {n} of job {job} has no {kind} log"
            )));
        };
        let running = execution_status(jt, n) == Status::RUNNING;
        let kinds = record
            .logs
            .keys()
            .filter(|k| logs::KINDS.contains(&k.as_str()))
            .cloned()
            .collect();
        let mut trouble = record.log_trouble.get(kind).cloned();
        let stored = StoredLog {
            name: crate::token::name::job_log_key(w, i, job),
            execution: n as i64,
            kind: kind.to_owned(),
        };
        let extent = self
            .data
            .store
            .log_extent(&self.data.master, stored.key())
            .await?;
        let (source, size, missing) = match extent {
            Some(extent) => {
                if let Some(at) = extent.truncated_at {
                    trouble.get_or_insert(format!(
                    "the master keeps the first {at} bytes of this log (log_max_bytes); the rest is only on host {}",
                    extent.host
                ));
                }
                let source = Source::Stored(self.data.clone(), stored);
                (source, extent.size.max(0) as u64, None)
            }
            None => match self.local_file(jt, n, kind, recorded).await? {
                Some((file, size)) => (Source::File(file), size, None),
                None => (Source::Nothing, 0, self.why_missing(record, running)),
            },
        };
        Ok(OpenLog {
            source,
            size,
            running,
            kinds,
            trouble,
            missing,
            outcome: outcome(record),
        })
    }

    /// The log in this host's own log directory, if it is there.
    async fn local_file(
        self,
        jt: &crate::workflow::instance::JobToken,
        n: usize,
        kind: &str,
        recorded: &str,
    ) -> Result<Option<(tokio::fs::File, u64)>, LogError> {
        let (w, i, job) = (&jt.workflow, &jt.instance, &jt.job.name);
        let root = self.config.logs_dir();
        let path = logs::locate(&root, w, job, kind, recorded).map_err(|e| {
        tracing::warn!(workflow = %w, instance = %i, job = %job, execution = n, kind, error = %e, "ui refused a log path");
        LogError::NotFound(e.to_string())
    })?;
        let opened = tokio::task::spawn_blocking({
            let (root, path): (PathBuf, PathBuf) = (root.clone(), path.clone());
            move || logs::open_read(&root, &path)
        })
        .await
        .map_err(|e| LogError::Refused(e.to_string()))?;
        match opened {
            Ok((f, size)) => Ok(Some((tokio::fs::File::from_std(f), size))),
            // A log that was never written (the job printed nothing) is empty, not missing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ui cannot open a log");
                Err(LogError::Refused(format!(
                    "the {kind} log of {job} cannot be shown: {e}"
                )))
            }
        }
    }

    /// Why a log neither the database nor this host has cannot be shown; `None` when the job
    /// simply printed nothing (as far as anyone can tell).
    fn why_missing(
        self,
        record: &crate::workflow::job::ExecutionRecord,
        running: bool,
    ) -> Option<String> {
        let days = self.config.log_retention_days;
        let age = crate::clock::now_f64() - record.end_time.unwrap_or(record.start_time);
        if days > 0 && age > (days * 86_400) as f64 {
            return Some(format!(
                "this log is older than log_retention_days ({days} days): the master no longer keeps it"
            ));
        }
        let here = crate::config::host_name();
        if !record.host.is_empty() && record.host != here {
            return Some(if running {
                format!(
                    "nothing of this log has reached the master yet; it is being written on host {}",
                    record.host
                )
            } else {
                format!(
                    "this log was written on host {} and its worker sent none of it to the master (it may have stopped first, or the job printed nothing)",
                    record.host
                )
            });
        }
        None
    }
}

impl OpenLog {
    /// The last `tail` bytes (at most [`MAX_TAIL`]), as text.
    pub async fn tail(self, tail: u64) -> LogText {
        let take = tail.min(MAX_TAIL).min(self.size);
        let OpenLog {
            source,
            size,
            running,
            kinds,
            trouble,
            missing,
            outcome,
        } = self;
        let mut bytes = Vec::with_capacity(take as usize);
        let mut parts = std::pin::pin!(chunks(source, size, size - take));
        while let Some(part) = parts.next().await {
            match part {
                Ok(part) => bytes.extend_from_slice(&part),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a log");
                    break;
                }
            }
        }
        LogText {
            text: String::from_utf8_lossy(&bytes).into_owned(),
            size,
            running,
            kinds,
            trouble,
            missing,
            outcome,
        }
    }

    /// The log from byte `at` up to its size when opened, in chunks.
    pub fn chunks_from(self, at: u64) -> impl Stream<Item = std::io::Result<Vec<u8>>> + Send {
        chunks(self.source, self.size, at)
    }
}

/// The bytes of `source` from `at` up to `size`, in chunks (a file's, or the stored ones').
fn chunks(
    source: Source,
    size: u64,
    at: u64,
) -> impl Stream<Item = std::io::Result<Vec<u8>>> + Send {
    futures_util::stream::unfold(
        (source, at.min(size), false),
        move |(mut source, at, mut sought)| async move {
            if at >= size {
                return None;
            }
            let read = match &mut source {
                Source::Nothing => return None,
                Source::File(file) => {
                    if !sought {
                        if let Err(e) = file.seek(std::io::SeekFrom::Start(at)).await {
                            return Some((Err(e), (source, size, true)));
                        }
                        sought = true;
                    }
                    let mut buf = vec![0u8; CHUNK.min((size - at) as usize)];
                    match file.read(&mut buf).await {
                        Ok(0) => Ok(None),
                        Ok(n) => {
                            buf.truncate(n);
                            Ok(Some(buf))
                        }
                        Err(e) => Err(e),
                    }
                }
                Source::Stored(data, log) => read_stored(data, log.key(), at, size)
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string())),
            };
            match read {
                Ok(Some(part)) => {
                    let next = at + part.len() as u64;
                    Some((Ok(part), (source, next, sought)))
                }
                Ok(None) => None,
                Err(e) => Some((Err(e), (source, size, sought))),
            }
        },
    )
}

/// The stored bytes of a log from `at` up to `end` (at most a few MiB at once); `None` when
/// there are none.
async fn read_stored(
    data: &DataLayer,
    key: LogKey<'_>,
    at: u64,
    end: u64,
) -> Result<Option<Vec<u8>>, LogError> {
    let chunks = data
        .store
        .log_chunks(&data.master, key, at as i64, CHUNKS_PER_READ)
        .await?;
    if chunks.is_empty() {
        return Ok(None);
    }
    let want = at..end;
    let out = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for c in chunks {
            let start = c.start.max(0) as u64;
            // Chunks follow each other; a gap (never written) ends the read there.
            if start > want.start + out.len() as u64 {
                break;
            }
            let raw = crate::storage::decompress_log(&c.data, c.raw_len.max(0) as usize)?;
            let skip = (want.start + out.len() as u64).saturating_sub(start) as usize;
            let room = (want.end - want.start) as usize - out.len();
            out.extend(raw.iter().skip(skip).take(room));
            if out.len() as u64 >= want.end - want.start {
                break;
            }
        }
        Ok::<_, std::io::Error>(out)
    })
    .await
    .map_err(|e| LogError::Refused(e.to_string()))?
    .map_err(|e| LogError::Refused(format!("a stored log cannot be read: {e}")))?;
    Ok((!out.is_empty()).then_some(out))
}
