//! The master's HTTP server: its routes (the API's handlers, their OpenAPI document, the
//! probes), behind the API's guard, served with the listener's bounds until shutdown.

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};

use super::api::*;
use super::service::Master;
use crate::token::MasterError;
use crate::web::error::ApiError;
use crate::web::probes::{alive, readiness};

/// Routes served beside the master's (the HTTP trigger, which knows workflows and is added by
/// `modes`), with their part of the OpenAPI document.
pub struct Extra {
    pub routes: Router<Master>,
    pub openapi: utoipa::openapi::OpenApi,
}

/// The master's routes, with `extra` ones behind the same guard (tokens, roles, host, origin,
/// body bounds) and in the same OpenAPI document.
pub fn router(master: Master, settings: ApiSettings, extra: Option<Extra>) -> Router {
    let (routes, doc) = match extra {
        Some(e) => (e.routes, super::openapi::document_with(Some(e.openapi))),
        None => (Router::new(), super::openapi::document_with(None)),
    };
    let doc = std::sync::Arc::new(doc);
    Router::new()
        .merge(routes)
        .route("/api/v1/modify", post(modify))
        .route("/api/v1/query", post(query))
        .route("/api/v1/query_and_own", post(query_and_own))
        .route("/api/v1/group", post(group))
        .route("/api/v1/archive", post(archive))
        .route("/api/v1/audit", post(audit))
        .route(
            "/api/v1/master/handover",
            post(super::api::handover::handover),
        )
        .route("/api/v1/logs", post(logs))
        .route("/api/v1/health", get(health))
        .route(
            "/api/v1/openapi.json",
            get(move || async move { Json(doc.as_ref().clone()) }),
        )
        .route("/metrics", get(|| async { crate::metrics::answer() }))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(master.clone(), serving))
        .layer(DefaultBodyLimit::max(settings.max_request_bytes))
        .layer(middleware::from_fn_with_state(settings, guard))
        // Probes for load balancers and orchestrators: no token, no data beyond the answer.
        .route("/health", get(alive))
        .route("/ready", get(ready))
        .route_layer(middleware::from_fn(|req, next| {
            crate::metrics::track("master", req, next)
        }))
        .with_state(master)
}

/// `GET /ready`: 200 when the master takes writes (its database answers and commits land),
/// 503 with the reason otherwise. It never waits for the database.
async fn ready(State(m): State<Master>) -> Response {
    readiness(m.ready())
}

/// Refuses every API call but the health while the lease is lapsed (see
/// [`Master::lapsed`]): this master's memory may be behind a master that took over.
async fn serving(
    State(m): State<Master>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    if m.lapsed() && req.uri().path() != "/api/v1/health" {
        // Every lease is held meanwhile: this master extends them when a renewal lands, and a
        // master that takes over extends those still valid by the gap.
        let why = format!(
            "nothing was committed or read: {}",
            super::service::NotReady::Lapsed
        );
        return axum::response::IntoResponse::into_response(ApiError::Lapsed(why));
    }
    next.run(req).await
}

async fn not_found() -> ApiError {
    ApiError::Master(MasterError::NotFound(
        "no such endpoint: the API is POST /api/v1/{modify,query,query_and_own,group,archive,audit} and GET /api/v1/health".into(),
    ))
}

/// Serves the API on `listener` until `shutdown` resolves. Parked claims are answered at once
/// on shutdown, so the server drains in well under a second.
pub async fn serve(
    master: Master,
    listener: tokio::net::TcpListener,
    settings: ApiSettings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with(master, listener, settings, None, shutdown).await
}

/// [`serve`] with `extra` routes (see [`router`]).
pub async fn serve_with(
    master: Master,
    listener: impl std::borrow::Borrow<tokio::net::TcpListener>,
    settings: ApiSettings,
    extra: Option<Extra>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.borrow().local_addr()?;
    tracing::info!(%addr, "master listening");
    let closer = master.clone();
    let limits = settings.limits;
    let full = master.full_marker();
    let app = router(master, settings, extra);
    crate::web::http::serve_watched(listener, app, limits, Some(full), async move {
        shutdown.await;
        tracing::info!("master shutting down");
        closer.close().await;
    })
    .await?;
    tracing::info!("master stopped");
    Ok(())
}
