//! Pools with slots (CONTRACT §4.4) with real processes: a master and a workers process with 8
//! job slots, driven by `pinball pool` and `pinball util`. Jobs record when they start and end
//! (from /proc/uptime, the clock the test reads too) and how many slots they hold; the checks
//! sweep those records: never more slots held at once than the pool has.

use std::path::Path;
use std::time::Duration;

use crate::helpers::*;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A job of `slots` slots that records `start NAME SLOTS T` and `end NAME SLOTS T` in
/// `dir/runs.log` around a sleep of `sleep` seconds (and on while `dir/hold` exists).
fn job(dir: &Path, name: &str, slots: u32, sleep: &str) -> String {
    let d = dir.display();
    format!(
        "      {name}: {{pool: warehouse, pool_slots: {slots}, depends_on: [begin], command: 'read up _ < /proc/uptime; echo start {name} {slots} $up >> {d}/runs.log; sleep {sleep}; while test -e {d}/hold; do sleep 0.1; done; read up _ < /proc/uptime; echo end {name} {slots} $up >> {d}/runs.log'}}\n"
    )
}

struct Run {
    name: String,
    slots: u64,
    start: f64,
    end: Option<f64>,
}

fn runs(dir: &Path) -> Vec<Run> {
    let log = std::fs::read_to_string(dir.join("runs.log")).unwrap_or_default();
    let mut runs: Vec<Run> = Vec::new();
    for line in log.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (what, name, slots, at) = (f[0], f[1], f[2].parse().unwrap(), f[3].parse().unwrap());
        match what {
            "start" => runs.push(Run {
                name: name.to_owned(),
                slots,
                start: at,
                end: None,
            }),
            _ => {
                if let Some(r) = runs
                    .iter_mut()
                    .rev()
                    .find(|r| r.name == name && r.end.is_none())
                {
                    r.end = Some(at);
                }
            }
        }
    }
    runs
}

/// The most slots held at once by runs that ran (at least partly) after `from`.
fn most_slots(runs: &[Run], from: f64) -> u64 {
    let mut events: Vec<(f64, i64)> = Vec::new();
    for r in runs.iter().filter(|r| r.end.is_none_or(|e| e > from)) {
        events.push((r.start.max(from), r.slots as i64));
        if let Some(e) = r.end {
            events.push((e, -(r.slots as i64)));
        }
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut most) = (0i64, 0i64);
    for (_, step) in events {
        now += step;
        most = most.max(now);
    }
    most as u64
}

