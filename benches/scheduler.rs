//! `cargo bench --bench scheduler`: 10,000 scheduled workflows on SQLite. Import time;
//! fire-time skew (instance start minus due time) at 100 due schedules per second; and the
//! CPU the master and scheduler use while nothing is due.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pinball::master::client::RetryPolicy;
use pinball::master::{HttpMasterClient, Master, MasterClient, api};
use pinball::parser::{JobDef, WorkflowDef};
use pinball::schedule::ScheduleDef;
use pinball::scheduler::run::{Scheduler, SchedulerSettings};
use pinball::storage;
use pinball::workflow::definition;
use tokio::sync::watch;

const WORKFLOWS: usize = 10_000;

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

/// 10,000 workflows every 100 s, their start times spread 10 ms apart from `first`: 100 fall
/// due each second.
fn definitions(first: jiff::Timestamp) -> pinball::parser::Definitions {
    (0..WORKFLOWS)
        .map(|i| {
            let start = first
                .checked_add(jiff::SignedDuration::from_millis(10 * i as i64))
                .unwrap();
            let def = WorkflowDef {
                schedule: Some(ScheduleDef {
                    recurrence: Some("100S".into()),
                    start: Some(start.round(jiff::Unit::Second).unwrap().to_string()),
                    overrun_policy: Some("START_NEW".into()),
                    ..Default::default()
                }),
                jobs: [(
                    pinball::token::name::JobName::parse("j").unwrap(),
                    JobDef {
                        command: "true".into(),
                        ..Default::default()
                    },
                )]
                .into(),
                ..Default::default()
            };
            let w = pinball::token::name::WorkflowName::parse(format!("wf_{i:05}")).unwrap();
            (w, def)
        })
        .collect()
}

#[tokio::main]
async fn main() {
    println!("# pinball scheduler benchmark ({WORKFLOWS} scheduled workflows, SQLite)");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let master = Master::start(
        storage::open(&url).unwrap(),
        "default",
        pinball::modes::naming(),
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(pinball::master::server::serve(
        master,
        listener,
        api::ApiSettings::open(api::DEFAULT_MAX_REQUEST_BYTES),
        std::future::pending(),
    ));
    let client = HttpMasterClient::new("127.0.0.1", port, RetryPolicy::default());

    // Due times start 20 s from now, so the import and the idle measurement come first.
    let first = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(20))
        .unwrap();
    let defs = definitions(first);
    let started = Instant::now();
    let done = definition::import(&client, &defs, None, false)
        .await
        .unwrap();
    println!(
        "import of {} definitions and {} schedules: {:.2} s",
        done.definitions.len(),
        done.schedules.len(),
        started.elapsed().as_secs_f64()
    );

    let (stop, stopped) = watch::channel(false);
    let settings = SchedulerSettings {
        default_max_running: 3,
        poll: Duration::from_secs(30),
        recheck: Duration::from_secs(2),
        mailer: None,
        ui_link: "http://pinball.example.com:8080".into(),
        store: None,
        master_name: "default".into(),
    };
    let scheduler = Scheduler {
        client: Arc::new(client.clone()),
        settings,
        name: "bench_scheduler".into(),
    };
    let task = tokio::spawn(scheduler.run(stopped));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle = (cpu_seconds() - cpu0) / wall0.elapsed().as_secs_f64() * 100.0;
    println!("idle CPU (master + scheduler, nothing due, 10 s): {idle:.2} % of a core");

    // Let 20 s of schedules fire (about 2,000), then read each instance's start.
    let until = first
        .checked_add(jiff::SignedDuration::from_secs(20))
        .unwrap();
    while jiff::Timestamp::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop.send(true);
    let _ = task.await;
    let mut skews = Vec::new();
    for (w, def) in &defs {
        let due = def
            .schedule
            .as_ref()
            .unwrap()
            .start
            .as_ref()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap();
        if due > until {
            continue;
        }
        let groups = client
            .group(pinball::token::GroupRequest {
                name_prefix: format!("/workflow/{w}/"),
                group_suffix: Some("/".into()),
            })
            .await
            .unwrap();
        for key in groups.counts.keys() {
            let instance_ms: i64 = key.rsplit('/').next().unwrap().parse().unwrap();
            skews.push((instance_ms - due.as_millisecond()) as f64);
        }
    }
    skews.sort_by(f64::total_cmp);
    let pct = |p: f64| skews[((skews.len() - 1) as f64 * p) as usize];
    println!(
        "fire-time skew at 100 due/s ({} runs): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        skews.len(),
        pct(0.5),
        pct(0.99),
        skews.last().unwrap()
    );
}
