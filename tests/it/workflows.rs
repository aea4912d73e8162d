//! Workflows end to end (PINBALL_SPEC §12 scenarios 15-35, 46-56): a real master over HTTP, real
//! workers running real shell commands, definitions imported from YAML, and what a user would
//! check: what ran, in which order, with which values, what the logs and the archive hold.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinball::cli::util::UtilCommand;
use pinball::config::Config;
use pinball::master::MasterClient;
use pinball::storage::{self, Table};
use pinball::token::name::{self, Level};
use pinball::token::*;
use pinball::workflow::instance::JobToken;
use pinball::workflow::job::ExecutionRecord;
use pinball::workflow::progress;
use pinball::workflow::signal::{Action, Signals};
use pinball::workflow::worker::{WorkerSettings, run_workers};
use tokio::sync::watch;

use crate::helpers::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test]
async fn a_two_job_workflow_runs_passes_a_value_downstream_and_is_archived() {
    let c = cluster(
        "workflows:\n  wf:\n    jobs:\n      parent: {command: 'echo PINBALL:EVENT_ATTR:akey=aval; echo \"PINBALL:kv_job_url=j1|u1\"'}\n      child: {command: 'echo got %(akey)s', depends_on: [parent]}\n",
        2,
        0,
    )
    .await;
    let i = c.start("wf").await;
    let archived = c.archived("wf", &i, secs(20)).await;
    let names: Vec<&str> = archived.iter().map(|t| t.name.as_str()).collect();
    assert!(
        names.contains(&format!("/workflow/wf/{i}/job/waiting/parent").as_str()),
        "{names:?}"
    );
    assert!(names.contains(&format!("/workflow/wf/{i}/job/waiting/child").as_str()));
    assert!(names.contains(&format!("/workflow/wf/{i}/__SIGNAL__/ARCHIVE").as_str()));
    let jobs = c.jobs("wf", &i).await;
    let parent = &jobs["parent"].job.history;
    let child = &jobs["child"].job.history;
    assert_eq!((parent.len(), child.len()), (1, 1), "each ran once");
    assert_eq!(parent[0].exit_code, Some(0));
    assert_eq!(
        parent[0].properties["kv_job_url"],
        vec!["j1|u1".to_string()]
    );
    assert_eq!(
        c.log(&child[0], "stdout"),
        "got aval\n",
        "the child got the parent's value"
    );
    assert!(child[0].start_time >= parent[0].end_time.unwrap());
    c.stop().await;
}

#[tokio::test]
async fn a_diamond_runs_its_join_exactly_once_after_both_branches() {
    let db = tempfile::tempdir().unwrap();
    for url in backends(
        &db,
        "a_diamond_runs_its_join_exactly_once_after_both_branches",
    ) {
        diamond_on(&url).await;
    }
}

const DIAMOND: &str = "workflows:\n  d:\n    jobs:\n      a: {command: 'true'}\n      b: {command: 'sleep 0.3', depends_on: [a]}\n      c: {command: 'sleep 0.3', depends_on: [a]}\n      j: {command: 'true', depends_on: [b, c]}\n";

async fn diamond_on(url: &str) {
    let c = cluster_on(Some(url), DIAMOND, 4, 0).await;
    for _ in 0..3 {
        let i = c.start("d").await;
        c.archived("d", &i, secs(20)).await;
        let jobs = c.jobs("d", &i).await;
        let join = &jobs["j"].job.history;
        assert_eq!(join.len(), 1, "the join ran exactly once");
        for branch in ["b", "c"] {
            assert!(
                join[0].start_time >= jobs[branch].job.history[0].end_time.unwrap(),
                "j started after {branch} ended"
            );
        }
        assert_eq!(
            join[0].events.len(),
            2,
            "j was triggered by one event from each branch"
        );
    }
    c.stop().await;
}

#[tokio::test]
async fn a_failing_job_is_retried_with_its_events_then_fails_for_good() {
    let c = cluster(
        "workflows:\n  r:\n    jobs:\n      up: {command: 'echo PINBALL:EVENT_ATTR:v=42'}\n      flaky:\n        depends_on: [up]\n        max_attempts: 2\n        command: 'echo value=%(v)s; exit 1'\n",
        2,
        30,
    )
    .await;
    let i = c.start("r").await;
    let live = c
        .wait_for("r", &i, secs(20), "the instance finishes", |ts| {
            ts.iter().any(|t| {
                t.name.ends_with("__SIGNAL__/ARCHIVE")
                    && t.data.as_deref().is_some_and(|d| d.contains("TIMESTAMP"))
            })
        })
        .await;
    assert!(
        live.iter()
            .any(|t| t.name == format!("/workflow/r/{i}/job/waiting/flaky")),
        "a final failure goes back to waiting"
    );
    let flaky = &c.jobs("r", &i).await["flaky"].job.history;
    assert_eq!(flaky.len(), 2, "two attempts, as max_attempts says");
    assert!(flaky.iter().all(|r| r.exit_code == Some(1)));
    for r in flaky {
        assert_eq!(
            c.log(r, "stdout"),
            "value=42\n",
            "every attempt got the upstream value"
        );
    }
    c.stop().await;
}

