//! Job logs sent by the workers (`/api/v1/logs`), stored in the database beside the tokens so
//! that every UI can show a log wherever its job ran, and after that host is gone.
//!
//! Logs never touch the token writer: they have their own queue and their own small
//! transactions, batched (one transaction carries every chunk that arrived while the last one
//! committed), so a job printing megabytes a second does not delay other jobs' commits. Each
//! log is bounded (`log_max_bytes`); the chunk that reaches the bound is cut there and marked,
//! and the worker is told to send no more. A full queue answers UNAVAILABLE at once (the
//! worker keeps the bytes on its disk and sends them again). Chunks older than
//! `log_retention_days` are deleted in small batches.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::sync::{mpsc, oneshot};

use crate::storage::{LogChunk, Logs};
use crate::token::Conflict;
use crate::token::{LogRequest, LogResponse, MAX_LOG_CHUNK, MasterError};

/// The kinds of log a worker sends.
const KINDS: [&str; 3] = ["stdout", "stderr", "pinlog"];
/// Chunks waiting for the database at most; more are refused (UNAVAILABLE) until it catches up.
const QUEUE: usize = 256;
/// Chunks in one transaction at most.
const BATCH: usize = 64;
/// Chunks up to this many bytes are compressed on the task that received them.
const INLINE_COMPRESS: usize = 16 * 1024;
/// Chunks one retention pass deletes per transaction.
const RETENTION_BATCH: u32 = 500;

/// How the master keeps logs.
#[derive(Debug, Clone, Copy)]
pub struct LogOptions {
    /// The most bytes kept of one log (`log_max_bytes`).
    pub max_bytes: u64,
    /// Chunks older than this are deleted (`log_retention_days`; 0 keeps them).
    pub retention_days: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            max_bytes: crate::config::DEFAULT_LOG_MAX_BYTES,
            retention_days: crate::config::DEFAULT_LOG_RETENTION_DAYS,
        }
    }
}

type Queued = (LogChunk, oneshot::Sender<Result<(), MasterError>>);

/// The master's log store: a handle to its writer task.
#[derive(Clone)]
pub struct LogSink {
    tx: mpsc::Sender<Queued>,
    options: LogOptions,
    storage: Arc<dyn Logs>,
    master: String,
}

