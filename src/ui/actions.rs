//! The UI's actions: `POST /command/` runs one operator command (`ops`, as `pinball util -f`
//! would: the page has already asked the user) through the master and answers with the message
//! the command prints, and records it in the audit log. Requests must carry the page's
//! anti-forgery token, come from this site (`auth::guard`) and from an operator.
//!
//! `POST /api/v1/actions/{command}` is the same for scripts: a JSON body (`workflow`,
//! `instance`, `jobs`, `execution`), a session or an operator's API token, no page token (a
//! JSON body and `Authorization` cannot be sent by another site's page without the browser
//! asking this UI first, which it never allows; `auth::guard` refuses other origins too).

use std::collections::BTreeMap;
use std::str::FromStr;

use axum::extract::{Form, FromRequest, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::Ui;
use super::error::UiError;
use crate::ops::{Action, Command, Ops};
use crate::token::name::{InstanceId, JobName, NameError};

pub fn router(ui: Ui) -> Router {
    Router::new()
        .route("/command/", post(command))
        .route("/api/v1/actions/{command}", post(json_command))
        .with_state(ui)
}

/// The most jobs one action names.
const MAX_JOBS: usize = 1000;

/// The body of `POST /api/v1/actions/{command}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    pub workflow: Option<String>,
    /// An instance id, or `latest`.
    pub instance: Option<String>,
    #[serde(default)]
    pub jobs: Vec<String>,
    pub execution: Option<usize>,
    /// `start`: the run's parameters (JSON scalars).
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, String>)]
    pub params: BTreeMap<String, crate::parser::params::ParamValue>,
    /// `start`: the run's logical time (RFC 3339 or YYYY-MM-DD; default now).
    pub logical_time: Option<String>,
    /// `start`: beyond max_running_instances, wait as a QUEUED run instead of being refused.
    #[serde(default)]
    pub queue: bool,
}

/// The JSON body, with a malformed one answered like every other UI error.
pub struct JsonAction(ActionBody);

impl<S: Send + Sync> FromRequest<S> for JsonAction {
    type Rejection = UiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, UiError> {
        Json::<ActionBody>::from_request(req, state)
            .await
            .map(|Json(b)| JsonAction(b))
            .map_err(|e| UiError::BadInput(e.body_text()))
    }
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
    /// `start`: the run's logical date or time (empty: now).
    pub logical_time: Option<String>,
    /// `start`: `on` to queue the run when max_running_instances is reached.
    pub queue: Option<String>,
    /// `start`: `param.NAME` fields, the run's parameters (every other field is refused).
    #[serde(flatten)]
    pub rest: BTreeMap<String, String>,
}

/// The most parameters one form carries.
const MAX_FORM_PARAMS: usize = 64;

/// The `param.NAME` fields of a form as the run's parameters; any other field is bad input.
fn form_params(rest: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, UiError> {
    if rest.len() > MAX_FORM_PARAMS {
        return Err(UiError::BadInput(format!(
            "a form carries at most {MAX_FORM_PARAMS} parameters"
        )));
    }
    rest.into_iter()
        .map(|(k, v)| match k.strip_prefix("param.") {
            Some(name) => Ok((name.to_owned(), v)),
            None => Err(UiError::BadInput(format!("unknown field {k:?}"))),
        })
        .collect()
}

/// The form, with a malformed body answered like every other UI error.
pub struct ActionForm(CommandForm);

impl<S: Send + Sync> FromRequest<S> for ActionForm {
    type Rejection = UiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, UiError> {
        Form::<CommandForm>::from_request(req, state)
            .await
            .map(|Form(f)| ActionForm(f))
            .map_err(|e| UiError::BadInput(e.body_text()))
    }
}

/// The command a form names, if the UI offers it: the runtime alterations of PINBALL_SPEC
/// §8.4 (not `stop`, which deletes history, nor `pause`, `resume`, `reload`, `cleanup` or the
/// definitions' import, which are the operator's at the command line).
fn offered(s: &str) -> Option<Command> {
    use Command::*;
    Command::parse(s)
        .filter(|c| !matches!(c, Stop | Pause | Resume | Reschedule | Reload | Cleanup))
}

fn optional<N: FromStr<Err = NameError>>(field: Option<String>) -> Result<Option<N>, UiError> {
    match field.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => N::from_str(&s)
            .map(Some)
            .map_err(|e| UiError::BadInput(e.to_string())),
    }
}

/// The action a form or a JSON body asks for: its names parsed (an empty field is no value).
fn action(
    command: Command,
    (workflow, instance): (Option<String>, Option<String>),
    jobs: &[&str],
    execution: Option<usize>,
) -> Result<Action, UiError> {
    let jobs = jobs
        .iter()
        .map(|j| j.trim())
        .filter(|j| !j.is_empty())
        .map(JobName::parse)
        .collect::<Result<_, _>>()
        .map_err(|e| UiError::BadInput(e.to_string()))?;
    Ok(Action {
        workflow: optional(workflow)?,
        instance: optional::<InstanceId>(instance)?,
        jobs,
        execution,
        ..Action::new(command)
    })
}