#[tokio::test]
async fn a_retry_delay_keeps_the_job_unclaimable_until_it_passes() {
    let c = cluster("workflows:\n  d:\n    jobs:\n      f: {command: 'exit 3', max_attempts: 2, retry_delay_sec: 2}\n", 1, 30).await;
    let i = c.start("d").await;
    let live = c
        .wait_for("d", &i, secs(10), "the first attempt fails", |ts| {
            ts.iter().any(|t| {
                t.name.ends_with("runnable/f")
                    && t.data
                        .as_deref()
                        .is_some_and(|d| d.contains("\"exit_code\":3"))
            })
        })
        .await;
    let t = live
        .iter()
        .find(|t| t.name.ends_with("runnable/f"))
        .unwrap();
    assert!(
        t.owner.is_some(),
        "the worker keeps the token during the delay"
    );
    let wait = t.expiration_time.unwrap() - now();
    assert!(
        (1..=2).contains(&wait),
        "claimable again in about 2 s, not {wait}"
    );
    c.wait_for("d", &i, secs(10), "the second attempt runs", |ts| {
        ts.iter().any(|t| t.name.ends_with("waiting/f"))
    })
    .await;
    let history = &c.jobs("d", &i).await["f"].job.history;
    assert_eq!(history.len(), 2);
    assert!(
        history[1].start_time - history[0].end_time.unwrap() >= 1.0,
        "the retry waited for its delay"
    );
    c.stop().await;
}

#[tokio::test]
async fn independent_branches_go_on_after_a_failure_and_the_instance_fails() {
    let c = cluster(
        "workflows:\n  b:\n    jobs:\n      a: {command: 'exit 1'}\n      b: {command: 'sleep 0.5'}\n      c: {command: 'true', depends_on: [a, b]}\n",
        2,
        0,
    )
    .await;
    let i = c.start("b").await;
    c.archived("b", &i, secs(20)).await;
    let jobs = c.jobs("b", &i).await;
    assert_eq!(jobs["a"].job.history[0].exit_code, Some(1));
    assert_eq!(
        jobs["b"].job.history[0].exit_code,
        Some(0),
        "the independent branch still ran"
    );
    assert!(
        jobs["c"].job.history.is_empty(),
        "the job after the failure never ran"
    );
    c.stop().await;
}

#[tokio::test]
async fn a_disabled_job_succeeds_without_running_and_its_dependents_run() {
    let c = cluster("workflows:\n  x:\n    jobs:\n      off: {command: 'exit 9', disabled: true}\n      after: {command: 'true', depends_on: [off]}\n", 1, 0).await;
    let i = c.start("x").await;
    c.archived("x", &i, secs(20)).await;
    let jobs = c.jobs("x", &i).await;
    let r = &jobs["off"].job.history[0];
    assert_eq!(
        (r.info.as_str(), r.exit_code, r.end_time),
        ("DISABLED", Some(0), Some(r.start_time))
    );
    assert_eq!(jobs["after"].job.history[0].exit_code, Some(0));
    c.stop().await;
}

#[tokio::test]
async fn a_job_sees_its_pinball_environment_and_logs_land_where_documented() {
    let c = cluster("workflows:\n  some_workflow:\n    jobs:\n      some_job: {command: 'echo $PINBALL_WORKFLOW; echo $PINBALL_JOB; echo $PINBALL_INSTANCE; echo $PINBALL_EXECUTION; echo err >&2'}\n", 1, 0).await;
    let i = c.start("some_workflow").await;
    c.archived("some_workflow", &i, secs(20)).await;
    let r = &c.jobs("some_workflow", &i).await["some_job"].job.history[0];
    assert_eq!(
        c.log(r, "stdout"),
        format!("some_workflow\nsome_job\n{i}\n0\n")
    );
    assert_eq!(c.log(r, "stderr"), "err\n");
    let expected = c
        .logs
        .path()
        .join("some_workflow")
        .join(&i)
        .join(format!("some_job.{}.stdout", r.start_time as i64));
    assert_eq!(r.logs["stdout"], expected.display().to_string());
    c.stop().await;
}

#[tokio::test]
async fn the_abort_timeout_kills_a_job_and_fails_it() {
    let c = cluster(
        "workflows:\n  t:\n    jobs:\n      slow: {command: 'sleep 30', abort_timeout_sec: 1}\n",
        1,
        0,
    )
    .await;
    let started = Instant::now();
    let i = c.start("t").await;
    c.archived("t", &i, secs(20)).await;
    assert!(
        started.elapsed() < secs(15),
        "killed after about a second, not after 30: {:?}",
        started.elapsed()
    );
    let r = &c.jobs("t", &i).await["slow"].job.history[0];
    assert_eq!(r.exit_code, Some(-15), "ended by SIGTERM");
    assert!(c.log(r, "pinlog").contains("abort_timeout_sec"));
    c.stop().await;
}

