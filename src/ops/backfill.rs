//! `pinball backfill` (CONTRACT §4.3): plans a backfill (the fire times in the range and what
//! happens to each, from the workflow's runs as the database holds them), writes its token
//! for the scheduler to run, and lists, shows, pauses, resumes and cancels backfills. Every
//! change is version-checked against the scheduler's own writes and audited.

use std::collections::BTreeMap;

use super::audit::{Target, record_done};
use super::{Done, Ops, OpsError};
use crate::token::name::{self, BACKFILL_PREFIX, InstanceId, Level, WorkflowName};
use crate::token::{MasterError, ModifyRequest, Token};
pub use crate::workflow::backfill::{Backfill, BackfillState, DateState, Reprocess};
use crate::workflow::backfill::{Decision, ExistingRun, decide, fire_times, schedule_of};
use crate::workflow::definition;
pub use crate::workflow::run_info::zoned_text;
use crate::workflow::run_info::{RunInfo, RunKind, parse_end_time, parse_time};
use crate::workflow::signal::{Action, Attributes};
use crate::workflow::status::Status;

/// What `pinball backfill -w W ...` asks for.
#[derive(Debug, Clone)]
pub struct BackfillSpec {
    pub workflow: WorkflowName,
    pub from: String,
    pub to: String,
    pub reprocess: Reprocess,
    pub max_active: u32,
    /// `--order backward`: the newest date first.
    pub backward: bool,
    pub params: BTreeMap<String, String>,
    pub every: Option<String>,
}

/// The most runs of a workflow a plan reads to see which dates have runs.
const MAX_RUNS_READ: u64 = 200_000;

/// A planned backfill: the token to write and each date's decision.
pub struct Planned {
    pub backfill: Backfill,
    pub decisions: Vec<Decision>,
    /// The time zone the dates are written in.
    pub zone: Option<String>,
}

impl Planned {
    /// The dry run's lines: `<logical time> <run|skip> <reason>`.
    pub fn lines(&self) -> String {
        let mut out = String::new();
        for d in &self.decisions {
            let verb = if d.state == DateState::Pending {
                "run"
            } else {
                "skip"
            };
            out.push_str(&format!(
                "{} {verb} {}\n",
                zoned_text(d.time, self.zone.as_deref()),
                d.why
            ));
        }
        out
    }
}

/// A change to a backfill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    Cancel,
}

impl Control {
    pub fn as_str(self) -> &'static str {
        match self {
            Control::Pause => "pause",
            Control::Resume => "resume",
            Control::Cancel => "cancel",
        }
    }
}

