//! `cargo bench --bench execution`: how prompt and fair execution is, on SQLite.
//! (a) abort latency: from the master's acknowledgement of an instance's ABORT to the job's
//!     process gone, p50/p99 over 30 aborts, with a 30 s lease (renewals every 10 s), so the
//!     figure is the watch's; target p99 <= 1 s.
//! (b) claim fairness under saturation: two workflows of equal priority and equal demand
//!     (instances started alternately, 4 jobs each), 2 busy workers: each one's share of the
//!     first half of the runs; target within 10 % of its demand (50 %).
//! (c) the cost of watching: a `pinball -m master` process holding 1,000 running jobs, each
//!     with its signals watched and its lease renewed every 10 s as a worker does: the master's
//!     CPU over 20 s; target < 5 % of one core.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pinball::master::client::RetryPolicy;
use pinball::master::{HttpMasterClient, Master, MasterClient, api};
use pinball::storage;
use pinball::token::name::{self, Level};
use pinball::token::{ModifyRequest, Token};
use pinball::workflow::definition;
use pinball::workflow::signal::{Action, Attributes, Signal, Signals};
use pinball::workflow::worker::{WorkerSettings, run_workers};
use tokio::sync::watch;

fn settings(logs: &std::path::Path) -> WorkerSettings {
    WorkerSettings {
        generation: 1,
        lease: Duration::from_secs(30),
        poll: Duration::from_secs(5),
        logs_dir: logs.to_path_buf(),
        archive_delay_sec: 0,
        base_url: None,
        kill_grace: Duration::from_secs(1),
        shutdown_grace: Duration::from_secs(1),
        mailer: None,
        webhooks: None,
        ui_link: "http://localhost:8080".into(),
        outage_grace: Duration::from_secs(600),
        lost_lease_retries: 1,
        pools: vec!["default".into()],
        launch: Default::default(),
    }
}

