//! Fair, prompt and forgiving execution: claims in the order jobs became runnable, ABORT and
//! printed properties within a second through the master's watches, leases counted by the
//! master, and running jobs that survive a master outage and a dead worker.

use std::sync::Arc;
use std::time::Duration;

use pinball::master::MasterClient;
use pinball::ops::Command;
use pinball::token::{QueryAndOwnRequest, name};
use pinball::workflow::worker::{WorkerSettings, run_workers};
use tokio::sync::watch;

use crate::helpers::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// One worker with a 30 s lease: a renewal comes every 10 s, so anything it sees sooner came
/// through a watch.
fn long_lease_worker(c: &Cluster) -> watch::Sender<bool> {
    let (stop, stopped) = watch::channel(false);
    let s = WorkerSettings {
        lease: secs(30),
        ..settings(c.logs.path(), 300)
    };
    tokio::spawn(run_workers(Arc::new(c.client.clone()), s, 1, stopped));
    stop
}

#[tokio::test]
async fn an_abort_stops_a_running_job_well_before_its_lease_renewal() {
    let c = cluster(
        "workflows:\n  ab:\n    jobs:\n      long: {command: 'sleep 60'}\n",
        0,
        300,
    )
    .await;
    let stop = long_lease_worker(&c);
    let i = c.start("ab").await;
    c.wait_running("ab", &i, "long", secs(10)).await;
    c.util(Command::Abort, Some("ab"), Some(&i), &[]).await;
    // The first renewal went out at the start; the next is 10 s later. The job's end must be
    // recorded long before that.
    // The end is read where it is, live or archived: an aborted instance is archived as soon
    // as its job ends, so its live tokens may be gone between two looks.
    wait_until(secs(5), "the aborted job has ended", || async {
        c.jobs("ab", &i)
            .await
            .get("long")
            .and_then(|t| t.job.history.first())
            .is_some_and(|r| r.end_time.is_some())
    })
    .await;
    let jobs = c.jobs("ab", &i).await;
    let r = &jobs["long"].job.history[0];
    assert_ne!(r.exit_code, Some(0), "the job was killed");
    assert!(
        r.end_time.unwrap() - r.start_time < 5.0,
        "it ran {} s",
        r.end_time.unwrap() - r.start_time
    );
    let _ = stop.send(true);
    c.stop().await;
}

#[tokio::test]
async fn printed_properties_reach_the_master_before_the_next_renewal() {
    let c = cluster(
        "workflows:\n  pr:\n    jobs:\n      talk: {command: 'echo PINBALL:kill_id=42; sleep 60'}\n",
        0,
        300,
    )
    .await;
    let stop = long_lease_worker(&c);
    let i = c.start("pr").await;
    let runnable = name::job_token(&wf("pr"), &inst(&i), name::JobState::Runnable, &job("talk"));
    wait_until(
        secs(5),
        "the printed property is in the job's token",
        || async {
            c.client
                .get(&runnable)
                .await
                .ok()
                .flatten()
                .and_then(|t| t.data)
                .is_some_and(|d| d.contains("kill_id") && d.contains("42"))
        },
    )
    .await;
    c.util(Command::Abort, Some("pr"), Some(&i), &[]).await;
    let _ = stop.send(true);
    c.stop().await;
}

#[tokio::test]
async fn equal_priority_jobs_run_in_the_order_they_became_runnable() {
    // One worker; alpha (8 parallel jobs), then zeta (1 job), then alpha again are queued
    // before it starts. By name, all 16 alpha jobs would come before zeta's.
    let jobs: String = (0..8)
        .map(|n| format!("      a{n}: {{command: 'true'}}\n"))
        .collect();
    let yaml = format!(
        "workflows:\n  alpha:\n    jobs:\n{jobs}  zeta:\n    jobs:\n      z: {{command: 'true'}}\n"
    );
    let c = cluster(&yaml, 0, 300).await;
    let first = c.start("alpha").await;
    let z = c.start("zeta").await;
    let second = c.start("alpha").await;
    let workers = c.add_workers(1, 300);
    c.wait_finished("alpha", &second, secs(60)).await;
    c.wait_finished("zeta", &z, secs(60)).await;
    let start = |w: &str, i: &str, j: &str| {
        let w = w.to_owned();
        let i = i.to_owned();
        let j = j.to_owned();
        let c = &c;
        async move { c.jobs(&w, &i).await[&j].job.history[0].start_time }
    };
    let zeta_start = start("zeta", &z, "z").await;
    for n in 0..8 {
        let a = format!("a{n}");
        assert!(
            start("alpha", &first, &a).await < zeta_start,
            "the first alpha's {a} was runnable before zeta"
        );
        assert!(
            start("alpha", &second, &a).await > zeta_start,
            "zeta was runnable before the second alpha's {a}"
        );
    }
    workers.stop().await;
    c.stop().await;
}

