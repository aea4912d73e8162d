//! `cargo bench --bench hosts`: Pinball across hosts, with real processes.
//!
//! (a) Workers on two hosts against one master, beside the same number of workers on one
//!     host, in one run: trivial jobs in 10 instances of 100 independent jobs (1,000 jobs,
//!     every step committed) for jobs/s, and a chain of 200 for job-to-job latency
//!     (p50/p99). Hosts are network namespaces joined to this one by veth pairs (root only);
//!     the master is a `pinball -m master` process on MariaDB (`PINBALL_TEST_MYSQL_URL`, else
//!     SQLite). CPU seconds per process say where the time goes. Target: >= 500 jobs/s, two
//!     hosts no slower than one.
//! (b) A loud log: the chain's latency alone, and while a job of another workflow prints about
//!     10 MB/s that its worker sends to the master. Target: at most 20 % more.

#[path = "../tests/it/helpers/netns.rs"]
#[allow(dead_code)]
mod netns;

use std::path::Path;
use std::time::{Duration, Instant};

use pinball::config::Secret;
use pinball::master::client::RetryPolicy;
use pinball::master::{HttpMasterClient, MasterClient};
use pinball::token::name::{InstanceId, WorkflowName, job_prefix};
use pinball::workflow::instance::JobToken;

const OPERATOR: &str = "bench-operator-token-0123456789";
const WORKER: &str = "bench-worker-token-0123456789ab";
const FANS: usize = 10;
const WIDTH: usize = 100;
const CHAIN: usize = 200;

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// CPU seconds (user + system) a process has used.
fn cpu_sec(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command: state is field 0, utime 11, stime 12, and the same of its reaped
    // children (the jobs' shells) 13 and 14; 100 ticks a second.
    (ticks(11) + ticks(12) + ticks(13) + ticks(14)) / 100.0
}

fn workflows(done: &Path, stop: &Path, noise: &Path) -> String {
    // Each fan-out job leaves a file (a redirection: no process beyond the job's shell).
    let mut y = String::from("workflows:\n  fan:\n    jobs:\n");
    for k in 0..WIDTH {
        y.push_str(&format!(
            "      f{k}: {{command: ': > {}/$PINBALL_INSTANCE.$PINBALL_JOB'}}\n",
            done.display()
        ));
    }
    y.push_str("  chain:\n    jobs:\n      c0: {command: 'true'}\n");
    for k in 1..CHAIN {
        y.push_str(&format!(
            "      c{k}: {{command: 'true', depends_on: [c{}]}}\n",
            k - 1
        ));
    }
    y.push_str(&format!(
        "  loud:\n    jobs:\n      shout: {{command: 'while [ ! -e {} ]; do cat {}; sleep 0.09; done'}}\n",
        stop.display(),
        noise.display()
    ));
    y
}