impl Ops<'_> {
    /// Plans a backfill: refused (bad input) for an unknown workflow, a range or `--every`
    /// that does not parse, params that do not check, more than `MAX_DATES` times.
    pub async fn plan_backfill(
        &self,
        spec: &BackfillSpec,
        actor: &str,
    ) -> Result<Planned, OpsError> {
        let c = self.client();
        let w = &spec.workflow;
        let def = definition::read(c, w).await?.ok_or_else(|| {
            OpsError::NoWorkflow(format!(
                "workflow {w} not found in the master; load it with `pinball import -f reschedule`"
            ))
        })?;
        if definition::retired(c, w).await?.is_some() {
            return Err(OpsError::NoWorkflow(format!(
                "workflow {w} is no longer defined: it was retired by an import"
            )));
        }
        if spec.max_active == 0 {
            return Err(OpsError::Input("--max-active must be at least 1".into()));
        }
        let zone = def.schedule.as_ref().and_then(|s| s.timezone.clone());
        let from = parse_time(&spec.from, zone.as_deref())
            .map_err(|e| OpsError::Input(format!("--from: {e}")))?;
        let to = parse_end_time(&spec.to, zone.as_deref())
            .map_err(|e| OpsError::Input(format!("--to: {e}")))?;
        let schedule = schedule_of(&def, spec.every.as_deref(), from)
            .map_err(|e| OpsError::Input(format!("workflow {w}: {e}")))?;
        // The params are checked now, as a start checks them, so no date fails for them later.
        RunInfo::new(&def, RunKind::Backfill, from, &spec.params)
            .map_err(|e| OpsError::Input(format!("workflow {w}: {e}")))?;
        let mut times = fire_times(&schedule, from, to).map_err(OpsError::Input)?;
        if spec.backward {
            times.reverse();
        }
        let runs = self.runs_of(w).await?;
        let mut decisions = decide(&times, &runs, spec.reprocess);
        self.leave_to_others(w, &mut decisions).await?;
        let now = crate::clock::now();
        let backfill = Backfill {
            id: crate::workflow::instance::new_instance_id().to_string(),
            workflow: w.to_string(),
            state: BackfillState::Running,
            from: from.as_second(),
            to: to.as_second(),
            reprocess: spec.reprocess,
            max_active: spec.max_active,
            every: spec.every.clone(),
            params: spec.params.clone(),
            timezone: zone.clone(),
            states: Backfill::letters(&decisions),
            times,
            running: BTreeMap::new(),
            created_by: actor.to_owned(),
            created_at: now,
            error: None,
        };
        Ok(Planned {
            backfill,
            decisions,
            zone,
        })
    }

    /// A date another backfill of `w` is still to run (or runs) is theirs: skipped.
    async fn leave_to_others(
        &self,
        w: &WorkflowName,
        decisions: &mut [Decision],
    ) -> Result<(), OpsError> {
        let mut theirs = std::collections::BTreeSet::new();
        for b in self.backfills().await? {
            if b.workflow != w.as_str()
                || !matches!(b.state, BackfillState::Running | BackfillState::Paused)
            {
                continue;
            }
            for (i, t) in b.times.iter().enumerate() {
                if matches!(b.state_of(i), DateState::Pending | DateState::Running) {
                    theirs.insert(*t);
                }
            }
        }
        for d in decisions {
            if d.state == DateState::Pending && theirs.contains(&d.time) {
                d.state = DateState::InProgress;
                d.why = "another backfill in progress runs it";
            }
        }
        Ok(())
    }

    /// The read model of the configured database.
    fn read_model(&self) -> Result<super::read::DataLayer, OpsError> {
        Ok(super::read::DataLayer::new(
            self.store()?,
            self.settings.master_name.clone(),
            self.settings.default_max_running,
        ))
    }

    /// Every run of `w` the database holds (live and archived), with its logical time.
    async fn runs_of(&self, w: &WorkflowName) -> Result<Vec<ExistingRun>, OpsError> {
        let rows = self.read_model()?.all_runs(w, MAX_RUNS_READ).await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some(ExistingRun {
                    logical_time: r.logical_time?,
                    created: r.instance.as_str().parse().unwrap_or(0),
                    finished: is_finished(r.status),
                    succeeded: r.status == Status::SUCCESS,
                })
            })
            .collect())
    }

    /// The runs of backfill `b`, by logical time.
    pub async fn backfill_runs(&self, b: &Backfill) -> Result<BTreeMap<i64, InstanceId>, OpsError> {
        Ok(self.read_model()?.backfill_runs(b).await?)
    }

    /// Writes a planned backfill: the scheduler starts its first dates at once.
    pub async fn backfill(&self, planned: &Planned, actor: &str) -> Result<Done, OpsError> {
        let b = &planned.backfill;
        let to_start = b.counts().pending;
        let mut token = b.new_token();
        if to_start == 0 {
            // Nothing to run: recorded as done, for the list.
            let mut done = b.clone();
            done.finish_if_done();
            token = done.new_token();
        }
        let result = self
            .client()
            .modify(ModifyRequest::update(vec![token]))
            .await;
        let done = match result {
            Ok(_) => {
                tracing::info!(backfill = %b.id, workflow = %b.workflow, dates = b.times.len(), to_start, "backfill created");
                Ok(Done::say(format!(
                    "backfill {}: {to_start} runs to start\n",
                    b.id
                )))
            }
            Err(e) => Err(e.into()),
        };
        let w = WorkflowName::parse(&b.workflow).ok();
        let target = Target {
            workflow: w.as_ref(),
            ..Default::default()
        };
        record_done(self.client(), actor, "backfill", target, &done).await;
        done
    }

    /// Every backfill, newest first.
    pub async fn backfills(&self) -> Result<Vec<Backfill>, OpsError> {
        let tokens = self.client().query_prefix(BACKFILL_PREFIX).await?;
        Ok(Backfill::all_in(&tokens))
    }

    /// Backfill `id` and its token.
    pub async fn backfill_of(&self, id: &str) -> Result<(Token, Backfill), OpsError> {
        if !Backfill::is_id(id) {
            return Err(OpsError::Input(format!(
                "{id:?} is not a backfill id (digits)"
            )));
        }
        let token = self
            .client()
            .get(&name::backfill_token(id))
            .await?
            .ok_or_else(|| OpsError::Failed(format!("backfill {id} not found")))?;
        let b = Backfill::from_token(&token)
            .ok_or_else(|| OpsError::Failed(format!("backfill {id} cannot be read")))?;
        Ok((token, b))
    }

    /// Pauses (nothing new starts, runs in progress finish), resumes, or cancels (nothing
    /// pending starts, runs in progress are aborted) backfill `id`; audited.
    pub async fn control_backfill(
        &self,
        id: &str,
        what: Control,
        actor: &str,
    ) -> Result<Done, OpsError> {
        let result = self.change_backfill(id, what).await;
        let workflow = result.as_ref().ok().and_then(|(w, _)| w.clone());
        let done = result.map(|(_, done)| done);
        let target = Target {
            workflow: workflow.as_ref(),
            ..Default::default()
        };
        let command = format!("backfill {}", what.as_str());
        record_done(self.client(), actor, &command, target, &done).await;
        done
    }

    async fn change_backfill(
        &self,
        id: &str,
        what: Control,
    ) -> Result<(Option<WorkflowName>, Done), OpsError> {
        let c = self.client();
        for _ in 0..8 {
            let (token, mut b) = self.backfill_of(id).await?;
            let w = WorkflowName::parse(&b.workflow).ok();
            let refuse =
                |why: &str| Ok((w.clone(), Done::refuse(format!("backfill {id} is {why}\n"))));
            let (mut owner, mut expiration) = (token.owner.clone(), token.expiration_time);
            let mut abort = Vec::new();
            match (what, b.state) {
                (_, BackfillState::Done) => return refuse("done"),
                (_, BackfillState::Cancelled) => return refuse("cancelled"),
                (Control::Pause, BackfillState::Paused) => return refuse("paused already"),
                (Control::Resume, BackfillState::Running) => return refuse("running already"),
                (Control::Pause, _) => b.state = BackfillState::Paused,
                (Control::Resume, _) => {
                    b.state = BackfillState::Running;
                    // Claimable at once: the scheduler starts its next dates.
                    (owner, expiration) = (None, None);
                }
                (Control::Cancel, _) => abort = b.cancel(),
            }
            let updated = Token {
                version: token.version,
                owner,
                expiration_time: expiration,
                ..b.new_token()
            };
            match c.modify(ModifyRequest::update(vec![updated])).await {
                Ok(_) => {}
                Err(MasterError::VersionConflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
            if let Some(w) = &w {
                for i in &abort {
                    let Ok(i) = name::InstanceId::parse(i.clone()) else {
                        continue;
                    };
                    let attributes = Attributes {
                        timestamp: Some(crate::clock::now() as f64),
                        ..Attributes::default()
                    };
                    super::set_signal(c, &Level::Instance(w.clone(), i), Action::ABORT, attributes)
                        .await?;
                }
            }
            tracing::info!(backfill = %id, change = what.as_str(), aborted = abort.len(), "backfill changed");
            let message = match what {
                Control::Cancel => format!(
                    "backfill {id} cancelled: {} pending dates will not run, {} running runs aborted\n",
                    b.counts().cancelled,
                    abort.len()
                ),
                _ => format!("backfill {id} {}\n", b.state.as_str()),
            };
            return Ok((w, Done::say(message)));
        }
        Err(OpsError::Failed(format!(
            "backfill {id} changed under every try; try again"
        )))
    }
}

fn is_finished(s: Status) -> bool {
    matches!(s, Status::SUCCESS | Status::FAILURE | Status::ABORTED)
}
