//! Leases end to end: a record left open by a dead worker, a worker whose lease ended and
//! cannot commit a stale result, a worker told to stop that lets its job finish.

use std::time::{Duration, Instant};

use pinball::master::MasterClient;
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
async fn a_second_execution_lost_in_a_row_counts_as_a_failed_attempt() {
    let c = cluster(
        &one_job("l", "j: {command: 'true', max_attempts: 2}"),
        0,
        30,
    )
    .await;
    let i = c.start("l").await;
    // A worker claimed the job, published its start, then died: its lease ended. One
    // execution was lost that way already, and lost_lease_retries is 1.
    let token = c
        .client
        .query_prefix(&format!("/workflow/l/{i}/job/runnable/j"))
        .await
        .unwrap()
        .remove(0);
    let mut jt = JobToken::parse(token).unwrap();
    jt.job.history.push(ExecutionRecord {
        end_time: Some(1.0),
        lost: Some("worker w0 stopped renewing its lease".into()),
        counted: false,
        ..ExecutionRecord::new(inst(&i), "true", 0.5)
    });
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
    let workers = c.add_workers(1, 30);
    c.wait_for("l", &i, secs(10), "the job finishes", |ts| {
        ts.iter().any(|t| t.name.ends_with("waiting/j"))
    })
    .await;
    workers.stop().await;
    let history = &c.jobs("l", &i).await["j"].job.history;
    assert_eq!(
        history.len(),
        3,
        "the open attempt was closed and the job ran again"
    );
    assert!(history[0].lost.is_some());
    assert_eq!(
        history[1].exit_code, None,
        "a lost execution has no exit code: the process was never seen to exit"
    );
    assert!(
        history[1].lost.is_some() && history[1].counted,
        "the second loss in a row counts as a failed attempt"
    );
    assert!(
        std::fs::read_to_string(&history[1].logs["pinlog"])
            .unwrap()
            .contains("executor failed to renew job ownership on time")
    );
    assert_eq!(history[2].exit_code, Some(0));
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
        lease_sec: None,
        pools: None,
        record_grant: false,
        context: false,
    };
    // Two seconds, not one: the master grants no lease that has already ended, and `now() + 1`
    // had ended when the master's clock crossed into the next second before granting it.
    let stale = c
        .client
        .query_and_own(claim("slow_worker", now() + 2))
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
    let outcome = progress::commit_success(&c.client, &jt, &job, "slow_worker", &[], &[], None)
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
async fn a_worker_told_to_stop_lets_its_running_job_finish() {
    let c = cluster(
        &one_job("g", "j: {command: 'sleep 1; echo finished'}"),
        1,
        60,
    )
    .await;
    let i = c.start("g").await;
    c.wait_running("g", &i, "j", secs(10)).await;
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
