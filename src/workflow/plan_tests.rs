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
        pending: None,
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
        pending: None,
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

#[test]
fn grants_no_write_followed_are_lost_runs_at_the_indexes_they_ran_at() {
    use crate::token::Grant;
    use crate::workflow::job::ExecutionRecord;
    let i = InstanceId::parse("1").unwrap();
    let grant = |n: u64, prev: Option<(&str, i64)>| Grant {
        n,
        owner: format!("w{n}"),
        at: 100 + n as i64,
        waited_ms: 0,
        prev_owner: prev.map(|p| p.0.to_owned()),
        prev_at: prev.map(|p| p.1),
    };
    let mut job = Job::shell(JobName::parse("j").unwrap(), "true");
    job.events = vec![Event::default()];
    // The first grant: nothing before it.
    assert_eq!(
        close_lost_grants(&mut job, &grant(1, None), &i, 5.0, 2),
        None
    );
    assert_eq!((job.recorded_grant, job.history.len()), (1, 0));
    // Its worker ran the job and wrote its end: recorded. The next grant's worker died before
    // writing anything, and so did the one after it.
    let mut done = ExecutionRecord::new(i.clone(), "true", 1.0);
    done.end_time = Some(2.0);
    done.exit_code = Some(0);
    job.history.push(done);
    let mut copy = job.clone();
    // The fourth grant finds two lost: each takes the index its run had, so a third claimant
    // that dies too leaves its successor the same indexes.
    let verdict = close_lost_grants(&mut job, &grant(4, Some(("w3", 103))), &i, 9.0, 2);
    assert!(
        matches!(verdict, Some(LostVerdict::Rerun { ref reason }) if reason.starts_with("worker w3 was granted"))
    );
    assert_eq!(job.history.len(), 3);
    assert_eq!(job.recorded_grant, 4);
    let (second, third) = (&job.history[1], &job.history[2]);
    assert_eq!((second.start_time, second.worker.as_str()), (9.0, ""));
    assert_eq!((third.start_time, third.worker.as_str()), (103.0, "w3"));
    assert!(second.lost.is_some() && third.lost.is_some() && !third.counted);
    assert_eq!(job.events.len(), 1, "the events never left the job");
    assert_eq!(
        close_lost_grants(&mut job, &grant(4, None), &i, 9.0, 2),
        None,
        "closed once"
    );
    // One more loss in a row than the retries allow counts as an attempt.
    let verdict = close_lost_grants(&mut copy, &grant(5, Some(("w4", 104))), &i, 9.0, 2);
    assert!(matches!(verdict, Some(LostVerdict::Counted { .. })));
    assert_eq!(copy.history.len(), 4);
    assert!(copy.history[3].counted);
    // An open record (grant 5's run, as its renewal wrote it) found by grant 6.
    let mut open = job.clone();
    let mut running = ExecutionRecord::new(i.clone(), "true", 10.0);
    running.events = vec![Event::default()];
    open.history.push(running);
    open.events.clear();
    open.recorded_grant = 5;
    let verdict = close_lost_grants(&mut open, &grant(6, Some(("w5", 105))), &i, 12.0, 9);
    assert!(matches!(verdict, Some(LostVerdict::Rerun { .. })));
    assert_eq!(
        open.history.len(),
        4,
        "grant 5's open run closed, nothing added for it"
    );
    assert_eq!(open.history[3].end_time, Some(12.0));
    assert_eq!(open.events.len(), 1, "the open run's events go back");
}

#[test]
fn an_instance_ends_by_itself_only_once_every_job_has_run() {
    let jobs = instance(
        "workflows:\n  w:\n    jobs:\n      a: {command: 'true'}\n      b: {command: 'true', depends_on: [a]}\n",
    );
    let with = |history: bool| -> Vec<JobToken> {
        jobs.values()
            .map(|jt| JobToken {
                job: if history { ran(jt, 0) } else { jt.job.clone() },
                ..jt.clone()
            })
            .collect()
    };
    assert!(
        every_job_ran(&with(true)),
        "all ran: nothing is left to wait for"
    );
    assert!(
        !every_job_ran(&with(false)),
        "a job that never ran may still get its events from elsewhere"
    );
}
