//! Signals end to end (PINBALL_SPEC §4): DRAIN holds an instance, ABORT kills its jobs and
//! archives it as ABORTED (at instance and workflow level), EXIT retires older workers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pinball::config::Config;
use pinball::master::MasterClient;
use pinball::ops::Command;
use pinball::token::name::Level;
use pinball::workflow::signal::{Action, Signals};
use pinball::workflow::worker::{WorkerSettings, run_workers};
use tokio::sync::watch;

use crate::helpers::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test]
async fn drain_holds_an_instance_and_undrain_releases_it() {
    let c = cluster("workflows:\n  dr:\n    jobs:\n      a: {command: 'true'}\n      b: {command: 'true', depends_on: [a]}\n", 0, 0).await;
    let i = c.start("dr").await;
    let out = c.util(Command::Drain, Some("dr"), Some(&i), &[]).await;
    assert_eq!(
        out,
        format!("set DRAIN.  Its token is /workflow/dr/{i}/__SIGNAL__/DRAIN\n")
    );
    assert_eq!(
        c.util(Command::Drain, Some("dr"), Some(&i), &[]).await,
        "DRAIN has been already set.  Not changing anything this time\n"
    );
    let workers = c.add_workers(2, 0);
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
    let out = c.util(Command::Undrain, Some("dr"), Some(&i), &[]).await;
    assert_eq!(
        out,
        format!("removed DRAIN from /workflow/dr/{i}/__SIGNAL__/DRAIN\n")
    );
    assert_eq!(
        c.util(Command::Undrain, Some("dr"), Some(&i), &[]).await,
        "DRAIN has been already removed.  Not changing anything this time\n"
    );
    c.archived("dr", &i, secs(20)).await;
    assert_eq!(c.jobs("dr", &i).await["b"].job.history.len(), 1);
    workers.stop().await;
    c.stop().await;
}

