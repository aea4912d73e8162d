//! The UI's actions: `POST /command/` runs one `pinball util` command (forced: the page has
//! already asked the user) through the master and answers with the message the command prints.
//! Requests must carry the page's anti-forgery token and, when the browser says where they come
//! from, come from this site: another site can neither read the token nor pass the origin check.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use serde::Deserialize;

use super::Ui;
use crate::cli::util::{self, UtilArgs, UtilCommand};

pub fn router(ui: Ui) -> Router {
    Router::new()
        .route("/command/", post(command))
        .with_state(ui)
}

#[derive(Debug, Deserialize)]
pub struct CommandForm {
    pub csrf: String,
    pub command: String,
    pub workflow: Option<String>,
    pub instance: Option<String>,
    /// Comma-separated.
    pub jobs: Option<String>,
    pub execution: Option<usize>,
}

/// What the UI may run: the runtime alterations of PINBALL_SPEC §8.4.
const ALLOWED: &[UtilCommand] = &[
    UtilCommand::Start,
    UtilCommand::Retry,
    UtilCommand::Redo,
    UtilCommand::Poison,
    UtilCommand::Drain,
    UtilCommand::Undrain,
    UtilCommand::Abort,
    UtilCommand::Unabort,
    UtilCommand::Exit,
    UtilCommand::Unexit,
    UtilCommand::Unschedule,
    UtilCommand::Disable,
    UtilCommand::Enable,
];

fn reply(status: StatusCode, code: &str, message: String) -> Response {
    if status.is_success() {
        (status, Json(serde_json::json!({"message": message}))).into_response()
    } else {
        (
            status,
            Json(serde_json::json!({"error": {"code": code, "message": message}})),
        )
            .into_response()
    }
}

/// Same-site check: a browser names the page that sent a POST in `Origin` (and says
/// `Sec-Fetch-Site`); either must point at this host when present.
fn same_site(headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site" || v == "same-site")
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest == host)
}

async fn command(State(ui): State<Ui>, headers: HeaderMap, Form(f): Form<CommandForm>) -> Response {
    if !same_site(&headers) || f.csrf.as_bytes() != ui.csrf.as_bytes() {
        tracing::warn!(command = %f.command, "ui refused an action without a valid anti-forgery token or from another site");
        return reply(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "this action did not come from a Pinball page; reload the page and try again".into(),
        );
    }
    let Some(cmd) = ALLOWED
        .iter()
        .copied()
        .find(|c| format!("{c:?}").eq_ignore_ascii_case(&f.command))
    else {
        return reply(
            StatusCode::BAD_REQUEST,
            "INPUT_ERROR",
            format!("`{}` is not an action the UI offers", f.command),
        );
    };
    let jobs: Vec<String> = f
        .jobs
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|j| !j.is_empty())
        .map(str::to_owned)
        .collect();
    let args = UtilArgs {
        command: cmd,
        force: true,
        workflow: f.workflow.filter(|w| !w.is_empty()),
        instance: f.instance.filter(|i| !i.is_empty()),
        jobs,
        execution: f.execution,
        age_days: 28,
    };
    tracing::info!(
        command = %f.command,
        workflow = args.workflow.as_deref().unwrap_or(""),
        instance = args.instance.as_deref().unwrap_or(""),
        jobs = %args.jobs.join(","),
        "ui action"
    );
    match util::run(&args, &ui.config, ui.client.as_ref()).await {
        Ok(message) => reply(StatusCode::OK, "", message.trim_end().to_owned()),
        Err(e) => {
            tracing::warn!(command = %f.command, error = %e.message, "ui action failed");
            let status = if e.status == crate::cli::EXIT_USAGE {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::CONFLICT
            };
            reply(status, "FAILED", e.message.trim_end().to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_pages_of_this_site_may_post() {
        assert!(same_site(&headers(&[("host", "ui:8080")])));
        assert!(same_site(&headers(&[
            ("host", "ui:8080"),
            ("origin", "http://ui:8080"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!same_site(&headers(&[
            ("host", "ui:8080"),
            ("origin", "http://evil.example")
        ])));
        assert!(!same_site(&headers(&[
            ("host", "ui:8080"),
            ("sec-fetch-site", "cross-site")
        ])));
    }
}
