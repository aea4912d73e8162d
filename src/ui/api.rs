//! The UI's JSON read API (CONTRACT §6) under `/api/v1`, read from the database, and an
//! execution's log as text. The one place where UI errors become HTTP responses.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::data::*;
use crate::storage::StorageError;
use crate::workflow::name::check_word;

pub fn router(data: DataLayer) -> Router {
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
        .with_state(data)
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

fn words(parts: &[(&str, &str)]) -> Result<(), UiError> {
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

async fn workflows(State(d): State<DataLayer>) -> Result<Json<Vec<WorkflowRow>>, UiError> {
    Ok(Json(d.workflows().await?))
}

async fn instances(
    State(d): State<DataLayer>,
    Path(wf): Path<String>,
) -> Result<Json<Vec<InstanceRow>>, UiError> {
    words(&[("workflow", &wf)])?;
    found(format!("workflow {wf}"), d.instances(&wf).await?)
}

async fn jobs(
    State(d): State<DataLayer>,
    Path((wf, inst)): Path<(String, String)>,
) -> Result<Json<Vec<JobRow>>, UiError> {
    words(&[("workflow", &wf), ("instance", &inst)])?;
    found(
        format!("workflow {wf} instance {inst}"),
        d.jobs(&wf, &inst).await?,
    )
}

async fn executions(
    State(d): State<DataLayer>,
    Path((wf, inst, job)): Path<(String, String, String)>,
) -> Result<Json<Vec<ExecutionRow>>, UiError> {
    words(&[("workflow", &wf), ("instance", &inst), ("job", &job)])?;
    found(
        format!("job {job} of workflow {wf} instance {inst}"),
        d.executions(&wf, &inst, &job).await?,
    )
}

#[derive(Deserialize)]
struct Tail {
    /// Only the last `tail` bytes.
    tail: Option<u64>,
}

async fn log(
    State(d): State<DataLayer>,
    Path((wf, inst, job, n, kind)): Path<(String, String, String, usize, String)>,
    Query(q): Query<Tail>,
) -> Result<Response, UiError> {
    words(&[("workflow", &wf), ("instance", &inst), ("job", &job)])?;
    let jt = d.job(&wf, &inst, &job).await?.ok_or_else(|| {
        UiError::NotFound(format!(
            "job {job} of workflow {wf} instance {inst} not found"
        ))
    })?;
    let record = jt
        .job
        .history
        .get(n)
        .ok_or_else(|| UiError::NotFound(format!("execution {n} of job {job} not found")))?;
    let Some(path) = record.logs.get(&kind) else {
        return Err(UiError::NotFound(format!(
            "execution {n} of job {job} has no {kind} log"
        )));
    };
    // A log that was never written (the job printed nothing) is empty, not missing.
    let bytes = tokio::fs::read(path).await.unwrap_or_default();
    let start = q.tail.map_or(0, |t| bytes.len().saturating_sub(t as usize));
    let text = String::from_utf8_lossy(&bytes[start..]).into_owned();
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

async fn schedules(State(d): State<DataLayer>) -> Result<Json<Vec<ScheduleRow>>, UiError> {
    Ok(Json(d.schedules().await?))
}

/// Serves the UI until `shutdown` resolves.
pub async fn serve(
    data: DataLayer,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "ui listening");
    axum::serve(listener, router(data))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("ui stopped");
    Ok(())
}
