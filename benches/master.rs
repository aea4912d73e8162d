//! `cargo bench --bench master`: the master's figures on SQLite and (with
//! `PINBALL_TEST_MYSQL_URL`, `PINBALL_TEST_POSTGRES_URL`) MariaDB and PostgreSQL, over real HTTP
//! on this machine:
//! committed `/modify` throughput with 1 and 64 clients, latency at a fixed 1,000 requests/s,
//! long-poll wake-up latency, memory per token at 100k tokens, recovery time for 1M tokens.
//! Set `PINBALL_BENCH_QUICK=1` for a short run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pinball::master::client::RetryPolicy;
use pinball::master::state::{Entry, State};
use pinball::master::{HttpMasterClient, Master, MasterClient, api};
use pinball::storage::{self, CommitBatch, TokenRef};
use pinball::token::*;

/// Counts live heap bytes, so memory per token is measured, not estimated.
struct Counting;
static LIVE: AtomicI64 = AtomicI64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn quick() -> bool {
    std::env::var("PINBALL_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}_{}", std::process::id(), fastrand::u32(..))
}

struct Server {
    client: HttpMasterClient,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn serve(url: &str, master: &str) -> Server {
    let master = Master::start(
        storage::open(url).unwrap(),
        master,
        pinball::modes::naming(),
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(pinball::master::server::serve(
        master,
        listener,
        api::ApiSettings::open(api::DEFAULT_MAX_REQUEST_BYTES),
        async move {
            let _ = stopped.await;
        },
    ));
    let policy = RetryPolicy {
        attempts: 1,
        ..Default::default()
    };
    Server {
        client: HttpMasterClient::new("127.0.0.1", port, policy),
        stop,
        task,
    }
}

impl Server {
    async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Each client updates its own token, version-checked, as fast as commits allow.
async fn throughput(server: &Server, clients: usize, run: Duration) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + run;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = server.client.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("/bench/tp/{clients}/{c}");
            let first = ModifyRequest::update(vec![Token::new(&name, Some("0".into()))]);
            let mut t = client.modify(first).await.unwrap().updates.remove(0);
            let mut i = 0u64;
            while Instant::now() < deadline {
                i += 1;
                t.data = Some(i.to_string());
                t = client
                    .modify(ModifyRequest::update(vec![t.clone()]))
                    .await
                    .unwrap()
                    .updates
                    .remove(0);
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Open loop: one single-token insert every millisecond, whatever the answers take.
async fn fixed_rate(server: &Server, rate: u32, run: Duration) -> (Duration, Duration, usize) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / rate);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = (run.as_secs_f64() * rate as f64) as usize;
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        ticker.tick().await;
        let client = server.client.clone();
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let t = Token::new(format!("/bench/rate/{i}"), Some("x".repeat(100)));
            client.modify(ModifyRequest::update(vec![t])).await.unwrap();
            started.elapsed()
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for t in tasks {
        latencies.push(t.await.unwrap());
    }
    latencies.sort();
    (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        total,
    )
}

/// A claim is parked; a matching token is inserted. Wake-up = the time from the inserter's
/// acknowledgement to the parked claimer receiving the token.
async fn wakeup(server: &Server, rounds: usize) -> (Duration, Duration, Duration) {
    let mut wake = Vec::with_capacity(rounds);
    let mut end_to_end = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let client = server.client.clone();
        let waiter = tokio::spawn(async move {
            let req = QueryAndOwnRequest {
                owner: "bench".into(),
                expiration_time: pinball::clock::now() + 600,
                query: Some(Query {
                    name_prefix: "/bench/wake/*/".into(),
                    max_tokens: Some(1),
                }),
                wait_ms: Some(10_000),
                lease_sec: None,
                pools: None,
                // As a worker's claim: the grant is recorded in the token's data, and its
                // answer carries its context (no signals under these names: an empty one).
                record_grant: true,
                context: true,
            };
            let r = client.query_and_own(req).await.unwrap();
            assert_eq!(r.tokens.len(), 1);
            Instant::now()
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let sent = Instant::now();
        let t = Token::new(format!("/bench/wake/{i}/job"), None);
        server
            .client
            .modify(ModifyRequest::update(vec![t]))
            .await
            .unwrap();
        let acked = Instant::now();
        let received = waiter.await.unwrap();
        wake.push(received.saturating_duration_since(acked));
        end_to_end.push(received - sent);
    }
    wake.sort();
    end_to_end.sort();
    (
        percentile(&wake, 0.5),
        percentile(&wake, 0.99),
        percentile(&end_to_end, 0.99),
    )
}

fn realistic_token(i: usize) -> (String, Entry) {
    let name = format!(
        "/workflow/wf_{}/{}/job/waiting/job_{}",
        i % 100,
        1_700_000_000_000u64 + (i / 1000) as u64,
        i % 1000
    );
    let data = format!(
        "{{\"type\":\"ShellJob\",\"name\":\"job_{i}\",\"command\":\"echo {i}\",\"history\":[]}}"
    );
    let entry = Entry {
        version: i as i64 + 1,
        owner: None,
        expiration_time: None,
        priority: 1.0,
        data: Some(data.into()),
    };
    (name, entry)
}

/// Live heap bytes per token beyond its name and data, at 100k tokens in the master's state.
fn memory_per_token(n: usize) -> (f64, f64) {
    let before = LIVE.load(Ordering::SeqCst);
    let rows: Vec<(String, Entry)> = (0..n).map(realistic_token).collect();
    let payload: usize = rows
        .iter()
        .map(|(name, e)| name.len() + e.data.as_ref().map_or(0, |d| d.len()))
        .sum();
    let state = State::load(rows, 0, "bench".into());
    // The rows moved into the state (their vector is freed): what is live now is the state.
    let total = LIVE.load(Ordering::SeqCst) - before;
    let per_token = total as f64 / n as f64;
    let overhead = (total as f64 - payload as f64) / n as f64;
    drop(state);
    (per_token, overhead)
}

/// Writes `n` tokens straight into the database, then times a master loading them.
async fn recovery(url: &str, n: usize) -> (Duration, Duration) {
    let store = storage::open(url).unwrap();
    store.migrate().await.unwrap();
    let master = unique("recovery");
    store.load_active(&master).await.unwrap();
    let written = Instant::now();
    let chunk = 5000;
    for start in (0..n).step_by(chunk) {
        let rows: Vec<(String, Entry)> = (start..(start + chunk).min(n))
            .map(realistic_token)
            .collect();
        let upserts = rows
            .iter()
            .map(|(name, e)| TokenRef {
                name,
                version: e.version,
                owner: None,
                expiration_time: None,
                priority: e.priority,
                data: e.data.as_deref(),
            })
            .collect();
        store
            .commit(
                &master,
                &CommitBatch {
                    upserts,
                    version_floor: n as i64,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        if start % 200_000 == 0 {
            eprintln!("  ... wrote {start} of {n} tokens");
        }
    }
    let write_time = written.elapsed();
    let started = Instant::now();
    let m = Master::start(store, &master, pinball::modes::naming()).await;
    let load_time = started.elapsed();
    assert_eq!(m.health().await.unwrap().tokens, n);
    (write_time, load_time)
}

async fn backend(name: &str, url: &str) {
    let run = if quick() {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(5)
    };
    println!("\n## {name}");
    if std::env::var("PINBALL_BENCH_ONLY").as_deref() == Ok("recovery") {
        let (write, load) = recovery(url, 1_000_000).await;
        println!(
            "recovery of 1000000 tokens: {} s (writing them took {} s)",
            fmt_s(load),
            fmt_s(write)
        );
        return;
    }
    let server = serve(url, &unique("bench")).await;
    for clients in [1, 64] {
        let rate = throughput(&server, clients, run).await;
        println!("committed single-token /modify, {clients:>2} clients: {rate:>8.0} /s");
    }
    let (p50, p99, n) = fixed_rate(&server, 1000, run).await;
    println!(
        "latency at a fixed 1,000 modifies/s ({n} requests): p50 {}, p99 {}",
        ms(p50),
        ms(p99)
    );
    let (w50, w99, e99) = wakeup(&server, if quick() { 50 } else { 300 }).await;
    println!(
        "query_and_own wake-up (inserter's ack -> claimer has the token): p50 {}, p99 {}",
        ms(w50),
        ms(w99)
    );
    println!(
        "  insert sent -> parked claimer has the token: p99 {}",
        ms(e99)
    );
    server.shutdown().await;
    let n = if quick() { 100_000 } else { 1_000_000 };
    let (write, load) = recovery(url, n).await;
    println!(
        "recovery of {n} tokens: {} s (writing them took {} s)",
        fmt_s(load),
        fmt_s(write)
    );
}

fn fmt_s(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn main() {
    if std::env::var("PINBALL_BENCH_LOG").is_ok() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "# pinball master benchmark ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let (per_token, overhead) = memory_per_token(100_000);
    println!(
        "memory at 100k tokens: {per_token:.0} bytes per token in all, {overhead:.0} bytes beyond name and data"
    );
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
    rt.block_on(backend("SQLite (WAL, synchronous=FULL)", &sqlite));
    for (name, var) in [
        ("MariaDB", "PINBALL_TEST_MYSQL_URL"),
        ("PostgreSQL", "PINBALL_TEST_POSTGRES_URL"),
    ] {
        match std::env::var(var) {
            Ok(url) if !url.is_empty() => rt.block_on(backend(name, &url)),
            _ => println!("\n## {name}\nSKIPPED: set {var} to measure {name}"),
        }
    }
}
