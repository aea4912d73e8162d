//! The UI's JSON read API (CONTRACT §6) under `/api/v1`, read from the database, an execution's
//! log as text, and the status label. Errors are [`UiError`]s, answered as JSON.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::Ui;
use super::error::{ApiPath, ApiQuery, QueryIn, UiError};
use super::logs::open_log;
use super::openapi::Errors;
use crate::ops::read::*;
use crate::token::name::{InstanceId, JobName, Level, WorkflowName};
use crate::workflow::signal::{Action, Signals};

pub fn router(ui: Ui) -> Router {
    Router::new()
        .route(
            "/api/v1/health",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/api/v1/openapi.json",
            get(|| async { Json(super::openapi::document()) }),
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
        .route("/api/v1/backfills", get(backfills))
        .route("/api/v1/pools", get(pools))
        .route("/api/v1/status", get(status))
        .with_state(ui)
}

fn found<T>(what: String, value: Option<T>) -> Result<Json<T>, UiError> {
    value
        .map(Json)
        .ok_or_else(|| UiError::NotFound(format!("{what} not found")))
}

#[utoipa::path(
    get,
    path = "/api/v1/workflows",
    responses(
        (status = 200, description = "every workflow", body = Vec<WorkflowRow>),
        Errors,
    ),
    tag = "ui"
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/workflows/{wf}/instances",
    params(("wf" = WorkflowName, Path, description = "the workflow"), ("offset" = Option<u64>, Query, description = "instances to skip"), ("limit" = Option<u32>, Query, description = "at most this many (1-10000, default 1000)")),
    responses(
        (status = 200, description = "the workflow's instances, newest first", body = Vec<InstanceRow>),
        Errors,
    ),
    tag = "ui"
)]
async fn instances(
    State(ui): State<Ui>,
    ApiPath(wf): ApiPath<WorkflowName>,
    QueryIn(p, _): ApiQuery<Paging>,
) -> Result<Json<Vec<InstanceRow>>, UiError> {
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, 10_000);
    let page = ui.data.instances(&wf, p.offset, limit).await?;
    found(format!("workflow {wf}"), page.map(|p| p.rows))
}

#[utoipa::path(
    get,
    path = "/api/v1/workflows/{wf}/instances/{inst}/jobs",
    params(("wf" = WorkflowName, Path, description = "the workflow"), ("inst" = InstanceId, Path, description = "the instance")),
    responses(
        (status = 200, description = "the instance's jobs", body = Vec<JobRow>),
        Errors,
    ),
    tag = "ui"
)]
async fn jobs(
    State(ui): State<Ui>,
    ApiPath((wf, inst)): ApiPath<(WorkflowName, InstanceId)>,
) -> Result<Json<Vec<JobRow>>, UiError> {
    found(
        format!("workflow {wf} instance {inst}"),
        ui.data.jobs(&wf, &inst).await?,
    )
}

