//! The soak: many instances of a fan-out workflow (and a scheduled one) run by real processes
//! while the master, the workers, the scheduler and (on MariaDB and PostgreSQL) the database are killed -9 at
//! random, one at a time, and started again. At the end:
//! - every instance reached a terminal state and was archived, every job succeeded;
//! - every job's runs (each run appends one line to a file as its last act) match its recorded
//!   history: a run that ended has exactly one line when it exited 0; a run recorded as lost
//!   (its worker died) may have left a line or not; no line exists without its record;
//! - every write the master acknowledged during the chaos is there.
//!
//! `PINBALL_SOAK_JOBS` sets the size (default 400: 40 instances × 10 jobs; the README's full
//! run is 10,000: 200 × 50); `PINBALL_SOAK_SEED` replays a run's choices.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pinball::master::client::RetryPolicy;
use pinball::master::{HttpMasterClient, MasterClient};
use pinball::storage::{self, Table};
use pinball::token::name::{self, Name};
use pinball::token::*;
use pinball::workflow::instance::JobToken;

use crate::helpers::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// One kind of process the chaos kills and starts again.
struct Role {
    name: &'static str,
    args: Vec<String>,
    child: Option<tokio::process::Child>,
    kills: usize,
}

impl Role {
    fn new(name: &'static str, cfg: &Path, mode: &str) -> Role {
        Role {
            name,
            args: ["-c", cfg.to_str().unwrap(), "-m", mode]
                .map(String::from)
                .into(),
            child: None,
            kills: 0,
        }
    }

    fn start(&mut self, dir: &Path) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.child = Some(spawn_pinball(&args, dir));
    }

    async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
            self.kills += 1;
        }
    }
}

/// A command that, as its last act, appends "instance job execution" to `runs`.
fn command(runs: &Path) -> String {
    format!(
        "sleep 0.2; echo $PINBALL_INSTANCE $PINBALL_JOB $PINBALL_EXECUTION >> {}",
        runs.display()
    )
}

fn workflows(runs: &Path, fan: usize) -> String {
    let cmd = command(runs);
    let mut y =
        format!("workflows:\n  soak:\n    jobs:\n      a: {{command: '{cmd}', max_attempts: 5}}\n");
    let bs: Vec<String> = (1..=fan).map(|k| format!("b{k:02}")).collect();
    for b in &bs {
        y += &format!("      {b}: {{command: '{cmd}', max_attempts: 5, depends_on: [a]}}\n");
    }
    y += &format!(
        "      z: {{command: '{cmd}', max_attempts: 5, depends_on: [{}]}}\n",
        bs.join(", ")
    );
    y += &format!(
        "  tick:\n    schedule: {{recurrence: 5S, overrun_policy: SKIP, max_running_instances: 2}}\n    jobs:\n      t: {{command: '{cmd}', max_attempts: 5}}\n"
    );
    y
}

struct Run<S> {
    label: &'static str,
    url: String,
    db: Option<S>,
}

