//! `cargo bench --bench workflows`: workflows end to end, every step durably committed, on
//! SQLite and (with `PINBALL_TEST_MYSQL_URL`, `PINBALL_TEST_POSTGRES_URL`) MariaDB and
//! PostgreSQL, master and workers on this machine (the workers calling the master over HTTP,
//! and on SQLite also in their own process, as `pinball -m master,workers` runs them):
//! (a) a chain of 200 `true` jobs, (b) a fan-out 1 -> 500 -> 1 of `true`, (c) job-to-job latency
//! (upstream exit to downstream process start), and the same two shapes in Luigi (installed
//! into a throw-away virtualenv) for comparison. `PINBALL_BENCH_NO_LUIGI=1` skips Luigi.
//! First it measures the floor on this machine, in the same run: what the shapes cost with no
//! workflow manager at all (the processes spawned one after another, and one fsync'd SQLite
//! commit per job on the same disk, and the start of the latency shape's own process), and
//! prints each shape's ratio to it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pinball::master::client::RetryPolicy;
use pinball::master::{HttpMasterClient, Master, MasterClient, api};
use pinball::storage::{self, Table};
use pinball::token::name;
use pinball::workflow::definition;
use pinball::workflow::instance::JobToken;
use pinball::workflow::worker::{WorkerSettings, run_workers};
use tokio::sync::watch;

const WORKERS: usize = 8;

fn chain(n: usize, command: &str) -> String {
    let mut y = String::from("workflows:\n  chain:\n    jobs:\n");
    for i in 0..n {
        let deps = if i == 0 {
            String::new()
        } else {
            format!(", depends_on: [j{}]", i - 1)
        };
        y.push_str(&format!("      j{i}: {{command: '{command}'{deps}}}\n"));
    }
    y
}

fn fan(n: usize) -> String {
    let mut y = String::from("workflows:\n  fan:\n    jobs:\n      root: {command: 'true'}\n");
    let mut leaves = Vec::new();
    for i in 0..n {
        y.push_str(&format!(
            "      f{i}: {{command: 'true', depends_on: [root]}}\n"
        ));
        leaves.push(format!("f{i}"));
    }
    y.push_str(&format!(
        "      sink: {{command: 'true', depends_on: [{}]}}\n",
        leaves.join(", ")
    ));
    y
}

struct Rig {
    client: HttpMasterClient,
    url: String,
    master: String,
    stop: watch::Sender<bool>,
    /// The master's server and the workers: each rig stops whole before the next starts.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _logs: tempfile::TempDir,
}

/// Master and workers on `url`; with `local`, the workers call the master in their process
/// (what `pinball -m master,workers` does), otherwise over HTTP (what a worker host does).
async fn rig(url: &str, local: bool) -> Rig {
    let master = format!("wfbench_{}_{}", std::process::id(), fastrand::u32(..));
    let m = Master::start(
        storage::open(url).unwrap(),
        &master,
        pinball::modes::naming(),
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let workers: Arc<dyn MasterClient> = Arc::new(pinball::master::LocalMasterClient(m.clone()));
    let (stop, stopped) = watch::channel(false);
    let mut serving = stopped.clone();
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = serving.wait_for(|s| *s).await;
        };
        let settings = api::ApiSettings::open(api::DEFAULT_MAX_REQUEST_BYTES);
        let _ = pinball::master::server::serve(m, listener, settings, shutdown).await;
    });
    let client = HttpMasterClient::new("127.0.0.1", port, RetryPolicy::default());
    let logs = tempfile::tempdir().unwrap();
    let settings = WorkerSettings {
        generation: 1,
        lease: Duration::from_secs(30),
        poll: Duration::from_secs(5),
        logs_dir: logs.path().to_path_buf(),
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
    };
    let workers = match local {
        true => workers,
        false => Arc::new(client.clone()),
    };
    let workers = tokio::spawn(run_workers(workers, settings, WORKERS, stopped));
    Rig {
        client,
        url: url.into(),
        master,
        stop,
        tasks: vec![workers, server],
        _logs: logs,
    }
}

