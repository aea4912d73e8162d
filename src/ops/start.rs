//! Starting and stopping instances, and loading definitions and schedules into the master:
//! `start`, `stop`, `reschedule` (`import`) and `unschedule`.

use std::collections::BTreeMap;

use super::{Done, Ops, OpsError, Standing, py_list};
use crate::parser::Definitions;
use crate::schedule::ScheduleData;
use crate::token::name::{self, InstanceId, WorkflowName};
use crate::token::{MasterError, ModifyRequest};
use crate::workflow::instance::{instance_id_after, new_instance_id};
use crate::workflow::run_info::{RunInfo, RunKind, parse_time, run_tokens};
use crate::workflow::{definition, settle};

/// What a start is for.
pub enum Run {
    /// A manual run: these parameter values, at this logical time (now when not given).
    New {
        params: BTreeMap<String, String>,
        logical_time: Option<String>,
        kind: RunKind,
        /// A token to insert in the start's commit (see `Action::receipt`).
        receipt: Option<String>,
    },
    /// A run of the same parameters and logical time as an earlier one (`rerun`).
    Again(RunInfo),
}

/// The run a start makes: the same as an earlier one, or a new one of `def` with its params
/// checked and its logical time read; and the receipt to write with it.
fn resolve_run(
    def: &crate::parser::WorkflowDef,
    w: &WorkflowName,
    run: Run,
) -> Result<(RunInfo, Option<String>), OpsError> {
    Ok(match run {
        Run::Again(info) => (info, None),
        Run::New {
            params,
            logical_time,
            kind,
            receipt,
        } => {
            let zone = def.schedule.as_ref().and_then(|s| s.timezone.as_deref());
            let at = match logical_time {
                Some(text) => parse_time(&text, zone).map_err(OpsError::Input)?,
                None => jiff::Timestamp::now(),
            };
            let run = RunInfo::new(def, kind, at, &params)
                .map_err(|e| OpsError::Input(format!("workflow {w}: {e}")))?;
            (run, receipt)
        }
    })
}

/// How many instance ids a start tries before it gives up.
const START_ATTEMPTS: usize = 64;

