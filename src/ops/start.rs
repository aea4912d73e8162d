//! Starting and stopping instances: `start` (and `--queue`), `rerun` and `stop` (which
//! cancels a queued run).

use std::collections::BTreeMap;

use super::{Done, Ops, OpsError, Standing};
use crate::token::name::{self, InstanceId, WorkflowName};
use crate::token::{MasterError, ModifyRequest, Token};
use crate::workflow::instance::{instance_id_after, new_instance_id};
use crate::workflow::run_info::{RunInfo, RunKind, parse_time, run_tokens};
use crate::workflow::{definition, queue};

/// What a start is for.
pub enum Run {
    /// A manual run: these parameter values, at this logical time (now when not given).
    New {
        params: BTreeMap<String, String>,
        logical_time: Option<String>,
        kind: RunKind,
        /// A token to insert in the start's commit (see `Action::receipt`).
        receipt: Option<String>,
        /// Beyond the run limit, wait as a queued run instead of being refused.
        queue: bool,
    },
    /// A run of the same parameters and logical time as an earlier one (`rerun`).
    Again(RunInfo),
}

impl Run {
    fn queue(&self) -> bool {
        matches!(self, Run::New { queue: true, .. })
    }
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
            ..
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

/// The receipt of a trigger's idempotency key: the run it started (or queued).
fn receipt_token(
    receipt: &str,
    w: &WorkflowName,
    i: &InstanceId,
    run: &RunInfo,
    queued: bool,
) -> Token {
    let mut facts = serde_json::json!({
        "workflow": w, "instance": i, "params": run.params,
        "logical_time": run.logical_time, "at": crate::clock::now(),
    });
    if queued {
        facts["queued"] = true.into();
    }
    Token::new(receipt.to_owned(), Some(facts.to_string()))
}

/// How many instance ids a start tries before it gives up.
const START_ATTEMPTS: usize = 64;

impl Ops<'_> {
    /// `start`: a new instance from the definition in the master, if the schedule's
    /// `max_running_instances` allows one more, with its parameters checked (a wrong one is
    /// bad input, refused before anything is written) and its logical time. With `queue`, a
    /// run the limit holds back (or one behind runs queued already) waits in the queue.
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
        let queue = run.queue();
        let (run, receipt) = resolve_run(&def, w, run)?;
        let room = queue::room(c, w, &def, self.settings.default_max_running).await?;
        if queue {
            let ahead = queue::waiting(c, w).await?.len();
            if room.left() == 0 || ahead > 0 {
                return self.enqueue(w, run, receipt, room, ahead).await;
            }
        } else if let Some(why) = room.full(w) {
            return Err(OpsError::Failed(why));
        }
        let graph = def.graph();
        let i = self
            .insert_run(w, &run, receipt.as_deref(), false, |i| {
                run_tokens(w, i, &graph, &run)
            })
            .await?;
        tracing::info!(workflow = %w, instance = %i, "started an instance");
        let message = format!(
            "exported workflow {w} instance {i}.  Its tokens are under {}\n",
            name::instance_prefix(w, &i)
        );
        Ok(Done::created(message, w, &i))
    }

    /// Writes `run` as a queued run of `w`, behind `ahead` others.
    async fn enqueue(
        &self,
        w: &WorkflowName,
        run: RunInfo,
        receipt: Option<String>,
        room: queue::Room,
        ahead: usize,
    ) -> Result<Done, OpsError> {
        if ahead >= queue::MAX_QUEUED {
            return Ok(Done::refuse(format!(
                "workflow {w} has {ahead} queued runs, the most it may hold; cancel one (pinball util -w {w} -i INSTANCE cancel) or wait for them to start\n"
            )));
        }
        let queued = queue::QueuedRun {
            run,
            queued_at: crate::clock::now(),
        };
        let i = self
            .insert_run(w, &queued.run, receipt.as_deref(), true, |i| {
                vec![queued.token(w, i)]
            })
            .await?;
        tracing::info!(workflow = %w, instance = %i, ahead, "queued a run");
        let why = match room.limit {
            Some(limit) if room.left() == 0 => {
                format!("{} running, max_running_instances {limit}", room.running)
            }
            _ => format!("{ahead} queued before it"),
        };
        let message = format!(
            "queued workflow {w} instance {i} ({why}): it starts when a run ends (to cancel it: pinball util -w {w} -i {i} cancel)\n"
        );
        Ok(Done {
            queued: true,
            ..Done::created(message, w, &i)
        })
    }

    /// Inserts the tokens `tokens_for` gives for a new instance id of `w` (and the receipt,
    /// in the same commit): the id used. A start that collides with another process's id (the
    /// master refuses the second insert) tries a later one, spread at random; a receipt
    /// written meanwhile means the key's run exists already.
    async fn insert_run(
        &self,
        w: &WorkflowName,
        run: &RunInfo,
        receipt: Option<&str>,
        queued: bool,
        tokens_for: impl Fn(&InstanceId) -> Vec<Token>,
    ) -> Result<InstanceId, OpsError> {
        let c = self.client();
        for attempt in 0..START_ATTEMPTS {
            let i = match attempt {
                0 => new_instance_id(),
                _ => instance_id_after(fastrand::i64(0..16)),
            };
            let mut tokens = tokens_for(&i);
            if let Some(name) = receipt {
                tokens.push(receipt_token(name, w, &i, run, queued));
            }
            match c.modify(ModifyRequest::update(tokens)).await {
                Ok(_) => return Ok(i),
                Err(MasterError::VersionConflict(_)) => {
                    if let Some(name) = receipt
                        && c.get(name).await?.is_some()
                    {
                        return Err(OpsError::AlreadyStarted(name.to_owned()));
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
    /// scheduler, backfills and the queue count the same way).
    pub(crate) async fn check_room(
        &self,
        w: &WorkflowName,
        def: &crate::parser::WorkflowDef,
    ) -> Result<(), OpsError> {
        let room = queue::room(self.client(), w, def, self.settings.default_max_running).await?;
        match room.full(w) {
            Some(why) => Err(OpsError::Failed(why)),
            None => Ok(()),
        }
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
                queue: false,
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

    /// What instance `i` ran for, from one of its job tokens (live, else archived) or its
    /// queued token; `None` for an instance started before runs had it.
    pub async fn run_of(
        &self,
        w: &WorkflowName,
        i: &InstanceId,
    ) -> Result<Option<RunInfo>, OpsError> {
        let prefix = name::job_prefix(w, i);
        let mut tokens = self.client().query_prefix(&prefix).await?;
        if tokens.is_empty()
            && let Some(q) = self.client().get(&name::queued_run(w, i)).await?
        {
            return Ok(queue::QueuedRun::from_token(&q).map(|q| q.run));
        }
        if tokens.is_empty() {
            tokens = self.archived(&prefix).await?;
        }
        Ok(tokens
            .into_iter()
            .filter_map(|t| crate::workflow::instance::JobToken::parse(t).ok())
            .find_map(|jt| jt.job.run))
    }

    /// `cancel`: deletes queued run `i` before it starts (refused once it has started).
    pub async fn cancel(&self, w: &WorkflowName, i: &InstanceId) -> Result<Done, OpsError> {
        let c = self.client();
        for _ in 0..10 {
            let Some(queued) = c.get(&name::queued_run(w, i)).await? else {
                let started = !c
                    .query_prefix(&name::instance_prefix(w, i))
                    .await?
                    .is_empty()
                    || !matches!(self.standing(w, i).await?, Standing::Missing);
                return Ok(Done::refuse(match started {
                    true => format!(
                        "workflow {w} instance {i} is not queued: it has started (abort or stop it instead)\n"
                    ),
                    false => format!("workflow {w} instance {i} not found\n"),
                }));
            };
            match c.modify(ModifyRequest::delete(vec![queued])).await {
                Ok(_) => {
                    tracing::info!(workflow = %w, instance = %i, "cancelled a queued run");
                    return Ok(Done::say(format!(
                        "cancelled the queued run of workflow {w} instance {i}; it had not started\n"
                    )));
                }
                // Claimed by the scheduler meanwhile (a new version), or started: look again.
                Err(MasterError::VersionConflict(_) | MasterError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(OpsError::Failed(format!(
            "the queued run of workflow {w} instance {i} kept changing; try again"
        )))
    }

    /// `stop`: deletes the instance's tokens (no history kept), or cancels it while queued.
    pub async fn stop(&self, w: &WorkflowName, i: &InstanceId) -> Result<Done, OpsError> {
        let c = self.client();
        for attempt in 1..=10 {
            let tokens = c.query_prefix(&name::instance_prefix(w, i)).await?;
            if tokens.is_empty() {
                // A queued run is cancelled (one that started meanwhile is stopped).
                if c.get(&name::queued_run(w, i)).await?.is_none() {
                    return Ok(Done::refuse(format!(
                        "workflow {w} instance {i} not found\n"
                    )));
                }
                let done = self.cancel(w, i).await?;
                if !done.refused || attempt == 10 {
                    return Ok(done);
                }
                continue;
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
}
