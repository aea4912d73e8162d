//! The decisions of an instance's progress as pure functions: given what was read, the request
//! to send. What a success writes (its result, downstream events, downstream jobs made
//! runnable), what a retry, a final failure, a hand-back or a lease renewal writes, and what
//! settling a quiet instance does next. `progress` reads, calls these, and sends; nothing here
//! touches the master or the clock, so every rule is tested without either.

use super::instance::JobToken;
use super::job::{Event, ExecutionRecord, Job};
use super::signal::{Action, Attributes, Signal, Signals};
use crate::token::name::{self, InstanceId, JobName, JobState, Level, WorkflowName};
use crate::token::{Grant, ModifyRequest, Token};

/// The instance-level ARCHIVE signal to insert when none is visible: the instance is finishing.
pub fn archive_signal(workflow: &WorkflowName, instance: &InstanceId) -> Token {
    Signal::new(Action::ARCHIVE, Attributes::default())
        .token(&Level::Instance(workflow.clone(), instance.clone()))
}

/// Whether every job of an instance (all of them waiting: nothing is runnable) has run at
/// least once: then an instance with no job that can run again has ended, though no job's end
/// recorded it; a job that never ran may still get its events from elsewhere.
pub fn every_job_ran(waiting: &[JobToken]) -> bool {
    waiting.iter().all(|jt| !jt.job.history.is_empty())
}

/// An event posted by `from` into the input `from` of job `to`.
pub fn event_token(jt: &JobToken, to: &JobName, from: &JobName, event: &Event, id: u64) -> Token {
    let data = serde_json::to_string(event).expect("events serialize");
    let event_name = format!("{}_{id}", event.creator);
    Token::new(
        name::event_token(&jt.workflow, &jt.instance, to, from, &event_name),
        Some(data),
    )
}

/// A downstream job as the success found it.
#[derive(Debug, Clone)]
pub struct Downstream {
    pub job: JobName,
    /// Its waiting token and, in the order of its inputs, the first event of every other
    /// input, when each holds one: this success makes it runnable. `None`: post the event only
    /// (it is runnable or running already, or still misses an input).
    pub ready: Option<(JobToken, Vec<Token>)>,
    /// Its waiting token, when it still missed another input at the read: a read made when
    /// the run started looks at it again before the success is written.
    pub pending: Option<Token>,
}

/// A successful run of `jt` (runnable, owned, at the version held) with `job` (its history
/// updated), in ONE request: the job back to waiting, an event into every downstream input or
/// the downstream job made runnable with all its events, and the instance's ARCHIVE signal
/// when the job is a leaf and none is set.
pub fn success(
    jt: &JobToken,
    job: &Job,
    event: &Event,
    event_id: u64,
    downstream: &[Downstream],
    archive_set: bool,
) -> ModifyRequest {
    let mut req = ModifyRequest {
        updates: vec![jt.rewritten(JobState::Waiting, job)],
        deletes: vec![jt.token.clone()],
        ..ModifyRequest::default()
    };
    for d in downstream {
        let Some((waiting, others)) = &d.ready else {
            req.updates
                .push(event_token(jt, &d.job, &job.name, event, event_id));
            continue;
        };
        let mut others = others.iter();
        let mut events = Vec::with_capacity(waiting.job.inputs.len());
        let mut consumed = Vec::new();
        for input in &waiting.job.inputs {
            if *input == job.name {
                events.push(event.clone());
            } else if let Some(e) = others.next() {
                events.push(
                    e.data
                        .as_deref()
                        .and_then(|d| serde_json::from_str(d).ok())
                        .unwrap_or_default(),
                );
                consumed.push(e.clone());
            }
        }
        if events.len() < waiting.job.inputs.len() {
            // Not every input is satisfied after all. Two upstream jobs finishing at once may
            // each see the other's input empty; both post events, and the `settle` each runs
            // after its commit makes the job runnable (one version-checked move wins).
            req.updates
                .push(event_token(jt, &d.job, &job.name, event, event_id));
            continue;
        }
        let mut next = waiting.job.clone();
        next.events = events;
        req.updates
            .push(waiting.rewritten(JobState::Runnable, &next));
        req.deletes.push(waiting.token.clone());
        req.deletes.extend(consumed);
    }
    if job.outputs.is_empty() && !archive_set {
        req.updates.push(archive_signal(&jt.workflow, &jt.instance));
    }
    req
}

/// A failed run that will be retried: in place, with the triggering events it ran with, and
/// held by `owner` until `now + retry_delay_sec` (claimable at once without a delay).
pub fn retry(jt: &JobToken, job: &Job, owner: &str, now: i64) -> ModifyRequest {
    let mut next = job.clone();
    next.events = job.last_events();
    let mut token = jt.rewritten(JobState::Runnable, &next);
    if job.retry_delay_sec > 0 {
        token.owner = Some(owner.to_owned());
        token.expiration_time = Some(now + job.retry_delay_sec as i64);
    }
    ModifyRequest::update(vec![token])
}