#[utoipa::path(
    get,
    path = "/api/v1/workflows/{wf}/instances/{inst}/jobs/{job}/executions",
    params(("wf" = WorkflowName, Path, description = "the workflow"), ("inst" = InstanceId, Path, description = "the instance"), ("job" = JobName, Path, description = "the job")),
    responses(
        (status = 200, description = "the job's executions", body = Vec<ExecutionRow>),
        Errors,
    ),
    tag = "ui"
)]
async fn executions(
    State(ui): State<Ui>,
    ApiPath((wf, inst, job)): ApiPath<(WorkflowName, InstanceId, JobName)>,
) -> Result<Json<Vec<ExecutionRow>>, UiError> {
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

#[utoipa::path(
    get,
    path = "/api/v1/workflows/{wf}/instances/{inst}/jobs/{job}/executions/{n}/logs/{kind}",
    params(("wf" = WorkflowName, Path, description = "the workflow"), ("inst" = InstanceId, Path, description = "the instance"), ("job" = JobName, Path, description = "the job"), ("n" = usize, Path, description = "the execution"), ("kind" = String, Path, description = "stdout, stderr or pinlog"), ("tail" = Option<u64>, Query, description = "only the last this many bytes")),
    responses(
        (status = 200, description = "the log: the last `tail` bytes (at most 4 MiB), or the whole file streamed", body = String, content_type = "text/plain"),
        Errors,
    ),
    tag = "ui"
)]
async fn log(
    State(ui): State<Ui>,
    ApiPath((wf, inst, job, n, kind)): ApiPath<(WorkflowName, InstanceId, JobName, usize, String)>,
    QueryIn(q, _): ApiQuery<Tail>,
) -> Result<Response, UiError> {
    let log = open_log(&ui, (&wf, &inst, &job), n, &kind).await?;
    let headers = [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
        (
            header::HeaderName::from_static("x-log-size"),
            log.size.to_string(),
        ),
        (
            header::HeaderName::from_static("x-log-running"),
            if log.running { "1" } else { "0" }.to_owned(),
        ),
    ];
    Ok(match q.tail {
        Some(tail) => (headers, log.tail(tail).await.text).into_response(),
        None => (headers, super::logs::stream(log)).into_response(),
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/schedules",
    responses(
        (status = 200, description = "every schedule", body = Vec<ScheduleRow>),
        Errors,
    ),
    tag = "ui"
)]
async fn schedules(State(ui): State<Ui>) -> Result<Json<Vec<ScheduleRow>>, UiError> {
    Ok(Json(ui.data.schedules().await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/backfills",
    responses(
        (status = 200, description = "every backfill, newest first, with the count of its dates in each state", body = Vec<BackfillRow>),
        Errors,
    ),
    tag = "ui"
)]
async fn backfills(State(ui): State<Ui>) -> Result<Json<Vec<BackfillRow>>, UiError> {
    let all = ui.data.backfills().await?;
    Ok(Json(all.iter().map(BackfillRow::new).collect()))
}

/// The status label: `exiting`, `aborting`, `draining`, `master unreachable at ...`, or empty.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusLabel {
    pub label: String,
}

/// Where a status label or an action applies: everywhere, a workflow or an instance.
#[derive(Deserialize)]
pub struct Scope {
    pub workflow: Option<WorkflowName>,
    pub instance: Option<InstanceId>,
}

impl Scope {
    pub fn level(&self) -> Level {
        match (&self.workflow, &self.instance) {
            (None, _) => Level::Global,
            (Some(w), None) => Level::Workflow(w.clone()),
            (Some(w), Some(i)) => Level::Instance(w.clone(), i.clone()),
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/pools",
    responses(
        (status = 200, description = "every pool (and every pool a runnable job names) with its slots (null: unlimited), the slots its running jobs hold, its waiting jobs, and the running jobs that hold them (the first 100); asked of the master, since it is live", body = Vec<crate::ops::pools::PoolRow>),
        Errors,
    ),
    tag = "ui"
)]
async fn pools(State(ui): State<Ui>) -> Result<Json<Vec<crate::ops::pools::PoolRow>>, UiError> {
    Ok(Json(pool_rows(&ui).await?))
}

/// The pools and their use, from the master: every runnable job is read, so under the
/// heavy-page permit (one at a time; others wait at most 0.9 s, then 503).
pub async fn pool_rows(ui: &Ui) -> Result<Vec<crate::ops::pools::PoolRow>, UiError> {
    let _permit = ui.heavy_permit().await?;
    let ops = crate::ops::Ops::new(ui.client.as_ref(), ui.ops.clone());
    Ok(ops.pools().await?)
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

#[utoipa::path(
    get,
    path = "/api/v1/status",
    params(("workflow" = Option<WorkflowName>, Query, description = "a workflow"), ("instance" = Option<InstanceId>, Query, description = "an instance of it")),
    responses(
        (status = 200, description = "the status label for a scope", body = StatusLabel),
        Errors,
    ),
    tag = "ui"
)]
async fn status(
    State(ui): State<Ui>,
    QueryIn(scope, _): ApiQuery<Scope>,
) -> Result<Json<StatusLabel>, UiError> {
    let label = status_label(&ui, &scope.level()).await;
    Ok(Json(StatusLabel { label }))
}
