//! The master's JSON HTTP API under `/api/v1` (CONTRACT §2), and the one place where a
//! `MasterError` becomes an HTTP response. Bodies are parsed by [`ApiJson`], so malformed,
//! unknown-field and oversized bodies get the same error shape as every other error.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use std::sync::Arc;
use std::time::Duration;

pub mod handover;
mod writes;

use super::parking::Parking;
use super::requests::RequestKey;
use super::service::Master;
use crate::config::{Config, Role};
use crate::token::MasterError;
use crate::token::*;
use crate::web::auth::{Access, Caller, admit, host_names};
use crate::web::error::{ApiError, ApiJson, BodyDeadline};
use crate::web::error::{Errors, WriteErrors};
use crate::web::http::ServeLimits;
use writes::{control_writes, may_write_all, request_key};

pub use crate::config::DEFAULT_MAX_REQUEST_BYTES;

/// How the API serves: who may call it and how much one request may carry.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub access: Access,
    /// Host names the master answers to beyond IP addresses and `localhost` (`master_host`).
    pub host_names: Vec<String>,
    pub max_request_bytes: usize,
    /// How long a client may take to send a request's body.
    pub body_timeout: Duration,
    pub limits: ServeLimits,
    /// Requests each token may have parked at once.
    pub parking: Arc<Parking>,
}

impl ApiSettings {
    pub fn from_config(c: &Config) -> ApiSettings {
        ApiSettings {
            access: Access::new(&c.api_tokens),
            host_names: host_names([c.master_host.as_str(), c.master_bind.as_str()]),
            max_request_bytes: c.max_request_bytes,
            body_timeout: Duration::from_secs(c.client_body_timeout_sec.max(1)),
            limits: ServeLimits::from_config(c),
            parking: Parking::new(
                c.max_parked_per_token
                    .unwrap_or(c.max_connections / 2)
                    .max(1),
                max_parked_total(c.max_connections),
            ),
        }
    }

    /// An open master (tests, loopback).
    pub fn open(max_request_bytes: usize) -> ApiSettings {
        ApiSettings {
            access: Access::open(),
            host_names: Vec::new(),
            max_request_bytes,
            body_timeout: Duration::from_secs(60),
            limits: ServeLimits::default(),
            parking: Parking::new(usize::MAX, max_parked_total(1000)),
        }
    }
}

/// Requests parked at once, all tokens together: three quarters of `max_connections`, so a
/// quarter is always there for renewals and ends, which never wait.
pub fn max_parked_total(max_connections: usize) -> usize {
    (max_connections - max_connections / 4).max(1)
}

/// The role each endpoint needs; `None` for paths that are not endpoints.
fn needed_role(path: &str) -> Option<(Role, &'static str)> {
    Some(match path {
        "/api/v1/query" => (Role::Viewer, "query"),
        "/api/v1/group" => (Role::Viewer, "group"),
        "/api/v1/health" => (Role::Viewer, "health"),
        "/api/v1/openapi.json" => (Role::Viewer, "the API's description"),
        "/metrics" => (Role::Viewer, "metrics"),
        "/api/v1/modify" => (Role::Worker, "modify"),
        "/api/v1/query_and_own" => (Role::Worker, "query_and_own"),
        "/api/v1/archive" => (Role::Worker, "archive"),
        "/api/v1/audit" => (Role::Operator, "audit"),
        "/api/v1/master/handover" => (Role::Operator, "master handover"),
        "/api/v1/logs" => (Role::Worker, "logs"),
        _ => return None,
    })
}