async fn command(State(ui): State<Ui>, ActionForm(f): ActionForm) -> Result<Response, UiError> {
    // The guard already refused requests from other sites; the token proves the page was ours.
    let caller = super::auth::current();
    let expected = ui.csrf_of(&caller);
    let token_ok: bool =
        subtle::ConstantTimeEq::ct_eq(f.csrf.as_bytes(), expected.as_bytes()).into();
    if !token_ok {
        tracing::warn!(command = ?f.command, "ui refused an action without a valid anti-forgery token");
        return Err(UiError::Forbidden(
            "this action did not come from a Pinball page; reload the page and try again".into(),
        ));
    }
    let c = allowed(&caller, &f.command)?;
    let jobs: Vec<&str> = f.jobs.as_deref().unwrap_or("").split(',').collect();
    let mut action = action(c, (f.workflow, f.instance), &jobs, f.execution)?;
    if c == Command::Start {
        action.params = form_params(f.rest)?;
        action.logical_time = f.logical_time.filter(|t| !t.is_empty());
        action.queue = f.queue.is_some_and(|q| q == "on");
    }
    perform(&ui, &caller, c, action).await
}

/// What an action did: the command's message and, when it made one, the new instance.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ActionAnswer {
    pub message: String,
    pub created: Option<Created>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Created {
    pub workflow: String,
    pub instance: String,
    /// The instance's page.
    pub href: String,
}

/// `POST /api/v1/actions/{command}`: what the button of `command` does, for a script.
#[utoipa::path(
    post,
    path = "/api/v1/actions/{command}",
    params(("command" = String, Path, description = "start, cancel, retry, rerun, redo, poison, skip, drain, undrain, abort, unabort, exit, unexit, disable, enable, unschedule, pause-schedule, resume-schedule")),
    request_body = ActionBody,
    responses(
        (status = 200, description = "done; what the command printed", body = ActionAnswer),
        (status = 403, description = "FORBIDDEN: a viewer, or a request from another site", body = crate::web::error::ErrorBody),
        (status = 409, description = "refused: the instance or job does not allow it", body = crate::web::error::ErrorBody),
        super::openapi::Errors,
    ),
    tag = "ui"
)]
async fn json_command(
    State(ui): State<Ui>,
    axum::extract::Path(command): axum::extract::Path<String>,
    JsonAction(body): JsonAction,
) -> Result<Response, UiError> {
    let caller = super::auth::current();
    let c = allowed(&caller, &command)?;
    if body.jobs.len() > MAX_JOBS {
        return Err(UiError::BadInput(format!(
            "an action names at most {MAX_JOBS} jobs, not {}",
            body.jobs.len()
        )));
    }
    let jobs: Vec<&str> = body.jobs.iter().map(String::as_str).collect();
    let mut action = action(c, (body.workflow, body.instance), &jobs, body.execution)?;
    if c == Command::Start {
        action.params = body.params.into_iter().map(|(k, v)| (k, v.0)).collect();
        action.logical_time = body.logical_time;
        action.queue = body.queue;
    } else if !body.params.is_empty() || body.logical_time.is_some() || body.queue {
        return Err(UiError::BadInput(
            "params, logical_time and queue are for start".into(),
        ));
    }
    perform(&ui, &caller, c, action).await
}

/// The command `name` if `caller` may run it from the UI.
fn allowed(caller: &super::auth::UiCaller, name: &str) -> Result<Command, UiError> {
    if !caller.may_act() {
        tracing::warn!(user = ?caller.user, command = ?name, "ui refused an action of a viewer");
        return Err(UiError::Forbidden(
            "viewers may look but not act: an operator's account is needed".into(),
        ));
    }
    offered(name)
        .ok_or_else(|| UiError::BadInput(format!("{name:?} is not an action the UI offers")))
}

/// Runs `action` for `caller` (one apply, one audit entry) and answers with what it printed.
async fn perform(
    ui: &Ui,
    caller: &super::auth::UiCaller,
    c: Command,
    action: Action,
) -> Result<Response, UiError> {
    tracing::info!(
        user = ?caller.user,
        command = c.as_str(),
        workflow = action.workflow.as_deref().unwrap_or(""),
        instance = action.instance.as_deref().unwrap_or(""),
        jobs = %action.jobs.iter().map(|j| j.as_str()).collect::<Vec<_>>().join(","),
        "ui action"
    );
    let ops = Ops::new(ui.client.as_ref(), ui.ops.clone()).with_store(ui.data.store.clone());
    // One apply, one audit entry; a refusal (the instance does not allow it) is an error here,
    // in the original's words.
    let result = match ops.apply(&action, &caller.actor()).await {
        Ok(done) if done.refused => Err(UiError::Conflict(done.message.trim_end().to_owned())),
        Ok(done) => Ok(done),
        Err(e) => Err(UiError::from(e)),
    };
    match result {
        Ok(done) => {
            let message = done.message.trim_end().to_owned();
            // A new instance (start, retry of an archived one, poison into a new one): its page.
            // A queued run has no page yet: its workflow's list shows it.
            let queued = done.queued;
            let created = done.created.map(|(w, i)| Created {
                href: match queued {
                    true => format!("/instances/?workflow={w}"),
                    false => crate::workflow::links::jobs_href(&w, &i),
                },
                workflow: w.to_string(),
                instance: i.to_string(),
            });
            Ok(Json(ActionAnswer { message, created }).into_response())
        }
        Err(e) => {
            tracing::warn!(command = c.as_str(), error = %e, "ui action failed");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_ui_s_commands_are_offered() {
        assert_eq!(offered("Retry"), Some(Command::Retry));
        assert_eq!(offered("stop"), None, "stop deletes history");
        assert_eq!(offered("cleanup"), None);
    }
}