/// A final failure (or an aborted run): the job back to waiting, and the instance's ARCHIVE
/// signal marked with the instance's first failed job: inserted when none is visible, updated
/// (version-checked) when a success set it without one. `archive` is the visible ARCHIVE
/// signal. Returns the request and whether this is the instance's first final failure, which
/// holds whichever job ends last (a leaf's success sets ARCHIVE first in most instances).
pub fn final_failure(jt: &JobToken, job: &Job, archive: Option<&Token>) -> (ModifyRequest, bool) {
    let mut req = ModifyRequest {
        updates: vec![jt.rewritten(JobState::Waiting, job)],
        deletes: vec![jt.token.clone()],
        ..ModifyRequest::default()
    };
    let level = Level::Instance(jt.workflow.clone(), jt.instance.clone());
    let marked = |mut signal: Signal| {
        signal.attributes.failed = Some(job.name.to_string());
        signal
    };
    let first = match archive {
        None => {
            let signal = marked(Signal::new(Action::ARCHIVE, Attributes::default()));
            req.updates.push(signal.token(&level));
            true
        }
        Some(t) => match Signal::from_token(t) {
            Some(s)
                if s.attributes.failed.is_none()
                    && t.name == name::signal_token(&level, Action::ARCHIVE) =>
            {
                req.updates.push(Token {
                    data: Some(marked(s).to_data()),
                    ..t.clone()
                });
                true
            }
            _ => false,
        },
    };
    (req, first)
}

/// A run stopped for another worker (shutdown): runnable again, unowned, with its events.
pub fn hand_back(jt: &JobToken, job: &Job) -> ModifyRequest {
    let mut next = job.clone();
    next.events = job.last_events();
    ModifyRequest::update(vec![jt.rewritten(JobState::Runnable, &next)])
}

/// A claimed job given back unrun (its instance is drained, or its worker must exit), held
/// by `owner` until `until` so nobody spins on it.
pub fn hold(jt: &JobToken, owner: &str, until: i64) -> ModifyRequest {
    let mut token = jt.rewritten(JobState::Runnable, &jt.job);
    token.owner = Some(owner.to_owned());
    token.expiration_time = Some(until);
    ModifyRequest::update(vec![token])
}

/// The running job's token with its latest data and the lease extended to `until`.
pub fn renewal(jt: &JobToken, job: &Job, version: Option<i64>, owner: &str, until: i64) -> Token {
    Token {
        version,
        owner: Some(owner.to_owned()),
        expiration_time: Some(until),
        ..jt.rewritten(JobState::Runnable, job)
    }
}

/// A waiting job whose every input holds an event, made runnable with one event of each
/// (`picks`, in input order), which it consumes.
pub fn make_runnable(jt: &JobToken, picks: &[Token]) -> ModifyRequest {
    let mut next = jt.job.clone();
    next.events = picks
        .iter()
        .filter_map(|e| e.data.as_deref().and_then(|d| serde_json::from_str(d).ok()))
        .collect();
    let mut req = ModifyRequest {
        updates: vec![jt.rewritten(JobState::Runnable, &next)],
        deletes: vec![jt.token.clone()],
        ..ModifyRequest::default()
    };
    req.deletes.extend(picks.iter().cloned());
    req
}

/// Whether a token may still be owned: a lease that ended less than 10 s ago may be winding
/// down on a worker with a skewed clock.
pub fn possibly_owned(t: &Token, now: i64) -> bool {
    t.owner.is_some() && t.expiration_time.is_some_and(|e| now - e < 10)
}

/// What settling a quiet instance does next, decided from its tokens and signals.
#[derive(Debug, Clone, PartialEq)]
pub enum SettleStep {
    /// An ABORT above the instance: record it on the instance (so the archive says ABORTED).
    RecordAbort(Token),
    /// Aborted and nothing may be owned any more: archive every token.
    ArchiveAborted,
    /// Aborted, but a job may still be winding down.
    AwaitLeases,
    /// Drained: nothing moves.
    Drained,
    /// Look for waiting jobs to make runnable, then decide again.
    MakeRunnable,
}

/// The first decision of `settle`, before any job is made runnable.
pub fn settle_step(tokens: &[Token], instance: &Level, signals: &Signals, now: i64) -> SettleStep {
    let instance_abort = name::signal_token(instance, Action::ABORT);
    let aborted_here = tokens.iter().any(|t| t.name == instance_abort);
    if !aborted_here && let Some(higher) = signals.get(Action::ABORT) {
        return SettleStep::RecordAbort(Token::new(instance_abort, Some(higher.to_data())));
    }
    if aborted_here {
        return if tokens.iter().any(|t| possibly_owned(t, now)) {
            SettleStep::AwaitLeases
        } else {
            SettleStep::ArchiveAborted
        };
    }
    if signals.is_set(Action::DRAIN, 0) {
        return SettleStep::Drained;
    }
    SettleStep::MakeRunnable
}

