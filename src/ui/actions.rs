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
use crate::ops::audit;
use crate::ops::{Command, Done, Ops};
use crate::token::name::{InstanceId, JobName, Level, NameError, WorkflowName};

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

/// The form's names, parsed: an empty field is no value.
struct Target {
    workflow: Option<WorkflowName>,
    instance: Option<InstanceId>,
    jobs: Vec<JobName>,
    execution: Option<usize>,
}

fn optional<N: FromStr<Err = NameError>>(field: Option<String>) -> Result<Option<N>, UiError> {
    match field.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => N::from_str(&s)
            .map(Some)
            .map_err(|e| UiError::BadInput(e.to_string())),
    }
}

impl Target {
    fn parse(f: CommandForm) -> Result<Target, UiError> {
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
        Ok(Target {
            workflow: optional(f.workflow)?,
            instance: optional(f.instance)?,
            jobs,
            execution: f.execution,
        })
    }

    fn workflow(&self, c: Command) -> Result<&WorkflowName, UiError> {
        self.workflow.as_ref().ok_or_else(|| {
            UiError::BadInput(format!("{} needs a workflow (-w WORKFLOW)", c.as_str()))
        })
    }

    fn instance(&self, c: Command) -> Result<(&WorkflowName, &InstanceId), UiError> {
        let w = self.workflow(c)?;
        let i = self.instance.as_ref().ok_or_else(|| {
            UiError::BadInput(format!("{} needs an instance (-i INSTANCE)", c.as_str()))
        })?;
        Ok((w, i))
    }

    fn level(&self, c: Command) -> Result<Level, UiError> {
        Ok(match (&self.workflow, &self.instance) {
            (None, None) => Level::Global,
            (Some(w), None) => Level::Workflow(w.clone()),
            (_, Some(_)) => {
                let (w, i) = self.instance(c)?;
                Level::Instance(w.clone(), i.clone())
            }
        })
    }
}

async fn run(ops: &Ops<'_>, c: Command, t: &Target) -> Result<Done, UiError> {
    use Command::*;
    Ok(match c {
        Start => ops.start(t.workflow(c)?).await?,
        Retry => {
            let (w, i) = t.instance(c)?;
            ops.retry(w, i).await?
        }
        Redo => {
            let (w, i) = t.instance(c)?;
            let [job] = t.jobs.as_slice() else {
                return Err(UiError::BadInput("redo takes a single job".into()));
            };
            let n = t
                .execution
                .ok_or_else(|| UiError::BadInput("redo needs an execution".into()))?;
            ops.redo(w, i, job, n).await?
        }
        Poison => {
            ops.poison(t.workflow(c)?, t.instance.as_ref(), &t.jobs)
                .await?
        }
        Drain => ops.drain(&t.level(c)?).await?,
        Undrain => ops.undrain(&t.level(c)?).await?,
        Abort => ops.abort(&t.level(c)?).await?,
        Unabort => ops.unabort(&t.level(c)?).await?,
        Exit => ops.exit(&t.level(c)?).await?,
        Unexit => ops.unexit(&t.level(c)?).await?,
        Unschedule => ops.unschedule(t.workflow(c)?).await?,
        Disable | Enable => {
            let (w, i) = t.instance(c)?;
            ops.set_disabled(w, i, &t.jobs, c == Disable).await?
        }
        Stop | Pause | Resume | Reschedule | Reload | Cleanup => {
            return Err(UiError::BadInput(format!(
                "`{}` is not an action the UI offers",
                c.as_str()
            )));
        }
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
    let target = Target::parse(f)?;
    tracing::info!(
        user = ?caller.user,
        command = c.as_str(),
        workflow = target.workflow.as_deref().unwrap_or(""),
        instance = target.instance.as_deref().unwrap_or(""),
        jobs = %target.jobs.join(","),
        "ui action"
    );
    let ops = Ops::new(ui.client.as_ref(), ui.ops.clone()).with_store(ui.data.store.clone());
    let result = run(&ops, c, &target).await;
    // A refusal (the instance does not allow it) is an error here, in the original's words.
    let result = match result {
        Ok(done) if done.refused => Err(UiError::Conflict(done.message.trim_end().to_owned())),
        r => r,
    };
    let outcome = match &result {
        Ok(done) => Ok(done.message.as_str()),
        Err(e) => Err(e.to_string()),
    };
    let created = result.as_ref().ok().and_then(|d| d.created.as_ref());
    let audited = audit::Target {
        workflow: target.workflow.as_ref(),
        instance: target.instance.as_ref().or(created.map(|(_, i)| i)),
        jobs: &target.jobs,
    };
    let said = outcome.as_ref().map(|m| *m).map_err(String::as_str);
    audit::record(
        ui.client.as_ref(),
        &caller.actor(),
        c.as_str(),
        audited,
        said,
    )
    .await;
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