/// A configuration for `-m workers` against `port`, with these extra keys.
fn workers_config(dir: &std::path::Path, port: u16, extra: &str) -> std::path::PathBuf {
    let path = dir.join("workers.yaml");
    std::fs::write(
        &path,
        format!(
            "master_port: {port}\nlocal_logs_dir_prefix: {}\n{extra}",
            dir.display()
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn a_lease_shorter_than_the_poll_runs_a_job_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir).await;
    let yaml = "workflows:\n  once:\n    jobs:\n      j: {command: 'sleep 3'}\n";
    import_yaml(&app.client, yaml).await;
    let config = workers_config(
        dir.path(),
        app.addr.port(),
        "lease_sec: 2\nworker_poll_time_sec: 8\nworkers: 4\n",
    );
    let cfg = config.to_str().unwrap();
    let _workers = spawn_pinball(&["-c", cfg, "-m", "workers"], dir.path());
    wait_parked(&app.client, 4).await;
    // The scenario itself: the parked claims must be older than the lease when a job comes.
    tokio::time::sleep(secs(3)).await;
    let out = pinball_out(
        &["-c", cfg, "util", "-f", "-w", "once", "start"],
        dir.path(),
    )
    .await;
    let i = started_instance(&String::from_utf8_lossy(&out.stdout));
    let waiting = name::job_token(&wf("once"), &inst(&i), name::JobState::Waiting, &job("j"));
    wait_until(secs(30), "the job ends", || async {
        job_at(&app.client, &waiting).await.is_some()
    })
    .await;
    let history = job_at(&app.client, &waiting).await.unwrap().job.history;
    assert_eq!(history.len(), 1, "one run: {history:?}");
    assert_eq!(history[0].exit_code, Some(0));
    app.stop().await;
}

#[tokio::test]
async fn a_master_killed_for_10_s_during_a_20_s_job_leaves_it_one_successful_run() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let db = dir.path().join("pinball.db");
    let master_cfg = dir.path().join("master.yaml");
    std::fs::write(
        &master_cfg,
        format!(
            "database_url: sqlite://{}\nmaster_port: {port}\nlease_sec: 4\n",
            db.display()
        ),
    )
    .unwrap();
    let mut master = start_master_process(&master_cfg).await;
    let run = one_job_running(
        dir.path(),
        port,
        "out",
        "{command: 'sleep 20', max_attempts: 1}",
        "lease_sec: 4\nworker_poll_time_sec: 1\nworkers: 2\n",
    )
    .await;
    // The scenario: the master dies 12 s into the job and stays away 10 s, longer than the
    // lease (4 s), and the job exits (at 20 s) while it is away.
    sleep_until_epoch(run.started().await + 12.0).await;
    master.child.start_kill().unwrap();
    master.child.wait().await.unwrap();
    tokio::time::sleep(secs(10)).await;
    let _master = start_master_process(&master_cfg).await;
    assert_one_run_of_20_s(&run.ended(secs(40)).await);
}

