//! What every API answers when it fails, and how a JSON body is read: `ApiError` (the
//! contract's `{"error": {"code", "message"}}` with its status), `ApiJson` (a body whose every
//! failure is an `INPUT_ERROR` naming the problem, bounded in time), and the schema of the error
//! body for OpenAPI documents. Shared by the master's API and the UI's read API.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::token::MasterError;

/// Whether a request says its body is JSON (`application/json`, parameters allowed).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// How long the body of this request may take to arrive (set by the server's guard).
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline(pub Duration);

/// A JSON body whose every failure is an `INPUT_ERROR` naming the problem.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::MediaType);
        }
        let deadline = req
            .extensions()
            .get::<BodyDeadline>()
            .map_or(Duration::from_secs(60), |d| d.0);
        let bytes = tokio::time::timeout(deadline, Bytes::from_request(req, state))
            .await
            .map_err(|_| {
                MasterError::input(format!(
                    "the request body did not arrive within {} s (client_body_timeout_sec)",
                    deadline.as_secs()
                ))
            })?
            .map_err(|e| match e {
                BytesRejection::FailedToBufferBody(_) => MasterError::input(
                    "request body is larger than the master's limit (max_request_bytes) or could not be read",
                ),
                other => MasterError::input(other.body_text()),
            })?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de)
            .map(ApiJson)
            .map_err(|e| ApiError::Master(MasterError::input(format!("invalid request body: {e}"))))
    }
}

/// An error on its way to the client: `{"error": {"code", "message"}}` with the contract's status.
#[derive(Debug)]
pub enum ApiError {
    Master(MasterError),
    /// The body is not `application/json`: 415, so no HTML form or `text/plain` request from a
    /// browser reaches a handler.
    MediaType,
    /// A standby master: 503 `UNAVAILABLE` with `"leader": "HOST:PORT"`, where clients go.
    Standby {
        leader: String,
        /// When to ask again: when this standby may lead, by the lease it read last.
        retry_after: std::time::Duration,
    },
    /// A leader whose lease went unrenewed too long: 503 `UNAVAILABLE` with `leases_held` (it
    /// grants nothing) and an empty `leader` (another master may lead by now: try the others).
    Lapsed(String),
}

impl From<MasterError> for ApiError {
    fn from(e: MasterError) -> Self {
        ApiError::Master(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = match self {
            ApiError::Master(e) => e,
            ApiError::MediaType => {
                let body = serde_json::json!({"error": {"code": "INPUT_ERROR", "message": "the request body must be JSON, sent with Content-Type: application/json"}});
                return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Json(body)).into_response();
            }
            ApiError::Standby {
                leader,
                retry_after,
            } => {
                let body = serde_json::json!({"error": standby_error(&leader, retry_after)});
                let after = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                let header = [(axum::http::header::RETRY_AFTER, after.to_string())];
                return (StatusCode::SERVICE_UNAVAILABLE, header, Json(body)).into_response();
            }
            ApiError::Lapsed(message) => {
                let body = serde_json::json!({"error": {"code": "UNAVAILABLE", "message": message, "leases_held": true, "leader": ""}});
                return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            }
        };
        let status = match &e {
            MasterError::VersionConflict(_) => StatusCode::CONFLICT,
            MasterError::NotFound(_) => StatusCode::NOT_FOUND,
            MasterError::InputError(_) => StatusCode::BAD_REQUEST,
            MasterError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            MasterError::Forbidden(_) => StatusCode::FORBIDDEN,
            MasterError::Unavailable(_) | MasterError::Held(_) | MasterError::Unreachable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        if status.is_server_error() {
            tracing::warn!(error = %e, "request answered UNAVAILABLE");
        }
        let mut body = serde_json::json!({"error": {"code": e.code(), "message": e.to_string()}});
        match &e {
            MasterError::Held(_) => body["error"]["leases_held"] = true.into(),
            MasterError::VersionConflict(c) if !c.name.is_empty() => {
                body["error"]["conflict"] = serde_json::json!(c);
            }
            _ => {}
        }
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"pinball\""),
            );
        }
        response
    }
}

/// The error object of a standby master's every answer: `UNAVAILABLE`, naming the leader
/// (`leader` empty: none leads now).
pub fn standby_error(leader: &str, retry_after: std::time::Duration) -> serde_json::Value {
    let message = if leader.is_empty() {
        "this master is a standby; no master leads now".to_owned()
    } else {
        format!("this master is a standby; the leader is {leader}")
    };
    serde_json::json!({"code": "UNAVAILABLE", "message": message, "leader": leader,
        "retry_after_ms": retry_after.as_millis() as u64})
}

/// Every error answer: `{"error": {"code", "message"}}` (CONTRACT §2).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// `VERSION_CONFLICT`, `NOT_FOUND`, `INPUT_ERROR`, `UNAVAILABLE`, `UNAUTHORIZED` or
    /// `FORBIDDEN`.
    pub code: String,
    pub message: String,
    /// With `VERSION_CONFLICT` from a write: the token and both versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflict: Option<crate::token::Conflict>,
    /// With `UNAVAILABLE` from a master that holds every lease while it cannot commit.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub leases_held: bool,
    /// With `UNAVAILABLE` from a standby master: the leader's `HOST:PORT` (empty while none
    /// leads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// With `leader`: when the standby may lead at the latest if the leader stays silent
    /// (milliseconds; also in the `Retry-After` header, in whole seconds). A client that
    /// cannot reach the leader backs off no longer than that, so it does not sleep past the
    /// takeover.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// Every `$ref` of `doc` that names no schema of its components.
pub fn dangling_refs(doc: &serde_json::Value) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| walk(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut refs = Vec::new();
    walk(doc, &mut refs);
    refs.into_iter()
        .filter(|r| {
            r.strip_prefix("#/components/schemas/")
                .is_none_or(|name| doc["components"]["schemas"].get(name).is_none())
        })
        .collect()
}

/// The errors every master call may answer.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documents answers; built by `ApiError`, not from these variants
pub enum Errors {
    /// INPUT_ERROR: the request is malformed or breaks a rule
    #[response(status = 400)]
    Input(ErrorBody),
    /// UNAUTHORIZED: no API token, or one this master does not know
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// FORBIDDEN: the token's role does not allow this, or the request came from another site or host name
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// the body is not application/json
    #[response(status = 415)]
    MediaType(ErrorBody),
    /// UNAVAILABLE: the database cannot be reached; nothing was changed
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// The errors of the writes that name versions.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum WriteErrors {
    /// NOT_FOUND: a versioned update names a token that does not exist
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// VERSION_CONFLICT: a token's version is not the stored one
    #[response(status = 409)]
    Conflict(ErrorBody),
}