#[tokio::test]
async fn a_record_left_open_by_a_dead_worker_counts_as_a_failed_attempt() {
    let c = cluster(
        "workflows:\n  l:\n    jobs:\n      j: {command: 'true', max_attempts: 2}\n",
        0,
        30,
    )
    .await;
    let i = c.start("l").await;
    // A worker claimed the job, published its start, then died: its lease ended.
    let token = c
        .client
        .query_prefix(&format!("/workflow/l/{i}/job/runnable/j"))
        .await
        .unwrap()
        .remove(0);
    let mut jt = JobToken::parse(token).unwrap();
    jt.job
        .history
        .push(ExecutionRecord::new(inst(&i), "true", 1.0));
    let dead = Token {
        owner: Some("dead_worker".into()),
        expiration_time: Some(now() - 1),
        data: Some(jt.job.to_data()),
        ..jt.token.clone()
    };
    c.client
        .modify(ModifyRequest::update(vec![dead]))
        .await
        .unwrap();
    let (stop, stopped) = watch::channel(false);
    let logs = tempfile::tempdir().unwrap();
    let worker = tokio::spawn(run_workers(
        Arc::new(c.client.clone()),
        settings(logs.path(), 30),
        1,
        stopped,
    ));
    c.wait_for("l", &i, secs(10), "the job finishes", |ts| {
        ts.iter().any(|t| t.name.ends_with("waiting/j"))
    })
    .await;
    let _ = stop.send(true);
    worker.await.unwrap();
    let history = &c.jobs("l", &i).await["j"].job.history;
    assert_eq!(
        history.len(),
        2,
        "the open attempt was closed and the job ran again"
    );
    assert_eq!(history[0].exit_code, Some(1));
    assert!(
        std::fs::read_to_string(&history[0].logs["pinlog"])
            .unwrap()
            .contains("executor failed to renew job ownership on time")
    );
    assert_eq!(history[1].exit_code, Some(0));
    c.stop().await;
}

#[tokio::test]
async fn a_worker_whose_lease_ended_cannot_commit_a_stale_result() {
    let c = cluster("workflows:\n  s:\n    jobs:\n      j: {command: 'true'}\n      k: {command: 'true', depends_on: [j]}\n", 0, 30).await;
    let i = c.start("s").await;
    let pattern = Query {
        name_prefix: name::ALL_RUNNABLE_JOBS.into(),
        max_tokens: Some(1),
    };
    let claim = |owner: &str, exp: i64| QueryAndOwnRequest {
        owner: owner.into(),
        expiration_time: exp,
        query: Some(pattern.clone()),
        wait_ms: Some(5000),
    };
    let stale = c
        .client
        .query_and_own(claim("slow_worker", now() + 1))
        .await
        .unwrap()
        .tokens
        .remove(0);
    let heir = c
        .client
        .query_and_own(claim("heir", now() + 60))
        .await
        .unwrap()
        .tokens
        .remove(0);
    assert_eq!(
        heir.name, stale.name,
        "the heir took the job once the first lease ended"
    );
    let mut jt = JobToken::parse(stale).unwrap();
    jt.job.history.push(ExecutionRecord {
        exit_code: Some(0),
        end_time: Some(2.0),
        ..ExecutionRecord::new(inst(&i), "", 0.0)
    });
    let job = jt.job.clone();
    let outcome = progress::commit_success(&c.client, &jt, &job, "slow_worker")
        .await
        .unwrap();
    assert_eq!(outcome, progress::Committed::LostLease);
    let live = c
        .client
        .query_prefix(&name::instance_prefix(&wf("s"), &inst(&i)))
        .await
        .unwrap();
    let j = live
        .iter()
        .find(|t| t.name.ends_with("runnable/j"))
        .expect("still the heir's runnable job");
    assert_eq!(j.owner.as_deref(), Some("heir"));
    assert!(
        !live.iter().any(|t| t.name.contains("/input/k/")),
        "no downstream event was posted"
    );
    c.stop().await;
}

#[tokio::test]
async fn drain_holds_an_instance_and_undrain_releases_it() {
    let c = cluster("workflows:\n  dr:\n    jobs:\n      a: {command: 'true'}\n      b: {command: 'true', depends_on: [a]}\n", 0, 0).await;
    let i = c.start("dr").await;
    let out = c.util(UtilCommand::Drain, Some("dr"), Some(&i), &[]).await;
    assert_eq!(
        out,
        format!("set DRAIN.  Its token is /workflow/dr/{i}/__SIGNAL__/DRAIN\n")
    );
    assert_eq!(
        c.util(UtilCommand::Drain, Some("dr"), Some(&i), &[]).await,
        "DRAIN has been already set.  Not changing anything this time\n"
    );
    let (stop, stopped) = watch::channel(false);
    let logs = tempfile::tempdir().unwrap();
    let worker = tokio::spawn(run_workers(
        Arc::new(c.client.clone()),
        settings(logs.path(), 0),
        2,
        stopped,
    ));
    // Workers claim the drained job and hand it back unrun, again and again: each claim and
    // each hand-back is a new version. A worker that ran it would have written its start.
    let first = c.jobs("dr", &i).await["a"].token.version.unwrap();
    c.wait_for(
        "dr",
        &i,
        secs(20),
        "workers claimed the drained job twice",
        |ts| {
            ts.iter().any(|t| {
                t.name.ends_with("/job/runnable/a") && t.version.is_some_and(|v| v >= first + 4)
            })
        },
    )
    .await;
    assert!(
        c.jobs("dr", &i).await["a"].job.history.is_empty(),
        "nothing ran while drained"
    );
    let out = c
        .util(UtilCommand::Undrain, Some("dr"), Some(&i), &[])
        .await;
    assert_eq!(
        out,
        format!("removed DRAIN from /workflow/dr/{i}/__SIGNAL__/DRAIN\n")
    );
    assert_eq!(
        c.util(UtilCommand::Undrain, Some("dr"), Some(&i), &[])
            .await,
        "DRAIN has been already removed.  Not changing anything this time\n"
    );
    c.archived("dr", &i, secs(20)).await;
    assert_eq!(c.jobs("dr", &i).await["b"].job.history.len(), 1);
    let _ = stop.send(true);
    worker.await.unwrap();
    c.stop().await;
}

