//! How an instance moves forward, through `MasterClient`: each function reads what its
//! decision needs, asks `plan` for the request, and sends it, retrying races with other
//! workers. A success is ONE `/modify` (its result, the downstream events, and every
//! downstream job now satisfied made runnable); a failure, a retry, making waiting jobs
//! runnable. Settling and archiving finished instances is `settle`.

use std::collections::BTreeMap;

use super::downstream::nothing_to_settle;
pub use super::downstream::{Prefetched, read_downstream};
use super::error::Error;
use super::instance::JobToken;
use super::job::{Event, Job};
use super::plan;
use super::signal::{Action, Signals};
use crate::master::MasterClient;
use crate::token::name::{self, InstanceId, JobName, JobState, Level, Name, WorkflowName};
use crate::token::*;

/// Attempts at a commit that lost a race with another worker before giving up for now.
const MAX_RACES: usize = 20;

/// A query for every token under `prefix`.
pub(super) fn q(prefix: String) -> Query {
    Query {
        name_prefix: prefix,
        max_tokens: None,
    }
}

/// Outcome of a completion commit.
#[derive(Debug, PartialEq)]
pub enum Committed {
    Done,
    /// A success that made a job of the instance runnable, with no ABORT set when it read the
    /// signals, or (a join still waiting on other inputs) found one runnable with no ABORT
    /// set: the instance runs on, and there is nothing to settle.
    Progressed,
    /// A final failure, the instance's first: it marked the instance finishing.
    FirstFailure,
    /// Our token changed under us: another worker owns the job now. Nothing was written.
    LostLease,
}

/// Whether our job token is still the version we hold.
async fn still_ours(client: &dyn MasterClient, jt: &JobToken) -> Result<bool, MasterError> {
    let current = client.get(&jt.token.name).await?;
    Ok(current.is_some_and(|t| t.version == jt.token.version))
}

