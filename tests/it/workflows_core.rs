//! Workflows end to end (PINBALL_SPEC §12 scenarios 15-35, 46-56): a real master over HTTP, real
//! workers running real shell commands, definitions imported from YAML, and what a user would
//! check: what ran, in which order, with which values, what the logs and the archive hold.

use std::time::{Duration, Instant};

use pinball::config::Config;
use pinball::master::MasterClient;
use pinball::master::MasterError;
use pinball::token::name::{self};
use pinball::token::*;
use pinball::workflow::instance::JobToken;
use pinball::workflow::job::ExecutionRecord;
use pinball::workflow::progress;

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
async fn a_fan_out_wider_than_one_request_runs_every_job_and_its_sink_once() {
    // 600 downstream jobs need 1,200 queries to read: more than one request may carry. The
    // first job's success failed on that limit and was retried for ever.
    let mut yaml = String::from("workflows:\n  wide:\n    jobs:\n      root: {command: 'true'}\n");
    let fan: Vec<String> = (0..600).map(|k| format!("f{k:03}")).collect();
    for f in &fan {
        yaml += &format!("      {f}: {{command: 'true', depends_on: [root]}}\n");
    }
    yaml += &format!(
        "      sink: {{command: 'true', depends_on: [{}]}}\n",
        fan.join(", ")
    );
    let c = cluster(&yaml, 4, 0).await;
    let i = c.start("wide").await;
    c.archived("wide", &i, secs(120)).await;
    let jobs = c.jobs("wide", &i).await;
    assert_eq!(jobs.len(), 602);
    assert!(
        jobs.values()
            .all(|j| j.job.history.len() == 1 && j.job.history[0].exit_code == Some(0)),
        "every job ran once and succeeded"
    );
    assert_eq!(jobs["sink"].job.history[0].events.len(), 600);
    c.stop().await;
}

/// Counts the `/group` calls (the count of a join's inputs) going through it.
struct CountingGroups {
    inner: pinball::master::HttpMasterClient,
    groups: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Through for CountingGroups {
    fn inner(&self) -> &pinball::master::HttpMasterClient {
        &self.inner
    }
    async fn group(&self, req: GroupRequest) -> Result<GroupResponse, MasterError> {
        self.groups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.group(req).await
    }
}

#[tokio::test]
async fn the_last_input_of_a_wide_join_to_end_makes_it_runnable_though_its_read_came_first() {
    // Twelve inputs, each claimed and ended by hand in name order; the last one read what
    // its join waits on when it started, before the other eleven ended. Its success used
    // that read, found the join still missing inputs and left it waiting for a settle (a read
    // of the whole instance): a fan-out's sink started 10-20 ms after its last input ended.
    let inputs: Vec<String> = (0..12).map(|k| format!("a{k:02}")).collect();
    let mut yaml = String::from("workflows:\n  join:\n    jobs:\n");
    for x in &inputs {
        yaml += &format!("      {x}: {{command: 'true'}}\n");
    }
    yaml += &format!(
        "      j: {{command: 'true', depends_on: [{}]}}\n",
        inputs.join(", ")
    );
    let c = cluster(&yaml, 0, 30).await;
    let i = c.start("join").await;
    let counting = Via(CountingGroups {
        inner: c.client.clone(),
        groups: Default::default(),
    });
    let mut claimed = Vec::new();
    for _ in &inputs {
        let req = QueryAndOwnRequest {
            owner: "hand".into(),
            expiration_time: now() + 60,
            query: Some(Query {
                name_prefix: name::ALL_RUNNABLE_JOBS.into(),
                max_tokens: Some(1),
            }),
            wait_ms: Some(5000),
            lease_sec: None,
            pools: None,
            record_grant: false,
            context: false,
        };
        let token = c.client.query_and_own(req).await.unwrap().tokens.remove(0);
        claimed.push(JobToken::parse(token).unwrap());
    }
    claimed.sort_by(|a, b| a.job.name.cmp(&b.job.name));
    let at = (&wf("join"), &inst(&i));
    let last = claimed.pop().unwrap();
    let early = progress::read_downstream(&counting, at, &last.job.name, &last.job.outputs)
        .await
        .unwrap();
    let ended = |jt: &JobToken| {
        let mut job = jt.job.clone();
        job.history.push(ExecutionRecord {
            exit_code: Some(0),
            end_time: Some(2.0),
            ..ExecutionRecord::new(inst(&i), "true", 1.0)
        });
        job
    };
    for jt in &claimed {
        let outcome = progress::commit_success(&counting, jt, &ended(jt), "hand", &[], &[], None)
            .await
            .unwrap();
        // The join waits on the last input, which is runnable: nothing to settle.
        assert_eq!(outcome, progress::Committed::Progressed, "{}", jt.job.name);
    }
    assert_eq!(
        counting.0.groups.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "while the last input (by name) had no event, no success counted the join's inputs"
    );
    let outcome = progress::commit_success(
        &counting,
        &last,
        &ended(&last),
        "hand",
        &[],
        &[],
        Some(early),
    )
    .await
    .unwrap();
    assert_eq!(outcome, progress::Committed::Progressed);
    let live = c
        .client
        .query_prefix(&name::instance_prefix(&wf("join"), &inst(&i)))
        .await
        .unwrap();
    let join = live
        .iter()
        .find(|t| t.name == format!("/workflow/join/{i}/job/runnable/j"))
        .expect("the join is runnable");
    let join = JobToken::parse(join.clone()).unwrap();
    assert_eq!(
        join.job.events.len(),
        12,
        "it runs with an event of each input"
    );
    assert!(
        !live.iter().any(|t| t.name.contains("/input/")),
        "its events were consumed"
    );
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
    let live = c.wait_finished("r", &i, secs(20)).await;
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
    let c = cluster(&one_job("b", "a: {command: 'exit 1'}\n      b: {command: 'sleep 0.5'}\n      c: {command: 'true', depends_on: [a, b]}"), 2, 0).await;
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
        &one_job("t", "slow: {command: 'sleep 30', abort_timeout_sec: 1}"),
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
    let c = cluster(&one_job("unused", "x: {command: 'true'}"), 0, 0).await;
    let parent = pinball::workflow::job::Job {
        inputs: vec![name::JobName::workflow_start()],
        outputs: vec![job("child_job")],
        ..pinball::workflow::job::Job::shell(job("parent_job"), "true")
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
    let workers = c.add_workers(1, 0);
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
    workers.stop().await;
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
    if let Some(url) = mysql_url("the_two_job_workflow_also_runs_on_mariadb") {
        two_job_workflow_on(&url).await;
    }
}

#[tokio::test]
async fn the_two_job_workflow_also_runs_on_postgresql() {
    if let Some(url) = postgres_url("the_two_job_workflow_also_runs_on_postgresql") {
        two_job_workflow_on(&url).await;
    }
}

async fn two_job_workflow_on(url: &str) {
    let c = cluster_on(Some(url), "workflows:\n  wf:\n    jobs:\n      parent: {command: 'echo PINBALL:EVENT_ATTR:akey=aval'}\n      child: {command: 'echo got %(akey)s', depends_on: [parent]}\n      failing: {command: 'exit 4', max_attempts: 2}\n", 2, 0).await;
    let i = c.start("wf").await;
    c.archived("wf", &i, secs(20)).await;
    let jobs = c.jobs("wf", &i).await;
    assert_eq!(c.log(&jobs["child"].job.history[0], "stdout"), "got aval\n");
    assert_eq!(
        jobs["failing"].job.history.len(),
        2,
        "retried once, then failed for good: {:?}",
        jobs["failing"].job.history
    );
    c.stop().await;
}
