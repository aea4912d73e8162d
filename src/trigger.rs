//! The HTTP trigger (CONTRACT §4.3): `POST /api/v1/workflows/{wf}/runs` on the master's
//! listener starts a run as `util start` does (the same checks, messages and audit entry), for
//! the `trigger` role (this call only) and operators. With an `idempotency_key`, a receipt is
//! written in the start's own commit, so the same key within 24 h answers with the same run
//! and starts nothing, even when two requests race. `modes` adds these routes to the master's,
//! behind its guard (tokens, host, origin, body bounds); the master itself knows no workflows.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use crate::config::Role;
use crate::master::server::Extra;
use crate::master::{LocalMasterClient, Master, MasterClient};
use crate::ops::{Action, Command, Done, Ops, OpsError, OpsSettings};
use crate::parser::params::ParamValue;
use crate::token::name::{self, WorkflowName};
use crate::token::{Conflict, MasterError, ModifyRequest};
use crate::web::auth::Caller;
use crate::web::error::{ApiError, ApiJson, ErrorBody, Errors};
use crate::workflow::run_info::RunKind;
use utoipa::OpenApi;

/// How long an idempotency key holds its run.
pub const KEY_SECONDS: i64 = 24 * 3600;
/// Stale receipts deleted by one trigger at most.
const PRUNE_AT_ONCE: usize = 100;

/// The routes and their OpenAPI paths, for [`crate::master::server::serve_with`].
pub fn router(settings: OpsSettings) -> Extra {
    Extra {
        routes: Router::new()
            .route("/api/v1/workflows/{wf}/runs", post(trigger))
            .layer(Extension(Arc::new(settings))),
        openapi: TriggerApi::openapi(),
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(trigger),
    components(schemas(TriggerBody, Started, WorkflowName))
)]
struct TriggerApi;

/// What starts a run.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    /// The run's params, by name: strings, numbers or booleans, checked against the
    /// workflow's declarations (defaults fill the rest).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: BTreeMap<String, ParamValue>,
    /// RFC 3339, or `YYYY-MM-DD` (midnight in the schedule's time zone); now when not given.
    pub logical_time: Option<String>,
    /// 1 to 64 characters of A-Z a-z 0-9 - _: the same key within 24 h answers with the same
    /// run and starts nothing.
    pub idempotency_key: Option<String>,
    /// Beyond the workflow's max_running_instances (or behind runs queued already), wait as a
    /// queued run that starts when a run ends (202) instead of being refused (409).
    #[serde(default)]
    pub queue: bool,
}

/// The run a trigger started (or found by its idempotency key).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Started {
    pub workflow: String,
    pub instance: String,
    /// Every param's value, as text.
    pub params: BTreeMap<String, String>,
    /// Seconds since the epoch.
    pub logical_time: i64,
    /// The run waits in the queue: it starts, under this instance id, when a run ends.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub queued: bool,
}

/// The errors a trigger answers beyond every call's.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documents answers; built by `ApiError`
enum TriggerErrors {
    /// NOT_FOUND: the workflow is not in the master, or was retired
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// VERSION_CONFLICT: the start was refused as things stand (max_running_instances)
    #[response(status = 409)]
    Conflict(ErrorBody),
}

fn input(m: impl Into<String>) -> ApiError {
    ApiError::Master(MasterError::InputError(m.into()))
}

