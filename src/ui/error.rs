//! The UI's one error type, and the one place it becomes an HTTP response: JSON
//! (`{"error": {"code", "message"}}`) for the read API and actions, the error page for
//! browser pages ([`PageError`]). A 5xx answer says only what a user can act on; its detail
//! is logged at `error`. The extractors here give malformed query strings and paths the same
//! shape as every other error.

use askama::Template;
use axum::Json;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::ops::OpsError;
use crate::storage::StorageError;
use crate::token::MasterError;

#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Forbidden(String),
    /// The operation ran into a state that does not allow it (a conflict, a limit).
    #[error("{0}")]
    Conflict(String),
    #[error("the database cannot be read: {0}")]
    Database(#[from] StorageError),
    #[error("the master is unavailable: {0}")]
    Master(MasterError),
    /// The UI itself cannot answer now (stopping, or a page that failed to build).
    #[error("{0}")]
    Unavailable(String),
}

impl From<MasterError> for UiError {
    fn from(e: MasterError) -> Self {
        match e {
            MasterError::InputError(m) => UiError::BadInput(m),
            MasterError::NotFound(m) => UiError::NotFound(m),
            MasterError::VersionConflict(c) => UiError::Conflict(c.message),
            MasterError::Forbidden(m) | MasterError::Unauthorized(m) => UiError::Forbidden(m),
            e @ (MasterError::Unavailable(_)
            | MasterError::Held(_)
            | MasterError::Unreachable(_)) => UiError::Master(e),
        }
    }
}

impl From<OpsError> for UiError {
    fn from(e: OpsError) -> Self {
        match e {
            OpsError::Master(m) => m.into(),
            OpsError::Storage(s) => UiError::Database(s),
            OpsError::NoWorkflow(m) => UiError::NotFound(m),
            e if e.is_input() => UiError::BadInput(e.to_string()),
            e => UiError::Conflict(e.to_string()),
        }
    }
}

impl UiError {
    pub fn status(&self) -> StatusCode {
        match self {
            UiError::NotFound(_) => StatusCode::NOT_FOUND,
            UiError::BadInput(_) => StatusCode::BAD_REQUEST,
            UiError::Forbidden(_) => StatusCode::FORBIDDEN,
            UiError::Conflict(_) => StatusCode::CONFLICT,
            UiError::Database(_) | UiError::Master(_) | UiError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    fn code(&self) -> &'static str {
        match self {
            UiError::NotFound(_) => "NOT_FOUND",
            UiError::BadInput(_) => "INPUT_ERROR",
            UiError::Forbidden(_) => "FORBIDDEN",
            UiError::Conflict(_) => "FAILED",
            UiError::Database(_) | UiError::Master(_) | UiError::Unavailable(_) => "UNAVAILABLE",
        }
    }

    /// What the user is told. A 5xx says what failed, not why: the detail goes to the log.
    fn public_message(&self) -> String {
        match self {
            UiError::Database(e) => {
                tracing::error!(error = %e, "the UI cannot read the database");
                match e.cause() {
                    Some(cause) => format!(
                        "the database cannot be read right now: {cause}; try again in a moment"
                    ),
                    None => "the database cannot be read right now; try again in a moment".into(),
                }
            }
            UiError::Master(e) => {
                tracing::error!(error = %e, "the UI cannot reach the master");
                "the master cannot be reached right now; try again in a moment".into()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let body =
            serde_json::json!({"error": {"code": self.code(), "message": self.public_message()}});
        (self.status(), Json(body)).into_response()
    }
}

/// A UI error on a browser page: the error page, with the same status.
#[derive(Debug)]
pub struct PageError(pub UiError);

impl<E: Into<UiError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    head: super::pages::Head,
    status: u16,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let page = ErrorPage {
            head: super::pages::Head::plain("Error"),
            status: status.as_u16(),
            message: self.0.public_message(),
        };
        (status, super::pages::render(&page)).into_response()
    }
}

/// A query string, parsed into `T`; a malformed one is answered as `E` (a page or JSON) that
/// names the problem.
pub struct QueryIn<T, E>(pub T, pub std::marker::PhantomData<E>);

/// A page's query string: a malformed one is a 400 page.
pub type PageQuery<T> = QueryIn<T, PageError>;
/// The JSON API's query string: a malformed one is a 400 JSON error.
pub type ApiQuery<T> = QueryIn<T, UiError>;

impl<S, T, E> FromRequestParts<S> for QueryIn<T, E>
where
    S: Send + Sync,
    T: DeserializeOwned,
    E: From<UiError> + IntoResponse,
{
    type Rejection = E;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, E> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(t)| QueryIn(t, std::marker::PhantomData))
            .map_err(|e| E::from(UiError::BadInput(e.body_text())))
    }
}

/// Path parameters for the JSON API; names that are not `\w+` are a 400 that names them.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, UiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| ApiPath(t))
            .map_err(|e| UiError::BadInput(e.body_text()))
    }
}

/// Renders HTML for a handler that has built its page.
pub fn html(t: &impl Template) -> Result<Html<String>, PageError> {
    Ok(super::pages::render(t))
}