#[tokio::test]
async fn a_worker_killed_mid_job_costs_no_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir).await;
    let command = "{max_attempts: 1, command: 'if [ \"$PINBALL_EXECUTION\" = 0 ]; then sleep 30; fi; echo done'}";
    let mut run = one_job_running(
        dir.path(),
        app.addr.port(),
        "k",
        command,
        "lease_sec: 2\nworker_poll_time_sec: 1\nworkers: 1\n",
    )
    .await;
    let first_owner = job_at(&app.client, &run.runnable)
        .await
        .unwrap()
        .token
        .owner
        .unwrap();
    run.workers.start_kill().unwrap();
    run.workers.wait().await.unwrap();
    let _second = spawn_pinball(
        &["-c", run.config.to_str().unwrap(), "-m", "workers"],
        dir.path(),
    );
    let history = run.ended(secs(30)).await;
    assert_eq!(history.len(), 2, "{history:?}");
    let lost = history[0]
        .lost
        .as_deref()
        .expect("the first execution is lost");
    assert!(lost.contains(&first_owner), "{lost}");
    assert_eq!(
        history[0].exit_code, None,
        "a lost execution has no exit code"
    );
    assert!(
        std::fs::read_to_string(&history[0].logs["pinlog"])
            .unwrap()
            .contains("not counted as an attempt")
    );
    assert_eq!(
        history[1].exit_code,
        Some(0),
        "the rerun succeeded with max_attempts 1"
    );
    assert_ne!(history[1].worker, first_owner);
    app.stop().await;
}

/// A worker's claim records the run's start in the master's commit: a worker that dies before
/// it writes anything (a job shorter than its first renewal) leaves a grant its successor
/// closes as a lost run, at the index it ran at, never a run the history does not show.
#[tokio::test]
async fn a_claim_whose_worker_wrote_nothing_is_closed_as_a_lost_run() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir).await;
    let port = app.addr.port();
    let runs = dir.path().join("runs");
    let yaml = format!(
        "workflows:\n  g:\n    jobs:\n      j: {{max_attempts: 1, command: 'echo $PINBALL_EXECUTION >> {}'}}\n",
        runs.display()
    );
    import_yaml(&app.client, &yaml).await;
    let config = workers_config(
        dir.path(),
        port,
        "lease_sec: 2\nworker_poll_time_sec: 1\nworkers: 1\n",
    );
    let cfg = config.to_str().unwrap();
    let out = pinball_out(&["-c", cfg, "util", "-f", "-w", "g", "start"], dir.path()).await;
    let i = inst(&started_instance(&String::from_utf8_lossy(&out.stdout)));
    // A worker claims the job as workers do, and dies at once.
    let claim = QueryAndOwnRequest {
        lease_sec: Some(1),
        record_grant: true,
        ..QueryAndOwnRequest::new("dead_worker", 0, name::ALL_RUNNABLE_JOBS, Some(1), None)
    };
    let claimed = app.client.query_and_own(claim).await.unwrap().tokens;
    assert_eq!(claimed.len(), 1);
    let runnable = name::job_token(&wf("g"), &i, name::JobState::Runnable, &job("j"));
    let held = job_at(&app.client, &runnable).await.unwrap();
    let grant = held
        .job
        .grant
        .clone()
        .expect("the claim's commit recorded the grant");
    assert_eq!((grant.n, grant.owner.as_str()), (1, "dead_worker"));
    assert!(held.job.history.is_empty(), "the dead worker wrote nothing");
    assert_eq!(
        pinball::workflow::status::job_status(&held),
        pinball::workflow::status::Status::RUNNING,
        "a granted claim shows as running"
    );
    let _workers = spawn_pinball(&["-c", cfg, "-m", "workers"], dir.path());
    let waiting = name::job_token(&wf("g"), &i, name::JobState::Waiting, &job("j"));
    wait_until(secs(30), "the job's end is committed", || async {
        job_at(&app.client, &waiting).await.is_some()
    })
    .await;
    let history = job_at(&app.client, &waiting).await.unwrap().job.history;
    assert_eq!(history.len(), 2, "{history:?}");
    let lost = history[0].lost.as_deref().expect("the grant is a lost run");
    assert!(lost.contains("dead_worker"), "{lost}");
    assert!(!history[0].counted, "not counted as an attempt");
    assert_eq!(history[1].exit_code, Some(0), "max_attempts 1, and it ran");
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap(),
        "1\n",
        "the run took the index after the lost one"
    );
    app.stop().await;
}

#[tokio::test]
async fn mariadb_gone_for_30_s_during_a_20_s_job_leaves_it_one_successful_run() {
    if let Some(url) = mysql_url("mariadb_gone_for_30_s") {
        database_gone_for_30_s_during_a_20_s_job(&url).await;
    }
}

