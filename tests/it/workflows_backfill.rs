//! Backfills (CONTRACT §4.3) with real processes: a master, a workers process and a scheduler,
//! driven by `pinball backfill`. Each job records its logical date, its logical time and when
//! it started and ended (from /proc/uptime) in a file, which is what the checks read: each
//! date ran once, never more at once than `--max-active`, in order, with the right date.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::helpers::*;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A job that records its start and end in `dir/runs.log`, sleeps `sleep` seconds (and on
/// while `dir/hold` exists), and fails when `dir/fail-<its logical date>` exists.
fn recording_job(dir: &Path, sleep: &str) -> String {
    let d = dir.display();
    format!(
        "read up _ < /proc/uptime; echo start $PINBALL_LOGICAL_DATE $PINBALL_LOGICAL_TIME $up >> {d}/runs.log; sleep {sleep}; while test -e {d}/hold; do sleep 0.1; done; read up _ < /proc/uptime; echo end $PINBALL_LOGICAL_DATE $PINBALL_LOGICAL_TIME $up >> {d}/runs.log; test ! -e {d}/fail-$PINBALL_LOGICAL_DATE"
    )
}

struct Site {
    dir: tempfile::TempDir,
    cfg: PathBuf,
    port: u16,
    ui: u16,
    /// The scheduler's `/metrics`.
    metrics: u16,
    master: tokio::process::Child,
    scheduler: tokio::process::Child,
    _workers: tokio::process::Child,
    #[allow(dead_code)] // held so the UI lives as long as the site
    ui_process: tokio::process::Child,
}

impl Site {
    /// A master, a scheduler and a workers process with `workers` slots, on a SQLite file,
    /// with workflow `daily` (00:30 every day in Berlin) running [`recording_job`].
    async fn start(workers: usize, sleep: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (port, ui, metrics) = (free_port(), free_port(), free_port());
        let wf = d.join("wf.yaml");
        std::fs::write(
            &wf,
            format!(
                "workflows:\n  daily:\n    schedule: {{recurrence: 1D, start: '2026-01-01T00:30:00', timezone: Europe/Berlin}}\n    params:\n      region: {{type: string, default: eu}}\n    jobs:\n      load: {{command: '{}'}}\n  adhoc:\n    jobs:\n      a: {{command: 'true'}}\n",
                recording_job(d, sleep)
            ),
        )
        .unwrap();
        let cfg = d.join("pinball.yaml");
        std::fs::write(
            &cfg,
            format!(
                "database_url: sqlite://{}\nmaster_port: {port}\nui_port: {ui}\nworkers: {workers}\nlocal_logs_dir_prefix: {}\nparser_params:\n  workflows_config: {}\n",
                d.join("pinball.db").display(),
                d.join("logs").display(),
                wf.display()
            ),
        )
        .unwrap();
        let base = std::fs::read_to_string(&cfg).unwrap();
        let scheduler_cfg = d.join("scheduler.yaml");
        std::fs::write(
            &scheduler_cfg,
            format!("{base}metrics_bind: 127.0.0.1:{metrics}\n"),
        )
        .unwrap();
        let c = cfg.to_str().unwrap();
        let master = spawn_pinball(&["-c", c, "-m", "master"], d);
        wait_until(Duration::from_secs(60), "the master is ready", || {
            is_ready(port)
        })
        .await;
        let _ui = spawn_pinball(&["-c", c, "-m", "ui"], d);
        let site = Site {
            scheduler: spawn_pinball(
                &["-c", scheduler_cfg.to_str().unwrap(), "-m", "scheduler"],
                d,
            ),
            ui_process: _ui,
            _workers: spawn_pinball(&["-c", c, "-m", "workers"], d),
            master,
            dir,
            cfg,
            port,
            ui,
            metrics,
        };
        let o = site.run(&["import", "-f"]).await;
        assert!(o.status.success(), "{}", text(&o.stderr));
        site
    }

    fn d(&self) -> &Path {
        self.dir.path()
    }

    async fn run(&self, args: &[&str]) -> std::process::Output {
        let mut full = vec!["-c", self.cfg.to_str().unwrap()];
        full.extend_from_slice(args);
        pinball_out(&full, self.d()).await
    }