#[tokio::test]
async fn abort_kills_the_running_job_and_archives_the_instance_as_aborted() {
    let c = cluster("workflows:\n  ab:\n    jobs:\n      long: {command: 'sleep 60'}\n      next: {command: 'true', depends_on: [long]}\n", 1, 300).await;
    let i = c.start("ab").await;
    c.wait_for("ab", &i, secs(10), "the job runs", |ts| {
        ts.iter().any(|t| {
            t.name.ends_with("runnable/long")
                && t.data.as_deref().is_some_and(|d| d.contains("start_time"))
        })
    })
    .await;
    let aborted_at = Instant::now();
    c.util(UtilCommand::Abort, Some("ab"), Some(&i), &[]).await;
    let archived = c.archived("ab", &i, secs(30)).await;
    assert!(
        aborted_at.elapsed() < secs(25),
        "{:?}",
        aborted_at.elapsed()
    );
    assert!(
        archived
            .iter()
            .any(|t| t.name == format!("/workflow/ab/{i}/__SIGNAL__/ABORT")),
        "the ABORT signal is archived with it"
    );
    let jobs = c.jobs("ab", &i).await;
    assert_ne!(
        jobs["long"].job.history[0].exit_code,
        Some(0),
        "the running job was killed"
    );
    assert!(jobs["next"].job.history.is_empty(), "nothing new started");
    c.stop().await;
}

#[tokio::test]
async fn util_retry_reruns_the_failed_jobs_of_a_finished_instance() {
    let marker = tempfile::tempdir().unwrap();
    let flag = marker.path().join("ok");
    let yaml = format!(
        "workflows:\n  rt:\n    jobs:\n      a: {{command: 'true'}}\n      b: {{command: 'test -e {}', depends_on: [a]}}\n",
        flag.display()
    );
    let c = cluster(&yaml, 1, 60).await;
    let i = c.start("rt").await;
    c.wait_for("rt", &i, secs(15), "the instance finishes failed", |ts| {
        ts.iter().any(|t| {
            t.name.ends_with("ARCHIVE")
                && t.data.as_deref().is_some_and(|d| d.contains("TIMESTAMP"))
        })
    })
    .await;
    std::fs::write(&flag, "").unwrap();
    assert_eq!(
        c.util(UtilCommand::Retry, Some("rt"), Some(&i), &[]).await,
        format!("retried 1 job(s) in workflow rt instance {i}\n")
    );
    c.wait_for("rt", &i, secs(15), "the retry succeeds", |ts| {
        ts.iter().any(|t| {
            t.name.ends_with("waiting/b")
                && t.data
                    .as_deref()
                    .is_some_and(|d| d.contains("\"exit_code\":0"))
        })
    })
    .await;
    let b = &c.jobs("rt", &i).await["b"].job.history;
    assert_eq!(
        b.iter().map(|r| r.exit_code.unwrap()).collect::<Vec<_>>(),
        vec![1, 0]
    );
    assert_eq!(
        c.jobs("rt", &i).await["a"].job.history.len(),
        1,
        "the successful job did not run again"
    );
    assert_eq!(
        c.util(UtilCommand::Retry, Some("rt"), Some(&i), &[]).await,
        format!("no failed jobs found in workflow rt instance {i}\n")
    );
    c.stop().await;
}

#[tokio::test]
async fn stop_disable_and_enable_report_what_they_did() {
    let c = cluster("workflows:\n  u:\n    jobs:\n      parent: {command: 'true'}\n      child: {command: 'true', depends_on: [parent]}\n", 0, 0).await;
    assert_eq!(
        c.util(UtilCommand::Stop, Some("does_not_exist"), Some("123"), &[])
            .await,
        "workflow does_not_exist instance 123 not found\n"
    );
    let i = c.start("u").await;
    assert_eq!(
        c.util(
            UtilCommand::Disable,
            Some("u"),
            Some(&i),
            &["parent", "child"]
        )
        .await,
        "disabled 2 job(s) in 1 tries\n"
    );
    assert!(c.jobs("u", &i).await.values().all(|jt| jt.job.disabled));
    assert_eq!(
        c.util(UtilCommand::Disable, Some("u"), Some(&i), &["some_job"])
            .await,
        "job(s) ['some_job'] not found in the master.  Note that only jobs of a running workflow can be disabled\n"
    );
    assert_eq!(
        c.util(UtilCommand::Enable, Some("u"), Some(&i), &["child"])
            .await,
        "enabled 1 job(s) in 1 tries\n"
    );
    assert_eq!(
        c.util(UtilCommand::Stop, Some("u"), Some(&i), &[]).await,
        "removed 2 token(s) in 1 tries\n"
    );
    assert!(
        c.client
            .query_prefix(&name::instance_prefix(&wf("u"), &inst(&i)))
            .await
            .unwrap()
            .is_empty()
    );
    c.stop().await;
}