/// When nothing is left to run: stamp the ARCHIVE signal with the time the instance may be
/// archived (`None` when there is no signal or it is stamped already).
pub fn stamp_archive(archive: &Token, at: f64) -> Option<Token> {
    let signal = Signal::from_token(archive)
        .unwrap_or_else(|| Signal::new(Action::ARCHIVE, Attributes::default()));
    if signal.attributes.timestamp.is_some() {
        return None;
    }
    let stamped = Signal::new(
        Action::ARCHIVE,
        Attributes {
            timestamp: Some(at),
            generation: None,
            ..signal.attributes
        },
    );
    Some(Token {
        data: Some(stamped.to_data()),
        ..archive.clone()
    })
}

/// How a worker stopped a run before it ended by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// By an ABORT of its instance.
    Aborted,
    /// Its lease was lost (another worker has the job), or the master stayed away too long.
    LostLease,
    /// For a shutdown: the job goes back for another worker.
    HandedBack,
}

/// How a run ended, as the jobs-finished metric names it.
pub fn outcome_class(
    stopped: Option<Stopped>,
    killed: bool,
    exit_code: Option<i32>,
) -> &'static str {
    match stopped {
        Some(Stopped::LostLease) => "lost_lease",
        Some(Stopped::Aborted) => "aborted",
        Some(Stopped::HandedBack) => "handed_back",
        None if killed => "killed",
        None if exit_code == Some(0) => "success",
        None => "failure",
    }
}

/// What becomes of an execution its worker left open (it stopped renewing the lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LostVerdict {
    /// Lost, not an attempt: the job runs again (within `lost_lease_retries` in a row).
    Rerun { reason: String },
    /// Lost with `lost_lease_retries` used up: it counts as a failed attempt.
    Counted { reason: String },
}

/// Closes the open execution of `job`, if its last one is open, as lost at `now`: its end
/// time, why (its worker, alive or not: a worker cut off from the master looks the same from
/// here), and whether it counts as an attempt. The events that triggered it go back to the job
/// when it runs again. No exit code: the process was never seen to exit.
pub fn close_lost(job: &mut Job, now: f64, lost_lease_retries: u32) -> Option<LostVerdict> {
    let record = job.history.last_mut().filter(|r| r.end_time.is_none())?;
    record.end_time = Some(now);
    let who = match record.worker.as_str() {
        "" => "its worker".to_owned(),
        w => format!("worker {w}"),
    };
    let reason =
        format!("{who} did not renew its lease in time (it died, or could not reach the master)");
    record.lost = Some(reason.clone());
    let events = record.events.clone();
    if job.lost_in_a_row() <= lost_lease_retries as usize {
        job.events = events;
        Some(LostVerdict::Rerun { reason })
    } else {
        job.history.last_mut().expect("the open record").counted = true;
        Some(LostVerdict::Counted { reason })
    }
}

/// The most lost grants recorded at once (a job whose every claimant died unseen that often
/// has long since used up `lost_lease_retries`).
const MAX_UNRECORDED: u64 = 100;

/// Closes what the claims before `grant` (this worker's, recorded by the master in the claim's
/// commit) left: the open execution ([`close_lost`]), and a lost execution for each earlier
/// grant no write followed (its worker died, or lost the master, before it wrote anything: its
/// run may have happened, unseen). Then `grant` is recorded: from here on the data holds its run.
pub fn close_lost_grants(
    job: &mut Job,
    grant: &Grant,
    instance: &InstanceId,
    now: f64,
    lost_lease_retries: u32,
) -> Option<LostVerdict> {
    let open = close_lost(job, now, lost_lease_retries);
    let unrecorded = grant
        .n
        .saturating_sub(1)
        .saturating_sub(job.recorded_grant)
        .min(MAX_UNRECORDED);
    job.recorded_grant = grant.n;
    if unrecorded == 0 {
        return open;
    }
    let mut reason = String::new();
    for k in 1..=unrecorded {
        // Only the last of them is known by name and time (the grant this one replaced).
        let last = k == unrecorded;
        let start = grant.prev_at.filter(|_| last).map_or(now, |t| t as f64);
        let mut record = ExecutionRecord::new(instance.clone(), job.command.clone(), start);
        record.end_time = Some(now);
        record.worker = grant
            .prev_owner
            .clone()
            .filter(|_| last)
            .unwrap_or_default();
        let who = match record.worker.as_str() {
            "" => "a worker".to_owned(),
            w => format!("worker {w}"),
        };
        reason = format!(
            "{who} was granted the job and never recorded its run (it died, or could not reach the master)"
        );
        record.lost = Some(reason.clone());
        job.history.push(record);
    }
    // The events never left the job: its claimants wrote nothing.
    if job.lost_in_a_row() <= lost_lease_retries as usize {
        Some(LostVerdict::Rerun { reason })
    } else {
        job.history.last_mut().expect("just pushed").counted = true;
        Some(LostVerdict::Counted { reason })
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
