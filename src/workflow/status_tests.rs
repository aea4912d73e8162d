use super::*;
use crate::token::Token;
use crate::token::name::{self, JobName, WorkflowName};
use crate::workflow::job::{ExecutionRecord, Job};

fn job(state: JobState, disabled: bool, runs: &[(f64, Option<f64>, i32)]) -> JobToken {
    let (w, i, j) = (
        WorkflowName::parse("w").unwrap(),
        InstanceId::parse("i").unwrap(),
        JobName::parse("j").unwrap(),
    );
    let job = Job {
        disabled,
        history: runs
            .iter()
            .map(|(s, e, x)| ExecutionRecord {
                end_time: *e,
                exit_code: e.map(|_| *x),
                ..ExecutionRecord::new(i.clone(), "", *s)
            })
            .collect(),
        ..Job::shell(j.clone(), "true")
    };
    let token = Token::new(name::job_token(&w, &i, state, &j), Some(job.to_data()));
    JobToken::parse(token).unwrap()
}

fn id(s: &str) -> InstanceId {
    InstanceId::parse(s).unwrap()
}

fn inst(status: Status, start: Option<f64>, end: Option<f64>) -> InstanceStatus {
    InstanceStatus {
        status,
        start_time: start,
        end_time: end,
    }
}

#[test]
fn job_statuses_follow_the_rules_in_order() {
    assert_eq!(
        job_status(&job(JobState::Waiting, false, &[])),
        Status::NEVER_RUN
    );
    assert_eq!(
        job_status(&job(JobState::Runnable, false, &[])),
        Status::PENDING
    );
    assert_eq!(
        job_status(&job(JobState::Waiting, true, &[])),
        Status::DISABLED
    );
    assert_eq!(
        job_status(&job(JobState::Runnable, false, &[(1.0, None, 0)])),
        Status::RUNNING
    );
    // Waiting for its retry: not a failure (it showed red FAILURE), pending, and it looks
    // like a retry on its way; a condition between polls looks like polling.
    let retrying = job(JobState::Runnable, false, &[(1.0, Some(2.0), 1)]);
    assert_eq!(job_status(&retrying), Status::PENDING);
    assert_eq!(job_look(&retrying), Look::WAITING_RETRY);
    let mut polling = retrying.clone();
    polling.job.job_type = crate::workflow::job::JobType::ShellConditionJob;
    assert_eq!(job_look(&polling), Look::POLLING);
    assert_eq!(attempts(&polling), 1, "polls are not attempts");
    let mut killed = job(JobState::Waiting, false, &[(1.0, Some(2.0), -9)]);
    killed.job.history[0].killed = Some("by an abort of its instance".into());
    assert_eq!(job_status(&killed), Status::FAILURE);
    assert_eq!(job_look(&killed), Look::KILLED);
    assert_eq!(
        job_status(&job(JobState::Waiting, true, &[(1.0, Some(1.0), 0)])),
        Status::DISABLED
    );
    assert_eq!(
        job_status(&job(JobState::Waiting, false, &[(1.0, Some(2.0), 0)])),
        Status::SUCCESS
    );
}

#[test]
fn instance_statuses_for_live_and_archived_instances() {
    let ok = job(JobState::Waiting, false, &[(10.0, Some(20.0), 0)]);
    let bad = job(JobState::Waiting, false, &[(5.0, Some(30.0), 1)]);
    assert_eq!(
        instance_status(std::slice::from_ref(&ok), false, false, false).status,
        Status::RUNNING,
        "live and not stamped: running (scenario 57)"
    );
    let done = instance_status(&[ok.clone(), bad.clone()], true, false, true);
    assert_eq!(done, inst(Status::FAILURE, Some(5.0), Some(30.0)));
    assert_eq!(
        instance_status(std::slice::from_ref(&ok), true, false, true).status,
        Status::SUCCESS
    );
    assert_eq!(
        instance_status(&[ok.clone(), bad], true, true, true).status,
        Status::ABORTED
    );
    let running = job(JobState::Runnable, false, &[(40.0, None, 0)]);
    let r = instance_status(&[ok, running], false, false, false);
    assert_eq!((r.status, r.end_time), (Status::RUNNING, None));
}