async fn start(dir: &Path, w: &str) -> InstanceId {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pinball"))
        .args(["util", "-f", "-w", w, "start"])
        .current_dir(dir)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text
        .split(" instance ")
        .nth(1)
        .and_then(|s| s.split('.').next())
        .unwrap_or_else(|| {
            panic!(
                "util start said: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    InstanceId::parse(id).unwrap()
}

/// The chain's job-to-job gaps (ms): each job's start after its parent's end.
async fn chain_gaps(client: &HttpMasterClient, i: &InstanceId) -> Vec<f64> {
    let w = WorkflowName::parse("chain").unwrap();
    loop {
        let tokens = client.query_prefix(&job_prefix(&w, i)).await.unwrap();
        let jobs: std::collections::BTreeMap<String, JobToken> = tokens
            .into_iter()
            .map(|t| JobToken::parse(t).unwrap())
            .map(|jt| (jt.job.name.to_string(), jt))
            .collect();
        let ended = |j: &str| {
            jobs.get(j)
                .and_then(|jt| jt.job.history.last())
                .and_then(|r| r.end_time.map(|e| (r.start_time, e)))
        };
        if (0..CHAIN).all(|k| ended(&format!("c{k}")).is_some()) {
            let mut gaps: Vec<f64> = (1..CHAIN)
                .map(|k| {
                    let (_, parent_end) = ended(&format!("c{}", k - 1)).unwrap();
                    let (start, _) = ended(&format!("c{k}")).unwrap();
                    (start - parent_end) * 1000.0
                })
                .collect();
            gaps.sort_by(f64::total_cmp);
            return gaps;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Rig {
    dir: std::path::PathBuf,
    client: HttpMasterClient,
    master_pid: u32,
    /// The MariaDB server's process (0 on SQLite: the master's own).
    database_pid: u32,
    done: std::path::PathBuf,
}

/// Throughput and chain latency with the given worker processes running.
async fn measure(rig: &Rig, label: &str, workers: &[u32]) {
    let cpu0: Vec<f64> = [rig.master_pid, rig.database_pid]
        .into_iter()
        .chain(workers.iter().copied())
        .map(cpu_sec)
        .collect();
    let t0 = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..FANS {
        ids.push(start(&rig.dir, "fan").await);
    }
    let jobs = FANS * WIDTH;
    let mine = |e: &std::fs::DirEntry| {
        let n = e.file_name();
        ids.iter()
            .any(|i| n.to_string_lossy().starts_with(&format!("{}.", i.as_str())))
    };
    loop {
        let done = std::fs::read_dir(&rig.done)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| mine(e))
            .count();
        if done == jobs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu: Vec<f64> = [rig.master_pid, rig.database_pid]
        .into_iter()
        .chain(workers.iter().copied())
        .map(cpu_sec)
        .zip(&cpu0)
        .map(|(now, before)| now - before)
        .collect();
    let chain = start(&rig.dir, "chain").await;
    let gaps = chain_gaps(&rig.client, &chain).await;
    println!(
        "{label}: {jobs} jobs in {secs:.2} s = {:.0} jobs/s; chain of {CHAIN}: job-to-job mean {:.2} ms, p50 {:.1} ms, p99 {:.1} ms; CPU during the fan-outs: master {:.2} s, database {:.2} s, workers {} s",
        jobs as f64 / secs,
        mean(&gaps),
        pct(&gaps, 0.5),
        pct(&gaps, 0.99),
        cpu[0],
        cpu[1],
        cpu[2..]
            .iter()
            .map(|c| format!("{c:.2}"))
            .collect::<Vec<_>>()
            .join(" + ")
    );
    // Per trivial job, by component (the workers' figure includes their jobs' own processes):
    // the target is 4 ms in all.
    let per = |c: f64| c * 1000.0 / jobs as f64;
    let workers: f64 = cpu[2..].iter().sum();
    println!(
        "{label}: CPU per trivial job {:.2} ms = master {:.2} + database {:.2} + workers with their jobs {:.2} (target: 4 ms)",
        per(cpu.iter().sum()),
        per(cpu[0]),
        per(cpu[1]),
        per(workers)
    );
}

/// The pid of the local MariaDB server when the database is MySQL on this host.
fn mariadb_pid(url: &str) -> u32 {
    if !url.starts_with("mysql://") {
        return 0;
    }
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| matches!(c.trim(), "mariadbd" | "mysqld"))
        })
        .unwrap_or(0)
}

async fn wait_gone(child: &mut tokio::process::Child) {
    let _ = child.start_kill();
    let _ = child.wait().await;
}

#[tokio::main]
async fn main() {
    if let Err(why) = netns::hosts_allowed() {
        println!("hosts bench skipped: {why}");
        return;
    }
    let top = tempfile::tempdir().unwrap();
    let a = top.path().join("a");
    let done = top.path().join("done");
    let stop = top.path().join("stop");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&done).unwrap();
    // A megabyte of text, printed about ten times a second by the loud job.
    let noise = top.path().join("noise.txt");
    let line = "the quick brown fox jumps over the lazy dog 0123456789 ".repeat(2) + "\n";
    std::fs::write(&noise, line.repeat((1 << 20) / line.len())).unwrap();
    std::fs::write(a.join("workflows.yaml"), workflows(&done, &stop, &noise)).unwrap();
    let database = std::env::var("PINBALL_TEST_MYSQL_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("sqlite://{}", a.join("pinball.db").display()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        a.join("pinball.yaml"),
        format!(
            "database_url: {database}\nmaster_name: bench_hosts_{}\nmaster_bind: 0.0.0.0\nmaster_port: {port}\napi_token: {OPERATOR}\narchive_delay_sec: 600\nlog_max_bytes: 1073741824\nlocal_logs_dir_prefix: {}\nparser_params:\n  workflows_config: workflows.yaml\napi_tokens:\n  - {{name: ops, token: {OPERATOR}, role: operator}}\n  - {{name: workers, token: {WORKER}, role: worker}}\n",
            std::process::id(),
            a.join("logs").display()
        ),
    )
    .unwrap();
    println!(
        "master on {}",
        pinball::storage::redact_url(&database)
            .split('?')
            .next()
            .unwrap()
    );
    let mut master = tokio::process::Command::new(env!("CARGO_BIN_EXE_pinball"))
        .args(["-m", "master"])
        .current_dir(&a)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = HttpMasterClient::new("127.0.0.1", port, RetryPolicy::default())
        .with_token(Some(&Secret(OPERATOR.into())));
    while client.health().await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let import = tokio::process::Command::new(env!("CARGO_BIN_EXE_pinball"))
        .args(["import", "-f", "reschedule"])
        .current_dir(&a)
        .output()
        .await
        .unwrap();
    assert!(import.status.success(), "{import:?}");
    let rig = Rig {
        dir: a.clone(),
        client: client.clone(),
        master_pid: master.id().unwrap(),
        database_pid: mariadb_pid(&database),
        done,
    };

    let mut hosts = netns::Hosts::default();
    let b = hosts.add(1).unwrap();
    let c = hosts.add(2).unwrap();
    let (b_dir, c_dir) = (top.path().join("b"), top.path().join("c"));
    for d in [&b_dir, &c_dir] {
        std::fs::create_dir_all(d).unwrap();
    }

    // One host, 8 workers.
    let b8 = netns::worker_config(&b_dir, (&b.a_addr, port, WORKER), 8, "");
    let mut one = netns::spawn_on(&b, "host-b", &b_dir, &["-c", &b8, "-m", "workers"]);
    measure(&rig, "workers on one host (8)", &[one.id().unwrap()]).await;

    // (b) while a job prints ~10 MB/s.
    let loud = start(&a, "loud").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let chain = start(&a, "chain").await;
    let gaps = chain_gaps(&client, &chain).await;
    std::fs::write(&stop, "").unwrap();
    let w = WorkflowName::parse("loud").unwrap();
    let shout = loop {
        let ts = client.query_prefix(&job_prefix(&w, &loud)).await.unwrap();
        let jt = JobToken::parse(ts.into_iter().next().unwrap()).unwrap();
        if jt.job.history.last().is_some_and(|r| r.end_time.is_some()) {
            break jt;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let r = shout.job.history.last().unwrap();
    let printed = std::fs::metadata(&r.logs["stdout"]).map_or(0, |m| m.len());
    let rate = printed as f64 / (r.end_time.unwrap() - r.start_time) / 1e6;
    println!(
        "chain of {CHAIN} while a job prints {rate:.1} MB/s (its worker sending it to the master): job-to-job mean {:.2} ms, p50 {:.1} ms, p99 {:.1} ms",
        mean(&gaps),
        pct(&gaps, 0.5),
        pct(&gaps, 0.99)
    );
    wait_gone(&mut one).await;

    // Two hosts, 4 workers each.
    let b4 = netns::worker_config(&b_dir, (&b.a_addr, port, WORKER), 4, "");
    let c4 = netns::worker_config(&c_dir, (&c.a_addr, port, WORKER), 4, "");
    let mut on_b = netns::spawn_on(&b, "host-b", &b_dir, &["-c", &b4, "-m", "workers"]);
    let mut on_c = netns::spawn_on(&c, "host-c", &c_dir, &["-c", &c4, "-m", "workers"]);
    measure(
        &rig,
        "workers on two hosts (4 + 4)",
        &[on_b.id().unwrap(), on_c.id().unwrap()],
    )
    .await;
    wait_gone(&mut on_b).await;
    wait_gone(&mut on_c).await;
    wait_gone(&mut master).await;
    drop(hosts);
}