#[tokio::test]
async fn exit_retires_workers_of_older_generations_only() {
    let c = cluster(
        "workflows:\n  e:\n    jobs:\n      a: {command: 'true'}\n",
        0,
        0,
    )
    .await;
    let config = Config {
        generation: 2,
        ..Config::default()
    };
    let out = pinball::cli::util::run(
        &util(UtilCommand::Exit, None, None, &[]),
        &config,
        &c.client,
    )
    .await
    .unwrap();
    assert_eq!(out, "set EXIT.  Its token is /workflow/__SIGNAL__/EXIT\n");
    let logs = tempfile::tempdir().unwrap();
    let (_stop, stopped) = watch::channel(false);
    let old = tokio::spawn(run_workers(
        Arc::new(c.client.clone()),
        settings(logs.path(), 0),
        2,
        stopped.clone(),
    ));
    tokio::time::timeout(secs(10), old)
        .await
        .expect("generation 1 workers exit")
        .unwrap();
    let newer = WorkerSettings {
        generation: 2,
        ..settings(logs.path(), 0)
    };
    let new = tokio::spawn(run_workers(Arc::new(c.client.clone()), newer, 1, stopped));
    let i = c.start("e").await;
    c.archived("e", &i, secs(20)).await;
    assert!(!new.is_finished(), "generation 2 workers stay");
    let signals = Signals::read(&c.client, &Level::Global).await.unwrap();
    assert!(signals.is_set(Action::EXIT, 1) && !signals.is_set(Action::EXIT, 2));
    new.abort();
    c.stop().await;
}

#[tokio::test]
async fn a_condition_job_polls_until_its_condition_holds() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("data_ready");
    let yaml = format!(
        "workflows:\n  cond:\n    jobs:\n      ready: {{condition: true, command: 'test -e {}', retry_delay_sec: 1, max_attempts: 20}}\n      use: {{command: 'true', depends_on: [ready]}}\n",
        flag.display()
    );
    let c = cluster(&yaml, 2, 0).await;
    let i = c.start("cond").await;
    c.wait_for(
        "cond",
        &i,
        secs(20),
        "the condition is polled twice",
        |ts| {
            ts.iter().any(|t| {
                JobToken::parse(t.clone()).is_ok_and(|jt| {
                    jt.job.name == "ready"
                        && jt
                            .job
                            .history
                            .iter()
                            .filter(|r| r.exit_code == Some(1))
                            .count()
                            >= 2
                })
            })
        },
    )
    .await;
    assert!(
        c.jobs("cond", &i).await["use"].job.history.is_empty(),
        "nothing downstream runs before the condition holds"
    );
    std::fs::write(&flag, "").unwrap();
    c.archived("cond", &i, secs(20)).await;
    let jobs = c.jobs("cond", &i).await;
    let polls = &jobs["ready"].job.history;
    assert!(polls.len() >= 2, "the condition was polled more than once");
    assert!(
        polls[..polls.len() - 1]
            .iter()
            .all(|r| r.exit_code == Some(1))
    );
    assert_eq!(polls.last().unwrap().exit_code, Some(0));
    assert_eq!(jobs["use"].job.history.len(), 1);
    c.stop().await;
}