#[test]
fn workflow_status_aggregates_its_instances_as_scenario_58() {
    let w = workflow_status(&[
        (id("a"), inst(Status::ABORTED, Some(1.0), Some(12390.0))),
        (id("b"), inst(Status::RUNNING, Some(12345.0), None)),
        (id("c"), inst(Status::SUCCESS, Some(2.0), Some(12391.0))),
        (id("d"), inst(Status::RUNNING, Some(12348.0), None)),
    ]);
    assert_eq!(
        (w.status, w.last_instance.as_deref(), w.running_instances),
        (Status::RUNNING, Some("d"), 2)
    );
    let w = workflow_status(&[
        (id("a"), inst(Status::ABORTED, Some(1.0), Some(12392.0))),
        (id("b"), inst(Status::SUCCESS, Some(1.0), Some(12393.0))),
        (id("c"), inst(Status::FAILURE, Some(1.0), Some(12391.0))),
    ]);
    assert_eq!(
        (w.status, w.last_instance.as_deref(), w.last_end_time),
        (Status::SUCCESS, Some("b"), Some(12393.0))
    );
    let w = workflow_status(&[
        (id("x"), inst(Status::FAILURE, Some(99999.0), None)),
        (id("y"), inst(Status::SUCCESS, Some(1.0), Some(50.0))),
    ]);
    assert_eq!(
        w.last_instance.as_deref(),
        Some("x"),
        "an unknown end compares by its start"
    );
    assert_eq!(workflow_status(&[]).status, Status::NEVER_RUN);
}

#[test]
fn every_look_has_its_own_colour_and_icon_and_dark_text_reads_on_it() {
    let colours: std::collections::BTreeSet<_> = Look::ALL.iter().map(|l| l.colour()).collect();
    let icons: std::collections::BTreeSet<_> = Look::ALL.iter().map(|l| l.icon()).collect();
    assert_eq!(colours.len(), Look::ALL.len());
    assert_eq!(icons.len(), Look::ALL.len());
    let luminance = |hex: &str| {
        let c = |i: usize| {
            let v = u8::from_str_radix(&hex[i..i + 2], 16).unwrap() as f64 / 255.0;
            if v <= 0.04045 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * c(1) + 0.7152 * c(3) + 0.0722 * c(5)
    };
    let text = luminance("#111111");
    for l in Look::ALL {
        let ratio = (luminance(l.colour()) + 0.05) / (text + 0.05);
        assert!(ratio >= 4.5, "{l:?}: {ratio:.2}");
    }
    // States told apart by lightness as well as hue (the old SUCCESS and PENDING were 1.01).
    let contrast = |a: Look, b: Look| {
        let (x, y) = (luminance(a.colour()), luminance(b.colour()));
        (x.max(y) + 0.05) / (x.min(y) + 0.05)
    };
    assert!(contrast(Look::SUCCESS, Look::PENDING) > 2.0);
    assert!(contrast(Look::RUNNING, Look::POLLING) > 1.5);
}

#[test]
fn a_granted_claim_that_wrote_nothing_yet_is_running() {
    let mut jt = job(JobState::Runnable, false, &[(1.0, Some(2.0), 1)]);
    assert_eq!(job_status(&jt), Status::PENDING, "a retry waiting to run");
    jt.job.grant = Some(crate::token::Grant {
        n: 3,
        owner: "w".into(),
        at: 5,
        ..Default::default()
    });
    jt.job.recorded_grant = 2;
    jt.token.owner = Some("w".into());
    assert_eq!(job_status(&jt), Status::RUNNING);
    let running = instance_status(std::slice::from_ref(&jt), false, false, true);
    assert_eq!(running.status, Status::RUNNING);
    // Its worker wrote (a hand-back, a retry's hold, an end): the grant is recorded.
    jt.job.recorded_grant = 3;
    assert_eq!(job_status(&jt), Status::PENDING);
    // Not held: an earlier claimant's grant, written by no one, is no run of now.
    jt.job.recorded_grant = 2;
    jt.token.owner = None;
    assert_eq!(job_status(&jt), Status::PENDING);
}
