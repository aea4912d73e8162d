//! The small listener of `-m workers` and `-m scheduler` processes (`metrics_bind`):
//! `/health` (alive), `/ready` (the master answers healthy) and `/metrics` (Prometheus text,
//! behind the same checks as the master's API).

use std::time::Duration;

use axum::response::{IntoResponse, Response};

/// What a `metrics_bind` listener needs: who may read `/metrics` and how to tell readiness.
#[derive(Clone)]
pub struct Probes {
    pub access: super::auth::Access,
    /// The host names the listener answers to beyond IP addresses and `localhost`.
    pub host_names: std::sync::Arc<[String]>,
    /// The master this process works for: ready when it answers healthy.
    pub client: std::sync::Arc<dyn super::MasterClient>,
    /// What this process is (`workers`, `scheduler`), for the logs.
    pub what: &'static str,
}

/// How long `/ready` waits for the master's health.
const READY_WITHIN: Duration = Duration::from_secs(2);

/// `/health`, `/ready` and `/metrics` for `-m workers` and `-m scheduler` (`metrics_bind`).
pub fn probe_router(probes: Probes) -> axum::Router {
    use axum::routing::get;
    let metrics = probes.clone();
    let ready = probes.clone();
    axum::Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status": "alive"})) }),
        )
        .route("/ready", get(move || probe_ready(ready.clone())))
        .route(
            "/metrics",
            get(move |headers: axum::http::HeaderMap| {
                let p = metrics.clone();
                async move { guarded(&p.access, &p.host_names, &headers) }
            }),
        )
        .route_layer(axum::middleware::from_fn(|req, next| {
            crate::metrics::track("probes", req, next)
        }))
}

/// `/metrics` behind the API's checks: a known host name, no other site's page, and (with
/// `api_tokens`) a token of the viewer role or above.
pub fn guarded(
    access: &super::auth::Access,
    host_names: &[String],
    headers: &axum::http::HeaderMap,
) -> Response {
    use super::auth::{host_allowed, same_origin};
    let refuse = |e: crate::token::MasterError| {
        tracing::warn!(error = %e, "refused a metrics request");
        super::api::ApiError::Master(e).into_response()
    };
    if !host_allowed(headers, host_names) {
        return refuse(crate::token::MasterError::Forbidden(
            "this listener does not answer to that host name (Host header)".into(),
        ));
    }
    if !same_origin(headers) {
        return refuse(crate::token::MasterError::Forbidden(
            "requests from web pages of other sites are refused".into(),
        ));
    }
    match access
        .authenticate(headers)
        .and_then(|c| c.require(crate::config::Role::Viewer, "metrics"))
    {
        Ok(()) => crate::metrics::answer(),
        Err(e) => refuse(e),
    }
}

async fn probe_ready(p: Probes) -> Response {
    let reason = match tokio::time::timeout(READY_WITHIN, p.client.health()).await {
        Ok(Ok(h)) if h.status == "ok" => {
            return axum::Json(serde_json::json!({"ready": true})).into_response();
        }
        Ok(Ok(h)) => format!("the master is {}: its database is {}", h.status, h.database),
        Ok(Err(e)) => format!("the master does not answer: {e}"),
        Err(_) => format!(
            "the master did not answer within {} s",
            READY_WITHIN.as_secs()
        ),
    };
    tracing::debug!(what = p.what, %reason, "not ready");
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(serde_json::json!({"ready": false, "reason": reason})),
    )
        .into_response()
}