    /// `pinball ARGS`, which must succeed: its stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args).await;
        assert!(
            o.status.success(),
            "pinball {}: {}",
            args.join(" "),
            text(&o.stderr)
        );
        text(&o.stdout)
    }

    /// `pinball backfill ARGS`: the backfill's id, from `backfill ID: N runs to start`.
    async fn backfill(&self, args: &[&str], to_start: usize) -> String {
        let mut full = vec!["backfill", "-w", "daily"];
        full.extend_from_slice(args);
        let out = self.ok(&full).await;
        let id = out
            .strip_prefix("backfill ")
            .and_then(|r| r.split_once(':'))
            .map(|(id, _)| id.to_owned())
            .unwrap_or_else(|| panic!("{out}"));
        assert_eq!(out, format!("backfill {id}: {to_start} runs to start\n"));
        id
    }

    async fn wait_state(&self, id: &str, state: &str, within: u64) -> String {
        let mut last = String::new();
        let found = tokio::time::timeout(Duration::from_secs(within), async {
            loop {
                last = self.ok(&["backfill", "show", id]).await;
                if last
                    .lines()
                    .next()
                    .is_some_and(|l| l.contains(&format!(": {state} (")))
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        assert!(found.is_ok(), "backfill {id} is not {state}:\n{last}");
        last
    }

    async fn restart_master(&mut self) {
        let c = self.cfg.to_str().unwrap().to_owned();
        self.master = restart_master(&mut self.master, &c, self.dir.path(), self.port).await;
    }

    async fn restart_scheduler(&mut self) {
        self.scheduler.start_kill().unwrap();
        self.scheduler.wait().await.unwrap();
        let c = self.d().join("scheduler.yaml");
        self.scheduler = spawn_pinball(
            &["-c", c.to_str().unwrap(), "-m", "scheduler"],
            self.dir.path(),
        );
    }

    async fn get(&self, port: u16, path: &str) -> String {
        let r = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.text().await.unwrap()
    }

    /// What the jobs recorded: per date, its starts and ends (uptime seconds) and logical times.
    fn runs(&self) -> Recorded {
        let log = std::fs::read_to_string(self.d().join("runs.log")).unwrap_or_default();
        let mut r = Recorded::default();
        for line in log.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let (what, date, time, at) = (f[0], f[1], f[2], f[3].parse::<f64>().unwrap());
            r.times.insert(date.to_owned(), time.to_owned());
            match what {
                "start" => r.starts.entry(date.to_owned()).or_default().push(at),
                _ => r.ends.entry(date.to_owned()).or_default().push(at),
            }
        }
        r
    }
}

#[derive(Default)]
struct Recorded {
    starts: BTreeMap<String, Vec<f64>>,
    ends: BTreeMap<String, Vec<f64>>,
    times: BTreeMap<String, String>,
}

impl Recorded {
    /// The most runs that were running at one moment.
    fn most_at_once(&self) -> usize {
        let mut events: Vec<(f64, i32)> = Vec::new();
        for s in self.starts.values().flatten() {
            events.push((*s, 1));
        }
        for e in self.ends.values().flatten() {
            events.push((*e, -1));
        }
        // An end before a start at the same moment.
        events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let (mut now, mut most) = (0, 0);
        for (_, step) in events {
            now += step;
            most = most.max(now);
        }
        most as usize
    }

    fn dates(&self) -> Vec<String> {
        self.starts.keys().cloned().collect()
    }

    fn started_more_than_once(&self) -> Vec<String> {
        self.starts
            .iter()
            .filter(|(_, s)| s.len() > 1)
            .map(|(d, _)| d.clone())
            .collect()
    }
}

fn march(days: std::ops::RangeInclusive<u32>) -> Vec<String> {
    days.map(|d| format!("2026-03-{d:02}")).collect()
}

#[tokio::test]
async fn a_backfill_runs_each_date_once_within_its_limit_in_order_across_a_dst_change() {
    let site = Site::start(4, "0.4").await;
    // Two dates fail (their jobs find a file).
    for day in ["2026-03-24", "2026-03-27"] {
        std::fs::write(site.d().join(format!("fail-{day}")), "").unwrap();
    }
    // A dry run says what would happen, and writes nothing.
    let dry = site
        .ok(&[
            "backfill",
            "-w",
            "daily",
            "--from",
            "2026-03-22",
            "--to",
            "2026-03-31",
            "--dry-run",
        ])
        .await;
    assert_eq!(dry.lines().count(), 10, "{dry}");
    assert_eq!(
        dry.lines().next(),
        Some("2026-03-22T00:30:00+01:00 run no run yet")
    );
    assert!(
        dry.contains("2026-03-30T00:30:00+02:00 run no run yet"),
        "summer time: {dry}"
    );
    assert_eq!(site.ok(&["backfill", "list"]).await, "no backfills\n");

    let id = site
        .backfill(
            &[
                "--from",
                "2026-03-22",
                "--to",
                "2026-03-31",
                "--max-active",
                "3",
            ],
            10,
        )
        .await;
    let shown = site.wait_state(&id, "done", 120).await;
    assert!(shown.contains("done 8 failed 2 skipped 0"), "{shown}");
    assert_eq!(
        shown.lines().filter(|l| l.contains(" instance ")).count(),
        10,
        "each date names its run: {shown}"
    );
    let r = site.runs();
    assert_eq!(r.dates(), march(22..=31), "every date ran");
    assert!(r.started_more_than_once().is_empty(), "each date once");
    assert_eq!(
        r.most_at_once(),
        3,
        "never more than --max-active, and it is used"
    );
    // The logical time is 00:30 in Berlin: +01:00 before the change, +02:00 after.
    assert_eq!(r.times["2026-03-28"], "2026-03-28T00:30:00+01:00");
    assert_eq!(
        r.times["2026-03-29"], "2026-03-29T00:30:00+01:00",
        "before 02:00"
    );
    assert_eq!(r.times["2026-03-30"], "2026-03-30T00:30:00+02:00");
    // In order: the runs' ids (their creation times) follow the dates.
    let json = site
        .ok(&["status", "-w", "daily", "--json", "-n", "100"])
        .await;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let mut by_id: Vec<(u64, String)> = rows
        .iter()
        .map(|r| {
            assert_eq!(r["kind"], "backfill", "{r}");
            (
                r["instance"].as_str().unwrap().parse().unwrap(),
                r["logical_date"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    by_id.sort();
    let order: Vec<String> = by_id.into_iter().map(|(_, d)| d).collect();
    assert_eq!(order, march(22..=31), "started oldest first");

    // The scheduler counts the runs by state; the UI lists the backfill and its dates.
    let metrics = site.get(site.metrics, "/metrics").await;
    for line in [
        "pinball_backfill_runs_total{state=\"started\"} 10",
        "pinball_backfill_runs_total{state=\"succeeded\"} 8",
        "pinball_backfill_runs_total{state=\"failed\"} 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    wait_until(Duration::from_secs(30), "the UI serves", || {
        is_ready(site.ui)
    })
    .await;
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&site.get(site.ui, "/api/v1/backfills").await).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    for (key, value) in [
        ("id", serde_json::json!(id)),
        ("workflow", "daily".into()),
        ("state", "done".into()),
        ("pending", 0.into()),
        ("running", 0.into()),
        ("done", 8.into()),
        ("failed", 2.into()),
        ("skipped", 0.into()),
    ] {
        assert_eq!(rows[0][key], value, "{key} in {}", rows[0]);
    }
    // The workflows page marks the last 10 runs with their logical dates, oldest first.
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&site.get(site.ui, "/api/v1/workflows").await).unwrap();
    let daily = rows.iter().find(|r| r["workflow"] == "daily").unwrap();
    let recent: Vec<&str> = daily["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["logical_date"].as_str().unwrap())
        .collect();
    assert_eq!(recent, march(22..=31), "{daily}");
    let page = site.get(site.ui, "/workflows/").await;
    assert!(
        page.contains(r#"title="run for 2026-03-24 (backfill): FAILURE""#)
            && page.contains(">03-31</a>"),
        "{page}"
    );
    let page = site.get(site.ui, "/backfills/").await;
    assert!(page.contains(&format!("/backfill/?id={id}")) && page.contains("lower priority"));
    let page = site.get(site.ui, &format!("/backfill/?id={id}")).await;
    assert!(
        page.contains("<td>2026-03-24T00:30:00+01:00</td>\n  <td>failed</td>"),
        "{page}"
    );
    assert_eq!(
        page.matches("/jobs/?workflow=daily&instance=").count(),
        10,
        "each date links its run: {page}"
    );

    // The same backfill again starts nothing: every date has a run.
    let again = site
        .backfill(&["--from", "2026-03-22", "--to", "2026-03-31"], 0)
        .await;
    let shown = site.ok(&["backfill", "show", &again]).await;
    assert!(shown.contains(": done ("), "{shown}");
    assert!(
        shown.contains("2026-03-22T00:30:00+01:00 skipped has a run already"),
        "{shown}"
    );
    // --reprocess failed runs exactly the two that failed, now that they can succeed.
    for day in ["2026-03-24", "2026-03-27"] {
        std::fs::remove_file(site.d().join(format!("fail-{day}"))).unwrap();
    }
    let failed = site
        .backfill(
            &[
                "--from",
                "2026-03-22",
                "--to",
                "2026-03-31",
                "--reprocess",
                "failed",
                "--max-active",
                "5",
            ],
            2,
        )
        .await;
    let shown = site.wait_state(&failed, "done", 60).await;
    assert!(shown.contains("done 2 failed 0 skipped 8"), "{shown}");
    let r = site.runs();
    assert_eq!(
        r.started_more_than_once(),
        ["2026-03-24", "2026-03-27"],
        "only the failed dates ran again"
    );
    // The workflow's max_running_instances (3 by default) holds for backfills too.
    let before = uptime();
    let all = site
        .backfill(
            &[
                "--from",
                "2026-03-22",
                "--to",
                "2026-03-31",
                "--reprocess",
                "all",
                "--max-active",
                "10",
            ],
            10,
        )
        .await;
    site.wait_state(&all, "done", 120).await;
    let mut since = site.runs();
    for v in since.starts.values_mut().chain(since.ends.values_mut()) {
        v.retain(|t| *t > before);
    }
    assert_eq!(
        since.most_at_once(),
        3,
        "the run limit, not --max-active 10 or the 4 workers"
    );
    let list = site.ok(&["backfill", "list"]).await;
    assert_eq!(list.lines().count(), 4, "{list}");
    assert!(
        list.lines()
            .any(|l| l.starts_with(&format!("{id} daily done ")) && l.contains("done 8 failed 2")),
        "{list}"
    );
}

#[tokio::test]
async fn a_backfill_survives_its_master_and_scheduler_killed_and_cancel_leaves_nothing_running() {
    let mut site = Site::start(4, "0.5").await;
    let id = site
        .backfill(
            &[
                "--from",
                "2026-03-01",
                "--to",
                "2026-03-12",
                "--max-active",
                "2",
            ],
            12,
        )
        .await;
    let ran = |d: &Path| {
        let log = std::fs::read_to_string(d.join("runs.log")).unwrap_or_default();
        log.lines().filter(|l| l.starts_with("end ")).count()
    };
    let dir = site.d().to_owned();
    wait_until(Duration::from_secs(60), "two dates ran", || async {
        ran(&dir) >= 2
    })
    .await;
    site.restart_master().await;
    wait_until(Duration::from_secs(60), "five dates ran", || async {
        ran(&dir) >= 5
    })
    .await;
    site.restart_scheduler().await;
    let shown = site.wait_state(&id, "done", 120).await;
    assert!(shown.contains("done 12 failed 0"), "{shown}");
    let r = site.runs();
    assert_eq!(r.dates(), march(1..=12));
    let json = site
        .ok(&["status", "-w", "daily", "--json", "-n", "100"])
        .await;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let dates: BTreeSet<&str> = rows
        .iter()
        .map(|r| r["logical_date"].as_str().unwrap())
        .collect();
    assert_eq!(
        (rows.len(), dates.len()),
        (12, 12),
        "one run per date: {json}"
    );
    assert!(r.most_at_once() <= 2, "the limit held across the restarts");

    // Cancel mid-way: the two running runs (held until then) are aborted, nothing else starts.
    std::fs::write(site.d().join("runs.log"), "").unwrap();
    std::fs::write(site.d().join("hold"), "").unwrap();
    let long = site
        .backfill(
            &[
                "--from",
                "2026-04-01",
                "--to",
                "2026-04-06",
                "--max-active",
                "2",
                "-p",
                "region=us",
            ],
            6,
        )
        .await;
    wait_until(Duration::from_secs(60), "two runs started", || async {
        site.runs().starts.len() == 2
    })
    .await;
    // Backfill jobs stand below every job the workflow's own runs have.
    let master = pinball::master::HttpMasterClient::new(
        "127.0.0.1",
        site.port,
        pinball::master::client::RetryPolicy::default(),
    );
    let jobs = pinball::master::MasterClient::query_prefix(&master, "/workflow/daily/")
        .await
        .unwrap();
    assert!(
        !jobs.is_empty()
            && jobs
                .iter()
                .all(|t| !t.name.contains("/job/") || t.priority < -999_000.0),
        "{jobs:?}"
    );
    let out = site.ok(&["backfill", "cancel", &long]).await;
    assert_eq!(
        out,
        format!(
            "backfill {long} cancelled: 4 pending dates will not run, 2 running runs aborted\n"
        )
    );
    let shown = site.wait_state(&long, "cancelled", 10).await;
    wait_until(
        Duration::from_secs(60),
        "the aborted runs ended",
        || async {
            let shown = site.ok(&["backfill", "show", &long]).await;
            shown.contains("pending 0 running 0 done 0 failed 2")
        },
    )
    .await;
    assert!(
        shown.contains("cancelled the backfill was cancelled"),
        "{shown}"
    );
    let status = site.ok(&["status", "-w", "daily"]).await;
    assert!(!status.contains("RUNNING"), "nothing runs: {status}");
    let o = site.run(&["backfill", "resume", &long]).await;
    assert_eq!(
        o.status.code(),
        Some(1),
        "a cancelled backfill stays cancelled"
    );
    assert!(
        text(&o.stderr).contains("is cancelled"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        site.runs().starts.len(),
        2,
        "nothing started after the cancel"
    );
}

#[tokio::test]
async fn a_backfill_is_checked_before_anything_is_written() {
    let site = Site::start(1, "0").await;
    for (args, code, says) in [
        (
            &["--from", "2026-03-02", "--to", "2026-03-01"][..],
            2,
            "is before",
        ),
        (
            &["--from", "soon", "--to", "2026-03-01"][..],
            2,
            "--from: \"soon\" is not a time",
        ),
        (
            &["--from", "2026-03-01", "--to", "2026-03-02", "-p", "nope=1"][..],
            2,
            "unknown param nope",
        ),
        (
            &[
                "--from",
                "2026-03-01",
                "--to",
                "2026-03-02",
                "--every",
                "1X",
            ][..],
            2,
            "--every 1X",
        ),
        (
            &[
                "--from",
                "2000-01-01",
                "--to",
                "2040-01-01",
                "--every",
                "1H",
            ][..],
            2,
            "more than 10000 fire times",
        ),
    ] {
        let mut full = vec!["backfill", "-w", "daily"];
        full.extend_from_slice(args);
        let o = site.run(&full).await;
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains(says),
            "{args:?}: {}",
            text(&o.stderr)
        );
    }
    let o = site
        .run(&[
            "backfill",
            "-w",
            "nope",
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-02",
        ])
        .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("workflow nope not found"),
        "{}",
        text(&o.stderr)
    );
    let o = site.run(&["backfill", "show", "12"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("backfill 12 not found"));
    let o = site.run(&["backfill", "pause", "../x"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    // A workflow without a schedule needs --every; --order backward starts with the newest.
    let o = site
        .run(&[
            "backfill",
            "-w",
            "adhoc",
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-03",
        ])
        .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("has no schedule: give its dates with --every"),
        "{}",
        text(&o.stderr)
    );
    let dry = site
        .ok(&[
            "backfill",
            "-w",
            "adhoc",
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-03",
            "--every",
            "1D",
            "--dry-run",
        ])
        .await;
    assert_eq!(
        dry,
        "2026-03-01T00:00:00+00:00 run no run yet\n2026-03-02T00:00:00+00:00 run no run yet\n2026-03-03T00:00:00+00:00 run no run yet\n"
    );
    let dry = site
        .ok(&[
            "backfill",
            "-w",
            "daily",
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-03",
            "--order",
            "backward",
            "--dry-run",
        ])
        .await;
    assert!(dry.starts_with("2026-03-03T00:30:00+01:00 run"), "{dry}");
    // 10,000 dates plan (a dry run lists them all), and nothing was written.
    let dry = site
        .ok(&[
            "backfill",
            "-w",
            "daily",
            "--from",
            "2026-01-01T00:00:00Z",
            "--to",
            "2027-02-21T15:00:00Z",
            "--every",
            "1H",
            "--dry-run",
        ])
        .await;
    assert_eq!(dry.lines().count(), 10_000, "one line per hour");
    assert_eq!(site.ok(&["backfill", "list"]).await, "no backfills\n");
}
