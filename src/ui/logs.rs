//! Reading an execution's log for the UI: found inside this UI's log directory from what the
//! execution's record says (`workflow::logs::locate`, so no token can point it at another
//! file), read from the end up to a bound, or streamed whole in chunks, never held in memory
//! at once.

use std::path::PathBuf;

use axum::body::{Body, Bytes};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::Ui;
use super::data::execution_status;
use super::error::UiError;
use crate::token::name::{InstanceId, JobName, WorkflowName};
use crate::workflow::logs;
use crate::workflow::status::Status;

/// The most of a log one answer shows at once; the whole file is streamed instead.
pub const MAX_TAIL: u64 = 4 << 20;
const CHUNK: usize = 64 * 1024;

/// An execution's log, opened: the file (none when the job has not written it yet), its size
/// when opened, whether the execution still runs, and the kinds of log it has.
pub struct OpenLog {
    file: Option<tokio::fs::File>,
    pub size: u64,
    pub running: bool,
    pub kinds: Vec<String>,
    /// Why the log is incomplete, when the worker could not write all of it.
    pub trouble: Option<String>,
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
    pub outcome: String,
}

/// `exit code 3 after 2m 5s`, `running for 12s`, `lost after 40s: ...`.
fn outcome(record: &crate::workflow::job::ExecutionRecord) -> String {
    let ran = crate::clock::duration(
        record.end_time.unwrap_or_else(crate::clock::now_f64) - record.start_time,
    );
    match (&record.lost, record.exit_code, record.end_time) {
        (Some(why), _, _) => format!("lost after {ran}: {why}"),
        (None, Some(code), _) => format!("exit code {code} after {ran}"),
        (None, None, None) => format!("running for {ran}"),
        (None, None, Some(_)) => format!("ended after {ran}, no exit code"),
    }
}

pub async fn open_log(
    ui: &Ui,
    (w, i, job): (&WorkflowName, &InstanceId, &JobName),
    n: usize,
    kind: &str,
) -> Result<OpenLog, UiError> {
    let jt = ui.data.job(w, i, job).await?.ok_or_else(|| {
        UiError::NotFound(format!("job {job} of workflow {w} instance {i} not found"))
    })?;
    open_job_log(ui, &jt, n, kind).await
}

/// [`open_log`] of a job already read.
pub async fn open_job_log(
    ui: &Ui,
    jt: &crate::workflow::instance::JobToken,
    n: usize,
    kind: &str,
) -> Result<OpenLog, UiError> {
    let (w, i, job) = (&jt.workflow, &jt.instance, &jt.job.name);
    let record = jt
        .job
        .history
        .get(n)
        .ok_or_else(|| UiError::NotFound(format!("execution {n} of job {job} not found")))?;
    let Some(recorded) = record.logs.get(kind) else {
        return Err(UiError::NotFound(format!(
            "execution {n} of job {job} has no {kind} log"
        )));
    };
    let root = ui.config.logs_dir();
    let path = logs::locate(&root, w, job, kind, recorded).map_err(|e| {
        tracing::warn!(workflow = %w, instance = %i, job = %job, execution = n, kind, error = %e, "ui refused a log path");
        UiError::NotFound(e.to_string())
    })?;
    let running = execution_status(jt, n) == Status::RUNNING;
    let kinds = record
        .logs
        .keys()
        .filter(|k| logs::KINDS.contains(&k.as_str()))
        .cloned()
        .collect();
    let opened = tokio::task::spawn_blocking({
        let (root, path): (PathBuf, PathBuf) = (root.clone(), path.clone());
        move || logs::open_read(&root, &path)
    })
    .await
    .map_err(|e| UiError::Forbidden(e.to_string()))?;
    let (file, size) = match opened {
        Ok((f, size)) => (Some(tokio::fs::File::from_std(f)), size),
        // A log that was never written (the job printed nothing) is empty, not missing.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, 0),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ui cannot open a log");
            return Err(UiError::Forbidden(format!(
                "the {kind} log of {job} cannot be shown: {e}"
            )));
        }
    };
    Ok(OpenLog {
        file,
        size,
        running,
        kinds,
        trouble: record.log_trouble.get(kind).cloned(),
        outcome: outcome(record),
    })
}

impl OpenLog {
    /// The last `tail` bytes (at most [`MAX_TAIL`]), as text.
    pub async fn tail(self, tail: u64) -> LogText {
        let take = tail.min(MAX_TAIL).min(self.size);
        let mut bytes = Vec::with_capacity(take as usize);
        if let Some(mut file) = self.file
            && file
                .seek(std::io::SeekFrom::Start(self.size - take))
                .await
                .is_ok()
        {
            let _ = file.take(take).read_to_end(&mut bytes).await;
        }
        LogText {
            text: String::from_utf8_lossy(&bytes).into_owned(),
            size: self.size,
            running: self.running,
            kinds: self.kinds,
            trouble: self.trouble,
            outcome: self.outcome,
        }
    }

    /// The whole file as it was when opened, in chunks.
    pub fn stream(self) -> Body {
        let Some(file) = self.file else {
            return Body::empty();
        };
        let reader = file.take(self.size);
        let chunks = futures_util::stream::unfold(reader, |mut reader| async move {
            let mut buf = vec![0u8; CHUNK];
            match reader.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok::<_, std::io::Error>(Bytes::from(buf)), reader))
                }
                Err(e) => Some((Err(e), reader)),
            }
        });
        Body::from_stream(chunks)
    }
}
