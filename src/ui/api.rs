//! The UI's JSON read API (CONTRACT §6) under `/api/v1`, read from the database, and an
//! execution's log as text. The one place where UI errors become HTTP responses.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::Ui;
use super::data::*;
use crate::storage::StorageError;
use crate::token::name::{Level, check_word};
use crate::workflow::signal::{Action, Signals};

pub fn router(ui: Ui) -> Router {
    Router::new()
        .route(
            "/api/v1/health",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/api/v1/workflows", get(workflows))
        .route("/api/v1/workflows/{wf}/instances", get(instances))
        .route("/api/v1/workflows/{wf}/instances/{inst}/jobs", get(jobs))
        .route(
            "/api/v1/workflows/{wf}/instances/{inst}/jobs/{job}/executions",
            get(executions),
        )
        .route(
            "/api/v1/workflows/{wf}/instances/{inst}/jobs/{job}/executions/{n}/logs/{kind}",
            get(log),
        )
        .route("/api/v1/schedules", get(schedules))
        .route("/api/v1/status", get(status))
        .with_state(ui)
}

pub enum UiError {
    NotFound(String),
    BadInput(String),
    Unavailable(StorageError),
}

impl From<StorageError> for UiError {
    fn from(e: StorageError) -> Self {
        UiError::Unavailable(e)
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            UiError::NotFound(m) => (StatusCode::NOT_FOUND, "NOT_FOUND", m),
            UiError::BadInput(m) => (StatusCode::BAD_REQUEST, "INPUT_ERROR", m),
            UiError::Unavailable(e) => {
                tracing::error!(error = %e, "the UI cannot read the database");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    "the database cannot be read right now".into(),
                )
            }
        };
        (
            status,
            Json(serde_json::json!({"error": {"code": code, "message": message}})),
        )
            .into_response()
    }
}

pub fn words(parts: &[(&str, &str)]) -> Result<(), UiError> {
    for (what, value) in parts {
        check_word(what, value).map_err(UiError::BadInput)?;
    }
    Ok(())
}

fn found<T>(what: String, value: Option<T>) -> Result<Json<T>, UiError> {
    value
        .map(Json)
        .ok_or_else(|| UiError::NotFound(format!("{what} not found")))
}

async fn workflows(State(ui): State<Ui>) -> Result<Json<Vec<WorkflowRow>>, UiError> {
    Ok(Json(ui.data.workflows().await?))
}

#[derive(Deserialize)]
struct Paging {
    #[serde(default)]
    offset: u64,
    limit: Option<u32>,
}

/// Instances per page unless `limit` says otherwise (at most 10,000).
pub const DEFAULT_LIMIT: u32 = 1000;

async fn instances(
    State(ui): State<Ui>,
    Path(wf): Path<String>,
    Query(p): Query<Paging>,
) -> Result<Json<Vec<InstanceRow>>, UiError> {
    words(&[("workflow", &wf)])?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, 10_000);
    let page = ui.data.instances(&wf, p.offset, limit).await?;
    found(format!("workflow {wf}"), page.map(|p| p.rows))
}

async fn jobs(
    State(ui): State<Ui>,
    Path((wf, inst)): Path<(String, String)>,
) -> Result<Json<Vec<JobRow>>, UiError> {
    words(&[("workflow", &wf), ("instance", &inst)])?;
    found(
        format!("workflow {wf} instance {inst}"),
        ui.data.jobs(&wf, &inst).await?,
    )
}

async fn executions(
    State(ui): State<Ui>,
    Path((wf, inst, job)): Path<(String, String, String)>,
) -> Result<Json<Vec<ExecutionRow>>, UiError> {
    words(&[("workflow", &wf), ("instance", &inst), ("job", &job)])?;
    found(
        format!("job {job} of workflow {wf} instance {inst}"),
        ui.data.executions(&wf, &inst, &job).await?,
    )
}

#[derive(Deserialize)]
struct Tail {
    /// Only the last `tail` bytes.
    tail: Option<u64>,
}

/// An execution's log: the last `tail` bytes (all without), the file's size, and whether the
/// execution still runs (the log may grow).
pub struct LogText {
    pub text: String,
    pub size: u64,
    pub running: bool,
    /// The log kinds this execution has.
    pub kinds: Vec<String>,
}

pub async fn read_log(
    ui: &Ui,
    (wf, inst, job): (&str, &str, &str),
    n: usize,
    kind: &str,
    tail: Option<u64>,
) -> Result<LogText, UiError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    words(&[("workflow", wf), ("instance", inst), ("job", job)])?;
    let jt = ui.data.job(wf, inst, job).await?.ok_or_else(|| {
        UiError::NotFound(format!(
            "job {job} of workflow {wf} instance {inst} not found"
        ))
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
    let running = execution_status(&jt, n) == super::status::Status::RUNNING;
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

async fn log(
    State(ui): State<Ui>,
    Path((wf, inst, job, n, kind)): Path<(String, String, String, usize, String)>,
    Query(q): Query<Tail>,
) -> Result<Response, UiError> {
    let log = read_log(&ui, (&wf, &inst, &job), n, &kind, q.tail).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (
                header::HeaderName::from_static("x-log-size"),
                log.size.to_string(),
            ),
            (
                header::HeaderName::from_static("x-log-running"),
                if log.running { "1" } else { "0" }.to_owned(),
            ),
        ],
        log.text,
    )
        .into_response())
}

async fn schedules(State(ui): State<Ui>) -> Result<Json<Vec<ScheduleRow>>, UiError> {
    Ok(Json(ui.data.schedules().await?))
}

#[derive(Deserialize)]
pub struct Scope {
    pub workflow: Option<String>,
    pub instance: Option<String>,
}

impl Scope {
    pub fn level(&self) -> Result<Level, UiError> {
        Ok(match (&self.workflow, &self.instance) {
            (None, _) => Level::Global,
            (Some(w), None) => {
                words(&[("workflow", w)])?;
                Level::Workflow(w.clone())
            }
            (Some(w), Some(i)) => {
                words(&[("workflow", w), ("instance", i)])?;
                Level::Instance(w.clone(), i.clone())
            }
        })
    }
}

/// The status label: `exiting`, `aborting` or `draining` (the first visible at this level, in
/// that order), or `master unreachable at HOST:PORT`; empty when all is normal.
pub async fn status_label(ui: &Ui, level: &Level) -> String {
    match Signals::read(ui.client.as_ref(), level).await {
        Ok(signals) => [
            (Action::EXIT, "exiting"),
            (Action::ABORT, "aborting"),
            (Action::DRAIN, "draining"),
        ]
        .into_iter()
        .find(|(a, _)| signals.get(*a).is_some())
        .map_or_else(String::new, |(_, label)| label.to_owned()),
        Err(e) => {
            tracing::warn!(error = %e, "ui cannot reach the master");
            format!("master unreachable at {}", ui.master_addr())
        }
    }
}

async fn status(
    State(ui): State<Ui>,
    Query(scope): Query<Scope>,
) -> Result<Json<serde_json::Value>, UiError> {
    let level = scope.level()?;
    Ok(Json(
        serde_json::json!({"label": status_label(&ui, &level).await}),
    ))
}
