//! `cargo bench --bench standby`: a standby master on MariaDB and PostgreSQL
//! (`PINBALL_TEST_MYSQL_URL`, `PINBALL_TEST_POSTGRES_URL`), with real `pinball -m master`
//! processes on this machine:
//! (a) takeovers, 10 of each kind: the leader SIGKILLed (on this host the standby sees its holder
//!     is gone and takes over at once) and SIGSTOPped (as a host that vanished: the standby waits
//!     for the lease to run out by the database's clock); the time from the signal to the first
//!     write acknowledged by the new leader, through a client given both addresses; and 10
//!     planned handovers (`POST /api/v1/master/handover`, what `pinball master handover` sends);
//! (b) the cost of fencing: the p50 of one client's commits on a master that checks its lease's
//!     epoch in every commit, against one that takes no lease.
//! `master_lease_sec` is 5 here (the target is the lease + 2 s). Set `PINBALL_BENCH_QUICK=1`
//! for 3 takeovers of each kind.

use std::path::Path;
use std::time::{Duration, Instant};

use pinball::master::client::RetryPolicy;
use pinball::master::lease::HoldSpec;
use pinball::master::{HttpMasterClient, Master, MasterClient};
use pinball::storage;
use pinball::token::{ModifyRequest, Token};

const LEASE_SEC: u64 = 5;

fn quick() -> bool {
    std::env::var("PINBALL_BENCH_QUICK").is_ok()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}_{}", std::process::id(), fastrand::u32(..))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_master(config: &Path) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_pinball"))
        .args(["-c", config.to_str().unwrap(), "-m", "master"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn is_ready(port: u16) -> bool {
    reqwest::get(format!("http://127.0.0.1:{port}/ready"))
        .await
        .is_ok_and(|r| r.status() == 200)
}

/// Which of `ports` leads, once one does.
async fn leader(ports: [u16; 2]) -> usize {
    let started = Instant::now();
    loop {
        for (i, p) in ports.iter().enumerate() {
            if is_ready(*p).await {
                return i;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no master leads"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Takeovers by `signal` (SIGKILL or SIGSTOP; 0: a handover asked of the leader): each the
/// time from the signal (or the request) to the first acknowledged write.
async fn takeovers(url: &str, signal: i32, rounds: usize) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let name = unique("standby_bench");
    let ports = [free_port(), free_port()];
    let configs: Vec<_> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let path = dir.path().join(format!("m{i}.yaml"));
            std::fs::write(
                &path,
                format!(
                    "database_url: {url}\nmaster_name: {name}\nmaster_port: {p}\nmaster_lease_sec: {LEASE_SEC}\n"
                ),
            )
            .unwrap();
            path
        })
        .collect();
    let mut children = [Some(spawn_master(&configs[0])), None];
    leader(ports).await;
    children[1] = Some(spawn_master(&configs[1]));
    let client = HttpMasterClient::of_hosts(
        ports.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
        RetryPolicy {
            attempts: 1000,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            timeout: Duration::from_secs(60),
            // As `RetryPolicy::from_config` sets it: half the lease.
            failover_timeout: Duration::from_millis(LEASE_SEC * 500),
        },
    );
    let mut out = Vec::new();
    for round in 0..rounds {
        let was = leader(ports).await;
        // The other one stands by, and the leader knows it, before the leader goes.
        while client
            .health()
            .await
            .map_or(true, |h| h.standbys.is_empty())
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let pid = children[was].as_ref().unwrap().id().unwrap() as i32;
        let at = Instant::now();
        if signal == 0 {
            client
                .hand_over(&Default::default())
                .await
                .expect("the leader hands over");
        } else {
            // SAFETY: a signal to a child this bench started.
            unsafe { libc::kill(pid, signal) };
        }
        client
            .modify(ModifyRequest {
                updates: vec![Token::new(format!("/bench/{round}"), None)],
                ..Default::default()
            })
            .await
            .expect("the new leader takes the write");
        out.push(at.elapsed());
        if signal == libc::SIGSTOP {
            // SAFETY: as above. It wakes, finds its lease gone, and stands by.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
        if signal == libc::SIGKILL {
            let _ = children[was].take().unwrap().wait().await;
            children[was] = Some(spawn_master(&configs[was]));
        }
        println!(
            "  takeover {} of {rounds}: {:.2} s",
            round + 1,
            out[round].as_secs_f64()
        );
    }
    out
}

/// One client's commit latencies on `master`, `n` sequential writes.
async fn commits(master: &Master, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let req = ModifyRequest {
            updates: vec![Token::new(format!("/fence/{}", fastrand::u64(..)), None)],
            ..Default::default()
        };
        let t = Instant::now();
        master.modify(req).await.unwrap();
        out.push(t.elapsed());
    }
    out
}

/// p50 of commits without a lease and with one (the epoch checked in each), alternating.
async fn fencing(url: &str) -> (Duration, Duration) {
    let n = if quick() { 300 } else { 1000 };
    let (mut plain, mut fenced) = (Vec::new(), Vec::new());
    let unfenced = Master::start(
        storage::open(url).unwrap(),
        &unique("unfenced"),
        pinball::modes::naming(),
    )
    .await;
    let leased = Master::serve_exclusively(
        storage::open(url).unwrap(),
        &unique("fenced"),
        pinball::master::service::MasterOptions::new(pinball::modes::naming()),
        HoldSpec {
            address: "127.0.0.1:1".into(),
            lease: Duration::from_secs(10),
            file_locked: false,
        },
    )
    .await
    .expect("a fresh master name's lease is free");
    for _ in 0..4 {
        plain.extend(commits(&unfenced, n / 4).await);
        fenced.extend(commits(&leased, n / 4).await);
    }
    (pct(plain, 0.5), pct(fenced, 0.5))
}

fn main() {
    pinball::config::install_tls_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "# pinball standby benchmark ({} cores, master_lease_sec {LEASE_SEC})",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let rounds = if quick() { 3 } else { 10 };
    for (name, var) in [
        ("MariaDB", "PINBALL_TEST_MYSQL_URL"),
        ("PostgreSQL", "PINBALL_TEST_POSTGRES_URL"),
    ] {
        println!("\n## {name}");
        let Some(url) = std::env::var(var).ok().filter(|u| !u.is_empty()) else {
            println!("SKIPPED: set {var} to measure {name}");
            continue;
        };
        rt.block_on(async {
            for (kind, signal, target) in [
                ("leader SIGKILLed (seen dead on this host)", libc::SIGKILL, LEASE_SEC + 2),
                ("leader SIGSTOPped (its lease runs out)", libc::SIGSTOP, LEASE_SEC + 2),
                ("`pinball master handover` (planned)", 0, 2),
            ] {
                let t = takeovers(&url, signal, rounds).await;
                println!(
                    "{kind}: to the first acknowledged write p50 {:.2} s, max {:.2} s (target: {target} s)",
                    pct(t.clone(), 0.5).as_secs_f64(),
                    pct(t, 1.0).as_secs_f64(),
                );
            }
            let (plain, fenced) = fencing(&url).await;
            println!(
                "commit p50, one client: {:.2} ms without a lease, {:.2} ms with the epoch checked in each ({:+.1} %)",
                plain.as_secs_f64() * 1e3,
                fenced.as_secs_f64() * 1e3,
                (fenced.as_secs_f64() / plain.as_secs_f64() - 1.0) * 100.0
            );
        });
    }
}