/// A master over HTTP on a fresh SQLite file, `workers` workers, and the workflows of `yaml`.
async fn rig(
    dir: &std::path::Path,
    yaml: &str,
    workers: usize,
) -> (HttpMasterClient, watch::Sender<bool>) {
    let url = format!("sqlite://{}", dir.join("exec.db").display());
    let m = Master::start(
        storage::open(&url).unwrap(),
        "bench",
        pinball::modes::naming(),
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(pinball::master::server::serve(
        m,
        listener,
        api::ApiSettings::open(api::DEFAULT_MAX_REQUEST_BYTES),
        std::future::pending(),
    ));
    let client = HttpMasterClient::new("127.0.0.1", port, RetryPolicy::default());
    let defs = pinball::parser::parse_yaml(yaml, "bench").unwrap();
    definition::import(&client, &defs, None, false)
        .await
        .unwrap();
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(run_workers(
        Arc::new(client.clone()),
        settings(dir),
        workers,
        stopped,
    ));
    (client, stop)
}

async fn start(client: &HttpMasterClient, yaml: &str, w: &str) -> name::InstanceId {
    let defs = pinball::parser::parse_yaml(yaml, "bench").unwrap();
    let instance = pinball::workflow::instance::new_instance_id();
    let w = name::WorkflowName::parse(w).unwrap();
    let tokens = pinball::workflow::instance::new_instance_tokens(&w, &instance, &defs[&w].graph());
    client.modify(ModifyRequest::update(tokens)).await.unwrap();
    instance
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn abort_latency() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    std::fs::create_dir(&pids).unwrap();
    let yaml = format!(
        "workflows:\n  ab:\n    jobs:\n      j: {{command: 'echo $$ > {}/$PINBALL_INSTANCE; exec sleep 600'}}\n",
        pids.display()
    );
    let (client, stop) = rig(dir.path(), &yaml, 1).await;
    let mut ms = Vec::new();
    for _ in 0..30 {
        let i = start(&client, &yaml, "ab").await;
        let pid_file = pids.join(i.as_str());
        let pid = loop {
            if let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                break pid;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let level = Level::Instance(name::WorkflowName::parse("ab").unwrap(), i);
        let abort = Signal::new(Action::ABORT, Attributes::default()).token(&level);
        client
            .modify(ModifyRequest::update(vec![abort]))
            .await
            .unwrap();
        let acknowledged = Instant::now();
        // SAFETY: signal 0 only asks whether the process exists.
        while unsafe { libc::kill(pid, 0) } == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        ms.push(acknowledged.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = stop.send(true);
    ms.sort_by(f64::total_cmp);
    println!(
        "abort latency (acknowledged -> process gone), 30 aborts: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (target p99 <= 1000 ms)",
        pct(&ms, 0.5),
        pct(&ms, 0.99),
        ms[ms.len() - 1]
    );
}

async fn fairness() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = |w: &str| -> String {
        (0..4)
            .map(|n| format!("      {w}{n}: {{command: 'sleep 0.02'}}\n"))
            .collect()
    };
    let yaml = format!(
        "workflows:\n  alpha:\n    jobs:\n{}  zeta:\n    jobs:\n{}",
        jobs("a"),
        jobs("z")
    );
    // The workers start once every instance is queued: saturated from the first claim.
    let (client, stop) = rig(dir.path(), &yaml, 0).await;
    let mut instances = Vec::new();
    for _ in 0..20 {
        instances.push(("alpha", start(&client, &yaml, "alpha").await));
        instances.push(("zeta", start(&client, &yaml, "zeta").await));
    }
    let (stop_workers, stopped) = watch::channel(false);
    let started = Instant::now();
    // Finished instances stay in the master, where their runs are read.
    let keep = WorkerSettings {
        archive_delay_sec: 3600,
        ..settings(dir.path())
    };
    tokio::spawn(run_workers(Arc::new(client.clone()), keep, 2, stopped));
    // Every run's start, by workflow, read from the job tokens once all have run.
    let mut starts: Vec<(f64, &str)> = Vec::new();
    loop {
        starts.clear();
        for (w, i) in &instances {
            let wf = name::WorkflowName::parse(*w).unwrap();
            let prefix = name::job_prefix(&wf, i);
            for t in client.query_prefix(&prefix).await.unwrap() {
                let jt = pinball::workflow::instance::JobToken::parse(t).unwrap();
                if let Some(r) = jt.job.history.first().filter(|r| r.end_time.is_some()) {
                    starts.push((r.start_time, w));
                }
            }
        }
        if starts.len() == 160 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    let _ = stop_workers.send(true);
    let _ = stop.send(true);
    starts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let first_half = &starts[..80];
    let alpha = first_half.iter().filter(|(_, w)| *w == "alpha").count();
    println!(
        "claim fairness, 2 workers, alpha and zeta 20 instances x 4 jobs each ({:.1} s): first half of the runs alpha {:.0} %, zeta {:.0} % (demand 50 % each; target within 10 %)",
        elapsed.as_secs_f64(),
        alpha as f64 / 80.0 * 100.0,
        (80 - alpha) as f64 / 80.0 * 100.0
    );
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf only reads a constant.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

async fn watching_cost() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("master.yaml");
    std::fs::write(
        &config,
        format!(
            "database_url: sqlite://{}\nmaster_port: 0\nmax_connections: 4000\n",
            dir.path().join("w.db").display()
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pinball"))
        .args(["-c", config.to_str().unwrap(), "-m", "master"])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let port: u16 = loop {
        let line = lines.next_line().await.unwrap().expect("the master starts");
        if let Some(addr) = line.split("master listening addr=").nth(1) {
            break addr.trim().rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let client = Arc::new(HttpMasterClient::new(
        "127.0.0.1",
        port,
        RetryPolicy::default(),
    ));
    // 1,000 running jobs: a leased runnable token each, in 1,000 instances.
    let w = name::WorkflowName::parse("watched").unwrap();
    let mut jobs = Vec::new();
    for k in 0..1000u64 {
        let i = name::InstanceId::parse(format!("{}", 1_000_000 + k)).unwrap();
        let t = Token {
            owner: Some(format!("worker_{k}")),
            expiration_time: Some(pinball::clock::now() + 30),
            ..Token::new(
                name::job_token(
                    &w,
                    &i,
                    name::JobState::Runnable,
                    &name::JobName::parse("j").unwrap(),
                ),
                Some("{}".into()),
            )
        };
        jobs.push((i, t));
    }
    for chunk in jobs.chunks(500) {
        let tokens = chunk.iter().map(|(_, t)| t.clone()).collect();
        let written = client.modify(ModifyRequest::update(tokens)).await.unwrap();
        assert_eq!(written.updates.len(), chunk.len());
    }
    let (stop, stopped) = watch::channel(false);
    for (i, token) in jobs {
        let client = client.clone();
        let w = w.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let level = Level::Instance(w, i);
            let mut token = client.get(&token.name).await.unwrap().unwrap();
            let mut after = None;
            let mut renew = tokio::time::interval(Duration::from_secs(10));
            renew.tick().await;
            // Spread the renewals over the interval, as jobs that started at different times.
            tokio::time::sleep(Duration::from_millis(fastrand::u64(0..10_000))).await;
            loop {
                let watch = Signals::watch(client.as_ref(), &level, after, Duration::from_secs(10));
                tokio::select! {
                    r = watch => after = r.ok().map(|(_, v)| v),
                    _ = renew.tick() => {
                        let req = ModifyRequest { updates: vec![token.clone()], lease_sec: Some(30), ..ModifyRequest::default() };
                        token = client.modify(req).await.unwrap().updates.remove(0);
                    }
                    _ = stopped.changed() => return,
                }
            }
        });
    }
    // Let every watch park, then measure.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let pid = child.id().unwrap();
    let before = cpu_seconds(pid);
    let window = Duration::from_secs(20);
    tokio::time::sleep(window).await;
    let used = cpu_seconds(pid) - before;
    let health = client.health().await.unwrap();
    let _ = stop.send(true);
    println!(
        "cost of watching: master CPU with 1,000 running jobs watched and renewed every 10 s: {:.1} % of a core over {} s ({} tokens; target < 5 %)",
        used / window.as_secs_f64() * 100.0,
        window.as_secs(),
        health.tokens
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "# pinball execution benchmark ({} cores, SQLite)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    rt.block_on(abort_latency());
    rt.block_on(fairness());
    rt.block_on(watching_cost());
}
