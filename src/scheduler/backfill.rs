//! The backfill loop of the scheduler process. It long-polls a claim on `/backfill/`: a new or
//! resumed backfill (written without an owner) and the end mark of a backfill run (written in
//! the commit that ends the run) are claimable at once, so the master wakes this loop the
//! moment there is something to do. For each backfill it reads the token, records the ended
//! runs, and starts the next dates within `max_active`, all in ONE version-checked write that
//! also deletes the marks it consumed: a crash anywhere neither loses nor repeats a date, and
//! the limit is what the token holds, across every restart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::master::MasterClient;
use crate::parser::WorkflowDef;
use crate::token::name::{self, BACKFILL_PREFIX, WorkflowName};
use crate::token::*;
use crate::workflow::backfill::{Backfill, BackfillState, EndMark, schedule_of};
use crate::workflow::definition;
use crate::workflow::instance::new_instance_id;
use crate::workflow::run_info::{RunInfo, RunKind, run_tokens};

pub struct Backfiller {
    pub client: Arc<dyn MasterClient>,
    /// The owner its claims are made in.
    pub name: String,
    /// The longest a claim waits before the loop looks again (shutdown).
    pub poll: Duration,
    /// `max_running_instances` of a workflow whose schedule names none.
    pub default_max_running: u32,
}

/// A claim's lease: how long a scheduler that died holding marks delays their backfill.
const CLAIM_LEASE_SEC: u64 = 15;
/// A backfill with runs in progress or dates to start is looked at again after this even
/// without a mark (a start that found the definition gone, say).
const REST_SEC: i64 = 3600;
/// A backfill held back by its workflow's `max_running_instances` is looked at again this
/// soon (the runs that end may not be its own, whose marks would wake it).
const LIMITED_SEC: i64 = 10;
/// A backfill with nothing left to do is put away (claimable again only by a resume).
const PUT_AWAY_SEC: i64 = 100 * 365 * 86_400;
/// Writes tried per backfill before it is left to the claim's lease (conflicts with a pause,
/// a cancel, or another process's instance id).
const TRIES: usize = 8;

