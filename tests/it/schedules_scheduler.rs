//! The scheduler with second-scale recurrences, a real master and real workers: each overrun
//! policy as PINBALL_SPEC §5.3 describes it, and max_running_instances.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinball::master::MasterClient;
use pinball::schedule::ScheduleData;
use pinball::storage::{self, Table};
use pinball::token::name;
use pinball::workflow::settle;
use tokio::sync::watch;

use crate::helpers::{Cluster, cluster, instances, scheduler_for, wait_until, wf};

fn workflow(policy: &str, recurrence: &str, command: &str, max: u32) -> String {
    format!(
        "workflows:\n  s:\n    schedule: {{recurrence: {recurrence}, overrun_policy: {policy}, max_running_instances: {max}}}\n    jobs:\n      j: {{command: '{command}'}}\n"
    )
}

struct Watch {
    /// Most instances unfinished at once.
    max_running: usize,
    /// Every instance seen, live or archived.
    instances: BTreeSet<String>,
}

/// A scheduler for the cluster, sending its emails through `mailer`; stop it with the sender.
fn spawn_scheduler(
    c: &Cluster,
    mailer: Option<pinball::email::Mailer>,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = watch::channel(false);
    let scheduler = scheduler_for(c, mailer, "http://pinball.example.com:8080");
    (stop, tokio::spawn(scheduler.run(stopped)))
}

/// Runs a scheduler for `secs` seconds, sampling the workflow every 100 ms.
async fn observe(c: &Cluster, secs: u64) -> Watch {
    let (stop, task) = spawn_scheduler(c, None);
    let store = storage::open(&c.app.url).unwrap();
    let mut w = Watch {
        max_running: 0,
        instances: BTreeSet::new(),
    };
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        let running = settle::running_instances(&c.client, &wf("s"))
            .await
            .unwrap();
        w.max_running = w.max_running.max(running.len());
        w.instances.extend(running.into_iter().map(String::from));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    task.await.unwrap();
    for t in store
        .read(&c.app.master_name, Table::Archived, "/workflow/s/")
        .await
        .unwrap()
    {
        if let Some(i) = t.name.split('/').nth(3) {
            w.instances.insert(i.to_owned());
        }
    }
    for t in c.client.query_prefix("/workflow/s/").await.unwrap() {
        if let Some(i) = t
            .name
            .split('/')
            .nth(3)
            .filter(|i| *i != name::SIGNAL_SEGMENT)
        {
            w.instances.insert(i.to_owned());
        }
    }
    w
}

async fn schedule_data(c: &Cluster) -> ScheduleData {
    let t = c
        .client
        .query_prefix("/schedule/workflow/s")
        .await
        .unwrap()
        .remove(0);
    ScheduleData::from_token(&t).unwrap()
}

#[tokio::test]
async fn a_run_held_back_by_too_many_instances_is_emailed_to_the_workflows_addresses() {
    // Since the scheduler's claims took their lease from the master's clock, the "first look
    // at this occurrence" test (lease end == run time) never held, and no email was sent.
    let smtp = crate::helpers::smtp::SmtpServer::start().await;
    let yaml = "workflows:\n  s:\n    notify_emails: [ops@example.com]\n    schedule: {recurrence: 1S, overrun_policy: START_NEW, max_running_instances: 1}\n    jobs:\n      j: {command: 'sleep 30'}\n";
    // No workers: the first instance stays running, so the next occurrence is held back.
    let c = cluster(yaml, 0, 0).await;
    let mailer = pinball::email::Mailer {
        host: "127.0.0.1".into(),
        port: smtp.port,
        from: "pinball@example.com".into(),
        ..Default::default()
    };
    let (stop, task) = spawn_scheduler(&c, Some(mailer));
    wait_until(Duration::from_secs(15), "the too-many email", || async {
        smtp.mails()
            .iter()
            .any(|m| m.subject() == "Too many (1) instances running for workflow s !")
    })
    .await;
    let _ = stop.send(true);
    task.await.unwrap();
    let mail = smtp
        .mails()
        .into_iter()
        .find(|m| m.subject().starts_with("Too many"))
        .unwrap();
    assert_eq!(mail.to, vec!["ops@example.com".to_string()]);
    assert!(
        mail.text().contains("reaching the limit of 1"),
        "{}",
        mail.data
    );
    assert_eq!(
        schedule_data(&c).await.too_many_told,
        Some(schedule_data(&c).await.next_run_time),
        "the schedule remembers the occurrence it told about"
    );
    c.stop().await;
}