#[tokio::test]
async fn waiting_jobs_whose_events_arrive_from_elsewhere_are_made_runnable() {
    let c = cluster(
        "workflows:\n  unused:\n    jobs:\n      x: {command: 'true'}\n",
        0,
        0,
    )
    .await;
    let parent = pinball::workflow::job::Job {
        job_type: pinball::workflow::job::JobType::ShellJob,
        name: job("parent_job"),
        inputs: vec![name::JobName::workflow_start()],
        outputs: vec![job("child_job")],
        emails: vec![],
        max_attempts: 1,
        retry_delay_sec: 0,
        warn_timeout_sec: None,
        abort_timeout_sec: None,
        disabled: false,
        command: "true".into(),
        cleanup_template: None,
        events: vec![],
        history: vec![],
    };
    let child = pinball::workflow::job::Job {
        name: job("child_job"),
        inputs: vec![job("parent_job")],
        outputs: vec![],
        ..parent.clone()
    };
    let waiting = |j: &pinball::workflow::job::Job| {
        Token::new(
            name::job_token(
                &wf("some_workflow"),
                &inst("12345"),
                name::JobState::Waiting,
                &j.name,
            ),
            Some(j.to_data()),
        )
    };
    c.client
        .modify(ModifyRequest::update(vec![
            waiting(&parent),
            waiting(&child),
        ]))
        .await
        .unwrap();
    let (stop, stopped) = watch::channel(false);
    let logs = tempfile::tempdir().unwrap();
    let worker = tokio::spawn(run_workers(
        Arc::new(c.client.clone()),
        settings(logs.path(), 0),
        1,
        stopped,
    ));
    // The worker sweeps the instances before it parks its first claim: once it is parked it
    // has looked at this instance and found nothing to do.
    wait_parked(&c.client, 1).await;
    let live = c
        .client
        .query_prefix("/workflow/some_workflow/")
        .await
        .unwrap();
    assert!(
        live.iter()
            .all(|t| t.name.contains("/job/waiting/") && t.owner.is_none()),
        "without events nothing moves (scenario 15)"
    );
    let start = name::event_token(
        &wf("some_workflow"),
        &inst("12345"),
        &job("parent_job"),
        &name::JobName::workflow_start(),
        "workflow_start_event",
    );
    c.client
        .modify(ModifyRequest::update(vec![Token::new(
            start,
            Some(r#"{"creator":"parser"}"#.into()),
        )]))
        .await
        .unwrap();
    c.archived("some_workflow", "12345", secs(20)).await;
    let jobs = c.jobs("some_workflow", "12345").await;
    assert_eq!(
        jobs["parent_job"].job.history.len(),
        1,
        "the start event made the parent runnable (scenario 16)"
    );
    assert_eq!(
        jobs["child_job"].job.history.len(),
        1,
        "and the parent's success ran the child (scenario 18)"
    );
    let _ = stop.send(true);
    worker.await.unwrap();
    c.stop().await;
}

#[tokio::test]
async fn a_worker_told_to_stop_lets_its_running_job_finish() {
    let c = cluster(
        "workflows:\n  g:\n    jobs:\n      j: {command: 'sleep 1; echo finished'}\n",
        1,
        60,
    )
    .await;
    let i = c.start("g").await;
    c.wait_for("g", &i, secs(10), "the job runs", |ts| {
        ts.iter().any(|t| {
            t.name.ends_with("runnable/j")
                && t.data.as_deref().is_some_and(|d| d.contains("start_time"))
        })
    })
    .await;
    let _ = c.stop.send(true);
    let stopping = Instant::now();
    while !c.workers.as_ref().unwrap().is_finished() {
        assert!(
            stopping.elapsed() < secs(10),
            "workers stop within their grace period"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = &c.jobs("g", &i).await["j"].job.history[0];
    assert_eq!(
        r.exit_code,
        Some(0),
        "the running job finished within the grace period"
    );
    assert_eq!(c.log(r, "stdout"), "finished\n");
    c.stop().await;
}

#[tokio::test]
async fn the_exec_parser_reads_definitions_from_a_program() {
    let dir = tempfile::tempdir().unwrap();
    let json = r#"{"workflows": {"gen": {"jobs": {"a": {"command": "true"}, "b": {"command": "true", "depends_on": ["a"]}}}}}"#;
    std::fs::write(dir.path().join("defs.json"), json).unwrap();
    let mut config = Config {
        parser: "exec".into(),
        ..Config::default()
    };
    config.parser_params.command = Some(format!("cat {}", dir.path().join("defs.json").display()));
    let defs = pinball::parser::load_from_config(&config).unwrap();
    assert_eq!(defs["gen"].graph().jobs["b"].depends_on, vec![job("a")]);
    let bad = r#"{"workflows": {"w": {"jobs": {"a": {"command": "x", "depends_on": ["zz"]}}}}}"#;
    std::fs::write(dir.path().join("defs.json"), bad).unwrap();
    let err = pinball::parser::load_from_config(&config)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("workflow w") && err.contains("unknown job zz"),
        "{err}"
    );
}

const CHAIN: &str = "workflows:\n  ch:\n    jobs:\n      a: {command: 'true'}\n      b: {command: 'true', depends_on: [a]}\n      c: {command: 'true', depends_on: [b]}\n";

fn ran(jobs: &BTreeMap<String, JobToken>) -> Vec<(String, usize)> {
    jobs.iter()
        .map(|(n, jt)| (n.clone(), jt.job.history.len()))
        .collect()
}

fn finished(ts: &[Token]) -> bool {
    ts.iter().any(|t| {
        t.name.ends_with("__SIGNAL__/ARCHIVE")
            && t.data.as_deref().is_some_and(|d| d.contains("TIMESTAMP"))
    })
}

#[tokio::test]
async fn pause_owns_every_token_and_resume_releases_them() {
    let c = cluster(CHAIN, 0, 0).await;
    let i = c.start("ch").await;
    assert_eq!(
        c.util(UtilCommand::Pause, Some("ch"), Some(&i), &[]).await,
        "claimed 3 token(s) in 1 tries\n"
    );
    let live = c
        .client
        .query_prefix(&name::instance_prefix(&wf("ch"), &inst(&i)))
        .await
        .unwrap();
    assert!(live.iter().all(|t| {
        t.owner
            .as_deref()
            .is_some_and(|o| o.starts_with("workflow_util"))
            && t.expiration_time == Some(NEVER)
    }));
    assert_eq!(
        c.util(UtilCommand::Resume, Some("ch"), Some(&i), &[]).await,
        "released ownership of 3 token(s)\n"
    );
    let live = c
        .client
        .query_prefix(&name::instance_prefix(&wf("ch"), &inst(&i)))
        .await
        .unwrap();
    assert!(
        live.iter()
            .all(|t| t.owner.is_none() && t.expiration_time.is_none())
    );
    c.stop().await;
}

#[tokio::test]
async fn redo_runs_one_finished_job_again() {
    let c = cluster(CHAIN, 1, 60).await;
    let i = c.start("ch").await;
    c.wait_for("ch", &i, secs(15), "the instance finishes", finished)
        .await;
    let mut args = util(UtilCommand::Redo, Some("ch"), Some(&i), &["b"]);
    args.execution = Some(0);
    assert_eq!(
        c.util_with(args).await,
        format!("redoing execution 0 of job b in workflow ch instance {i}\n")
    );
    c.wait_for("ch", &i, secs(15), "b ran again", |ts| {
        ts.iter().any(|t| {
            t.name.ends_with("waiting/b")
                && t.data
                    .as_deref()
                    .is_some_and(|d| d.matches("start_time").count() == 2)
        })
    })
    .await;
    let mut args = util(UtilCommand::Redo, Some("ch"), Some(&i), &["b"]);
    args.execution = Some(7);
    assert_eq!(
        c.util_with(args).await,
        "could not find execution 7 in job history\n"
    );
    let mut args = util(UtilCommand::Redo, Some("ch"), Some(&i), &["a", "b"]);
    args.execution = Some(0);
    let err = pinball::cli::util::run(&args, &c.config(), &c.client)
        .await
        .unwrap_err();
    assert_eq!(err.message, "redo command takes a single job");
    c.stop().await;
}

#[tokio::test]
async fn poison_reruns_the_roots_and_everything_downstream() {
    let c = cluster(CHAIN, 2, 60).await;
    let i = c.start("ch").await;
    c.wait_for("ch", &i, secs(15), "the instance finishes", finished)
        .await;
    assert_eq!(
        c.util(UtilCommand::Poison, Some("ch"), Some(&i), &["b"])
            .await,
        format!("poisoned workflow ch instance {i} roots ['b']\n")
    );
    c.wait_for("ch", &i, secs(15), "the poisoned jobs ran", |ts| {
        finished(ts)
            && ts
                .iter()
                .filter(|t| {
                    t.data
                        .as_deref()
                        .is_some_and(|d| d.matches("start_time").count() == 2)
                })
                .count()
                == 2
    })
    .await;
    assert_eq!(
        ran(&c.jobs("ch", &i).await),
        vec![("a".into(), 1), ("b".into(), 2), ("c".into(), 2)]
    );

    let out = c.util(UtilCommand::Poison, Some("ch"), None, &["b"]).await;
    let new = out
        .split("/workflow/ch/")
        .nth(1)
        .unwrap()
        .trim_end_matches("/\n")
        .to_owned();
    assert!(
        out.starts_with("poisoned workflow ch roots ['b'].  Tokens of the new instance are under"),
        "{out}"
    );
    c.wait_for("ch", &new, secs(15), "the new instance finishes", finished)
        .await;
    assert_eq!(
        ran(&c.jobs("ch", &new).await),
        vec![("a".into(), 0), ("b".into(), 1), ("c".into(), 1)],
        "only b and what follows ran"
    );
    c.stop().await;
}

#[tokio::test]
async fn retry_of_an_archived_instance_copies_it_and_reruns_only_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("fixed");
    let yaml = format!(
        "workflows:\n  ar:\n    jobs:\n      ok: {{command: 'true'}}\n      bad: {{command: 'test -e {}', depends_on: [ok]}}\n",
        flag.display()
    );
    let c = cluster(&yaml, 1, 0).await;
    let i = c.start("ar").await;
    c.archived("ar", &i, secs(15)).await;
    std::fs::write(&flag, "").unwrap();
    let out = c.util(UtilCommand::Retry, Some("ar"), Some(&i), &[]).await;
    assert!(
        out.starts_with(&format!(
            "retried workflow ar instance {i}.  Its tokens are under /workflow/ar/"
        )),
        "{out}"
    );
    let new = out
        .split("/workflow/ar/")
        .nth(1)
        .unwrap()
        .trim_end_matches("/\n")
        .to_owned();
    assert_ne!(new, i);
    c.archived("ar", &new, secs(15)).await;
    let jobs = c.jobs("ar", &new).await;
    assert_eq!(
        jobs["ok"].job.history.len(),
        1,
        "the job that succeeded did not run again (its history was copied)"
    );
    let bad: Vec<i32> = jobs["bad"]
        .job
        .history
        .iter()
        .map(|r| r.exit_code.unwrap())
        .collect();
    assert_eq!(bad, vec![1, 0]);
    c.stop().await;
}

#[tokio::test]
async fn cleanup_removes_only_instances_older_than_the_age() {
    let c = cluster(CHAIN, 1, 0).await;
    let recent = c.start("ch").await;
    c.archived("ch", &recent, secs(15)).await;
    // An instance that ended long ago, with a log folder.
    let store = storage::open(&c.app.url).unwrap();
    let mut old_job = c.jobs("ch", &recent).await["a"].clone();
    for r in &mut old_job.job.history {
        r.start_time = 10.0;
        r.end_time = Some(20.0);
    }
    let old = Token {
        name: name::job_token(&wf("ch"), &inst("1"), name::JobState::Waiting, &job("a")),
        version: Some(1),
        data: Some(old_job.job.to_data()),
        ..old_job.token.clone()
    };
    let batch = pinball::storage::CommitBatch {
        archived: vec![(&old).into()],
        version_floor: 0,
        ..Default::default()
    };
    store.commit(&c.app.master_name, &batch).await.unwrap();
    std::fs::create_dir_all(c.logs.path().join("ch").join("1")).unwrap();
    let mut args = util(UtilCommand::Cleanup, None, None, &[]);
    args.age_days = 6;
    let err = pinball::cli::util::run(&args, &c.config(), &c.client)
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        "age of instances to remove must be at least 7 days"
    );
    args.age_days = 10;
    assert_eq!(
        c.util_with(args).await,
        "removed 1 token(s) and 1 directory(ies)\n"
    );
    assert!(
        store
            .read(&c.app.master_name, Table::Archived, "/workflow/ch/1/")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !store
            .read(
                &c.app.master_name,
                Table::Archived,
                &name::instance_prefix(&wf("ch"), &inst(&recent))
            )
            .await
            .unwrap()
            .is_empty(),
        "the recent instance stays"
    );
    c.stop().await;
}

