//! `cargo bench --bench backfill`: a backfill of 1,000 dates of a one-job workflow (`true`)
//! with `--max-active 50`, on SQLite, with the master, the scheduler and a workers process
//! (16 slots) as real processes. Prints the time from the command to the last run archived
//! (runs/s; target >= 200), the master's commit p99 while it ran (target <= 20 ms), and how
//! long a dry run of 10,000 dates takes (target < 2 s).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pinball::master::client::RetryPolicy;
use pinball::master::{HttpMasterClient, MasterClient};

const DATES: usize = 1000;

fn pinball(args: &[&str], dir: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_pinball"));
    c.args(args).current_dir(dir).stdin(Stdio::null());
    c
}

fn spawn(args: &[&str], dir: &Path) -> std::process::Child {
    pinball(args, dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn ok(args: &[&str], dir: &Path) -> String {
    let o = pinball(args, dir).output().unwrap();
    assert!(
        o.status.success(),
        "pinball {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A histogram of the master's (`pinball_commit_duration_seconds`, `pinball_commit_rows`):
/// (upper bound, cumulative count) per bucket.
async fn buckets(port: u16, metric: &str) -> Vec<(f64, f64)> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}_bucket{{")))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

/// The `q` quantile of the commits between two scrapes, interpolated within its bucket as
/// Prometheus's `histogram_quantile` does; and the count of commits.
fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> (f64, f64) {
    let deltas: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| {
            let was = before.iter().find(|(b, _)| b == le).map_or(0.0, |x| x.1);
            (*le, n - was)
        })
        .collect();
    let total = deltas.last().map_or(0.0, |x| x.1);
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for (le, n) in &deltas {
        if *n >= rank {
            let upper = if le.is_finite() { *le } else { lower.0 };
            let share = if n - lower.1 > 0.0 {
                (rank - lower.1) / (n - lower.1)
            } else {
                1.0
            };
            return (lower.0 + (upper - lower.0) * share, total);
        }
        lower = (*le, *n);
    }
    (lower.0, total)
}

#[tokio::main]
async fn main() {
    pinball::config::install_tls_provider();
    println!(
        "# pinball backfill benchmark ({DATES} dates of a one-job workflow, --max-active 50, SQLite, 2 cores)"
    );
    // Job slots decide how busy the machine is: 8 leave CPU to spare, 16 use all of it.
    for (slots, dry_run) in [(8, true), (16, false)] {
        run(slots, dry_run).await;
    }
}

async fn run(slots: usize, dry_run: bool) {
    println!("## a workers process with {slots} job slots");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        d.join("wf.yaml"),
        "workflows:\n  one:\n    jobs:\n      j: {command: 'true'}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("pinball.yaml"),
        format!(
            "database_url: sqlite://{}/b.db\nmaster_port: {port}\nworkers: {slots}\narchive_delay_sec: 0\nlocal_logs_dir_prefix: {}/logs\nparser_params:\n  workflows_config: {}/wf.yaml\n",
            d.display(),
            d.display(),
            d.display()
        ),
    )
    .unwrap();
    let cfg = d.join("pinball.yaml");
    let c = cfg.to_str().unwrap();
    let mut master = spawn(&["-c", c, "-m", "master"], d);
    let client = HttpMasterClient::new("127.0.0.1", port, RetryPolicy::default());
    while client.health().await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ok(&["-c", c, "import", "-f"], d);
    let mut workers = spawn(&["-c", c, "-m", "workers"], d);
    let mut scheduler = spawn(&["-c", c, "-m", "scheduler"], d);

    let from = "2026-01-01T00:00:00Z";
    if dry_run {
        let dry = Instant::now();
        let lines = ok(
            &[
                "-c",
                c,
                "backfill",
                "-w",
                "one",
                "--from",
                from,
                "--to",
                "2027-02-21T15:00:00Z",
                "--every",
                "1H",
                "--dry-run",
            ],
            d,
        );
        println!(
            "dry run of {} dates: {:.2} s (target < 2 s)",
            lines.lines().count(),
            dry.elapsed().as_secs_f64()
        );
    }
    let to = jiff::Timestamp::from_second(
        from.parse::<jiff::Timestamp>().unwrap().as_second() + 3600 * (DATES as i64 - 1),
    )
    .unwrap()
    .to_string();
    let before = buckets(port, "pinball_commit_duration_seconds").await;
    let rows_before = buckets(port, "pinball_commit_rows").await;
    let started = Instant::now();
    let said = ok(
        &[
            "-c",
            c,
            "backfill",
            "-w",
            "one",
            "--from",
            from,
            "--to",
            &to,
            "--every",
            "1H",
            "--max-active",
            "50",
        ],
        d,
    );
    let id = said
        .strip_prefix("backfill ")
        .and_then(|r| r.split_once(':'))
        .map(|(id, _)| id.to_owned())
        .unwrap();
    let command = started.elapsed();
    let mut last_report = Instant::now();
    loop {
        let t = client
            .get(&format!("/backfill/{id}"))
            .await
            .unwrap()
            .unwrap();
        let b: serde_json::Value = serde_json::from_str(t.data.as_deref().unwrap()).unwrap();
        let left = client.query_prefix("/workflow/one/").await.unwrap().len();
        if b["state"] == "done" && left == 0 {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            // The states are runs of a letter: "998d2r".
            let (mut done, mut n) = (0, 0);
            for c in b["states"].as_str().unwrap().chars() {
                match c.to_digit(10) {
                    Some(d) => n = n * 10 + d as usize,
                    None => {
                        done += if c == 'd' { n } else { 0 };
                        n = 0;
                    }
                }
            }
            eprintln!(
                "  {done} of {DATES} dates done after {:.0} s",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed().as_secs_f64();
    let after = buckets(port, "pinball_commit_duration_seconds").await;
    let rows_after = buckets(port, "pinball_commit_rows").await;
    let (rows50, _) = quantile(&rows_before, &rows_after, 0.5);
    let (rows99, _) = quantile(&rows_before, &rows_after, 0.99);
    let (p99, commits) = quantile(&before, &after, 0.99);
    let (p50, _) = quantile(&before, &after, 0.5);
    println!(
        "backfill of {DATES} dates, --max-active 50: {took:.2} s from the command to the last run archived ({:.0} runs/s; target >= 200); the command itself {:.2} s",
        DATES as f64 / took,
        command.as_secs_f64()
    );
    println!(
        "master commits meanwhile: {commits:.0}, p50 {:.1} ms, p99 {:.1} ms (interpolated within the histogram's buckets; target p99 <= 20 ms); rows per commit p50 {rows50:.0}, p99 {rows99:.0}",
        p50 * 1000.0,
        p99 * 1000.0
    );
    for child in [&mut scheduler, &mut workers, &mut master] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