#[tokio::test]
async fn postgresql_gone_for_30_s_during_a_20_s_job_leaves_it_one_successful_run() {
    if let Some(url) = postgres_url("postgresql_gone_for_30_s") {
        database_gone_for_30_s_during_a_20_s_job(&url).await;
    }
}

async fn database_gone_for_30_s_during_a_20_s_job(url: &str) {
    // The master reaches the database through a proxy the test cuts.
    let (head, rest) = url.split_once('@').unwrap();
    let (host, db) = rest.split_once('/').unwrap();
    let target = tokio::net::lookup_host(host).await.unwrap().next().unwrap();
    let proxy = Proxy::start(target).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let master_cfg = dir.path().join("master.yaml");
    std::fs::write(
        &master_cfg,
        format!(
            "database_url: {head}@127.0.0.1:{}/{db}\nmaster_name: {}\nmaster_port: {port}\nlease_sec: 4\n",
            proxy.port,
            unique_master("dbgone")
        ),
    )
    .unwrap();
    let _master = start_master_process(&master_cfg).await;
    let run = one_job_running(
        dir.path(),
        port,
        "dbout",
        "{command: 'sleep 20', max_attempts: 1}",
        "lease_sec: 4\nworker_poll_time_sec: 1\nworkers: 2\n",
    )
    .await;
    // The scenario: the database goes away 5 s into the job for 30 s; the job exits meanwhile.
    sleep_until_epoch(run.started().await + 5.0).await;
    proxy.cut();
    tokio::time::sleep(secs(30)).await;
    proxy.restore();
    assert_one_run_of_20_s(&run.ended(secs(60)).await);
}

/// A one-job workflow `w` imported into the master on `port`, a `-m workers` process with the
/// `extra` configuration keys, and an instance started and running.
struct OneJob {
    client: pinball::master::HttpMasterClient,
    runnable: String,
    waiting: String,
    workers: tokio::process::Child,
    config: std::path::PathBuf,
}

async fn one_job_running(
    dir: &std::path::Path,
    port: u16,
    w: &str,
    job_yaml: &str,
    extra: &str,
) -> OneJob {
    let client = pinball::master::HttpMasterClient::new("127.0.0.1", port, quick_policy());
    let yaml = format!("workflows:\n  {w}:\n    jobs:\n      j: {job_yaml}\n");
    import_yaml(&client, &yaml).await;
    let config = workers_config(dir, port, extra);
    let cfg = config.to_str().unwrap();
    let workers = spawn_pinball(&["-c", cfg, "-m", "workers"], dir);
    let out = pinball_out(&["-c", cfg, "util", "-f", "-w", w, "start"], dir).await;
    let i = inst(&started_instance(&String::from_utf8_lossy(&out.stdout)));
    let state = |s| name::job_token(&wf(w), &i, s, &job("j"));
    let (runnable, waiting) = (
        state(name::JobState::Runnable),
        state(name::JobState::Waiting),
    );
    wait_until(secs(20), "the job runs", || async {
        job_at(&client, &runnable)
            .await
            .is_some_and(|jt| jt.job.history.len() == 1 && jt.token.owner.is_some())
    })
    .await;
    OneJob {
        client,
        runnable,
        waiting,
        workers,
        config,
    }
}

impl OneJob {
    /// The job's start, in seconds since the epoch.
    async fn started(&self) -> f64 {
        job_at(&self.client, &self.runnable)
            .await
            .unwrap()
            .job
            .history[0]
            .start_time
    }

    /// Waits until the job's end is committed; returns its history.
    async fn ended(&self, within: Duration) -> Vec<pinball::workflow::job::ExecutionRecord> {
        wait_until(within, "the job's end is committed", || async {
            self.client
                .query_prefix(&self.waiting)
                .await
                .is_ok_and(|t| !t.is_empty())
        })
        .await;
        job_at(&self.client, &self.waiting)
            .await
            .unwrap()
            .job
            .history
    }
}

/// Sleeps until `at` seconds since the epoch: the scenario's own timeline.
async fn sleep_until_epoch(at: f64) {
    let left = at - pinball::clock::now_f64();
    tokio::time::sleep(Duration::from_secs_f64(left.max(0.0))).await;
}