#[tokio::test]
async fn reload_applies_an_edited_definition_to_a_running_instance() {
    let c = cluster(
        "workflows:\n  rl:\n    jobs:\n      j: {command: 'echo v1'}\n",
        0,
        0,
    )
    .await;
    let i = c.start("rl").await;
    let file = c.logs.path().join("defs.yaml");
    std::fs::write(&file, "workflows:\n  rl:\n    jobs:\n      j: {command: 'echo v2', priority: 7, emails: [j@example.com]}\n").unwrap();
    let mut config = c.config();
    config.parser_params.workflows_config = Some(file.display().to_string());
    let run = |jobs: &[&str]| {
        let args = util(UtilCommand::Reload, Some("rl"), Some(&i), jobs);
        let config = config.clone();
        let client = c.client.clone();
        async move {
            pinball::cli::util::run(&args, &config, &client)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        run(&["nope"]).await,
        "jobs ['nope'] not found in workflow rl defined in the configured definitions\n"
    );
    assert_eq!(
        run(&[]).await,
        format!("reloaded all jobs in workflow rl instance {i}\n")
    );
    let j = &c.jobs("rl", &i).await["j"];
    assert_eq!((j.job.command.as_str(), j.token.priority), ("echo v2", 7.0));
    assert_eq!(j.job.emails, vec!["j@example.com".to_string()]);
    let (stop, stopped) = watch::channel(false);
    let worker = tokio::spawn(run_workers(
        Arc::new(c.client.clone()),
        settings(c.logs.path(), 0),
        1,
        stopped,
    ));
    c.archived("rl", &i, secs(15)).await;
    assert_eq!(
        c.log(&c.jobs("rl", &i).await["j"].job.history[0], "stdout"),
        "v2\n",
        "the reloaded command ran"
    );
    let _ = stop.send(true);
    worker.await.unwrap();
    c.stop().await;
}

#[tokio::test]
async fn poison_of_an_archived_instance_starts_a_new_one_from_its_jobs() {
    let c = cluster(CHAIN, 2, 0).await;
    let i = c.start("ch").await;
    c.archived("ch", &i, secs(15)).await;
    let out = c
        .util(UtilCommand::Poison, Some("ch"), Some(&i), &["c"])
        .await;
    assert!(
        out.starts_with(
            "poisoned workflow ch roots ['c'].  Tokens of the new instance are under /workflow/ch/"
        ),
        "{out}"
    );
    let new = out
        .split("/workflow/ch/")
        .nth(1)
        .unwrap()
        .trim_end_matches("/\n")
        .to_owned();
    c.archived("ch", &new, secs(15)).await;
    assert_eq!(
        ran(&c.jobs("ch", &new).await),
        vec![("a".into(), 0), ("b".into(), 0), ("c".into(), 1)]
    );
    c.stop().await;
}

#[tokio::test]
async fn a_failed_job_runs_its_cleanup_template_with_its_kill_ids() {
    let yaml = "workflows:\n  cl:\n    jobs:\n      j:\n        command: 'echo PINBALL:kill_id=123; echo PINBALL:kill_id=456; echo PINBALL:kill_id=123; exit 1'\n        cleanup_template: 'echo cleanup %(kill_id)s'\n";
    let c = cluster(yaml, 1, 0).await;
    let i = c.start("cl").await;
    c.archived("cl", &i, secs(15)).await;
    let r = &c.jobs("cl", &i).await["j"].job.history[0];
    assert_eq!(
        r.properties["kill_id"],
        vec!["123".to_string(), "456".to_string()],
        "values are deduplicated, in order"
    );
    assert_eq!(r.cleanup_exit_code, Some(0));
    let out = c.log(r, "stdout");
    assert!(
        out.contains("<<<<<<<<<<Start of cleanup code logs>>>>>>>>>>\ncleanup 123,456\n"),
        "{out}"
    );
    assert!(out.contains("<<<<<<<<<<End of cleanup code logs>>>>>>>>>>"));
    c.stop().await;
}

#[tokio::test]
async fn the_two_job_workflow_also_runs_on_mariadb() {
    let Some(url) = mysql_url("the_two_job_workflow_also_runs_on_mariadb") else {
        return;
    };
    let c = cluster_on(Some(&url), "workflows:\n  wf:\n    jobs:\n      parent: {command: 'echo PINBALL:EVENT_ATTR:akey=aval'}\n      child: {command: 'echo got %(akey)s', depends_on: [parent]}\n      failing: {command: 'exit 4', max_attempts: 2}\n", 2, 0).await;
    let i = c.start("wf").await;
    c.archived("wf", &i, secs(20)).await;
    let jobs = c.jobs("wf", &i).await;
    assert_eq!(c.log(&jobs["child"].job.history[0], "stdout"), "got aval\n");
    assert_eq!(
        jobs["failing"].job.history.len(),
        2,
        "retried once, then failed for good"
    );
    c.stop().await;
}

#[tokio::test]
async fn a_workflow_level_abort_ends_its_running_instances_as_aborted() {
    let c = cluster("workflows:\n  wa:\n    jobs:\n      long: {command: 'sleep 60'}\n      next: {command: 'true', depends_on: [long]}\n", 1, 300).await;
    let i = c.start("wa").await;
    c.wait_for("wa", &i, secs(10), "the job runs", |ts| {
        ts.iter().any(|t| {
            t.name.ends_with("runnable/long")
                && t.data.as_deref().is_some_and(|d| d.contains("start_time"))
        })
    })
    .await;
    assert_eq!(
        c.util(UtilCommand::Abort, Some("wa"), None, &[]).await,
        "set ABORT.  Its token is /workflow/wa/__SIGNAL__/ABORT\n"
    );
    let archived = c.archived("wa", &i, secs(40)).await;
    assert!(
        archived
            .iter()
            .any(|t| t.name == format!("/workflow/wa/{i}/__SIGNAL__/ABORT")),
        "archived as aborted"
    );
    assert!(c.jobs("wa", &i).await["next"].job.history.is_empty());
    c.stop().await;
}
