//! One operator command with its typed arguments ([`Action`]), and the one place it runs and is
//! audited ([`Ops::apply`]). The command line builds an `Action` from its arguments and prints
//! what it says; the UI builds one from a form and renders it; tests build them directly.

use super::audit::{self, Target};
use super::{Command, Done, Ops, OpsError};
use crate::master::MasterClient;
use crate::parser::Definitions;
use crate::token::name::{InstanceId, JobName, Level, WorkflowName};

/// What `-i` takes for a workflow's newest instance.
pub const LATEST: &str = "latest";

/// A command and what it applies to.
#[derive(Debug, Clone)]
pub struct Action {
    pub command: Command,
    pub workflow: Option<WorkflowName>,
    pub instance: Option<InstanceId>,
    pub jobs: Vec<JobName>,
    /// `redo`: which execution.
    pub execution: Option<usize>,
    /// `cleanup`: the age in days.
    pub age_days: u32,
    /// `retry`: the attempts each retried job gets (its `max_attempts` when not given).
    pub attempts: Option<u32>,
    /// `reload` and `reschedule`: the definitions the caller read from its configuration, or
    /// why they could not be read.
    pub definitions: Option<Result<Definitions, String>>,
    /// Where `definitions` were read (a file or folder, or the `exec` parser's output).
    pub source: String,
    /// `import`: say what would change, write nothing.
    pub dry_run: bool,
    /// `start`: the run's parameter values (`-p KEY=VALUE`), checked against the definition.
    pub params: std::collections::BTreeMap<String, String>,
    /// `start`: the run's logical time as given (`--logical-time`); now when not.
    pub logical_time: Option<String>,
    /// `start`: how the run is started (`manual`, or `trigger` through the HTTP API).
    pub run_kind: crate::workflow::run_info::RunKind,
    /// `start`: a token written in the start's own commit, insert-only (an HTTP trigger's
    /// idempotency receipt); the run's facts go in its data.
    pub receipt: Option<String>,
    /// `start`: beyond the run limit, wait as a queued run instead of being refused.
    pub queue: bool,
}

impl Action {
    /// `command` with no arguments yet (`cleanup` at its default age, 28 days).
    pub fn new(command: Command) -> Action {
        Action {
            command,
            workflow: None,
            instance: None,
            jobs: Vec::new(),
            execution: None,
            age_days: 28,
            attempts: None,
            definitions: None,
            source: "the configured definitions".into(),
            dry_run: false,
            params: Default::default(),
            logical_time: None,
            run_kind: Default::default(),
            receipt: None,
            queue: false,
        }
    }

    /// `start`'s run: the parameters and logical time given.
    fn new_run(&self) -> super::start::Run {
        super::start::Run::New {
            params: self.params.clone(),
            logical_time: self.logical_time.clone(),
            kind: self.run_kind,
            receipt: self.receipt.clone(),
            queue: self.queue,
        }
    }

    fn workflow(&self) -> Result<&WorkflowName, OpsError> {
        self.workflow.as_ref().ok_or_else(|| {
            OpsError::Input(format!(
                "{} needs a workflow (-w WORKFLOW)",
                self.command.as_str()
            ))
        })
    }

    fn instance(&self) -> Result<(&WorkflowName, &InstanceId), OpsError> {
        let w = self.workflow()?;
        let i = self.instance.as_ref().ok_or_else(|| {
            OpsError::Input(format!(
                "{} needs an instance (-i INSTANCE)",
                self.command.as_str()
            ))
        })?;
        Ok((w, i))
    }

    /// The level the workflow and instance name: global without either (an instance needs its
    /// workflow).
    fn level(&self) -> Result<Level, OpsError> {
        Ok(match (&self.workflow, &self.instance) {
            (None, None) => Level::Global,
            (Some(w), None) => Level::Workflow(w.clone()),
            (_, Some(_)) => {
                let (w, i) = self.instance()?;
                Level::Instance(w.clone(), i.clone())
            }
        })
    }

    fn definitions(&self) -> Result<&Definitions, OpsError> {
        match &self.definitions {
            Some(Ok(defs)) => Ok(defs),
            Some(Err(why)) => Err(OpsError::Input(why.clone())),
            None => Err(OpsError::Input(format!(
                "{} needs the workflow definitions of the configuration",
                self.command.as_str()
            ))),
        }
    }
}

