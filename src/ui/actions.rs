//! The UI's actions: `POST /command/` runs one operator command (`ops`, as `pinball util -f`
//! would: the page has already asked the user) through the master and answers with the message
//! the command prints, and records it in the audit log. Requests must carry the page's
//! anti-forgery token, come from this site (`auth::guard`) and from an operator.

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

/// The action a form asks for: its names parsed (an empty field is no value).
fn action(command: Command, f: CommandForm) -> Result<Action, UiError> {
    let jobs = f
        .jobs
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|j| !j.is_empty())
        .map(JobName::parse)
        .collect::<Result<_, _>>()
        .map_err(|e| UiError::BadInput(e.to_string()))?;
    Ok(Action {
        workflow: optional(f.workflow)?,
        instance: optional::<InstanceId>(f.instance)?,
        jobs,
        execution: f.execution,
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
    if !caller.may_act() {
        tracing::warn!(user = ?caller.user, command = ?f.command, "ui refused an action of a viewer");
        return Err(UiError::Forbidden(
            "viewers may look but not act: an operator's account is needed".into(),
        ));
    }
    let c = offered(&f.command).ok_or_else(|| {
        UiError::BadInput(format!("{:?} is not an action the UI offers", f.command))
    })?;
    let action = action(c, f)?;
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
            let created = done.created.map(|(w, i)| {
                serde_json::json!({
                    "workflow": w,
                    "instance": i,
                    "href": crate::workflow::links::jobs_href(&w, &i),
                })
            });
            Ok(Json(serde_json::json!({"message": message, "created": created})).into_response())
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
