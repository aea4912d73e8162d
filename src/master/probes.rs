//! The small listener of `-m workers` and `-m scheduler` processes (`metrics_bind`):
//! `/health` (alive), `/ready` (the master answers healthy) and `/metrics` (Prometheus text,
//! behind the same checks as the master's API).

use std::time::Duration;

use axum::response::Response;

use crate::web::probes::{guarded, readiness};

/// What a `metrics_bind` listener needs: who may read `/metrics` and how to tell readiness.
#[derive(Clone)]
pub struct Probes {
    pub access: crate::web::auth::Access,
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
        .route("/health", get(crate::web::probes::alive))
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

async fn probe_ready(p: Probes) -> Response {
    let reason = match tokio::time::timeout(READY_WITHIN, p.client.health()).await {
        Ok(Ok(h)) if h.status == "ok" => return readiness(Ok::<(), String>(())),
        Ok(Ok(h)) => format!("the master is {}: its database is {}", h.status, h.database),
        Ok(Err(e)) => format!("the master does not answer: {e}"),
        Err(_) => format!(
            "the master did not answer within {} s",
            READY_WITHIN.as_secs()
        ),
    };
    tracing::debug!(what = p.what, %reason, "not ready");
    readiness(Err(reason))
}