impl Ops<'_> {
    /// Runs `action` for `actor` and records it in the audit log, with the instance it created
    /// if any and what it said (or why it failed).
    pub async fn apply(&self, action: &Action, actor: &str) -> Result<Done, OpsError> {
        // `-i latest` resolved first, so the entry names the instance it applied to; a
        // resolution that fails is recorded like any other failure.
        let (action, done) = match self.latest_named(action).await {
            Ok(Some(resolved)) => {
                let done = self.run(&resolved, actor).await;
                (std::borrow::Cow::Owned(resolved), done)
            }
            Ok(None) => (
                std::borrow::Cow::Borrowed(action),
                self.run(action, actor).await,
            ),
            Err(e) => (std::borrow::Cow::Borrowed(action), Err(e)),
        };
        let created = done.as_ref().ok().and_then(|d| d.created.as_ref());
        let target = Target {
            workflow: action.workflow.as_ref(),
            instance: action.instance.as_ref().or(created.map(|(_, i)| i)),
            jobs: &action.jobs,
        };
        audit::record_done(self.client(), actor, action.command.as_str(), target, &done).await;
        done
    }

    /// `action` with `-i latest` replaced by the workflow's newest instance; `None` when it
    /// names no `latest`.
    async fn latest_named(&self, action: &Action) -> Result<Option<Action>, OpsError> {
        if action
            .instance
            .as_ref()
            .is_none_or(|i| i.as_str() != LATEST)
        {
            return Ok(None);
        }
        let w = action.workflow()?;
        let newest = self.latest(w).await?.ok_or_else(|| {
            OpsError::Failed(format!(
                "workflow {w} has no instance, so none is the latest"
            ))
        })?;
        Ok(Some(Action {
            instance: Some(newest),
            ..action.clone()
        }))
    }

    async fn run(&self, a: &Action, actor: &str) -> Result<Done, OpsError> {
        use Command::*;
        match a.command {
            Start => self.start(a.workflow()?, a.new_run()).await,
            Stop => {
                let (w, i) = a.instance()?;
                self.stop(w, i).await
            }
            Cancel => {
                let (w, i) = a.instance()?;
                self.cancel(w, i).await
            }
            Retry => {
                let (w, i) = a.instance()?;
                self.retry(w, i, a.attempts).await
            }
            Pause => {
                let (w, i) = a.instance()?;
                self.pause(w, i, actor).await
            }
            Resume => {
                let (w, i) = a.instance()?;
                self.resume(w, i).await
            }
            Skip => {
                let (w, i) = a.instance()?;
                self.skip(w, i, &a.jobs).await
            }
            Disable | Enable => {
                let (w, i) = a.instance()?;
                self.set_disabled(w, i, &a.jobs, a.command == Disable).await
            }
            Redo => {
                let (w, i) = a.instance()?;
                let [job] = a.jobs.as_slice() else {
                    return Err(OpsError::Input("redo command takes a single job".into()));
                };
                let n = a
                    .execution
                    .ok_or_else(|| OpsError::Input("redo needs -e EXECUTION".into()))?;
                self.redo(w, i, job, n).await
            }
            Reload => {
                let (w, i) = a.instance()?;
                self.reload(w, i, &a.jobs, a.definitions()?).await
            }
            Drain => self.drain(&a.level()?).await,
            Undrain => self.undrain(&a.level()?).await,
            Abort => self.abort(&a.level()?).await,
            Unabort => self.unabort(&a.level()?).await,
            Exit => self.exit(&a.level()?).await,
            Unexit => self.unexit(&a.level()?).await,
            Import => {
                self.import(a.definitions()?.clone(), None, &a.source, a.dry_run)
                    .await
            }
            Reschedule => {
                self.import(
                    a.definitions()?.clone(),
                    a.workflow.as_ref(),
                    &a.source,
                    false,
                )
                .await
            }
            Poison => {
                self.poison(a.workflow()?, a.instance.as_ref(), &a.jobs)
                    .await
            }
            Cleanup => self.cleanup(a.age_days).await,
            Rerun => {
                let (w, i) = a.instance()?;
                self.rerun(w, i).await
            }
            Unschedule => self.unschedule(a.workflow()?).await,
            PauseSchedule => self.pause_schedule(a.workflow()?, true).await,
            ResumeSchedule => self.pause_schedule(a.workflow()?, false).await,
        }
    }
}

/// Runs `write`, a raw token write of `pinball token` (no command of [`Command`]'s), and
/// records it as [`Ops::apply`] does: the entry names `command`, and `what` beside what `write`
/// said (a raw write has no workflow target of its own).
pub async fn apply_raw<E: std::fmt::Display>(
    client: &dyn MasterClient,
    command: &str,
    actor: &str,
    what: &str,
    write: impl std::future::Future<Output = Result<String, E>>,
) -> Result<String, E> {
    let done = write.await;
    let said = match &done {
        Ok(m) => format!("{what}: {m}"),
        Err(e) => format!("{what}: {e}"),
    };
    let outcome = match &done {
        Ok(_) => Ok(said.as_str()),
        Err(_) => Err(said.as_str()),
    };
    audit::record(client, actor, command, Target::default(), outcome).await;
    done
}