/// Every request: from no other site, with a known token whose role allows the endpoint.
pub(super) async fn guard(
    State(settings): State<ApiSettings>,
    mut req: Request,
    next: Next,
) -> Response {
    let checked = admit(
        &settings.access,
        &settings.host_names,
        req.headers(),
        needed_role(req.uri().path()),
        "this master does not answer to that host name (Host header); use its address or master_host",
    );
    match checked {
        Ok(caller) => {
            crate::web::conns::trust(req.extensions());
            req.extensions_mut().insert(caller);
            req.extensions_mut().insert(settings.parking.clone());
            req.extensions_mut()
                .insert(BodyDeadline(settings.body_timeout));
            next.run(req).await
        }
        Err(e) => {
            tracing::warn!(path = %req.uri().path(), method = %req.method(), error = %e, "master refused a request");
            ApiError::Master(e).into_response()
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/modify",
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 64 characters of A-Z a-z 0-9 - _, the same on every retry of one write: a replay of a committed write gets its first answer (kept 15 minutes); the same key with another request is INPUT_ERROR")),
    request_body = ModifyRequest,
    responses(
        (status = 200, description = "the updates, with their new versions, in request order; committed", body = ModifyResponse),
        WriteErrors,
        Errors,
    ),
    tag = "master"
)]
pub(super) async fn modify(
    State(m): State<Master>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ModifyRequest>,
) -> Result<Json<ModifyResponse>, ApiError> {
    let key = request_key(&headers, &caller, &req)?;
    may_write_all(&caller, m.naming(), req.updates.iter().chain(&req.deletes))?;
    if let Some(b) = &caller.binding {
        m.check_binding(&caller.name, b, &req).await?;
    }
    // What an operator's token writes to the control plane is audited (a worker's instance
    // signals are routine, and an open master knows no one to name).
    let control = (caller.authenticated && caller.role == Role::Operator)
        .then(|| control_writes(m.naming(), &req))
        .flatten();
    // A replay of the write is a replay of its audit entry too.
    let audit_key = key.clone().map(|k| RequestKey {
        key: format!("{}/audit", k.key),
        hash: k.hash,
    });
    let answer = m.modify_keyed(req, key).await?;
    if let Some(entry) = control {
        // The master's own record of what it applied, named by the token that asked; a
        // failure to record is logged, the write stands.
        if let Err(e) = m.audit_keyed(entry, &caller.name, audit_key).await {
            tracing::error!(error = %e, via = %caller.name, "could not audit a write of signals, schedules or definitions");
        }
    }
    Ok(Json(answer))
}

/// The header a client names a write with, the same on each of its retries.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

#[utoipa::path(
    post,
    path = "/api/v1/query",
    request_body = QueryRequest,
    responses(
        (status = 200, description = "one list of tokens per query", body = QueryResponse),
        Errors,
    ),
    tag = "master"
)]
pub(super) async fn query(
    State(m): State<Master>,
    Extension(caller): Extension<Caller>,
    Extension(parking): Extension<Arc<Parking>>,
    ApiJson(req): ApiJson<QueryRequest>,
) -> Result<Response, ApiError> {
    let _slot = match park(&parking, &caller, req.wait_ms) {
        Ok(slot) => slot,
        Err(refused) => return Ok(*refused),
    };
    let answer = m.query_answer(req).await?;
    Ok(held_until_sent(&answer.response, answer.charge))
}

/// The JSON of `body`, sent in pieces that keep `charge` (its share of
/// `max_answers_bytes_total`) until the last piece has gone to the connection.
fn held_until_sent(body: &impl serde::Serialize, charge: super::budget::Charge) -> Response {
    const PIECE: usize = 64 * 1024;
    let bytes = match serde_json::to_vec(body) {
        Ok(b) => Bytes::from(b),
        Err(e) => {
            return ApiError::Master(MasterError::Unavailable(format!(
                "the answer could not be written: {e}"
            )))
            .into_response();
        }
    };
    let length = bytes.len();
    let pieces = (0..bytes.len().div_ceil(PIECE).max(1)).map(move |n| {
        let end = ((n + 1) * PIECE).min(bytes.len());
        Ok::<_, std::convert::Infallible>(bytes.slice(n * PIECE..end))
    });
    let mut charge = Some(charge);
    let mut pieces = pieces.peekable();
    let stream = futures_util::stream::poll_fn(move |_| {
        let next = pieces.next();
        if pieces.peek().is_none() {
            charge.take();
        }
        std::task::Poll::Ready(next)
    });
    (
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

#[utoipa::path(
    post,
    path = "/api/v1/query_and_own",
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 64 characters of A-Z a-z 0-9 - _, the same on every retry of one write: a replay of a committed write gets its first answer (kept 15 minutes); the same key with another request is INPUT_ERROR")),
    request_body = QueryAndOwnRequest,
    responses(
        (status = 200, description = "the tokens claimed (none when nothing was claimable within wait_ms)", body = QueryAndOwnResponse),
        Errors,
    ),
    tag = "master"
)]
pub(super) async fn query_and_own(
    State(m): State<Master>,
    Extension(caller): Extension<Caller>,
    Extension(parking): Extension<Arc<Parking>>,
    headers: HeaderMap,
    ApiJson(mut req): ApiJson<QueryAndOwnRequest>,
) -> Result<Response, ApiError> {
    let key = request_key(&headers, &caller, &req)?;
    if let Some(b) = &caller.binding {
        b.check_owner(&caller.name, &req.owner)?;
        req.pools = b.claim_pools(&caller.name, req.pools.take())?;
    }
    let _slot = match park(&parking, &caller, req.wait_ms) {
        Ok(slot) => slot,
        Err(refused) => return Ok(*refused),
    };
    Ok(Json(m.query_and_own_keyed(req, key).await?).into_response())
}