impl Rig {
    /// Stops the workers, then the master (its writer ends with its last handle).
    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// Imports `yaml`, starts workflow `w`, and returns the wall time until it is archived.
    async fn run(&self, yaml: &str, w: &str) -> (Duration, String) {
        let defs = pinball::parser::parse_yaml(yaml, "bench").unwrap();
        definition::import(&self.client, &defs, None, false)
            .await
            .unwrap();
        let instance = pinball::workflow::instance::new_instance_id();
        let w = &name::WorkflowName::parse(w).unwrap();
        let tokens =
            pinball::workflow::instance::new_instance_tokens(w, &instance, &defs[w].graph());
        let started = Instant::now();
        self.client
            .modify(pinball::token::ModifyRequest::update(tokens))
            .await
            .unwrap();
        // Archived once none of its tokens is left. The look asks for one token, not all of
        // them: every 2 ms, an answer with all 500 of a fan-out's jobs took CPU from the
        // run it measured on these two cores.
        let left = pinball::token::QueryRequest::new(vec![pinball::token::Query {
            name_prefix: name::instance_prefix(w, &instance),
            max_tokens: Some(1),
        }]);
        loop {
            let answer = self.client.query(left.clone()).await.unwrap();
            if answer.tokens.iter().all(Vec::is_empty) {
                return (started.elapsed(), instance.to_string());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    async fn archived_jobs(&self, w: &str, i: &str) -> Vec<JobToken> {
        let store = storage::open(&self.url).unwrap();
        let tokens = store
            .read(
                &self.master,
                Table::Archived,
                &name::job_prefix(
                    &name::WorkflowName::parse(w).unwrap(),
                    &name::InstanceId::parse(i).unwrap(),
                ),
            )
            .await
            .unwrap();
        tokens
            .into_iter()
            .map(|t| JobToken::parse(t).unwrap())
            .collect()
    }
}

/// `n` processes of `sh -c true`, each started when the one before exited, over `threads`
/// threads at once.
fn spawns(n: usize, threads: usize) -> Duration {
    let left = std::sync::atomic::AtomicUsize::new(n);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while left
                    .fetch_update(
                        std::sync::atomic::Ordering::AcqRel,
                        std::sync::atomic::Ordering::Acquire,
                        |l| l.checked_sub(1),
                    )
                    .is_ok()
                {
                    let ok = std::process::Command::new("sh")
                        .args(["-c", "true"])
                        .status()
                        .is_ok_and(|s| s.success());
                    assert!(ok, "sh -c true failed");
                }
            });
        }
    });
    t.elapsed()
}

/// `n` commits of one row each, one after another, in a SQLite file of `dir` (WAL,
/// synchronous=FULL, as Pinball's): what durability alone costs on this disk.
async fn commits(dir: &std::path::Path, n: usize) -> Duration {
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.join("floor.db"))
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
        .connect()
        .await
        .unwrap();
    sqlx::query("CREATE TABLE IF NOT EXISTS floor (n INTEGER)")
        .execute(&mut conn)
        .await
        .unwrap();
    let t = Instant::now();
    for i in 0..n as i64 {
        sqlx::query("INSERT INTO floor (n) VALUES (?)")
            .bind(i)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    t.elapsed()
}

/// The floor of each shape on this machine, now: the chain's 200 spawns one after another and
/// 200 commits; the fan-out's 502 spawns over as many threads as workers, and the 3 commits its
/// stages need one after another (the 500 in the middle may share theirs).
/// The floor of a job-to-job gap: how long after its spawn a `sh -c 'date +%s.%N'` (the
/// latency shape's job) prints its time, in ms, p50 of 50 sequential runs. A downstream job
/// that starts at once still shows this much.
fn date_start() -> f64 {
    let mut gaps: Vec<f64> = (0..50)
        .map(|_| {
            let spawned = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            let out = std::process::Command::new("/bin/sh")
                .args(["-c", "date +%s.%N"])
                .output()
                .unwrap();
            let printed: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            (printed - spawned) * 1000.0
        })
        .collect();
    gaps.sort_by(f64::total_cmp);
    pct(&gaps, 0.5)
}