impl LogSink {
    /// The sink's writer ends with the sink; its retention passes when `until` changes or its
    /// sender goes (the master deposed or gone).
    pub fn spawn(
        storage: Arc<dyn Logs>,
        master: String,
        options: LogOptions,
        mut until: tokio::sync::watch::Receiver<Option<String>>,
    ) -> LogSink {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_loop(storage.clone(), master.clone(), rx));
        if options.retention_days > 0 {
            let passes = retention_loop(storage.clone(), master.clone(), options.retention_days);
            tokio::spawn(async move {
                tokio::select! {
                    () = passes => {}
                    _ = until.changed() => {}
                }
            });
        }
        LogSink {
            tx,
            options,
            storage,
            master,
        }
    }

    /// Stores a piece of the log of the job whose key in the log table is `name`; answers
    /// once it is committed.
    pub async fn append(&self, req: LogRequest, name: String) -> Result<LogResponse, MasterError> {
        let (chunk, response) = self.prepare(req, name, true).await?;
        let Some(chunk) = chunk else {
            return Ok(response);
        };
        let (reply, done) = oneshot::channel();
        self.tx.try_send((chunk, reply)).map_err(|_| {
            MasterError::Unavailable(
                "the master's log store is busy; the worker keeps the log and sends it again"
                    .into(),
            )
        })?;
        done.await
            .map_err(|_| MasterError::Unavailable("the master is shutting down".into()))??;
        Ok(response)
    }

    /// The chunk to store of a piece of a log (checked, cut at `log_max_bytes`, compressed),
    /// `None` when nothing is left to store; and the answer its sender gets once it is stored.
    /// With `read_stored`, the bytes stored already are read first and left out (a resend);
    /// without, the insert itself skips a chunk whose bytes are stored (a run's end).
    pub async fn prepare(
        &self,
        req: LogRequest,
        name: String,
        read_stored: bool,
    ) -> Result<(Option<LogChunk>, LogResponse), MasterError> {
        let bytes = checked(&req)?;
        let limit = self.options.max_bytes;
        if req.offset > limit {
            return Ok((
                None,
                LogResponse {
                    truncated_at: Some(limit),
                },
            ));
        }
        let keep = bytes.len().min((limit - req.offset) as usize);
        let cut = keep < bytes.len() || (req.offset == limit && !bytes.is_empty());
        let response = LogResponse {
            truncated_at: cut.then_some(limit),
        };
        let skip = match keep {
            0 => 0,
            _ if !read_stored => 0,
            _ => self.stored_already(&name, &req, &bytes[..keep]).await?,
        };
        if keep > 0 && skip == keep {
            return Ok((None, response));
        }
        let (start, raw_len) = (req.offset as i64 + skip as i64, (keep - skip) as i64);
        let data = compress(bytes, skip..keep).await?;
        let chunk = LogChunk {
            name,
            execution: i64::from(req.execution),
            kind: req.kind,
            start,
            raw_len,
            data,
            host: req.host,
            truncated_at: cut.then_some(limit as i64),
            created_at: crate::clock::now(),
        };
        Ok((Some(chunk), response))
    }

    /// How many leading bytes of this chunk are stored already (a resend after a lost answer,
    /// perhaps with more bytes since). Bytes that overlap what is stored but differ from it are
    /// refused, never dropped in silence: the first writer's bytes stay, and the sender is told.
    async fn stored_already(
        &self,
        name: &str,
        req: &LogRequest,
        bytes: &[u8],
    ) -> Result<usize, MasterError> {
        let unavailable = |e: crate::storage::StorageError| MasterError::Unavailable(e.to_string());
        let key = crate::storage::LogKey {
            name,
            execution: i64::from(req.execution),
            kind: &req.kind,
        };
        let offset = req.offset as i64;
        let extent = self
            .storage
            .log_extent(&self.master, key)
            .await
            .map_err(unavailable)?;
        let Some(stored_end) = extent.map(|e| e.size).filter(|s| *s > offset) else {
            return Ok(0);
        };
        let overlap = ((stored_end - offset) as usize).min(bytes.len());
        // The stored bytes of [offset, offset + overlap): a few chunks at most (each a send).
        let mut stored = Vec::with_capacity(overlap);
        let mut from = offset;
        while (stored.len()) < overlap {
            let chunks = self
                .storage
                .log_chunks(&self.master, key, from, 4)
                .await
                .map_err(unavailable)?;
            if chunks.is_empty() {
                break;
            }
            for c in chunks {
                let raw =
                    crate::storage::decompress_log(&c.data, c.raw_len as usize).map_err(|e| {
                        MasterError::Unavailable(format!("a stored log cannot be read: {e}"))
                    })?;
                let skip = (from - c.start).max(0) as usize;
                stored.extend_from_slice(raw.get(skip..).unwrap_or_default());
                from = c.start + c.raw_len;
            }
        }
        stored.truncate(overlap);
        if stored.len() == overlap && stored == bytes[..overlap] {
            return Ok(overlap);
        }
        Err(MasterError::VersionConflict(Conflict::said(format!(
            "other bytes of the {} log of execution {} are stored from byte {offset}; a log is written once, by the worker that ran it",
            req.kind, req.execution
        ))))
    }
}

/// The bytes of a request whose job was found (its names checked by the master's naming),
/// once every other part of it is what it must be.
fn checked(req: &LogRequest) -> Result<Vec<u8>, MasterError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| MasterError::input(format!("{what}: {e}"));
    if !KINDS.contains(&req.kind.as_str()) {
        return Err(MasterError::input(format!(
            "kind {:?} is not a kind of log; use stdout, stderr or pinlog",
            req.kind
        )));
    }
    if req.host.len() > 255 || req.host.chars().any(char::is_control) {
        return Err(MasterError::input(
            "host must be at most 255 characters, none of them a control character",
        ));
    }
    if req.data.len() > MAX_LOG_CHUNK.div_ceil(3) * 4 {
        return Err(MasterError::input(format!(
            "data carries more than {MAX_LOG_CHUNK} bytes; send the log in smaller chunks"
        )));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&req.data)
        .map_err(|e| bad("data is not base64", &e))?;
    if bytes.len() > MAX_LOG_CHUNK {
        return Err(MasterError::input(format!(
            "data carries {} bytes, more than {MAX_LOG_CHUNK}; send the log in smaller chunks",
            bytes.len()
        )));
    }
    if req
        .offset
        .checked_add(bytes.len() as u64)
        .is_none_or(|end| end > i64::MAX as u64)
    {
        return Err(MasterError::input("offset is too large"));
    }
    Ok(bytes)
}

