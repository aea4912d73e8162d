//! What every listener answers at its root: `/health` (alive), `/ready` (whether it takes
//! work, and why not), and `/metrics` behind the same checks as its API.

use axum::response::{IntoResponse, Response};

/// `/metrics` behind the API's checks ([`super::auth::admit`]): a known host name, no other
/// site's page, and (with `api_tokens`) a token of the viewer role or above.
pub fn guarded(
    access: &super::auth::Access,
    host_names: &[String],
    headers: &axum::http::HeaderMap,
) -> Response {
    match super::auth::admit(
        access,
        host_names,
        headers,
        Some((crate::config::Role::Viewer, "metrics")),
        "this listener does not answer to that host name (Host header)",
    ) {
        Ok(_) => crate::metrics::answer(),
        Err(e) => {
            tracing::warn!(error = %e, "refused a metrics request");
            super::error::ApiError::Master(e).into_response()
        }
    }
}

/// `GET /health` on every listener: the process answers.
pub async fn alive() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "alive"}))
}

/// A `/ready` answer on every listener: 200 `{"ready": true}`, or 503 `{"ready": false,
/// "reason"}`.
pub fn readiness(result: Result<(), impl std::fmt::Display>) -> Response {
    match result {
        Ok(()) => axum::Json(serde_json::json!({"ready": true})).into_response(),
        Err(reason) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"ready": false, "reason": reason.to_string()})),
        )
            .into_response(),
    }
}