async fn floor(dir: &std::path::Path) -> (f64, f64, f64) {
    let (chain_spawns, chain_commits) = (spawns(200, 1), commits(dir, 200).await);
    let before = cpu().1;
    let fan_spawns = spawns(502, WORKERS);
    let spawn_cpu = (cpu().1 - before) * 1000.0 / 502.0;
    let fan_commits = commits(dir, 3).await;
    let chain = chain_spawns + chain_commits;
    let fan = fan_spawns + fan_commits;
    println!(
        "floor, chain of 200:   {:.2} s = 200 sequential `sh -c true` {:.2} s + 200 fsync'd SQLite commits {:.2} s",
        chain.as_secs_f64(),
        chain_spawns.as_secs_f64(),
        chain_commits.as_secs_f64()
    );
    println!(
        "floor, 1 -> 500 -> 1:  {:.2} s = 502 `sh -c true` over {WORKERS} threads {:.2} s + 3 sequential commits {:.3} s; CPU per `sh -c true` {spawn_cpu:.2} ms",
        fan.as_secs_f64(),
        fan_spawns.as_secs_f64(),
        fan_commits.as_secs_f64()
    );
    let date = date_start();
    println!(
        "floor, job-to-job:     {date:.1} ms = a `sh -c 'date +%s.%N'` printing its time after its spawn (p50)"
    );
    (chain.as_secs_f64(), fan.as_secs_f64(), date)
}

/// CPU seconds used so far by this process (the master and the workers) and by its reaped
/// children (the jobs).
fn cpu() -> (f64, f64) {
    let used = |who| {
        // SAFETY: getrusage fills the struct it is given; a zeroed rusage is a valid one.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut u) };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        secs(u.ru_utime) + secs(u.ru_stime)
    };
    (used(libc::RUSAGE_SELF), used(libc::RUSAGE_CHILDREN))
}