async fn soak<S: OwnServer>(run: Run<S>) {
    let jobs: usize = std::env::var("PINBALL_SOAK_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let per_instance = if jobs >= 5_000 { 50 } else { 10 };
    let instances = (jobs / per_instance).max(1);
    let seed = std::env::var("PINBALL_SOAK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    eprintln!(
        "soak on {}: {instances} instances x {per_instance} jobs, seed {seed}",
        run.label
    );
    let mut db = run.db;
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs.txt");
    std::fs::write(
        dir.path().join("workflows.yaml"),
        workflows(&runs, per_instance - 2),
    )
    .unwrap();
    let port = free_port();
    let cfg = dir.path().join("pinball.yaml");
    std::fs::write(
        &cfg,
        format!(
            "database_url: {}\nmaster_port: {port}\nmaster_name: soak\nlease_sec: 3\nworkers: 3\n\
             archive_delay_sec: 0\nlocal_logs_dir_prefix: {}\nparser_params:\n  workflows_config: {}\n",
            run.url,
            dir.path().join("logs").display(),
            dir.path().join("workflows.yaml").display()
        ),
    )
    .unwrap();
    let mut master = Role::new("master", &cfg, "master");
    let mut others = [
        Role::new("worker A", &cfg, "workers"),
        Role::new("worker B", &cfg, "workers"),
        Role::new("scheduler", &cfg, "scheduler"),
    ];
    master.start(dir.path());
    wait_until(secs(60), "the master is ready", || is_ready(port)).await;
    let cfg_s = cfg.to_str().unwrap();
    let out = pinball_out(&["-c", cfg_s, "import", "-f", "reschedule"], dir.path()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut started = Vec::new();
    for _ in 0..instances {
        let out = pinball_out(
            &["-c", cfg_s, "util", "-f", "-w", "soak", "start"],
            dir.path(),
        )
        .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        started.push(started_instance(&String::from_utf8_lossy(&out.stdout)));
    }
    for r in &mut others {
        r.start(dir.path());
    }

    // The chaos, one victim at a time, while soak instances are live.
    let policy = RetryPolicy {
        attempts: 1,
        ..Default::default()
    };
    let client = HttpMasterClient::new("127.0.0.1", port, policy);
    let patient = HttpMasterClient::new("127.0.0.1", port, RetryPolicy::default());
    let began = Instant::now();
    let limit = secs(if jobs >= 5_000 { 3_600 } else { 600 });
    let (mut acked, mut db_kills, mut rounds) = (Vec::new(), 0, 0);
    loop {
        let live = patient.query_prefix("/workflow/soak/").await.unwrap();
        if live.is_empty() {
            break;
        }
        assert!(
            began.elapsed() < limit,
            "the soak did not finish within {limit:?}: {} live tokens\n{}",
            live.len(),
            crate::helpers::logs_of(dir.path())
        );
        rounds += 1;
        let name = format!("/soak/ack/{rounds:05}");
        if client
            .modify(ModifyRequest {
                updates: vec![Token::new(&name, Some(format!("round {rounds}")))],
                ..Default::default()
            })
            .await
            .is_ok()
        {
            acked.push(name);
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(500..2_500))).await;
        let victims = 4 + usize::from(db.is_some());
        // With a database of its own, the first round takes it down, so every run sees it.
        let victim = if rounds == 1 && db.is_some() {
            4
        } else {
            rng.usize(..victims)
        };
        match victim {
            0 => {
                master.kill().await;
                tokio::time::sleep(Duration::from_millis(rng.u64(200..1_500))).await;
                master.start(dir.path());
                wait_until(secs(60), "the master is back", || is_ready(port)).await;
            }
            4 => {
                let db = db.as_mut().expect("a database of the test's own");
                if rng.bool() {
                    db.kill().await;
                } else {
                    db.stop().await;
                }
                db_kills += 1;
                tokio::time::sleep(Duration::from_millis(rng.u64(500..3_000))).await;
                db.up().await;
                wait_until(secs(60), "the master takes writes again", || is_ready(port)).await;
            }
            k => {
                let r = &mut others[k - 1];
                r.kill().await;
                tokio::time::sleep(Duration::from_millis(rng.u64(200..1_500))).await;
                r.start(dir.path());
            }
        }
    }
    let soaked = began.elapsed();
    // No more scheduled runs; the ones started end.
    others[2].kill().await;
    wait_until(secs(120), "the scheduled instances end", || async {
        patient
            .query_prefix("/workflow/tick/")
            .await
            .is_ok_and(|t| t.iter().all(|t| !t.name.contains("/job/")))
    })
    .await;

    // Every acknowledged write is there.
    assert_writes_kept(&patient, "/soak/ack/", &acked, &[]).await;

    // Every instance is archived, every job succeeded, its runs match its history.
    let store = storage::open(&run.url).unwrap();
    let archived = store
        .read("soak", Table::Archived, "/workflow/")
        .await
        .unwrap();
    let mut last: BTreeMap<String, Token> = BTreeMap::new();
    for t in archived {
        last.insert(t.name.clone(), t);
    }
    let lines = read_runs(&runs);
    let (mut signalled, mut with_jobs) = (BTreeSet::new(), BTreeSet::new());
    let (mut checked, mut lost, mut reran) = (0, 0, 0);
    for t in last.into_values() {
        match Name::parse(&t.name) {
            Some(Name::Job {
                workflow, instance, ..
            }) => with_jobs.insert((workflow.to_string(), instance.to_string())),
            Some(Name::Signal {
                level: name::Level::Instance(w, i),
                action,
            }) if action == "ARCHIVE" => {
                signalled.insert((w.to_string(), i.to_string()));
                continue;
            }
            _ => continue,
        };
        let jt = JobToken::parse(t).unwrap();
        let history = &jt.job.history;
        let key = (jt.instance.to_string(), jt.job.name.to_string());
        let ran = lines.get(&key).cloned().unwrap_or_default();
        assert!(
            history.last().is_some_and(|r| r.exit_code == Some(0)),
            "{key:?} did not succeed: {history:?}"
        );
        for (n, r) in history.iter().enumerate() {
            let count = ran.iter().filter(|e| **e == n).count();
            if r.lost.is_some() {
                lost += 1;
                reran += count;
                assert!(count <= 1, "{key:?} execution {n} ran {count} times");
            } else {
                let want = usize::from(r.exit_code == Some(0));
                assert_eq!(
                    count, want,
                    "{key:?} execution {n}: {r:?} but ran {count} times"
                );
            }
        }
        assert!(
            ran.iter().all(|e| *e < history.len()),
            "{key:?} ran executions {ran:?} but its history has {}",
            history.len()
        );
        checked += 1;
    }
    for i in &started {
        assert!(
            signalled.contains(&("soak".to_string(), i.clone())),
            "soak instance {i} was not archived with its ARCHIVE signal"
        );
    }
    let unsignalled: Vec<_> = with_jobs.difference(&signalled).collect();
    assert!(
        unsignalled.is_empty(),
        "archived without an ARCHIVE signal: {unsignalled:?}"
    );
    assert_eq!(checked, lines.len(), "every job that ran is in the archive");
    let kills: Vec<String> = std::iter::once(&master)
        .chain(others.iter())
        .map(|r| format!("{} {}", r.name, r.kills))
        .chain(db.as_ref().map(|_| format!("database {db_kills}")))
        .collect();
    eprintln!(
        "soak on {}: {checked} jobs of {} instances done in {:.1} s under {rounds} rounds of chaos ({}); \
         {lost} executions lost with their worker ({reran} of them had finished their run); {} acknowledged writes checked",
        run.label,
        with_jobs.len(),
        soaked.as_secs_f64(),
        kills.join(", "),
        acked.len()
    );
    master.kill().await;
    for r in &mut others {
        r.kill().await;
    }
}

/// The runs file: (instance, job) → the execution numbers that ran to their end.
fn read_runs(path: &PathBuf) -> BTreeMap<(String, String), Vec<usize>> {
    let mut out: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        let [i, j, e] = parts[..] else {
            panic!("a torn line in the runs file: {line:?}")
        };
        out.entry((i.to_owned(), j.to_owned()))
            .or_default()
            .push(e.parse().unwrap());
    }
    out
}

#[tokio::test]
async fn a_soak_on_sqlite_with_master_workers_and_scheduler_killed_at_random() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("soak.db").display());
    soak(Run::<OwnMariaDb> {
        label: "SQLite",
        url,
        db: None,
    })
    .await;
}

#[tokio::test]
async fn a_soak_on_mariadb_with_the_database_restarted_too() {
    let Some(db) = OwnMariaDb::start("soak::a_soak_on_mariadb").await else {
        return;
    };
    soak(Run {
        label: "MariaDB",
        url: db.url(),
        db: Some(db),
    })
    .await;
}

#[tokio::test]
async fn a_soak_on_postgresql_with_the_database_restarted_too() {
    let Some(db) = OwnPostgres::start("soak::a_soak_on_postgresql").await else {
        return;
    };
    soak(Run {
        label: "PostgreSQL",
        url: db.url(),
        db: Some(db),
    })
    .await;
}