/// A place for a request that waits (`wait_ms`), or the refusal to send (its connection
/// closed, so the place it would hold goes to another caller).
fn park(
    parking: &Arc<Parking>,
    caller: &Caller,
    wait_ms: Option<u64>,
) -> Result<Option<super::parking::Slot>, Box<Response>> {
    if wait_ms.unwrap_or(0) == 0 {
        return Ok(None);
    }
    match parking.take(&caller.name) {
        Ok(slot) => Ok(Some(slot)),
        Err(full) => {
            let message = match full {
                super::parking::Full::Token => {
                    tracing::warn!(token = %caller.name, max = parking.cap(), "refused a waiting request: the token has its most requests parked");
                    format!(
                        "the token `{}` has {} requests waiting at the master already (max_parked_per_token); wait for one to end",
                        caller.name,
                        parking.cap()
                    )
                }
                super::parking::Full::Master => {
                    tracing::warn!(token = %caller.name, max = parking.total(), "refused a waiting request: the master has its most requests parked");
                    format!(
                        "the master has {} requests waiting already (three quarters of max_connections; the rest are kept for renewals and ends); wait and try again",
                        parking.total()
                    )
                }
            };
            let mut response = ApiError::Master(MasterError::Unavailable(message)).into_response();
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            Err(Box::new(response))
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/logs",
    request_body = LogRequest,
    responses(
        (status = 200, description = "the bytes are stored (up to log_max_bytes of each log)", body = LogResponse),
        Errors,
    ),
    tag = "master"
)]
pub(super) async fn logs(
    State(m): State<Master>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<LogRequest>,
) -> Result<Json<LogResponse>, ApiError> {
    if let Some(b) = &caller.binding {
        b.check_owner(&caller.name, &req.owner)?;
    }
    Ok(Json(m.append_log(req).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/group",
    request_body = GroupRequest,
    responses(
        (status = 200, description = "token counts by group", body = GroupResponse),
        Errors,
    ),
    tag = "master"
)]
pub(super) async fn group(
    State(m): State<Master>,
    ApiJson(req): ApiJson<GroupRequest>,
) -> Result<Json<GroupResponse>, ApiError> {
    Ok(Json(m.group(req).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/archive",
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 64 characters of A-Z a-z 0-9 - _, the same on every retry of one write: a replay of a committed write gets its first answer (kept 15 minutes); the same key with another request is INPUT_ERROR")),
    request_body = ArchiveRequest,
    responses(
        (status = 200, description = "the tokens moved to the archive", body = ArchiveResponse),
        WriteErrors,
        Errors,
    ),
    tag = "master"
)]
pub(super) async fn archive(
    State(m): State<Master>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ArchiveRequest>,
) -> Result<Json<ArchiveResponse>, ApiError> {
    let key = request_key(&headers, &caller, &req)?;
    may_write_all(&caller, m.naming(), &req.tokens)?;
    Ok(Json(m.archive_keyed(req, key).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/audit",
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 64 characters of A-Z a-z 0-9 - _, the same on every retry of one write: a replay of a committed write gets its first answer (kept 15 minutes); the same key with another request is INPUT_ERROR")),
    request_body = AuditRequest,
    responses(
        (status = 200, description = "the action is in the audit log", body = AuditResponse),
        Errors,
    ),
    tag = "master"
)]
pub(super) async fn audit(
    State(m): State<Master>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<AuditRequest>,
) -> Result<Json<AuditResponse>, ApiError> {
    let key = request_key(&headers, &caller, &req)?;
    Ok(Json(m.audit_keyed(req, &caller.name, key).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/health",
    responses(
        (status = 200, description = "the master serves", body = Health),
        Errors,
    ),
    tag = "master"
)]
pub(super) async fn health(State(m): State<Master>) -> Result<Json<Health>, ApiError> {
    Ok(Json(m.health().await?))
}
