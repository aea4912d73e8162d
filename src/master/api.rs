//! The master's JSON HTTP API under `/api/v1` (CONTRACT §2), and the one place where a
//! `MasterError` becomes an HTTP response. Bodies are parsed by [`ApiJson`], so malformed,
//! unknown-field and oversized bodies get the same error shape as every other error.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;

use super::service::Master;
use crate::token::MasterError;
use crate::token::*;

pub use crate::config::DEFAULT_MAX_REQUEST_BYTES;

pub fn router(master: Master, max_request_bytes: usize) -> Router {
    Router::new()
        .route("/api/v1/modify", post(modify))
        .route("/api/v1/query", post(query))
        .route("/api/v1/query_and_own", post(query_and_own))
        .route("/api/v1/group", post(group))
        .route("/api/v1/archive", post(archive))
        .route("/api/v1/health", get(health))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_request_bytes))
        .with_state(master)
}

async fn modify(
    State(m): State<Master>,
    ApiJson(req): ApiJson<ModifyRequest>,
) -> Result<Json<ModifyResponse>, ApiError> {
    Ok(Json(m.modify(req).await?))
}

async fn query(
    State(m): State<Master>,
    ApiJson(req): ApiJson<QueryRequest>,
) -> Result<Json<QueryResponse>, ApiError> {
    Ok(Json(m.query(req).await?))
}

async fn query_and_own(
    State(m): State<Master>,
    ApiJson(req): ApiJson<QueryAndOwnRequest>,
) -> Result<Json<QueryAndOwnResponse>, ApiError> {
    Ok(Json(m.query_and_own(req).await?))
}

async fn group(
    State(m): State<Master>,
    ApiJson(req): ApiJson<GroupRequest>,
) -> Result<Json<GroupResponse>, ApiError> {
    Ok(Json(m.group(req).await?))
}

async fn archive(
    State(m): State<Master>,
    ApiJson(req): ApiJson<ArchiveRequest>,
) -> Result<Json<ArchiveResponse>, ApiError> {
    Ok(Json(m.archive(req).await?))
}

async fn health(State(m): State<Master>) -> Result<Json<Health>, ApiError> {
    Ok(Json(m.health().await?))
}

async fn not_found() -> ApiError {
    ApiError(MasterError::NotFound(
        "no such endpoint: the API is POST /api/v1/{modify,query,query_and_own,group,archive} and GET /api/v1/health".into(),
    ))
}

/// A JSON body whose every failure is an `INPUT_ERROR` naming the problem.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| match e {
            BytesRejection::FailedToBufferBody(_) => MasterError::input(
                "request body is larger than the master's limit (max_request_bytes) or could not be read",
            ),
            other => MasterError::input(other.body_text()),
        })?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de)
            .map(ApiJson)
            .map_err(|e| ApiError(MasterError::input(format!("invalid request body: {e}"))))
    }
}

/// An error on its way to the client: `{"error": {"code", "message"}}` with the contract's status.
#[derive(Debug)]
pub struct ApiError(pub MasterError);

impl From<MasterError> for ApiError {
    fn from(e: MasterError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            MasterError::VersionConflict(_) => StatusCode::CONFLICT,
            MasterError::NotFound(_) => StatusCode::NOT_FOUND,
            MasterError::InputError(_) => StatusCode::BAD_REQUEST,
            MasterError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            MasterError::Forbidden(_) => StatusCode::FORBIDDEN,
            MasterError::Unavailable(_) | MasterError::Unreachable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        if status.is_server_error() {
            tracing::warn!(error = %self.0, "request answered UNAVAILABLE");
        }
        let body =
            serde_json::json!({"error": {"code": self.0.code(), "message": self.0.to_string()}});
        (status, Json(body)).into_response()
    }
}

/// Serves the API on `listener` until `shutdown` resolves. Parked claims are answered at once
/// on shutdown, so the server drains in well under a second.
pub async fn serve(
    master: Master,
    listener: tokio::net::TcpListener,
    max_request_bytes: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "master listening");
    let closer = master.clone();
    let app = router(master, max_request_bytes);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("master shutting down");
            closer.close().await;
        })
        .await?;
    tracing::info!("master stopped");
    Ok(())
}
