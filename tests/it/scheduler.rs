//! The scheduler with second-scale recurrences, a real master and real workers: each overrun
//! policy as PINBALL_SPEC §5.3 describes it, and max_running_instances.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinball::master::MasterClient;
use pinball::scheduler::run::{Scheduler, SchedulerSettings};
use pinball::scheduler::token::ScheduleData;
use pinball::storage::{self, Table};
use pinball::workflow::{name, progress};
use tokio::sync::watch;

use crate::workflows::{Cluster, cluster};

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

/// Runs a scheduler for `secs` seconds, sampling the workflow every 100 ms.
async fn observe(c: &Cluster, secs: u64) -> Watch {
    let (stop, stopped) = watch::channel(false);
    let settings = SchedulerSettings {
        default_max_running: 3,
        poll: Duration::from_secs(1),
        recheck: Duration::from_secs(1),
        mailer: None,
        store: Some(Arc::from(storage::open(&c.app.url).unwrap())),
        master_name: c.app.master_name.clone(),
    };
    let scheduler = Scheduler {
        client: Arc::new(c.client.clone()),
        settings,
        name: "test_scheduler".into(),
    };
    let task = tokio::spawn(scheduler.run(stopped));
    let store = storage::open(&c.app.url).unwrap();
    let mut w = Watch {
        max_running: 0,
        instances: BTreeSet::new(),
    };
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        let running = progress::running_instances(&c.client, "s").await.unwrap();
        w.max_running = w.max_running.max(running.len());
        w.instances.extend(running);
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
    let c = cluster(&workflow("ABORT_RUNNING", "2S", "sleep 30", 5), 4, 0).await;
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
    c.stop().await;
}

#[tokio::test]
async fn delay_until_success_waits_after_a_failure() {
    let c = cluster(&workflow("DELAY_UNTIL_SUCCESS", "1S", "exit 1", 5), 2, 0).await;
    let w = observe(&c, 5).await;
    assert_eq!(
        w.instances.len(),
        1,
        "after the first instance failed, no other started: {:?}",
        w.instances
    );
    let data = schedule_data(&c).await;
    assert!(data.last_instance.is_some());
    c.stop().await;
}
