//! The decisions of an instance's progress as pure functions: given what was read, the request
//! to send. What a success writes (its result, downstream events, downstream jobs made
//! runnable), what a retry, a final failure, a hand-back or a lease renewal writes, and what
//! settling a quiet instance does next. `progress` reads, calls these, and sends; nothing here
//! touches the master or the clock, so every rule is tested without either.

use super::instance::JobToken;
use super::job::{Event, Job};
use super::signal::{Action, Attributes, Signal, Signals};
use crate::token::name::{self, InstanceId, JobName, JobState, Level, WorkflowName};
use crate::token::{ModifyRequest, Token};

/// The instance-level ARCHIVE signal to insert when none is visible: the instance is finishing.
pub fn archive_signal(workflow: &WorkflowName, instance: &InstanceId) -> Token {
    Signal::new(Action::ARCHIVE, Attributes::default())
        .token(&Level::Instance(workflow.clone(), instance.clone()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse_yaml;
    use crate::workflow::instance::new_instance_tokens;
    use crate::workflow::job::ExecutionRecord;

    /// The tokens of a fresh instance of `yaml`'s workflow `w`, by job, at version 1.
    fn instance(yaml: &str) -> std::collections::BTreeMap<String, JobToken> {
        let defs = parse_yaml(yaml, "t").unwrap();
        let (w, def) = defs.iter().next().unwrap();
        let i = InstanceId::parse("1").unwrap();
        new_instance_tokens(w, &i, &def.graph())
            .into_iter()
            .map(|t| Token {
                version: Some(1),
                ..t
            })
            .map(|t| JobToken::parse(t).unwrap())
            .map(|jt| (jt.job.name.to_string(), jt))
            .collect()
    }

    fn ran(jt: &JobToken, exit: i32) -> Job {
        let mut job = jt.job.clone();
        let mut r = ExecutionRecord::new(jt.instance.clone(), "x", 1.0);
        r.events = job.events.clone();
        r.end_time = Some(2.0);
        r.exit_code = Some(exit);
        job.history.push(r);
        job.events.clear();
        job
    }

    fn names(tokens: &[Token]) -> Vec<&str> {
        tokens.iter().map(|t| t.name.as_str()).collect()
    }

    fn event(creator: &str) -> Event {
        Event {
            creator: creator.into(),
            attributes: [("k".to_string(), "v".to_string())].into(),
        }
    }

    #[test]
    fn a_success_posts_an_event_downstream_and_moves_itself_back_to_waiting() {
        let jobs = instance(
            "workflows:\n  w:\n    jobs:\n      a: {command: x}\n      b: {command: y, depends_on: [a]}\n",
        );
        let a = &jobs["a"];
        let down = [Downstream {
            job: JobName::parse("b").unwrap(),
            ready: None,
        }];
        let req = success(a, &ran(a, 0), &event("a"), 7, &down, false);
        assert_eq!(
            names(&req.updates),
            ["/workflow/w/1/job/waiting/a", "/workflow/w/1/input/b/a/a_7"]
        );
        assert_eq!(names(&req.deletes), ["/workflow/w/1/job/runnable/a"]);
        assert_eq!(req.updates[0].version, None, "a new name is an insert");
    }

    #[test]
    fn a_success_that_satisfies_a_join_makes_it_runnable_and_consumes_the_other_event() {
        let jobs = instance(
            "workflows:\n  w:\n    jobs:\n      a: {command: x}\n      b: {command: x}\n      j: {command: y, depends_on: [a, b]}\n",
        );
        let (a, j) = (&jobs["a"], &jobs["j"]);
        let from_b = Token {
            version: Some(3),
            ..event_token(
                &jobs["b"],
                &j.job.name,
                &JobName::parse("b").unwrap(),
                &event("b"),
                1,
            )
        };
        let down = [Downstream {
            job: j.job.name.clone(),
            ready: Some((j.clone(), vec![from_b.clone()])),
        }];
        let req = success(a, &ran(a, 0), &event("a"), 7, &down, false);
        let runnable = req
            .updates
            .iter()
            .find(|t| t.name == "/workflow/w/1/job/runnable/j")
            .expect("the join is runnable");
        let data = Job::from_data(runnable.data.as_deref().unwrap()).unwrap();
        assert_eq!(
            data.events
                .iter()
                .map(|e| e.creator.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"],
            "one event per input, in input order"
        );
        assert!(
            req.deletes.contains(&from_b),
            "the other input's event is consumed"
        );
        assert!(req.deletes.contains(&j.token), "the waiting token goes");
        assert!(!names(&req.updates).iter().any(|n| n.contains("/input/")));
    }

    #[test]
    fn a_leaf_success_marks_the_instance_finishing_once() {
        let jobs = instance("workflows:\n  w:\n    jobs:\n      a: {command: x}\n");
        let a = &jobs["a"];
        let req = success(a, &ran(a, 0), &event("a"), 1, &[], false);
        assert!(names(&req.updates).contains(&"/workflow/w/1/__SIGNAL__/ARCHIVE"));
        let again = success(a, &ran(a, 0), &event("a"), 1, &[], true);
        assert!(!names(&again.updates).contains(&"/workflow/w/1/__SIGNAL__/ARCHIVE"));
    }

    #[test]
    fn a_retry_keeps_the_job_runnable_with_its_events_and_waits_out_the_delay() {
        let jobs = instance(
            "workflows:\n  w:\n    jobs:\n      a: {command: x, max_attempts: 3, retry_delay_sec: 10}\n",
        );
        let a = &jobs["a"];
        let req = retry(a, &ran(a, 1), "worker", 1000);
        let t = &req.updates[0];
        assert_eq!(t.name, "/workflow/w/1/job/runnable/a");
        assert_eq!(t.version, Some(1), "in place, version-checked");
        assert_eq!(
            (t.owner.as_deref(), t.expiration_time),
            (Some("worker"), Some(1010))
        );
        let data = Job::from_data(t.data.as_deref().unwrap()).unwrap();
        assert_eq!(data.events.len(), 1, "the triggering events are kept");
        assert!(req.deletes.is_empty());
    }

    #[test]
    fn a_final_failure_goes_back_to_waiting_and_only_the_first_marks_the_instance() {
        let jobs = instance("workflows:\n  w:\n    jobs:\n      a: {command: x}\n");
        let a = &jobs["a"];
        let (req, first) = final_failure(a, &ran(a, 1), None);
        assert!(first);
        assert_eq!(
            names(&req.updates),
            [
                "/workflow/w/1/job/waiting/a",
                "/workflow/w/1/__SIGNAL__/ARCHIVE"
            ]
        );
        let marked = &req.updates[1];
        let failed = |t: &Token| Signal::from_token(t).unwrap().attributes.failed;
        assert_eq!(failed(marked).as_deref(), Some("a"));
        // A second failure finds the mark: not the first.
        let stored = Token {
            version: Some(7),
            ..marked.clone()
        };
        let (req, first) = final_failure(a, &ran(a, 1), Some(&stored));
        assert!(!first);
        assert_eq!(names(&req.updates), ["/workflow/w/1/job/waiting/a"]);
        // A success set ARCHIVE without a mark: the failure marks it, versioned, and is first.
        let by_success = Token {
            version: Some(8),
            ..archive_signal(&a.workflow, &a.instance)
        };
        let (req, first) = final_failure(a, &ran(a, 1), Some(&by_success));
        assert!(first);
        assert_eq!(req.updates[1].version, Some(8));
        assert_eq!(failed(&req.updates[1]).as_deref(), Some("a"));
    }

    #[test]
    fn a_hand_back_is_claimable_at_once_and_a_hold_is_not() {
        let jobs = instance("workflows:\n  w:\n    jobs:\n      a: {command: x}\n");
        let a = &jobs["a"];
        let back = hand_back(a, &ran(a, 0));
        assert_eq!(back.updates[0].owner, None);
        let held = hold(a, "me", 99);
        assert_eq!(held.updates[0].expiration_time, Some(99));
        let renewed = renewal(a, &a.job, Some(5), "me", 120);
        assert_eq!(
            (renewed.version, renewed.expiration_time),
            (Some(5), Some(120))
        );
    }

    #[test]
    fn settling_follows_abort_then_drain() {
        let w = WorkflowName::parse("w").unwrap();
        let i = InstanceId::parse("1").unwrap();
        let level = Level::Instance(w.clone(), i.clone());
        let abort = |l: &Level| Signal::new(Action::ABORT, Attributes::default()).token(l);
        let higher = Signals::from_tokens([abort(&Level::Workflow(w.clone()))]);
        match settle_step(&[], &level, &higher, 100) {
            SettleStep::RecordAbort(t) => assert_eq!(t.name, "/workflow/w/1/__SIGNAL__/ABORT"),
            other => panic!("{other:?}"),
        }
        let here = abort(&level);
        let signals = Signals::from_tokens([here.clone()]);
        let leased = Token {
            owner: Some("x".into()),
            expiration_time: Some(95),
            ..Token::new("/workflow/w/1/job/runnable/a", None)
        };
        assert_eq!(
            settle_step(&[here.clone(), leased], &level, &signals, 100),
            SettleStep::AwaitLeases
        );
        assert_eq!(
            settle_step(std::slice::from_ref(&here), &level, &signals, 100),
            SettleStep::ArchiveAborted
        );
        let drain = Signal::new(Action::DRAIN, Attributes::default()).token(&Level::Global);
        assert_eq!(
            settle_step(&[], &level, &Signals::from_tokens([drain]), 100),
            SettleStep::Drained
        );
        assert_eq!(
            settle_step(&[], &level, &Signals::default(), 100),
            SettleStep::MakeRunnable
        );
    }

    #[test]
    fn an_archive_signal_is_stamped_once() {
        let archive = archive_signal(
            &WorkflowName::parse("w").unwrap(),
            &InstanceId::parse("1").unwrap(),
        );
        let stamped = stamp_archive(&archive, 50.0).expect("first stamp");
        let signal = Signal::from_token(&stamped).unwrap();
        assert_eq!(signal.attributes.timestamp, Some(50.0));
        assert_eq!(stamp_archive(&stamped, 60.0), None);
    }

    #[test]
    fn a_run_s_outcome_class_names_why_it_ended() {
        assert_eq!(outcome_class(None, false, Some(0)), "success");
        assert_eq!(outcome_class(None, false, Some(2)), "failure");
        assert_eq!(outcome_class(None, false, None), "failure");
        assert_eq!(outcome_class(None, true, Some(-15)), "killed");
        assert_eq!(
            outcome_class(Some(Stopped::Aborted), true, Some(-15)),
            "aborted"
        );
        assert_eq!(
            outcome_class(Some(Stopped::LostLease), false, Some(0)),
            "lost_lease"
        );
        assert_eq!(
            outcome_class(Some(Stopped::HandedBack), false, None),
            "handed_back"
        );
    }

    #[test]
    fn an_open_execution_is_closed_as_lost_and_counted_only_past_the_retries() {
        use crate::workflow::job::ExecutionRecord;
        let open = |worker: &str| {
            let mut r = ExecutionRecord::new(InstanceId::parse("1").unwrap(), "true", 1.0);
            r.worker = worker.into();
            r.events = vec![Event::default()];
            r
        };
        let mut job = Job::shell(JobName::parse("j").unwrap(), "true");
        assert_eq!(close_lost(&mut job, 5.0, 1), None, "nothing open");
        job.history.push(open("w1"));
        let verdict = close_lost(&mut job, 5.0, 1).unwrap();
        let reason =
            "worker w1 did not renew its lease in time (it died, or could not reach the master)";
        assert_eq!(
            verdict,
            LostVerdict::Rerun {
                reason: reason.into()
            }
        );
        let r = &job.history[0];
        assert_eq!(
            (r.end_time, r.exit_code, r.counted),
            (Some(5.0), None, false)
        );
        assert_eq!(
            job.events.len(),
            1,
            "the triggering events go back to the job"
        );
        assert_eq!(close_lost(&mut job, 6.0, 1), None, "closed once");
        // A second loss in a row with one retry allowed counts as an attempt.
        job.history.push(open(""));
        let verdict = close_lost(&mut job, 7.0, 1).unwrap();
        assert!(
            matches!(verdict, LostVerdict::Counted { ref reason } if reason.starts_with("its worker did not"))
        );
        let r = &job.history[1];
        assert!(r.counted && r.exit_code.is_none() && r.lost.is_some());
    }
}