/// `bytes[range]` compressed: at once when it is small (the tail of a log, compressed in
/// microseconds), on a blocking thread otherwise.
async fn compress(bytes: Vec<u8>, range: std::ops::Range<usize>) -> Result<Vec<u8>, MasterError> {
    if range.len() <= INLINE_COMPRESS {
        return Ok(crate::storage::compress_log(&bytes[range]));
    }
    tokio::task::spawn_blocking(move || crate::storage::compress_log(&bytes[range]))
        .await
        .map_err(|e| MasterError::Unavailable(format!("compressing the log failed: {e}")))
}

async fn write_loop(storage: Arc<dyn Logs>, master: String, mut rx: mpsc::Receiver<Queued>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH
            && let Ok(more) = rx.try_recv()
        {
            batch.push(more);
        }
        let (chunks, replies): (Vec<LogChunk>, Vec<_>) = batch.into_iter().unzip();
        let result = storage.write_logs(&master, &chunks).await;
        if let Err(e) = &result {
            tracing::error!(chunks = chunks.len(), error = %e, "cannot store job logs; the workers send them again");
        }
        for reply in replies {
            let _ = reply.send(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| MasterError::Unavailable(format!("the log was not stored: {e}"))),
            );
        }
    }
}

/// Deletes chunks older than `days`, a batch at a time, every ten minutes.
async fn retention_loop(storage: Arc<dyn Logs>, master: String, days: u64) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        let before = crate::clock::now() - (days * 86_400) as i64;
        let mut deleted = 0;
        loop {
            match storage
                .delete_old_logs(&master, before, RETENTION_BATCH)
                .await
            {
                Ok(n) => {
                    deleted += n;
                    if n < u64::from(RETENTION_BATCH) {
                        break;
                    }
                    // Small batches with a pause: the token writer never waits long.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot delete old job logs; trying again later");
                    break;
                }
            }
        }
        if deleted > 0 {
            tracing::info!(
                deleted,
                older_than_days = days,
                "deleted old job log chunks"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(data: &[u8]) -> LogRequest {
        LogRequest {
            workflow: "w".into(),
            instance: "1".into(),
            job: "j".into(),
            execution: 0,
            kind: "stdout".into(),
            offset: 0,
            data: base64::engine::general_purpose::STANDARD.encode(data),
            host: "b".into(),
            owner: "b_1_1_0".into(),
        }
    }

    #[test]
    fn a_chunk_compresses_and_comes_back_whole() {
        let text = "line of a log\n".repeat(10_000);
        let z = crate::storage::compress_log(text.as_bytes());
        assert!(z.len() < text.len() / 10);
        assert_eq!(
            crate::storage::decompress_log(&z, text.len()).unwrap(),
            text.as_bytes()
        );
    }

    #[test]
    fn requests_name_a_real_log() {
        assert_eq!(checked(&req(b"hi")).unwrap(), b"hi");
        for (bad, says) in [
            (
                LogRequest {
                    kind: "passwd".into(),
                    ..req(b"x")
                },
                "kind",
            ),
            (
                LogRequest {
                    data: "not base64!".into(),
                    ..req(b"x")
                },
                "base64",
            ),
            (
                LogRequest {
                    host: "a\nb".into(),
                    ..req(b"x")
                },
                "host",
            ),
            (req(&vec![b'x'; MAX_LOG_CHUNK + 1]), "smaller chunks"),
            (
                LogRequest {
                    offset: u64::MAX,
                    ..req(b"x")
                },
                "offset",
            ),
        ] {
            let e = checked(&bad).err().map(|e| e.to_string());
            assert!(
                e.as_deref().is_some_and(|e| e.contains(says)),
                "{says}: {e:?}"
            );
        }
    }
}
