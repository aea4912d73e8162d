//! Loading definitions and schedules into the master, and a schedule's own commands:
//! `import` (`reschedule`), `pause-schedule`, `resume-schedule` and `unschedule`.

use super::{Done, Ops, OpsError, py_list};
use crate::parser::Definitions;
use crate::schedule::ScheduleData;
use crate::token::MasterError;
use crate::token::ModifyRequest;
use crate::token::name::{self, WorkflowName};
use crate::workflow::definition;

impl Ops<'_> {
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