#[tokio::test]
async fn a_pool_s_slots_bound_its_running_jobs_change_at_run_time_and_starve_no_large_job() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (port, ui) = (free_port(), free_port());
    let mut wf = String::from("workflows:\n  fan:\n    jobs:\n      begin: {command: 'true'}\n");
    for n in 0..30 {
        wf.push_str(&job(d, &format!("j{n:02}"), 1, "0.4"));
    }
    wf.push_str(&job(d, "big", 2, "0.4"));
    std::fs::write(d.join("wf.yaml"), wf).unwrap();
    let cfg = d.join("pinball.yaml");
    std::fs::write(
        &cfg,
        format!(
            "database_url: sqlite://{}\nmaster_port: {port}\nui_port: {ui}\nworkers: 8\npool_starvation_sec: 2\nlocal_logs_dir_prefix: {}\npools: [default, warehouse]\nparser_params:\n  workflows_config: {}\n",
            d.join("pinball.db").display(),
            d.join("logs").display(),
            d.join("wf.yaml").display()
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let _master = spawn_pinball(&["-c", c, "-m", "master"], d);
    wait_until(Duration::from_secs(60), "the master is ready", || {
        is_ready(port)
    })
    .await;
    let run = |args: &[&str]| {
        let mut full = vec!["-c".to_string(), c.to_string()];
        full.extend(args.iter().map(|s| s.to_string()));
        async move {
            let args: Vec<&str> = full.iter().map(String::as_str).collect();
            pinball_out(&args, d).await
        }
    };
    let ok = |args: &'static [&'static str]| {
        let run = &run;
        async move {
            let o = run(args).await;
            assert!(
                o.status.success(),
                "pinball {}: {}",
                args.join(" "),
                text(&o.stderr)
            );
            text(&o.stdout)
        }
    };
    ok(&["import", "-f"]).await;
    assert_eq!(
        ok(&[
            "pool",
            "set",
            "warehouse",
            "--slots",
            "3",
            "--description",
            "the warehouse"
        ])
        .await,
        "pool warehouse: 3 slots\n"
    );
    let _workers = spawn_pinball(&["-c", c, "-m", "workers"], d);
    let _ui = spawn_pinball(&["-c", c, "-m", "ui"], d);
    std::fs::write(d.join("hold"), "").unwrap();
    ok(&["util", "-f", "-w", "fan", "start"]).await;
    // While running jobs hold the 3 slots, the others say what they wait for.
    wait_until(Duration::from_secs(60), "the 3 slots are held", || async {
        runs(d).iter().map(|r| r.slots).sum::<u64>() == 3
    })
    .await;
    wait_until(Duration::from_secs(30), "the UI is ready", || is_ready(ui)).await;
    let page = reqwest::get(format!(
        "http://127.0.0.1:{ui}/jobs/?workflow=fan&instance=latest"
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(
        page.contains("waiting for a slot in pool warehouse (3 of 3 used)"),
        "{page}"
    );
    // The pools page and API name the running jobs that hold the slots.
    let rows: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{ui}/api/v1/pools"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let warehouse = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["pool"] == "warehouse")
        .unwrap_or_else(|| panic!("{rows}"));
    let mut holders: Vec<String> = warehouse["held_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| format!("{} {} {}", h["workflow"], h["job"], h["slots"]))
        .collect();
    holders.sort();
    let mut running: Vec<String> = runs(d)
        .iter()
        .map(|r| format!("\"fan\" \"{}\" {}", r.name, r.slots))
        .collect();
    running.sort();
    assert_eq!(holders, running, "{warehouse}");
    let page = reqwest::get(format!("http://127.0.0.1:{ui}/pools/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let first = &runs(d)[0];
    assert!(page.contains(&format!(">fan {}</a>", first.name)), "{page}");
    let held: u64 = runs(d).iter().map(|r| r.slots).sum();
    assert_eq!(held, 3, "nothing else started meanwhile");
    std::fs::remove_file(d.join("hold")).unwrap();

    // The 2-slot job gets through (here it was first in line; the starvation rule is checked
    // on the master's state) and every job runs once.
    wait_until(Duration::from_secs(60), "the 2-slot job ran", || async {
        runs(d).iter().any(|r| r.name == "big" && r.end.is_some())
    })
    .await;
    let changed = uptime();
    assert_eq!(
        ok(&["pool", "set", "warehouse", "--slots", "1"]).await,
        "pool warehouse: 1 slots\n"
    );
    wait_until(Duration::from_secs(120), "every job ran", || async {
        runs(d).iter().filter(|r| r.end.is_some()).count() == 31
    })
    .await;
    let all = runs(d);
    assert_eq!(all.len(), 31, "each job once");
    assert_eq!(
        most_slots(&all, 0.0),
        3,
        "never more than 3 slots, and all 3 used"
    );
    // Jobs running when the limit went down finish (0.4 s); from then on, one at a time.
    let after = changed + 1.0;
    assert!(
        all.iter().filter(|r| r.start > after).count() >= 3,
        "jobs ran after the change"
    );
    assert_eq!(
        most_slots(&all, after),
        1,
        "at most 1 slot after the change"
    );
    let ls = ok(&["pool", "ls"]).await;
    assert!(
        ls.lines()
            .any(|l| l == "warehouse slots 1 used 0 waiting 0 (the warehouse)"),
        "{ls}"
    );
    // The UI's read API and page, and the master's metrics, say the same.
    let get = |url: String| async move {
        let r = reqwest::get(&url).await.unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        r.text().await.unwrap()
    };
    wait_until(Duration::from_secs(30), "the UI is ready", || is_ready(ui)).await;
    let rows: serde_json::Value =
        serde_json::from_str(&get(format!("http://127.0.0.1:{ui}/api/v1/pools")).await).unwrap();
    assert!(
        rows.as_array().unwrap().contains(&serde_json::json!({
            "pool": "warehouse", "slots": 1, "used": 0, "waiting": 0, "description": "the warehouse",
            "held_by": []
        })),
        "{rows}"
    );
    let page = get(format!("http://127.0.0.1:{ui}/pools/")).await;
    assert!(page.contains("<td>warehouse</td>\n  <td>1</td>"), "{page}");
    let metrics = get(format!("http://127.0.0.1:{port}/metrics")).await;
    for line in [
        "pinball_pool_slots{pool=\"warehouse\"} 1",
        "pinball_pool_slots_used{pool=\"warehouse\"} 0",
        "pinball_pool_waiting_jobs{pool=\"warehouse\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    // Pools are the operator's: bad names and removal are answered plainly.
    let o = run(&["pool", "set", "../x", "--slots", "1"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert_eq!(
        ok(&["pool", "rm", "warehouse"]).await,
        "pool warehouse removed: its jobs run without a limit\n"
    );
    let o = run(&["pool", "rm", "warehouse"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("pool warehouse not found"));
}

#[tokio::test]
async fn slots_of_a_killed_worker_come_back_and_the_limit_holds_across_a_master_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let mut wf = String::from("workflows:\n  fan:\n    jobs:\n      begin: {command: 'true'}\n");
    for n in 0..10 {
        wf.push_str(&job(d, &format!("j{n:02}"), 1, "0.3"));
    }
    std::fs::write(d.join("wf.yaml"), wf).unwrap();
    let cfg = d.join("pinball.yaml");
    std::fs::write(
        &cfg,
        format!(
            "database_url: sqlite://{}\nmaster_port: {port}\nworkers: 4\nlease_sec: 3\nlocal_logs_dir_prefix: {}\npools: [default, warehouse]\nparser_params:\n  workflows_config: {}\n",
            d.join("pinball.db").display(),
            d.join("logs").display(),
            d.join("wf.yaml").display()
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let mut master = spawn_pinball(&["-c", c, "-m", "master"], d);
    wait_until(Duration::from_secs(60), "the master is ready", || {
        is_ready(port)
    })
    .await;
    let ok = |args: &'static [&'static str]| async move {
        let mut full = vec!["-c", c];
        full.extend_from_slice(args);
        let o = pinball_out(&full, d).await;
        assert!(
            o.status.success(),
            "pinball {}: {}",
            args.join(" "),
            text(&o.stderr)
        );
    };
    ok(&["import", "-f"]).await;
    ok(&["pool", "set", "warehouse", "--slots", "2"]).await;
    std::fs::write(d.join("hold"), "").unwrap();
    let mut first = spawn_pinball(&["-c", c, "-m", "workers"], d);
    ok(&["util", "-f", "-w", "fan", "start"]).await;
    wait_until(
        Duration::from_secs(60),
        "two jobs hold the 2 slots",
        || async { runs(d).len() == 2 },
    )
    .await;
    // The worker dies with its slots (and its jobs' processes with it).
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let killed = uptime();
    std::fs::remove_file(d.join("hold")).unwrap();
    let _second = spawn_pinball(&["-c", c, "-m", "workers"], d);
    wait_until(Duration::from_secs(60), "four jobs ran", || async {
        runs(d).iter().filter(|r| r.end.is_some()).count() >= 4
    })
    .await;
    master = restart_master(&mut master, c, d, port).await;
    wait_until(Duration::from_secs(120), "every job ran", || async {
        let names: std::collections::BTreeSet<String> = runs(d)
            .iter()
            .filter(|r| r.end.is_some())
            .map(|r| r.name.clone())
            .collect();
        names.len() == 10
    })
    .await;
    let mut all = runs(d);
    // The killed worker's two runs ended with it.
    for r in all
        .iter_mut()
        .filter(|r| r.end.is_none() && r.start < killed)
    {
        r.end = Some(killed);
    }
    assert_eq!(all.len(), 12, "the two killed jobs ran again, once each");
    let twice: Vec<&str> = all
        .iter()
        .filter(|r| r.start < killed)
        .map(|r| r.name.as_str())
        .filter(|n| all.iter().filter(|r| r.name == *n).count() == 2)
        .collect();
    assert_eq!(twice.len(), 2, "the killed jobs, and only they, ran twice");
    assert_eq!(
        most_slots(&all, 0.0),
        2,
        "never more than 2, across the kill and the restart"
    );
    let again = all
        .iter()
        .filter(|r| r.start > killed)
        .map(|r| r.start)
        .fold(f64::MAX, f64::min);
    assert!(
        again - killed >= 1.0,
        "the killed worker's slots stayed held until its leases lapsed ({:.2} s)",
        again - killed
    );
    drop(master);
}
