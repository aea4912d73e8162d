//! Reading an execution's log for the UI: the file its record names, its last `tail` bytes or
//! all of it, and whether the execution still runs (so the log may grow).

use super::data::{DataLayer, execution_status};
use super::error::UiError;
use crate::token::name::{InstanceId, JobName, WorkflowName};
use crate::workflow::status::Status;

/// An execution's log: the last `tail` bytes (all without), the file's size, and whether the
/// execution still runs.
pub struct LogText {
    pub text: String,
    pub size: u64,
    pub running: bool,
    /// The log kinds this execution has.
    pub kinds: Vec<String>,
}

pub async fn read_log(
    data: &DataLayer,
    (w, i, job): (&WorkflowName, &InstanceId, &JobName),
    n: usize,
    kind: &str,
    tail: Option<u64>,
) -> Result<LogText, UiError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let jt = data.job(w, i, job).await?.ok_or_else(|| {
        UiError::NotFound(format!("job {job} of workflow {w} instance {i} not found"))
    })?;
    let record = jt
        .job
        .history
        .get(n)
        .ok_or_else(|| UiError::NotFound(format!("execution {n} of job {job} not found")))?;
    let Some(path) = record.logs.get(kind) else {
        return Err(UiError::NotFound(format!(
            "execution {n} of job {job} has no {kind} log"
        )));
    };
    let running = execution_status(&jt, n) == Status::RUNNING;
    let kinds = record.logs.keys().cloned().collect();
    // A log that was never written (the job printed nothing) is empty, not missing.
    let Ok(mut file) = tokio::fs::File::open(path).await else {
        return Ok(LogText {
            text: String::new(),
            size: 0,
            running,
            kinds,
        });
    };
    let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let start = tail.map_or(0, |t| size.saturating_sub(t));
    let mut bytes = Vec::with_capacity((size - start) as usize);
    if file.seek(std::io::SeekFrom::Start(start)).await.is_ok() {
        let _ = file.read_to_end(&mut bytes).await;
    }
    Ok(LogText {
        text: String::from_utf8_lossy(&bytes).into_owned(),
        size,
        running,
        kinds,
    })
}
