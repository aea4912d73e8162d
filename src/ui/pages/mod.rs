//! The browser pages, at the original's URLs (`/workflows/`, `/instances/?workflow=W`,
//! `/jobs/?workflow=W&instance=I`, ...), so links in emails and bookmarks keep working; one
//! file per page. Views are computed in Rust (times, durations, colours, the graph and the
//! timeline); the templates only lay them out. Handlers return `Result<Html, PageError>`.

mod audit;
mod backfills;
mod executions;
mod file;
mod grid;
mod instance;
mod instances;
mod pools;
mod schedules;
mod search;
mod tokens;
mod workflows;

use askama::Template;
use axum::Router;
use axum::http::Uri;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use super::Ui;
use super::error::{PageError, UiError};
use super::format::{ago, utc};
use crate::token::name::{InstanceId, JobName, Level, WorkflowName};

pub use instance::{JOBS_PAGE, progress};

pub fn router(ui: Ui) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/workflows/") }))
        .route("/workflows/", get(workflows::show))
        .route("/instances/", get(instances::show))
        .route("/jobs/", get(instance::show))
        .route("/executions/", get(executions::executions))
        .route("/job_executions/", get(executions::job_executions))
        .route("/execution/", get(executions::execution))
        .route("/file/", get(file::show))
        .route("/schedules/", get(schedules::schedules))
        .route("/schedule/", get(schedules::schedule))
        .route("/token_paths/", get(tokens::token_paths))
        .route("/token/", get(tokens::token))
        .route("/audit/", get(audit::show))
        .route("/backfills/", get(backfills::list))
        .route("/pools/", get(pools::show))
        .route("/backfill/", get(backfills::show))
        .route("/search/", get(search::show))
        .fallback(not_found)
        .with_state(ui)
}

/// What every page's frame needs.
pub struct Head {
    pub title: String,
    pub csrf: String,
    /// The signed-in user (empty on a UI without users) and their role.
    pub user: String,
    pub role: &'static str,
    /// The status label's scope, as a query string (`workflow=W&instance=I`).
    pub scope: String,
    /// The footer: which master leads and its standbys (empty until known).
    pub masters: String,
}

impl Head {
    fn new(ui: &Ui, title: impl Into<String>, scope: &Level) -> Head {
        let caller = super::auth::current();
        Head {
            title: title.into(),
            csrf: ui.csrf_of(&caller),
            user: caller.user.unwrap_or_default(),
            role: caller.role.as_str(),
            scope: match scope {
                Level::Global => String::new(),
                Level::Workflow(w) => format!("workflow={w}"),
                Level::Instance(w, i) => format!("workflow={w}&instance={i}"),
            },
            masters: ui.masters.read().map(|m| m.clone()).unwrap_or_default(),
        }
    }

    /// The frame of a page that offers no actions (the error page).
    pub fn plain(title: impl Into<String>) -> Head {
        Head {
            title: title.into(),
            csrf: String::new(),
            user: String::new(),
            role: "viewer",
            scope: String::new(),
            masters: String::new(),
        }
    }
}

/// A time cell: UTC text, "3 min ago", and a sort key.
pub struct When {
    pub utc: String,
    pub ago: String,
    pub sort: String,
}

fn when(t: Option<f64>, now: f64) -> When {
    When {
        utc: utc(t),
        ago: ago(t, now),
        sort: t.map_or_else(String::new, |t| format!("{t:.3}")),
    }
}

pub fn render(t: &impl Template) -> Html<String> {
    Html(t.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "a page failed to render");
        "this page failed to render; the error is in the UI's log".into()
    }))
}

type PageResult = Result<Response, PageError>;

fn respond(t: &impl Template) -> PageResult {
    Ok(render(t).into_response())
}

async fn not_found(uri: Uri) -> PageError {
    PageError(UiError::NotFound(format!("no page at {}", uri.path())))
}

fn need<T>(what: &str, v: Option<T>) -> Result<T, UiError> {
    v.ok_or_else(|| UiError::BadInput(format!("this page needs {what}")))
}

/// Every page's query string; names are parsed (and refused) as they arrive.
#[derive(Deserialize, Default)]
struct Params {
    workflow: Option<WorkflowName>,
    instance: Option<InstanceId>,
    job: Option<JobName>,
    execution: Option<usize>,
    log_type: Option<String>,
    path: Option<String>,
    #[serde(default)]
    offset: u64,
    /// The first row of an instance's jobs table.
    #[serde(default)]
    jobs_offset: usize,
    /// Only the jobs whose name contains this, or whose status is this (all pages).
    jobs_q: Option<String>,
    #[serde(default)]
    full: Option<u8>,
    /// Set by the live refresh: the heavy, separately refreshed parts (the graph) are left out.
    #[serde(default)]
    live: Option<u8>,
    /// How many recent instances the runs grid shows (default 25, at most 100).
    runs: Option<usize>,
    /// The job whose durations the runs chart shows.
    chart: Option<JobName>,
}

impl Params {
    fn workflow(&self) -> Result<&WorkflowName, UiError> {
        need("?workflow=", self.workflow.as_ref())
    }
    fn instance(&self) -> Result<(&WorkflowName, &InstanceId), UiError> {
        Ok((
            self.workflow()?,
            need("&instance=", self.instance.as_ref())?,
        ))
    }
    fn job(&self) -> Result<&JobName, UiError> {
        need("&job=", self.job.as_ref())
    }
}

pub use crate::workflow::links::{execution_href, file_href, job_href};