impl Backfiller {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(owner = %self.name, "backfill loop started");
        // Backfills whose advance failed (the master away, say), with the marks this loop
        // holds for them: tried again each second rather than after the claims' leases.
        let mut again: BTreeMap<String, Vec<Token>> = BTreeMap::new();
        while !*shutdown.borrow() {
            let wait = if again.is_empty() {
                self.poll
            } else {
                Duration::from_secs(1)
            };
            let ask = super::claim::Ask {
                owner: &self.name,
                prefix: BACKFILL_PREFIX,
                lease_sec: CLAIM_LEASE_SEC,
                max: 256,
                wait,
            };
            let Some(tokens) = super::claim::claim(self.client.as_ref(), ask, &mut shutdown).await
            else {
                break;
            };
            // Every backfill with something claimed (or held), with its marks.
            let mut due = std::mem::take(&mut again);
            for t in tokens {
                if let Some((id, is_mark)) = name::backfill_of(&t.name) {
                    let marks = due.entry(id.to_owned()).or_default();
                    if is_mark {
                        marks.retain(|m| m.name != t.name);
                        marks.push(t);
                    }
                }
            }
            for (id, marks) in due {
                match self.advance(&id, &marks).await {
                    Ok(()) => {}
                    // A mark went meanwhile: the backfill is claimed again when its lease ends.
                    Err(e @ MasterError::NotFound(_)) => {
                        tracing::warn!(backfill = %id, error = %e, "advancing a backfill failed; it is claimed again later");
                    }
                    Err(e) => {
                        tracing::warn!(backfill = %id, error = %e, "advancing a backfill failed; it is tried again");
                        again.insert(id, marks);
                    }
                }
            }
        }
        tracing::info!(owner = %self.name, "backfill loop stopped");
    }

    /// Records the runs `marks` say ended and starts what the limit allows, in one write.
    async fn advance(&self, id: &str, marks: &[Token]) -> Result<(), MasterError> {
        let c = self.client.as_ref();
        for _ in 0..TRIES {
            let Some(token) = c.get(&name::backfill_token(id)).await? else {
                // Marks of a backfill that was deleted: nothing to record them in.
                if !marks.is_empty() {
                    let req = ModifyRequest {
                        deletes: marks.to_vec(),
                        ..Default::default()
                    };
                    c.modify(req).await?;
                }
                return Ok(());
            };
            let Some(mut bf) = Backfill::from_token(&token) else {
                tracing::error!(backfill = %id, "unreadable backfill token; leaving it");
                return Ok(());
            };
            let ended: Vec<EndMark> = marks
                .iter()
                .filter_map(EndMark::from_token)
                .filter(|m| bf.ended(&m.instance, m.succeeded))
                .collect();
            let (mut updates, started, not_started, limited) =
                self.start_what_fits(&mut bf).await?;
            bf.finish_if_done();
            let rest = match (bf.is_active(), limited) {
                (true, true) => LIMITED_SEC,
                (true, false) => REST_SEC,
                (false, _) => PUT_AWAY_SEC,
            };
            updates.insert(
                0,
                Token {
                    version: token.version,
                    owner: Some(self.name.clone()),
                    expiration_time: Some(crate::clock::now() + rest),
                    ..bf.new_token()
                },
            );
            let req = ModifyRequest {
                updates,
                deletes: marks.to_vec(),
                ..Default::default()
            };
            match c.modify(req).await {
                Ok(_) => {
                    // Counted once the write is in: a retried write counts nothing twice.
                    for m in &ended {
                        let state = if m.succeeded { "succeeded" } else { "failed" };
                        metrics::counter!(crate::metrics::BACKFILL_RUNS, "state" => state)
                            .increment(1);
                        tracing::info!(backfill = %id, workflow = %bf.workflow, instance = %m.instance, state, "a backfill run ended");
                    }
                    let counts = bf.counts();
                    metrics::counter!(crate::metrics::BACKFILL_RUNS, "state" => "started")
                        .increment(started as u64);
                    metrics::counter!(crate::metrics::BACKFILL_RUNS, "state" => "not_started")
                        .increment(not_started as u64);
                    tracing::info!(
                        backfill = %id, workflow = %bf.workflow, state = bf.state.as_str(),
                        started, running = counts.running, pending = counts.pending,
                        done = counts.done, failed = counts.failed, "backfill advanced"
                    );
                    return Ok(());
                }
                // A pause, a cancel or another process's instance id came first: read again.
                Err(MasterError::VersionConflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(MasterError::Unavailable(format!(
            "backfill {id} changed under {TRIES} writes in a row"
        )))
    }

    /// Starts the next dates within the backfill's and the workflow's limits: the new runs'
    /// tokens, how many started, how many could not, and whether the workflow's limit held
    /// some back. The definition and the running instances are read once, and only when a
    /// date may start.
    async fn start_what_fits(
        &self,
        bf: &mut Backfill,
    ) -> Result<(Vec<Token>, usize, usize, bool), MasterError> {
        let (mut updates, mut started, mut not_started) = (vec![], 0, 0);
        if bf.state != BackfillState::Running
            || bf.running.len() >= bf.max_active as usize
            || bf.counts().pending == 0
        {
            return Ok((updates, started, not_started, false));
        }
        let workflow = self.workflow_of(bf).await?;
        let mut room = match &workflow {
            Ok((w, def)) => self.room(w, def).await?,
            Err(_) => usize::MAX, // its dates fail to start, with the reason
        };
        loop {
            let dates = bf.next_starts(room);
            if dates.is_empty() {
                break;
            }
            room -= dates.len();
            let n = match &workflow {
                Ok((w, def)) => {
                    let (tokens, n) = start_dates(bf, w, def, &dates);
                    updates.extend(tokens);
                    n
                }
                Err(why) => {
                    tracing::error!(backfill = %bf.id, workflow = %bf.workflow, error = %why, "backfill dates cannot start");
                    dates.iter().for_each(|&d| bf.not_started(d, why.clone()));
                    0
                }
            };
            started += n;
            not_started += dates.len() - n;
        }
        let limited = room == 0 && bf.counts().pending > 0;
        Ok((updates, started, not_started, limited))
    }

    /// The backfill's workflow and its definition, or why its dates cannot start (not a name,
    /// not defined in the master, retired).
    async fn workflow_of(
        &self,
        bf: &Backfill,
    ) -> Result<Result<(WorkflowName, WorkflowDef), String>, MasterError> {
        let c = self.client.as_ref();
        let w = match WorkflowName::parse(&bf.workflow) {
            Ok(w) => w,
            Err(e) => return Ok(Err(e.to_string())),
        };
        Ok(match definition::read(c, &w).await? {
            Some(def) if definition::retired(c, &w).await?.is_none() => Ok((w, def)),
            _ => Err(format!("workflow {w} is not defined in the master")),
        })
    }

    /// How many more runs the workflow's `max_running_instances` allows now (the same limit a
    /// start, a trigger, a rerun, the queue and the schedule keep).
    async fn room(&self, w: &WorkflowName, def: &WorkflowDef) -> Result<usize, MasterError> {
        let c = self.client.as_ref();
        Ok(
            crate::workflow::queue::room(c, w, def, self.default_max_running)
                .await?
                .left(),
        )
    }
}

/// The tokens of new runs of `w` for `dates` of `bf` (recorded in `bf`), and how many dates
/// got one; a date whose params no longer resolve is failed with the reason.
fn start_dates(
    bf: &mut Backfill,
    w: &WorkflowName,
    def: &WorkflowDef,
    dates: &[usize],
) -> (Vec<Token>, usize) {
    let graph = def.graph();
    let every = bf
        .every
        .as_deref()
        .and_then(|e| schedule_of(def, Some(e), ts(bf.from)).ok());
    let (mut tokens, mut started) = (Vec::new(), 0);
    for &d in dates {
        let at = ts(bf.times[d]);
        match RunInfo::new(def, RunKind::Backfill, at, &bf.params) {
            Ok(mut run) => {
                run.backfill = Some(bf.id.clone());
                if let Some(start) = every.as_ref().and_then(|s| s.previous_before(at)) {
                    run.interval_start = start.as_second();
                }
                let i = new_instance_id();
                tokens.extend(run_tokens(w, &i, &graph, &run));
                bf.started(d, i.as_str());
                started += 1;
            }
            Err(e) => {
                let why = format!("workflow {w}: {e}");
                tracing::error!(backfill = %bf.id, error = %why, "a backfill date cannot start");
                bf.not_started(d, why);
            }
        }
    }
    (tokens, started)
}

fn ts(secs: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(secs).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}
