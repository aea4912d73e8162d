//! An execution's log on the dashboard: `ops::read::logs` reads it from the database or this
//! host's log directory; this answers with it.

use axum::body::{Body, Bytes};
use futures_util::StreamExt;

use super::Ui;
use super::error::UiError;
use crate::ops::read::logs::{LogError, LogReader};
pub use crate::ops::read::logs::{MAX_TAIL, OpenLog};
use crate::token::name::{InstanceId, JobName, WorkflowName};
use crate::workflow::instance::JobToken;

impl From<LogError> for UiError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::NotFound(m) => UiError::NotFound(m),
            LogError::Refused(m) => UiError::Forbidden(m),
            LogError::Database(e) => UiError::Database(e),
        }
    }
}

fn reader(ui: &Ui) -> LogReader<'_> {
    LogReader {
        data: &ui.data,
        config: &ui.config,
    }
}

pub async fn open_log(
    ui: &Ui,
    job: (&WorkflowName, &InstanceId, &JobName),
    n: usize,
    kind: &str,
) -> Result<OpenLog, UiError> {
    Ok(reader(ui).open_log(job, n, kind).await?)
}

/// [`open_log`] of a job already read.
pub async fn open_job_log(
    ui: &Ui,
    jt: &JobToken,
    n: usize,
    kind: &str,
) -> Result<OpenLog, UiError> {
    Ok(reader(ui).open_job_log(jt, n, kind).await?)
}

/// The whole log as it was when opened, streamed in chunks.
pub fn stream(log: OpenLog) -> Body {
    Body::from_stream(log.chunks_from(0).map(|part| part.map(Bytes::from)))
}