/// Runs `yaml`'s workflow `w` of `jobs` jobs on `rig`; returns its wall time and prints, after
/// `line`, the CPU per job of this process and of the jobs: a figure that moves less than the
/// wall time when this machine is busy.
async fn measured(
    rig: &Rig,
    yaml: &str,
    w: &str,
    jobs: usize,
    line: impl Fn(f64) -> String,
) -> f64 {
    let before = cpu();
    let (t, _) = rig.run(yaml, w).await;
    let after = cpu();
    let per_job = |a: f64, b: f64| (a - b) * 1000.0 / jobs as f64;
    println!(
        "{}; CPU per job: Pinball {:.2} ms, the job {:.2} ms",
        line(t.as_secs_f64()),
        per_job(after.0, before.0),
        per_job(after.1, before.1)
    );
    t.as_secs_f64()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn backend(label: &str, url: &str, floor: (f64, f64, f64), local: bool) -> (f64, f64) {
    let how = match local {
        true => "and the master, called directly: `pinball -m master,workers`",
        false => "master over HTTP",
    };
    println!("\n## {label} ({WORKERS} workers in this process, {how})");
    let rig = rig(url, local).await;
    let (warm, _) = rig.run(&chain(5, "true"), "chain").await;
    let _ = warm;
    let c = measured(&rig, &chain(200, "true"), "chain", 200, |c| {
        format!(
            "chain of 200 `true` jobs:         {c:.2} s ({:.1}x the floor; target 1.5x)",
            c / floor.0
        )
    })
    .await;
    let f = measured(&rig, &fan(500), "fan", 502, |f| {
        format!(
            "fan-out 1 -> 500 -> 1 of `true`:  {f:.2} s ({:.1}x the floor; target 2x)",
            f / floor.1
        )
    })
    .await;
    // Job-to-job latency: each job prints the time its process started.
    let (_, i) = rig
        .run(
            &chain(100, "date +%s.%N").replace("chain:", "latency:"),
            "latency",
        )
        .await;
    let mut jobs = rig.archived_jobs("latency", &i).await;
    jobs.sort_by_key(|jt| jt.job.name[1..].parse::<usize>().unwrap());
    let mut gaps: Vec<f64> = jobs
        .windows(2)
        .map(|w| {
            let upstream_exit = w[0].job.history[0].end_time.unwrap();
            let out = std::fs::read_to_string(&w[1].job.history[0].logs["stdout"]).unwrap();
            (out.trim().parse::<f64>().unwrap() - upstream_exit) * 1000.0
        })
        .collect();
    gaps.sort_by(f64::total_cmp);
    println!(
        "job-to-job latency (upstream exit -> downstream process start): p50 {:.1} ms, p99 {:.1} ms ({:.1} ms of each the floor's)",
        pct(&gaps, 0.5),
        pct(&gaps, 0.99),
        floor.2
    );
    rig.stop().await;
    (c, f)
}

/// Runs the same shapes in Luigi (local scheduler, 2 workers); `None` if it cannot be set up.
fn luigi() -> Option<(f64, f64)> {
    let venv = std::env::temp_dir().join("pinball-bench-luigi-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        eprintln!("installing Luigi into {} ...", venv.display());
        let ok = std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .ok()?
            .success()
            && std::process::Command::new(&python)
                .args(["-m", "pip", "install", "-q", "luigi"])
                .status()
                .ok()?
                .success();
        if !ok {
            return None;
        }
    }
    let script = r#"
import luigi, subprocess, sys, tempfile, time, os, logging
logging.disable(logging.CRITICAL)
out = tempfile.mkdtemp()
class T(luigi.Task):
    key = luigi.Parameter()
    upstream = luigi.ListParameter(default=[])
    def requires(self): return [DEPS[d] for d in self.upstream]
    def output(self): return luigi.LocalTarget(os.path.join(out, self.key))
    def run(self):
        subprocess.check_call(["true"])
        open(self.output().path, "w").close()
def timed(root):
    t = time.time(); luigi.build([root], local_scheduler=True, workers=2, log_level="CRITICAL"); return time.time() - t
DEPS = {}
prev = []
for i in range(200):
    DEPS["c%d" % i] = T(key="c%d" % i, upstream=prev); prev = ["c%d" % i]
sys.setrecursionlimit(10000)
chain = timed(DEPS["c199"])
DEPS["root"] = T(key="root")
for i in range(500): DEPS["f%d" % i] = T(key="f%d" % i, upstream=["root"])
DEPS["sink"] = T(key="sink", upstream=["f%d" % i for i in range(500)])
fan = timed(DEPS["sink"])
print(chain, fan)
"#;
    let out = std::process::Command::new(&python)
        .args(["-c", script])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text
        .split_whitespace()
        .filter_map(|s| s.parse::<f64>().ok());
    Some((parts.next()?, parts.next()?))
}

fn main() {
    // `PINBALL_BENCH_LOG=1`: every component's info lines on stderr, with microsecond times,
    // to see where a hop's time goes.
    if std::env::var_os("PINBALL_BENCH_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(tracing::Level::INFO)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "# pinball workflow benchmark ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("wf.db").display());
    println!("\n## The floor on this machine (no workflow manager)");
    let floor = rt.block_on(floor(dir.path()));
    let ours = rt.block_on(backend(
        "SQLite (WAL, synchronous=FULL)",
        &sqlite,
        floor,
        false,
    ));
    // A database of its own: nothing the run over HTTP left (its rows, its WAL) weighs on it.
    let sqlite = format!("sqlite://{}", dir.path().join("wf-local.db").display());
    rt.block_on(backend("SQLite", &sqlite, floor, true));
    for (name, var) in [
        ("MariaDB", "PINBALL_TEST_MYSQL_URL"),
        ("PostgreSQL", "PINBALL_TEST_POSTGRES_URL"),
    ] {
        match std::env::var(var) {
            Ok(url) if !url.is_empty() => {
                rt.block_on(backend(name, &url, floor, false));
            }
            _ => println!("\n## {name}\nSKIPPED: set {var} to measure {name}"),
        }
    }
    if std::env::var("PINBALL_BENCH_NO_LUIGI").is_ok() {
        return;
    }
    println!("\n## Luigi (local scheduler, 2 workers)");
    match luigi() {
        Some((chain, fan)) => {
            println!(
                "chain of 200:         {chain:.2} s   (Pinball on SQLite is {:.1}x faster)",
                chain / ours.0
            );
            println!(
                "fan-out 1 -> 500 -> 1: {fan:.2} s   (Pinball on SQLite is {:.1}x faster)",
                fan / ours.1
            );
        }
        None => println!("SKIPPED: Luigi could not be installed or run here"),
    }
}