#[tokio::test]
async fn start_new_runs_instances_side_by_side() {
    let c = cluster(&workflow("START_NEW", "1S", "sleep 3", 5), 6, 0).await;
    let w = observe(&c, 4).await;
    assert!(
        w.max_running >= 2,
        "instances ran side by side (max {} at once)",
        w.max_running
    );
    assert!(w.instances.len() >= 3, "one per second: {:?}", w.instances);
    c.stop().await;
}

#[tokio::test]
async fn a_one_second_schedule_fires_every_second_and_misses_none() {
    // The scheduler read the master's clock from its claim's lease end less the lease, one
    // second late (the master rounds a lease up to whole seconds): it counted each next
    // occurrence as passed, so a 1S schedule started a run every 2 s and counted the rest missed.
    let c = cluster(&workflow("START_NEW", "1S", "true", 50), 4, 0).await;
    let (stop, task) = spawn_scheduler(&c, None);
    wait_until(Duration::from_secs(20), "five scheduled runs", || async {
        scheduled_times(&c, "s").await.len() >= 5
    })
    .await;
    let _ = stop.send(true);
    task.await.unwrap();
    let mut due: Vec<i64> = scheduled_times(&c, "s")
        .await
        .iter()
        .map(|(_, t)| t.parse().unwrap())
        .collect();
    due.sort();
    let gaps: Vec<i64> = due.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|g| *g == 1), "runs due at {due:?}");
    assert_eq!(
        schedule_data(&c).await.missed_runs,
        0,
        "none counted missed"
    );
    c.stop().await;
}

#[tokio::test]
async fn skip_skips_while_one_runs_and_counts_the_skipped_runs() {
    let c = cluster(&workflow("SKIP", "1S", "sleep 2.5", 5), 4, 0).await;
    let w = observe(&c, 4).await;
    assert_eq!(w.max_running, 1, "never two at once");
    assert!(
        schedule_data(&c).await.missed_runs >= 1,
        "skipped occurrences are counted"
    );
    c.stop().await;
}

#[tokio::test]
async fn max_running_instances_is_honoured() {
    let c = cluster(&workflow("START_NEW", "1S", "sleep 10", 2), 6, 0).await;
    let w = observe(&c, 4).await;
    assert_eq!(w.max_running, 2, "START_NEW stops at the limit");
    assert_eq!(w.instances.len(), 2);
    c.stop().await;
}

#[tokio::test]
async fn delay_starts_the_next_run_only_after_the_running_one_ends() {
    let c = cluster(&workflow("DELAY", "1S", "sleep 1.5", 5), 4, 0).await;
    let w = observe(&c, 6).await;
    assert_eq!(w.max_running, 1, "never two at once");
    assert!(
        w.instances.len() >= 2,
        "the delayed run started after the first ended: {:?}",
        w.instances
    );
    c.stop().await;
}

#[tokio::test]
async fn abort_running_aborts_the_running_instance_and_starts_a_new_one() {
    let c = cluster(&workflow("ABORT_RUNNING", "2S", "sleep 30", 5), 0, 0).await;
    // Workers with a 30 s lease renew every 10 s: a short run is aborted only if the ABORT
    // reaches the running job at once (through its watch), not at a renewal.
    let (stop_workers, stopped) = watch::channel(false);
    let s = pinball::workflow::worker::WorkerSettings {
        lease: Duration::from_secs(30),
        ..crate::helpers::settings(c.logs.path(), 0)
    };
    let workers = tokio::spawn(pinball::workflow::worker::run_workers(
        Arc::new(c.client.clone()),
        s,
        4,
        stopped,
    ));
    let w = observe(&c, 6).await;
    assert!(w.instances.len() >= 2, "{:?}", w.instances);
    let store = storage::open(&c.app.url).unwrap();
    let archived = store
        .read(&c.app.master_name, Table::Archived, "/workflow/s/")
        .await
        .unwrap();
    assert!(
        archived
            .iter()
            .any(|t| t.name.ends_with("/__SIGNAL__/ABORT")),
        "an earlier instance was aborted and archived"
    );
    for t in archived.iter().filter(|t| t.name.contains("/job/")) {
        let jt = pinball::workflow::instance::JobToken::parse(t.clone()).unwrap();
        for r in &jt.job.history {
            let ran = r.end_time.unwrap() - r.start_time;
            assert!(ran < 4.0, "an aborted run went on for {ran} s");
        }
    }
    let _ = stop_workers.send(true);
    workers.await.unwrap();
    c.stop().await;
}