#[tokio::test]
async fn abort_kills_the_running_job_and_archives_the_instance_as_aborted() {
    let c = cluster("workflows:\n  ab:\n    jobs:\n      long: {command: 'sleep 60'}\n      next: {command: 'true', depends_on: [long]}\n", 1, 300).await;
    let i = c.start("ab").await;
    c.wait_running("ab", &i, "long", secs(10)).await;
    let aborted_at = Instant::now();
    c.util(Command::Abort, Some("ab"), Some(&i), &[]).await;
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
async fn exit_retires_workers_of_older_generations_only() {
    let c = cluster(&one_job("e", "a: {command: 'true'}"), 0, 0).await;
    let config = Config {
        generation: 2,
        ..Config::default()
    };
    let out = c
        .apply_with(action(Command::Exit, None, None, &[]), &config)
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
async fn a_workflow_level_abort_ends_its_running_instances_as_aborted() {
    let c = cluster("workflows:\n  wa:\n    jobs:\n      long: {command: 'sleep 60'}\n      next: {command: 'true', depends_on: [long]}\n", 1, 300).await;
    let i = c.start("wa").await;
    c.wait_running("wa", &i, "long", secs(10)).await;
    assert_eq!(
        c.util(Command::Abort, Some("wa"), None, &[]).await,
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

#[tokio::test]
async fn signals_and_job_edits_refuse_an_archived_instance_and_leave_its_history() {
    // The dashboard and the CLI could abort, drain, redo or disable an archived instance: it
    // came back as RUNNING, then was archived again as ABORTED, its FAILURE gone.
    let c = cluster(
        "workflows:\n  done:\n    jobs:\n      a: {command: 'exit 3'}\n",
        1,
        0,
    )
    .await;
    let i = c.start("done").await;
    let before = c.archived("done", &i, secs(20)).await;
    let run = |command, jobs: &'static [&'static str]| {
        let mut act = action(command, Some("done"), Some(&i), jobs);
        if command == Command::Redo {
            act.execution = Some(0);
        }
        c.apply(act)
    };
    for (command, jobs) in [
        (Command::Abort, &[][..]),
        (Command::Drain, &[][..]),
        (Command::Exit, &[][..]),
        (Command::Undrain, &[][..]),
        (Command::Unabort, &[][..]),
        (Command::Redo, &["a"][..]),
        (Command::Disable, &["a"][..]),
        (Command::Enable, &["a"][..]),
    ] {
        let e = run(command, jobs).await.expect_err("refused");
        let message = e.to_string();
        assert!(!e.is_input(), "{command:?}: {message}");
        assert!(
            message.contains("has finished (FAILURE) and is archived")
                && message.contains(&format!("pinball util -w done -i {i} retry")),
            "{command:?} says why and what to do: {message}"
        );
    }
    assert!(
        c.client
            .query_prefix(&format!("/workflow/done/{i}/"))
            .await
            .unwrap()
            .is_empty(),
        "nothing of it is alive again"
    );
    let after = c.archived("done", &i, secs(5)).await;
    assert_eq!(after, before, "its archived history is unchanged");
    c.stop().await;
}

#[tokio::test]
async fn a_finished_instance_refuses_new_signals_until_it_is_archived() {
    let c = cluster(
        "workflows:\n  fin:\n    jobs:\n      a: {command: 'exit 3'}\n",
        1,
        3600,
    )
    .await;
    let i = c.start("fin").await;
    c.wait_finished("fin", &i, secs(20)).await;
    let e = c
        .apply(action(Command::Abort, Some("fin"), Some(&i), &[]))
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("has finished (FAILURE)"), "{e}");
    let signals = Signals::read(&c.client, &Level::Instance(wf("fin"), inst(&i)))
        .await
        .unwrap();
    assert!(signals.get(Action::ABORT).is_none(), "no ABORT was set");
    c.stop().await;
}

/// What a worker asks of its master, in order: each grant (`claim <job>`), each read of an
/// instance's signals alone that does not wait (`read`), each write (`modify`). `older` answers a
/// claim as a master from before `context` did (its body reader refuses a field it does not
/// know, in serde's words).
struct Calls {
    inner: pinball::master::HttpMasterClient,
    older: bool,
    seen: std::sync::Mutex<Vec<String>>,
}

/// A `/query_and_own` body as a master before `context` read it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct OlderClaim {
    owner: String,
    #[serde(default)]
    expiration_time: i64,
    lease_sec: Option<u64>,
    query: Option<pinball::token::Query>,
    wait_ms: Option<u64>,
    pools: Option<Vec<String>>,
    #[serde(default)]
    record_grant: bool,
}

use pinball::master::MasterError;
use pinball::token::*;

#[async_trait::async_trait]
impl Through for Calls {
    fn inner(&self) -> &pinball::master::HttpMasterClient {
        &self.inner
    }
    async fn modify(&self, req: ModifyRequest) -> Result<ModifyResponse, MasterError> {
        self.seen.lock().unwrap().push("modify".into());
        self.inner.modify(req).await
    }
    async fn query(&self, req: QueryRequest) -> Result<QueryResponse, MasterError> {
        // Signals alone, an instance's among them (the read of a run's downstream jobs,
        // beside the command, reads its signals with them: not this).
        let signal = |q: &Query| q.name_prefix.ends_with("/__SIGNAL__/");
        let instance = |q: &Query| q.name_prefix.matches('/').count() == 5;
        let instance_signals =
            req.queries.iter().all(signal) && req.queries.iter().any(|q| signal(q) && instance(q));
        if req.after_version.is_none() && instance_signals {
            self.seen.lock().unwrap().push("read".into());
        }
        self.inner.query(req).await
    }
    async fn query_and_own(
        &self,
        req: QueryAndOwnRequest,
    ) -> Result<QueryAndOwnResponse, MasterError> {
        let body = serde_json::to_vec(&req).unwrap();
        let de = &mut serde_json::Deserializer::from_slice(&body);
        if let (true, Err(e)) = (
            self.older,
            serde_path_to_error::deserialize::<_, OlderClaim>(de),
        ) {
            return Err(MasterError::input(format!("invalid request body: {e}")));
        }
        let answer = self.inner.query_and_own(req).await?;
        for t in &answer.tokens {
            let job = t.name.rsplit('/').next().unwrap();
            self.seen.lock().unwrap().push(format!("claim {job}"));
        }
        Ok(answer)
    }
}

/// Runs `a -> b -> c` with one worker that reaches its master through [`Calls`]: what it
/// asked, from the grant of each job with a downstream job to the write that follows it (a
/// last job's read of its downstream jobs, beside its command, is a read of signals alone).
async fn runs_seen(older: bool) -> Vec<Vec<String>> {
    let yaml = "workflows:\n  cx:\n    jobs:\n      a: {command: 'true'}\n      b: {command: 'true', depends_on: [a]}\n      c: {command: 'true', depends_on: [b]}\n";
    let mut c = cluster(yaml, 0, 600).await;
    let client = Arc::new(Via(Calls {
        inner: c.client.clone(),
        older,
        seen: Default::default(),
    }));
    let s = settings(c.logs.path(), 600);
    c.workers = Some(tokio::spawn(run_workers(
        client.clone(),
        s,
        1,
        c.stop.subscribe(),
    )));
    let i = c.start("cx").await;
    c.wait_finished("cx", &i, secs(30)).await;
    c.stop().await;
    let seen = client.0.seen.lock().unwrap().clone();
    let mut runs = Vec::new();
    for (n, _) in seen
        .iter()
        .enumerate()
        .filter(|(_, c)| *c == "claim a" || *c == "claim b")
    {
        let to_write = seen[n..].iter().position(|c| c == "modify").unwrap() + 1;
        runs.push(seen[n..n + to_write].to_vec());
    }
    runs
}

#[tokio::test]
async fn a_job_starts_on_the_signals_its_claims_answer_carries_without_reading_them() {
    // Each run's first write follows its grant with no read of its signals between.
    let runs = runs_seen(false).await;
    assert_eq!(
        runs,
        vec![vec!["claim a", "modify"], vec!["claim b", "modify"]],
        "{runs:?}"
    );
    // A master from before `context` answers no context: the worker reads them itself.
    let runs = runs_seen(true).await;
    assert_eq!(
        runs,
        vec![
            vec!["claim a", "read", "modify"],
            vec!["claim b", "read", "modify"]
        ],
        "{runs:?}"
    );
}