/// Whether the end this run is writing is in the master already: a write whose answer was
/// lost (the worker's own retry gave up before it) landed. The job's token, in either state,
/// holds a record of this execution (its worker and start) with this end time.
async fn ended_already(
    client: &dyn MasterClient,
    jt: &JobToken,
    job: &Job,
) -> Result<bool, MasterError> {
    let Some(ours) = job.history.last().filter(|r| r.end_time.is_some()) else {
        return Ok(false);
    };
    let (w, i, j) = (&jt.workflow, &jt.instance, &job.name);
    let queries = [JobState::Waiting, JobState::Runnable]
        .into_iter()
        .map(|state| q(name::job_token(w, i, state, j)))
        .collect();
    for t in client.query_many(queries).await?.into_iter().flatten() {
        if let Ok(found) = JobToken::parse(t)
            && found.job.history.iter().any(|r| {
                r.worker == ours.worker
                    && r.start_time == ours.start_time
                    && r.end_time == ours.end_time
            })
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Commits a successful run: `jt` (runnable, owned, at its current version) with `job` (its
/// history updated), by `creator`, with the last bytes of its logs (`tails`). One `/modify`;
/// retried on races with other workers. `ahead`: what the worker read of the downstream jobs
/// while the job ran (read again after a race).
pub async fn commit_success(
    client: &dyn MasterClient,
    jt: &JobToken,
    job: &Job,
    creator: &str,
    tails: &[LogRequest],
    notices: &[Token],
    mut ahead: Option<Prefetched>,
) -> Result<Committed, Error> {
    let event = Event {
        creator: creator.to_owned(),
        attributes: job
            .history
            .last()
            .map(|r| r.event_attributes())
            .unwrap_or_default(),
    };
    for _ in 0..MAX_RACES {
        let (downstream, signals) = match ahead.take() {
            Some(read) => read,
            None => {
                let at = (&jt.workflow, &jt.instance);
                read_downstream(client, at, &job.name, &job.outputs).await?
            }
        };
        let archive_set = signals.get(Action::ARCHIVE).is_some();
        let mut req = plan::success(jt, job, &event, fastrand::u64(..), &downstream, archive_set);
        req.updates.extend_from_slice(notices);
        req.logs = tails.to_vec();
        let aborting = signals.get(Action::ABORT).is_some();
        let progressed = !aborting
            && req.updates.iter().any(|t| {
                t.name != jt.token.name
                    && matches!(
                        Name::parse(&t.name),
                        Some(Name::Job {
                            state: JobState::Runnable,
                            ..
                        })
                    )
            });
        match client.modify(req).await {
            Ok(_) if progressed => return Ok(Committed::Progressed),
            Ok(_) if !aborting && nothing_to_settle(client, jt, &downstream).await => {
                return Ok(Committed::Progressed);
            }
            Ok(_) => return Ok(Committed::Done),
            Err(MasterError::VersionConflict(_) | MasterError::NotFound(_)) => {
                if !still_ours(client, jt).await? {
                    return Ok(match ended_already(client, jt, job).await? {
                        true => Committed::Done,
                        false => Committed::LostLease,
                    });
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::KeptConflicting {
        name: jt.token.name.clone(),
        tries: MAX_RACES as u32,
    })
}

/// What a failure's write records beside it: the email and the webhook notices of the
/// failure, given whether it is the instance's first (outbox tokens).
pub type FailureNotice<'a> = &'a (dyn Fn(bool) -> Vec<Token> + Send + Sync);

/// No email with a failure.
pub fn no_email(_first: bool) -> Vec<Token> {
    Vec::new()
}

/// Commits a failed run: in place for a retry (after `retry_delay_sec`, keeping the triggering
/// events), or back to waiting with the instance marked finishing and `email` recorded in the
/// same write (so the email names the right exit code and recipients, and only the worker
/// whose write lands records one), by `owner`, with the last bytes of its logs (`tails`).
pub async fn commit_failure(
    client: &dyn MasterClient,
    jt: &JobToken,
    job: &Job,
    owner: &str,
    tails: &[LogRequest],
    retry: bool,
    email: FailureNotice<'_>,
) -> Result<Committed, Error> {
    // A final failure inserts the instance's ARCHIVE signal unless it is set; another job of
    // the instance ending at the same moment may insert it first. The job still ours, the
    // signals are read again and the write tried again.
    for _ in 0..5 {
        let (mut req, first) = if retry {
            let mut req = plan::retry(jt, job, owner, crate::clock::now());
            req.updates.extend(email(false));
            (req, false)
        } else {
            let level = Level::Instance(jt.workflow.clone(), jt.instance.clone());
            let signals = Signals::read(client, &level).await?;
            let (mut req, first) = plan::final_failure(jt, job, signals.token(Action::ARCHIVE));
            req.updates.extend(email(first));
            (req, first)
        };
        req.logs = tails.to_vec();
        match client.modify(req).await {
            Ok(_) if first => return Ok(Committed::FirstFailure),
            Ok(_) => return Ok(Committed::Done),
            Err(MasterError::VersionConflict(_) | MasterError::NotFound(_))
                if !still_ours(client, jt).await? =>
            {
                return Ok(match ended_already(client, jt, job).await? {
                    true => Committed::Done,
                    false => Committed::LostLease,
                });
            }
            Err(MasterError::VersionConflict(e)) if !retry => {
                tracing::info!(job = %jt.token.name, conflict = %e, "the instance's signals changed under the failure's commit; trying again");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::KeptConflicting {
        name: jt.token.name.clone(),
        tries: 5,
    })
}

/// Every token of one instance, by kind.
#[derive(Debug, Default)]
pub struct InstanceTokens {
    pub all: Vec<Token>,
    pub waiting: Vec<JobToken>,
    pub runnable: Vec<Token>,
    pub events: BTreeMap<(JobName, JobName), Vec<Token>>,
}

impl InstanceTokens {
    /// Sorts an instance's tokens by kind.
    pub fn from_tokens(all: Vec<Token>) -> InstanceTokens {
        let mut it = InstanceTokens::default();
        for t in &all {
            match Name::parse(&t.name) {
                Some(Name::Job {
                    state: JobState::Waiting,
                    ..
                }) => {
                    if let Ok(jt) = JobToken::parse(t.clone()) {
                        it.waiting.push(jt);
                    }
                }
                Some(Name::Job {
                    state: JobState::Runnable,
                    ..
                }) => it.runnable.push(t.clone()),
                Some(Name::Event { job, input, .. }) => {
                    it.events.entry((job, input)).or_default().push(t.clone())
                }
                _ => {}
            }
        }
        it.all = all;
        it
    }

    /// The first event of each input of `jt`, when every input holds one.
    fn picks(&self, jt: &JobToken) -> Option<Vec<Token>> {
        jt.job
            .inputs
            .iter()
            .map(|x| {
                self.events
                    .get(&(jt.job.name.clone(), x.clone()))
                    .and_then(|v| v.first().cloned())
            })
            .collect()
    }

    /// Whether nothing more can happen: no job runnable or running, and no waiting job with
    /// every input satisfied.
    pub fn is_done(&self) -> bool {
        self.runnable.is_empty() && !self.waiting.iter().any(|jt| self.picks(jt).is_some())
    }
}

pub async fn read_instance(
    client: &dyn MasterClient,
    w: &WorkflowName,
    i: &InstanceId,
) -> Result<InstanceTokens, MasterError> {
    let all = client.query_prefix(&name::instance_prefix(w, i)).await?;
    Ok(InstanceTokens::from_tokens(all))
}

/// Makes runnable every waiting job of the instance whose inputs all hold an event (tokens
/// written by other tools, poison, retries). Returns how many it moved.
pub async fn make_runnable(
    client: &dyn MasterClient,
    w: &WorkflowName,
    i: &InstanceId,
    tokens: &InstanceTokens,
) -> Result<usize, MasterError> {
    let mut moved = 0;
    for jt in &tokens.waiting {
        let Some(picks) = tokens.picks(jt) else {
            continue;
        };
        if move_to_runnable(client, jt, &picks).await? {
            moved += 1;
        }
    }
    if moved > 0 {
        tracing::info!(workflow = %w, instance = %i, jobs = moved, "made waiting jobs runnable");
    }
    Ok(moved)
}

/// Makes waiting job `jt` runnable with `picks` (an event of each input, in input order);
/// false when it changed since it was read (another worker moved it first).
pub(super) async fn move_to_runnable(
    client: &dyn MasterClient,
    jt: &JobToken,
    picks: &[Token],
) -> Result<bool, MasterError> {
    match client.modify(plan::make_runnable(jt, picks)).await {
        Ok(_) => Ok(true),
        Err(MasterError::VersionConflict(_) | MasterError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}