#[tokio::test]
async fn delay_until_success_waits_after_a_failure_until_a_retry_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("fixed");
    let yaml = workflow(
        "DELAY_UNTIL_SUCCESS",
        "1S",
        &format!("test -e {}", flag.display()),
        5,
    );
    let c = cluster(&yaml, 2, 60).await;
    let w = observe(&c, 4).await;
    assert_eq!(
        w.instances.len(),
        1,
        "after the first instance failed, no other started: {:?}",
        w.instances
    );
    let first = w.instances.iter().next().unwrap().clone();
    std::fs::write(&flag, "").unwrap();
    let out = c
        .util(pinball::ops::Command::Retry, Some("s"), Some(&first), &[])
        .await;
    assert_eq!(
        out,
        format!("retried 1 job(s) in workflow s instance {first}\n")
    );
    let w = observe(&c, 4).await;
    assert!(
        w.instances.len() >= 2,
        "once the retry succeeded, scheduled runs went on: {:?}",
        w.instances
    );
    c.stop().await;
}

/// Every instance of `wf`, live or archived, with the `scheduled_time` it was started for.
async fn scheduled_times(c: &Cluster, w: &str) -> Vec<(String, String)> {
    let store = storage::open(&c.app.url).unwrap();
    let mut tokens = store
        .read(
            &c.app.master_name,
            Table::Archived,
            &name::workflow_prefix(&wf(w)),
        )
        .await
        .unwrap();
    tokens.extend(
        c.client
            .query_prefix(&name::workflow_prefix(&wf(w)))
            .await
            .unwrap(),
    );
    let mut out: Vec<(String, String)> = tokens
        .into_iter()
        .filter_map(|t| pinball::workflow::instance::JobToken::parse(t).ok())
        .filter_map(|jt| {
            let events = jt
                .job
                .history
                .first()
                .map(|r| r.events.clone())
                .unwrap_or(jt.job.events.clone());
            events
                .first()
                .and_then(|e| e.attributes.get("scheduled_time").cloned())
                .map(|s| (jt.instance.to_string(), s))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Moves a schedule's next run `secs` seconds into the past, as if the scheduler had been down.
async fn backdate(c: &Cluster, w: &str, secs: i64) {
    let t = c
        .client
        .get(&format!("/schedule/workflow/{w}"))
        .await
        .unwrap()
        .unwrap();
    let mut data = ScheduleData::from_token(&t).unwrap();
    data.next_run_time = pinball::clock::now() - secs;
    let back = data.to_token(t.version);
    c.client
        .modify(pinball::token::ModifyRequest::update(vec![back]))
        .await
        .unwrap();
}

#[tokio::test]
async fn runs_missed_while_the_scheduler_was_down_collapse_or_catch_up() {
    let yaml = "workflows:\n  caught:\n    schedule: {recurrence: 1S, overrun_policy: START_NEW, max_running_instances: 50, catchup: true}\n    jobs:\n      j: {command: 'true'}\n  collapsed:\n    schedule: {recurrence: 1S, overrun_policy: START_NEW, max_running_instances: 50}\n    jobs:\n      j: {command: 'true'}\n";
    let c = cluster(yaml, 2, 0).await;
    backdate(&c, "caught", 4).await; // the scheduler was down for 4 s
    backdate(&c, "collapsed", 4).await;
    observe(&c, 1).await;
    let caught = scheduled_times(&c, "caught").await;
    assert!(
        caught.len() >= 4,
        "catchup ran every missed occurrence: {caught:?}"
    );
    // Each caught-up run is for its own occurrence: its logical time is its due time.
    let jobs = c.client.query_prefix("/workflow/caught/").await.unwrap();
    let archived = storage::open(&c.app.url)
        .unwrap()
        .read(&c.app.master_name, Table::Archived, "/workflow/caught/")
        .await
        .unwrap();
    for (i, due) in &caught {
        let run = jobs
            .iter()
            .chain(&archived)
            .filter(|t| t.name.contains(&format!("/{i}/job/")))
            .find_map(|t| {
                pinball::workflow::instance::JobToken::parse(t.clone())
                    .ok()?
                    .job
                    .run
            })
            .expect("a caught-up run has its run facts");
        assert_eq!(run.logical_time.to_string(), *due, "instance {i}");
        assert_eq!(run.kind, pinball::workflow::run_info::RunKind::Scheduled);
        assert_eq!(run.interval_end - run.interval_start, 1, "{run:?}");
    }
    let collapsed = scheduled_times(&c, "collapsed").await;
    assert!(
        collapsed.len() <= 2,
        "missed runs collapse into one: {collapsed:?}"
    );
    let t = c
        .client
        .query_prefix("/schedule/workflow/collapsed")
        .await
        .unwrap()
        .remove(0);
    assert!(
        ScheduleData::from_token(&t).unwrap().missed_runs >= 3,
        "and are counted"
    );
    c.stop().await;
}

#[tokio::test]
async fn a_scheduler_killed_and_restarted_neither_loses_nor_duplicates_a_run() {
    let c = cluster(&workflow("START_NEW", "1S", "true", 100), 2, 0).await;
    let config = c.logs.path().join("scheduler.yaml");
    std::fs::write(
        &config,
        format!(
            "master_port: {}\ndatabase_url: {}\nmaster_name: {}\n",
            c.app.addr.port(),
            c.app.url,
            c.app.master_name
        ),
    )
    .unwrap();
    let spawn = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_pinball"))
            .args(["-c", config.to_str().unwrap(), "-m", "scheduler"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let began = pinball::clock::now();
    let mut first = spawn();
    wait_until(
        Duration::from_secs(20),
        "the first scheduler starts runs",
        || async { scheduled_times(&c, "s").await.len() >= 2 },
    )
    .await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    // Down for two seconds: their occurrences are missed, then counted.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let restarted_at = pinball::clock::now();
    let mut second = spawn();
    wait_until(
        Duration::from_secs(20),
        "the restarted scheduler starts runs",
        || async {
            let runs = scheduled_times(&c, "s").await;
            runs.iter()
                .filter(|(_, t)| t.parse::<i64>().is_ok_and(|t| t >= restarted_at))
                .count()
                >= 2
        },
    )
    .await;
    second.start_kill().unwrap();
    second.wait().await.unwrap();
    let ended = pinball::clock::now();

    let runs = scheduled_times(&c, "s").await;
    let times: Vec<i64> = runs.iter().map(|(_, t)| t.parse().unwrap()).collect();
    let distinct: BTreeSet<i64> = times.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        times.len(),
        "no occurrence ran twice: {runs:?}"
    );
    assert!(
        times.iter().any(|t| *t >= restarted_at),
        "runs went on after the restart: {runs:?}"
    );
    let data = ScheduleData::from_token(
        &c.client
            .query_prefix("/schedule/workflow/s")
            .await
            .unwrap()
            .remove(0),
    )
    .unwrap();
    let due = (began + 1..=ended)
        .filter(|t| *t < data.next_run_time)
        .count() as u64;
    assert!(
        times.len() as u64 + data.missed_runs + 1 >= due,
        "every due occurrence ran or is counted as missed ({} runs, {} missed, {due} due)",
        times.len(),
        data.missed_runs
    );
    c.stop().await;
}

/// Waits until instance `i` of `w` is archived (no live token left, archived ones there).
async fn wait_archived(c: &Cluster, w: &str, i: &str) {
    let prefix = format!("/workflow/{w}/{i}/");
    let store = storage::open(&c.app.url).unwrap();
    wait_until(
        Duration::from_secs(30),
        "the instance is archived",
        || async {
            let live = c.client.query_prefix(&prefix).await.unwrap();
            let archived = store
                .read(&c.app.master_name, Table::Archived, &prefix)
                .await
                .unwrap();
            live.is_empty() && !archived.is_empty()
        },
    )
    .await;
}

#[tokio::test]
async fn the_last_outcome_comes_from_summaries_and_from_instances_not_summarised_yet() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("fixed");
    let yaml = workflow(
        "DELAY_UNTIL_SUCCESS",
        "1H",
        &format!("test -e {}", flag.display()),
        5,
    );
    let c = cluster(&yaml, 1, 0).await;
    let store: Arc<dyn storage::Storage> = Arc::from(storage::open(&c.app.url).unwrap());
    let scheduler = scheduler_for(&c, None, "http://pinball.example.com:8080");
    let summarizer =
        pinball::ops::summaries::Summarizer::new(store.clone(), c.app.master_name.clone());
    let summary_of = |i: String| {
        let store = store.clone();
        let master = c.app.master_name.clone();
        async move {
            let (page, _) = store.summaries(&master, "s", 0, 10).await.unwrap();
            page.into_iter().find(|s| s.instance == i).map(|s| s.status)
        }
    };
    assert!(
        !scheduler.last_failed(&wf("s")).await,
        "never run: not failed"
    );

    let failed = c.start("s").await;
    wait_archived(&c, "s", &failed).await;
    assert_eq!(summary_of(failed.clone()).await, None, "not summarised yet");
    assert!(
        scheduler.last_failed(&wf("s")).await,
        "a failure archived but not summarised yet is seen"
    );
    assert_eq!(summarizer.summarize().await.unwrap(), 1);
    assert_eq!(summary_of(failed.clone()).await.as_deref(), Some("FAILURE"));
    assert!(
        scheduler.last_failed(&wf("s")).await,
        "the failure is read from its summary"
    );
    // The summary is what is read, not the archived tokens: one rewritten to say SUCCESS is
    // believed.
    let (mut page, _) = store
        .summaries(&c.app.master_name, "s", 0, 1)
        .await
        .unwrap();
    let mut forged = page.remove(0);
    forged.status = "SUCCESS".into();
    store
        .write_summaries(&c.app.master_name, &[forged.clone()], &[], 0)
        .await
        .unwrap();
    assert!(
        !scheduler.last_failed(&wf("s")).await,
        "read from the summary"
    );
    forged.status = "FAILURE".into();
    store
        .write_summaries(&c.app.master_name, &[forged], &[], 0)
        .await
        .unwrap();

    std::fs::write(&flag, "").unwrap();
    let succeeded = c.start("s").await;
    wait_archived(&c, "s", &succeeded).await;
    assert!(
        !scheduler.last_failed(&wf("s")).await,
        "a success not summarised yet is newer than the summarised failure"
    );
    summarizer.summarize().await.unwrap();
    assert_eq!(summary_of(succeeded).await.as_deref(), Some("SUCCESS"));
    assert!(
        !scheduler.last_failed(&wf("s")).await,
        "read from its summary"
    );
    c.stop().await;
}

#[tokio::test]
async fn a_paused_schedule_starts_nothing_survives_an_import_and_resumes() {
    let yaml = |emails: &str| {
        format!(
            "workflows:\n  s:\n    notify_emails: [{emails}]\n    schedule: {{recurrence: 1S, overrun_policy: START_NEW, max_running_instances: 5}}\n    jobs:\n      j: {{command: 'true'}}\n"
        )
    };
    let c = cluster(&yaml("a@example.com"), 1, 0).await;
    let said = c
        .util(pinball::ops::Command::PauseSchedule, Some("s"), None, &[])
        .await;
    assert!(
        said.starts_with("paused the schedule of workflow s"),
        "{said}"
    );
    // A deploy's import that changes the schedule's definition keeps it paused.
    let file = c.logs.path().join("defs.yaml");
    std::fs::write(&file, yaml("b@example.com")).unwrap();
    let mut config = c.config();
    config.parser_params.workflows_config = Some(file.display().to_string());
    let imported = c
        .apply_with(
            crate::helpers::action(pinball::ops::Command::Reschedule, None, None, &[]),
            &config,
        )
        .await
        .unwrap();
    assert!(
        imported.contains("rescheduled workflows ['s']"),
        "{imported}"
    );
    let data = schedule_data(&c).await;
    assert!(data.paused, "the import kept it paused: {data:?}");
    assert_eq!(data.emails, ["b@example.com"]);
    let (stop, task) = spawn_scheduler(&c, None);
    wait_until(Duration::from_secs(15), "two occurrences pass", || async {
        schedule_data(&c).await.missed_runs >= 2
    })
    .await;
    let store = storage::open(&c.app.url).unwrap();
    let archived = store
        .read(&c.app.master_name, Table::Archived, "/workflow/s/")
        .await
        .unwrap();
    assert!(
        instances(&c.client, "s").await.is_empty() && archived.is_empty(),
        "a paused schedule started nothing"
    );
    let said = c
        .util(pinball::ops::Command::ResumeSchedule, Some("s"), None, &[])
        .await;
    assert!(
        said.starts_with("resumed the schedule of workflow s: its next run is at"),
        "{said}"
    );
    wait_until(Duration::from_secs(15), "a run once resumed", || async {
        !instances(&c.client, "s").await.is_empty()
            || !store
                .read(&c.app.master_name, Table::Archived, "/workflow/s/")
                .await
                .unwrap()
                .is_empty()
    })
    .await;
    let _ = stop.send(true);
    task.await.unwrap();
    c.stop().await;
}