impl Ops<'_> {
    /// `start`: a new instance from the definition in the master, if the schedule's
    /// `max_running_instances` allows one more, with its parameters checked (a wrong one is
    /// bad input, refused before anything is written) and its logical time.
    pub async fn start(&self, w: &WorkflowName, run: Run) -> Result<Done, OpsError> {
        let c = self.client();
        let def = definition::read(c, w).await?.ok_or_else(|| {
            OpsError::NoWorkflow(format!(
                "workflow {w} not found in the master; load it with `pinball import -f reschedule`"
            ))
        })?;
        if let Some(r) = definition::retired(c, w).await? {
            return Err(OpsError::NoWorkflow(format!(
                "workflow {w} is no longer defined in {} (retired by the import of {}); its history stays, and importing it again brings it back",
                r.from,
                crate::clock::utc(r.at)
            )));
        }
        // Bad input is refused before the state is looked at.
        let (run, receipt) = resolve_run(&def, w, run)?;
        self.check_room(w, &def).await?;
        let graph = def.graph();
        // An instance id is a millisecond stamp; a start that collides with another process's
        // (the master refuses the second insert) tries a later one, spread at random.
        for attempt in 0..START_ATTEMPTS {
            let i = match attempt {
                0 => new_instance_id(),
                _ => instance_id_after(fastrand::i64(0..16)),
            };
            let mut tokens = run_tokens(w, &i, &graph, &run);
            if let Some(name) = &receipt {
                let facts = serde_json::json!({
                    "workflow": w, "instance": i, "params": run.params,
                    "logical_time": run.logical_time, "at": crate::clock::now(),
                });
                tokens.push(crate::token::Token::new(
                    name.clone(),
                    Some(facts.to_string()),
                ));
            }
            match c.modify(ModifyRequest::update(tokens)).await {
                Ok(_) => {
                    tracing::info!(workflow = %w, instance = %i, "started an instance");
                    let message = format!(
                        "exported workflow {w} instance {i}.  Its tokens are under {}\n",
                        name::instance_prefix(w, &i)
                    );
                    return Ok(Done::created(message, w, &i));
                }
                Err(MasterError::VersionConflict(_)) => {
                    if let Some(name) = &receipt
                        && c.get(name).await?.is_some()
                    {
                        return Err(OpsError::AlreadyStarted(name.clone()));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(OpsError::Failed(format!(
            "could not find a free instance id for workflow {w}"
        )))
    }

    /// Refuses a new instance of `w` when its schedule's `max_running_instances` (the
    /// configured default without one) is reached: the one check every way of starting a run
    /// makes (a start, a trigger, a rerun, a retry or poison into a new instance; the
    /// scheduler and backfills count the same way).
    pub(crate) async fn check_room(
        &self,
        w: &WorkflowName,
        def: &crate::parser::WorkflowDef,
    ) -> Result<(), OpsError> {
        let Some(schedule) = &def.schedule else {
            return Ok(());
        };
        let limit = schedule
            .max_running_instances
            .unwrap_or(self.settings.default_max_running) as usize;
        let running = settle::running_instances(self.client(), w).await?;
        if running.len() >= limit {
            return Err(OpsError::Failed(format!(
                "failed to start a new instance for workflow {w} due to too many instances running! ({} running, max_running_instances {limit})",
                running.len()
            )));
        }
        Ok(())
    }

    /// `rerun`: a finished instance runs again as a new instance of the workflow's current
    /// definition, every job from the start (`retry` runs only its failed jobs again).
    pub async fn rerun(&self, w: &WorkflowName, i: &InstanceId) -> Result<Done, OpsError> {
        match self.standing(w, i).await? {
            Standing::Missing => {
                return Ok(Done::refuse(format!(
                    "workflow {w} instance {i} not found\n"
                )));
            }
            Standing::Running => {
                return Ok(Done::refuse(format!(
                    "workflow {w} instance {i} is still running; rerun runs a finished instance again (stop it first, or retry its failed jobs once it ends)\n"
                )));
            }
            Standing::Finished(_) | Standing::Archived(_) => {}
        }
        let again = match self.run_of(w, i).await? {
            Some(run) => Run::Again(run.again(RunKind::Rerun)),
            None => Run::New {
                params: BTreeMap::new(),
                logical_time: None,
                kind: RunKind::Rerun,
                receipt: None,
            },
        };
        let started = self.start(w, again).await?;
        let Some((_, new)) = &started.created else {
            return Ok(started);
        };
        let message = format!(
            "reran workflow {w} instance {i} as instance {new}.  Its tokens are under {}\n",
            name::instance_prefix(w, new)
        );
        Ok(Done::created(message, w, new))
    }

    /// What instance `i` ran for, from one of its job tokens (live, else archived); `None` for
    /// an instance started before runs had it.
    pub async fn run_of(
        &self,
        w: &WorkflowName,
        i: &InstanceId,
    ) -> Result<Option<RunInfo>, OpsError> {
        let prefix = name::job_prefix(w, i);
        let mut tokens = self.client().query_prefix(&prefix).await?;
        if tokens.is_empty() {
            tokens = self.archived(&prefix).await?;
        }
        Ok(tokens
            .into_iter()
            .filter_map(|t| crate::workflow::instance::JobToken::parse(t).ok())
            .find_map(|jt| jt.job.run))
    }

    /// `stop`: deletes the instance's tokens (no history kept).
    pub async fn stop(&self, w: &WorkflowName, i: &InstanceId) -> Result<Done, OpsError> {
        let c = self.client();
        for attempt in 1..=10 {
            let tokens = c.query_prefix(&name::instance_prefix(w, i)).await?;
            if tokens.is_empty() {
                return Ok(Done::refuse(format!(
                    "workflow {w} instance {i} not found\n"
                )));
            }
            let n = tokens.len();
            match c.modify(ModifyRequest::delete(tokens)).await {
                Ok(_) => {
                    return Ok(Done::say(format!(
                        "removed {n} token(s) in {attempt} tries\n"
                    )));
                }
                Err(e) if attempt == 10 => return Err(e.into()),
                Err(_) => {}
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// `reschedule` / `pinball import`: loads the definitions into the master (only `only`'s
    /// when given), and the schedules that changed. Importing them all (`from`: where they
    /// were read) retires the workflows that left them.
    pub async fn import(
        &self,
        mut defs: Definitions,
        only: Option<&WorkflowName>,
        from: &str,
        dry_run: bool,
    ) -> Result<Done, OpsError> {
        if let Some(w) = only {
            if !defs.contains_key(w) {
                return Ok(Done::refuse(format!("workflow {w} not found\n")));
            }
            defs.retain(|k, _| k == w);
        }
        if defs.is_empty() {
            return Ok(Done::say(
                "no workflows found in the configured definitions\n",
            ));
        }
        let retire_from = only.is_none().then_some(from);
        let done = definition::import(self.client(), &defs, retire_from, dry_run).await?;
        if dry_run {
            return Ok(Done::say(dry_run_report(&done, from)));
        }
        let tokens = |names: &[WorkflowName], f: fn(&WorkflowName) -> String| {
            names.iter().map(f).collect::<Vec<_>>()
        };
        let mut out = format!(
            "imported workflows {}.  Their definition tokens are {}\n",
            py_list(&done.definitions),
            py_list(&tokens(&done.definitions, name::definition_token))
        );
        out.push_str(&format!(
            "rescheduled workflows {}.  Their schedule tokens are {}\n",
            py_list(&done.schedules),
            py_list(&tokens(&done.schedules, name::schedule_token))
        ));
        if !done.retired.is_empty() {
            out.push_str(&format!(
                "retired workflows {}: they are no longer in {from}, so their schedules are removed and they cannot be started; running instances go on and their history stays\n",
                py_list(&done.retired)
            ));
        }
        Ok(Done::say(out))
    }

    /// `pause-schedule` / `resume-schedule`: the schedule starts nothing (each occurrence is
    /// counted as missed) / runs again from its next occurrence. The flag lives on the
    /// schedule token, so an import keeps it.
    pub async fn pause_schedule(&self, w: &WorkflowName, paused: bool) -> Result<Done, OpsError> {
        let c = self.client();
        for _ in 0..10 {
            let Some(token) = c.get(&name::schedule_token(w)).await? else {
                return Ok(Done::refuse(format!(
                    "schedule for workflow {w} not found\n"
                )));
            };
            let Some(mut data) = ScheduleData::from_token(&token) else {
                return Err(OpsError::Failed(format!(
                    "the schedule token of workflow {w} is not a schedule"
                )));
            };
            let verb = if paused { "paused" } else { "resumed" };
            if data.paused == paused {
                return Ok(Done::say(format!(
                    "the schedule of workflow {w} is already {verb}\n"
                )));
            }
            data.paused = paused;
            let next = crate::clock::utc(data.next_run_time);
            let mut update = data.to_token(token.version);
            // The lease is the next run: kept as it is.
            update.owner = token.owner.clone();
            update.expiration_time = token.expiration_time;
            match c.modify(ModifyRequest::update(vec![update])).await {
                Ok(_) if paused => {
                    return Ok(Done::say(format!(
                        "paused the schedule of workflow {w}: it starts nothing until resume-schedule, and counts each run it passes in missed_runs\n"
                    )));
                }
                Ok(_) => {
                    return Ok(Done::say(format!(
                        "resumed the schedule of workflow {w}: its next run is at {next}\n"
                    )));
                }
                Err(MasterError::VersionConflict(_)) => {} // the scheduler moved it: again
                Err(e) => return Err(e.into()),
            }
        }
        Err(OpsError::Failed(format!(
            "the schedule of workflow {w} kept changing; try again"
        )))
    }

    /// `unschedule`: removes the workflow's schedule token.
    pub async fn unschedule(&self, w: &WorkflowName) -> Result<Done, OpsError> {
        let c = self.client();
        match c.get(&name::schedule_token(w)).await? {
            Some(t) => {
                c.modify(ModifyRequest::delete(vec![t])).await?;
                Ok(Done::say(format!("removed schedule for workflow {w}\n")))
            }
            None => Ok(Done::refuse(format!(
                "schedule for workflow {w} not found\n"
            ))),
        }
    }
}

/// What an import would change, written nothing: workflows added, changed (one line a job),
/// retired.
fn dry_run_report(done: &definition::Imported, from: &str) -> String {
    let mut out = String::new();
    if !done.added.is_empty() {
        out.push_str(&format!("would add workflows {}\n", py_list(&done.added)));
    }
    for (w, lines) in &done.changed {
        for line in lines {
            out.push_str(&format!("would change workflow {w}: {line}\n"));
        }
    }
    if !done.schedules.is_empty() {
        out.push_str(&format!(
            "would reschedule workflows {}\n",
            py_list(&done.schedules)
        ));
    }
    if !done.retired.is_empty() {
        out.push_str(&format!(
            "would retire workflows {}: they are no longer in {from}\n",
            py_list(&done.retired)
        ));
    }
    if out.is_empty() {
        out.push_str("nothing would change\n");
    }
    out.push_str("nothing was written (--dry-run)\n");
    out
}