/// One successful execution that lasted its 20 s.
fn assert_one_run_of_20_s(history: &[pinball::workflow::job::ExecutionRecord]) {
    assert_eq!(history.len(), 1, "one execution: {history:?}");
    assert_eq!(history[0].exit_code, Some(0), "{history:?}");
    let ran = history[0].end_time.unwrap() - history[0].start_time;
    assert!(
        (19.0..23.0).contains(&ran),
        "the execution lasted {ran} s, not its 20 s"
    );
}

#[tokio::test]
async fn an_idle_worker_sees_a_global_drain_at_once_not_after_its_parked_claim() {
    let c = cluster(
        "workflows:\n  dr:\n    jobs:\n      j: {command: 'true'}\n",
        0,
        300,
    )
    .await;
    // One idle worker whose claim parks for 30 s.
    let (stop, stopped) = watch::channel(false);
    let s = WorkerSettings {
        poll: secs(30),
        ..settings(c.logs.path(), 300)
    };
    let workers = tokio::spawn(run_workers(Arc::new(c.client.clone()), s, 1, stopped));
    wait_parked(&c.client, 1).await;
    c.util(Command::Drain, None, None, &[]).await;
    // The worker drops its parked claim as soon as its watch reports the DRAIN.
    wait_until(
        secs(5),
        "the drained worker's claim is withdrawn",
        || async { c.client.health().await.is_ok_and(|h| h.parked_claims == 0) },
    )
    .await;
    let i = c.start("dr").await;
    let runnable = name::job_token(&wf("dr"), &inst(&i), name::JobState::Runnable, &job("j"));
    c.util(Command::Undrain, None, None, &[]).await;
    wait_until(secs(5), "after UNDRAIN the job runs at once", || async {
        job_at(&c.client, &runnable).await.is_none()
    })
    .await;
    let _ = stop.send(true);
    workers.await.unwrap();
    c.stop().await;
}

#[tokio::test]
async fn two_thousand_starts_at_once_get_two_thousand_instances() {
    let c = cluster(
        "workflows:\n  crowd:\n    jobs:\n      j: {command: 'true'}\n",
        0,
        300,
    )
    .await;
    // 2,000 connections at once overflow the listen backlog on a busy machine: the starts use
    // a client with the default retries (as `pinball util` has), not the tests' quick ones.
    let patient = pinball::master::HttpMasterClient::new(
        "127.0.0.1",
        c.app.addr.port(),
        pinball::master::client::RetryPolicy::default(),
    );
    let config = c.config();
    let starts = (0..2_000).map(|_| {
        let (patient, config) = (&patient, &config);
        async move {
            let ops = pinball::ops::Ops::from_config(patient, config);
            let start = action(Command::Start, Some("crowd"), None, &[]);
            let done = ops.apply(&start, "tests").await.unwrap();
            started_instance(&done.message)
        }
    });
    let ids: std::collections::BTreeSet<String> = futures_util::future::join_all(starts)
        .await
        .into_iter()
        .collect();
    assert_eq!(ids.len(), 2_000, "every start got an instance of its own");
    let groups = c
        .client
        .group(pinball::token::GroupRequest {
            name_prefix: "/workflow/crowd/".into(),
            group_suffix: Some("/".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        groups.counts.len(),
        2_000,
        "and the master holds 2,000 instances"
    );
    c.stop().await;
}

#[tokio::test]
async fn a_hundred_start_processes_at_once_get_a_hundred_instances() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir).await;
    let yaml = "workflows:\n  crowd:\n    jobs:\n      j: {command: 'true'}\n";
    import_yaml(&app.client, yaml).await;
    let config = workers_config(dir.path(), app.addr.port(), "");
    let cfg = config.to_str().unwrap();
    // Separate processes share no counter: their ids collide in the master and are retried.
    let args = ["-c", cfg, "util", "-f", "-w", "crowd", "start"];
    let starts = (0..100).map(|_| pinball_out(&args, dir.path()));
    let outs = futures_util::future::join_all(starts).await;
    let mut ids = std::collections::BTreeSet::new();
    for out in outs {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        ids.insert(started_instance(&String::from_utf8_lossy(&out.stdout)));
    }
    assert_eq!(ids.len(), 100);
    app.stop().await;
}
