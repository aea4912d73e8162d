//! `cargo bench --bench retention`: what `retention_days` costs the master's commits. A master
//! on SQLite (and MariaDB with `PINBALL_TEST_MYSQL_URL`) takes a steady 200 writes/s while its
//! archive holds 3,000 instances archived a year ago; the commit latency is measured in four
//! alternating pairs of 5 s windows, without retention and while a retention pass deletes
//! those instances.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pinball::master::{LocalMasterClient, Master, MasterClient};
use pinball::storage::{self, CommitBatch, Storage, TokenRef};
use pinball::token::{ModifyRequest, Token};

const RATE: u64 = 200;
/// Each condition is measured in `ROUNDS` windows of `PHASE`, alternating, after a warm-up.
const PHASE: Duration = Duration::from_secs(5);
const ROUNDS: usize = 4;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Writes one token at `RATE` per second for `PHASE`; the latencies in ms, sorted.
async fn steady(client: &LocalMasterClient, name: &str) -> Vec<f64> {
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut version = client.get(name).await.unwrap().and_then(|t| t.version);
    while started.elapsed() < PHASE {
        tick.tick().await;
        let t = Instant::now();
        let token = Token {
            version,
            ..Token::new(name, Some(format!("{}", latencies.len())))
        };
        let done = client
            .modify(ModifyRequest::update(vec![token]))
            .await
            .unwrap();
        version = done.updates[0].version;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    latencies
}

async fn fill(store: &dyn Storage, master: &str) {
    let tokens: Vec<Token> = (0..30_000)
        .map(|k| Token {
            version: Some(1),
            ..Token::new(
                format!("/workflow/old/{:05}/job/waiting/j{}", k / 10, k % 10),
                Some(format!("{{\"history\": \"{}\"}}", "x".repeat(200))),
            )
        })
        .collect();
    for part in tokens.chunks(2_000) {
        let batch = CommitBatch {
            archived: part.iter().map(TokenRef::from).collect(),
            archived_at: Some(pinball::clock::now() - 400 * 86_400),
            ..Default::default()
        }
        .grouped(pinball::token::name::archive_prefix);
        store.commit(master, &batch).await.unwrap();
    }
}

async fn run(url: &str, what: &str) {
    let master = format!("bench_retention_{}", std::process::id());
    let store: Arc<dyn Storage> = Arc::from(storage::open(url).unwrap());
    store.migrate().await.unwrap();
    fill(store.as_ref(), &master).await;
    let m = Master::start(
        storage::open(url).unwrap(),
        &master,
        pinball::modes::naming(),
    )
    .await;
    let client = LocalMasterClient(m.clone());
    steady(&client, "/bench/warm").await;
    let (mut quiet, mut busy) = (Vec::new(), Vec::new());
    // The noise: the p99 of the even rounds' quiet windows against the odd rounds'.
    let (mut even, mut odd) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let window = steady(&client, "/bench/quiet").await;
        if round % 2 == 0 { &mut even } else { &mut odd }.extend(window.iter().copied());
        quiet.extend(window);
        let deleting = {
            let (store, master) = (store.clone(), master.clone());
            tokio::spawn(async move {
                pinball::master::retention::pass(
                    store.as_ref(),
                    &master,
                    30,
                    pinball::token::name::archive_prefix,
                )
                .await
            })
        };
        busy.extend(steady(&client, "/bench/busy").await);
        deleting.abort();
    }
    for v in [&mut quiet, &mut busy, &mut even, &mut odd] {
        v.sort_by(f64::total_cmp);
    }
    let noise = (percentile(&odd, 0.99) / percentile(&even, 0.99) - 1.0) * 100.0;
    let left = store
        .expired_archives(
            &master,
            pinball::clock::now() - 30 * 86_400,
            10_000,
            pinball::token::name::archive_prefix,
        )
        .await
        .unwrap()
        .len();
    let (q50, q99) = (percentile(&quiet, 0.5), percentile(&quiet, 0.99));
    let (b50, b99) = (percentile(&busy, 0.5), percentile(&busy, 0.99));
    println!(
        "{what}: commit latency at {RATE}/s without retention p50 {q50:.2} ms p99 {q99:.2} ms; \
         while retention deletes p50 {b50:.2} ms (+{:.0} %) p99 {b99:.2} ms (+{:.0} %); \
         {} of 3000 old instances deleted in {} s; noise: p99 of quiet windows {noise:+.0} % between halves",
        (b50 / q50 - 1.0) * 100.0,
        (b99 / q99 - 1.0) * 100.0,
        3000 - left,
        PHASE.as_secs() * ROUNDS as u64
    );
    m.close().await;
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    run(
        &format!("sqlite://{}", dir.path().join("bench.db").display()),
        "SQLite",
    )
    .await;
    if let Ok(url) = std::env::var("PINBALL_TEST_MYSQL_URL") {
        run(&url, "MariaDB").await;
    }
}