fn key_ok(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The run a receipt records, if it is younger than [`KEY_SECONDS`].
fn fresh(data: Option<&str>, now: i64) -> Option<serde_json::Value> {
    let mut facts: serde_json::Value = serde_json::from_str(data?).ok()?;
    let at = facts.get("at")?.as_i64()?;
    (now - at < KEY_SECONDS).then(|| {
        facts.as_object_mut().map(|o| o.remove("at"));
        facts
    })
}

/// `POST /api/v1/workflows/{wf}/runs`.
#[utoipa::path(
    post,
    path = "/api/v1/workflows/{wf}/runs",
    params(("wf" = WorkflowName, Path, description = "the workflow")),
    request_body = TriggerBody,
    responses(
        (status = 201, description = "a run was started", body = Started),
        (status = 202, description = "with queue: the run waits in the queue and starts when a run ends", body = Started),
        (status = 200, description = "the idempotency key's run, started within 24 hours; nothing started", body = Started),
        TriggerErrors,
        Errors,
    ),
    tag = "master"
)]
async fn trigger(
    State(master): State<Master>,
    Extension(settings): Extension<Arc<OpsSettings>>,
    Extension(caller): Extension<Caller>,
    Path(wf): Path<String>,
    ApiJson(body): ApiJson<TriggerBody>,
) -> Result<Response, ApiError> {
    if caller.role != Role::Trigger && caller.role < Role::Operator {
        return Err(ApiError::Master(MasterError::Forbidden(format!(
            "the {} role may not start runs: a token of the trigger or operator role may",
            caller.role
        ))));
    }
    let w = WorkflowName::parse(&wf).map_err(|e| input(e.to_string()))?;
    let client = LocalMasterClient(master);
    let now = crate::clock::now();
    let receipt = match &body.idempotency_key {
        None => None,
        Some(key) if !key_ok(key) => {
            return Err(input(
                "idempotency_key is 1 to 64 characters of A-Z a-z 0-9 - _",
            ));
        }
        Some(key) => Some(name::trigger_receipt(&w, key)),
    };
    if let Some(r) = &receipt {
        prune(&client, &w, now).await;
        if let Some(t) = client.get(r).await? {
            if let Some(facts) = fresh(t.data.as_deref(), now) {
                tracing::info!(workflow = %w, caller = %caller.name, "trigger repeated with its idempotency key: the same run, nothing started");
                return Ok((StatusCode::OK, Json(facts)).into_response());
            }
            // Expired (and not among those pruned): the key is free again.
            let _ = client.modify(ModifyRequest::delete(vec![t])).await;
        }
    }
    let action = Action {
        workflow: Some(w.clone()),
        params: body.params.into_iter().map(|(k, v)| (k, v.0)).collect(),
        logical_time: body.logical_time,
        run_kind: RunKind::Trigger,
        receipt: receipt.clone(),
        queue: body.queue,
        ..Action::new(Command::Start)
    };
    let ops = Ops::new(&client, (*settings).clone());
    let actor = format!("{} (api token)", caller.name);
    match ops.apply(&action, &actor).await {
        Ok(done) => started(&ops, &w, done).await,
        Err(OpsError::AlreadyStarted(r)) => {
            let facts = client
                .get(&r)
                .await?
                .and_then(|t| fresh(t.data.as_deref(), now + 1))
                .ok_or_else(|| conflict(&w, "the idempotency key's run could not be read"))?;
            Ok((StatusCode::OK, Json(facts)).into_response())
        }
        Err(OpsError::Master(e)) => Err(ApiError::Master(e)),
        Err(e) if e.is_input() => Err(input(e.to_string())),
        Err(OpsError::NoWorkflow(m)) => Err(ApiError::Master(MasterError::NotFound(m))),
        Err(e) => Err(conflict(&w, &e.to_string())),
    }
}

/// The answer to a start that did something: 201 with the run started, 202 with the run
/// queued, 409 when the start was refused.
async fn started(ops: &Ops<'_>, w: &WorkflowName, done: Done) -> Result<Response, ApiError> {
    let Some((w, i)) = done.created else {
        return Err(conflict(w, done.message.trim_end()));
    };
    let run = ops
        .run_of(&w, &i)
        .await
        .map_err(|e| conflict(&w, &e.to_string()))?;
    let answer = Started {
        workflow: w.to_string(),
        instance: i.to_string(),
        params: run.as_ref().map(|r| r.params.clone()).unwrap_or_default(),
        logical_time: run.as_ref().map_or(0, |r| r.logical_time),
        queued: done.queued,
    };
    let status = match done.queued {
        true => StatusCode::ACCEPTED,
        false => StatusCode::CREATED,
    };
    Ok((status, Json(answer)).into_response())
}

/// 409: the start was refused as things stand (a run limit).
fn conflict(w: &WorkflowName, message: &str) -> ApiError {
    ApiError::Master(MasterError::VersionConflict(Conflict {
        name: name::workflow_prefix(w),
        expected: None,
        found: None,
        message: message.to_owned(),
    }))
}

/// Deletes up to [`PRUNE_AT_ONCE`] of `w`'s receipts older than [`KEY_SECONDS`] (each at the
/// version read: one renewed meanwhile stays).
async fn prune(client: &LocalMasterClient, w: &WorkflowName, now: i64) {
    let prefix = format!("{}{w}/", name::TRIGGER_PREFIX);
    let Ok(receipts) = client.query_prefix(&prefix).await else {
        return;
    };
    let stale: Vec<_> = receipts
        .into_iter()
        .filter(|t| fresh(t.data.as_deref(), now).is_none())
        .take(PRUNE_AT_ONCE)
        .collect();
    if stale.is_empty() {
        return;
    }
    let n = stale.len();
    match client.modify(ModifyRequest::delete(stale)).await {
        Ok(_) => tracing::info!(workflow = %w, receipts = n, "deleted expired trigger receipts"),
        Err(e) => {
            tracing::warn!(workflow = %w, error = %e, "could not delete expired trigger receipts")
        }
    }
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    #[test]
    fn the_master_s_document_names_the_trigger_and_resolves_every_reference() {
        let doc = crate::master::openapi::document_with(Some(super::TriggerApi::openapi()));
        let op = &doc["paths"]["/api/v1/workflows/{wf}/runs"]["post"];
        for status in [
            "200", "201", "202", "400", "401", "403", "404", "409", "503",
        ] {
            assert!(op["responses"].get(status).is_some(), "{status} in {op}");
        }
        assert!(doc["paths"].get("/api/v1/modify").is_some());
        assert_eq!(crate::web::error::dangling_refs(&doc), Vec::<String>::new());
    }
}
