//! Queued runs (CONTRACT §4.4) with a real `pinball -m all` process: a start beyond
//! `max_running_instances` is refused, and with `--queue` (or `"queue": true` on the HTTP
//! trigger) it waits as a QUEUED run that starts when a run ends, is shown by the read API,
//! the dashboard and the metrics, and can be cancelled. Each job records when it starts and
//! ends (from /proc/uptime) and waits for a file named after its instance, so the test decides
//! when each run ends; the checks sweep the records: never two runs at once, in queue order.

use std::path::Path;
use std::time::Duration;

use crate::helpers::*;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `(instance, start, end)` of each run in `dir/runs.log`.
fn runs(dir: &Path) -> Vec<(String, f64, Option<f64>)> {
    let log = std::fs::read_to_string(dir.join("runs.log")).unwrap_or_default();
    let mut runs: Vec<(String, f64, Option<f64>)> = Vec::new();
    for line in log.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let at: f64 = f[2].parse().unwrap();
        match f[0] {
            "start" => runs.push((f[1].to_owned(), at, None)),
            _ => {
                if let Some(r) = runs.iter_mut().find(|r| r.0 == f[1]) {
                    r.2 = Some(at);
                }
            }
        }
    }
    runs
}

fn started(dir: &Path, instance: &str) -> bool {
    runs(dir).iter().any(|r| r.0 == instance)
}

/// The instance id in `queued workflow w instance ID (...)`.
fn queued_id(out: &str) -> String {
    out.strip_prefix("queued workflow w instance ")
        .and_then(|r| r.split_once(' '))
        .map(|(i, _)| i.to_owned())
        .unwrap_or_else(|| panic!("not a queued run: {out}"))
}

#[tokio::test]
async fn a_start_beyond_the_run_limit_is_refused_or_queued_and_the_queue_starts_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (port, ui) = (free_port(), free_port());
    let dd = d.display();
    std::fs::write(
        d.join("wf.yaml"),
        format!(
            "workflows:\n  w:\n    schedule: {{recurrence: 1D, start: '2030-01-01T00:00:00Z', max_running_instances: 1}}\n    jobs:\n      a: {{command: 'read up _ < /proc/uptime; echo start $PINBALL_INSTANCE $up >> {dd}/runs.log; while test ! -e {dd}/go-$PINBALL_INSTANCE; do sleep 0.1; done; read up _ < /proc/uptime; echo end $PINBALL_INSTANCE $up >> {dd}/runs.log'}}\n"
        ),
    )
    .unwrap();
    let cfg = d.join("pinball.yaml");
    std::fs::write(
        &cfg,
        format!(
            "database_url: sqlite://{}\nmaster_port: {port}\nui_port: {ui}\nworkers: 2\nlocal_logs_dir_prefix: {}\nparser_params:\n  workflows_config: {}\n",
            d.join("pinball.db").display(),
            d.join("logs").display(),
            d.join("wf.yaml").display()
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let _all = spawn_pinball(&["-c", c, "-m", "all"], d);
    wait_until(Duration::from_secs(60), "the master is ready", || {
        is_ready(port)
    })
    .await;
    wait_until(Duration::from_secs(60), "the UI is ready", || is_ready(ui)).await;
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
            let says = format!("pinball {}: {}", args.join(" "), text(&o.stderr));
            assert!(o.status.success(), "{says}");
            text(&o.stdout)
        }
    };
    let get = |url: String| async move {
        let r = reqwest::get(&url).await.unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        r.text().await.unwrap()
    };

    let first = started_instance(&ok(&["util", "-f", "-w", "w", "start"]).await);
    wait_until(
        Duration::from_secs(30),
        "the first run's job starts",
        || std::future::ready(started(d, &first)),
    )
    .await;
    // Without --queue: refused with the limit's words, exit 1.
    let o = run(&["util", "-f", "-w", "w", "start"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr)
            .contains("too many instances running! (1 running, max_running_instances 1)"),
        "{}",
        text(&o.stderr)
    );
    // With it: queued, in order, each told where it stands.
    let out = ok(&["util", "-f", "-w", "w", "start", "--queue"]).await;
    let q1 = queued_id(&out);
    assert_eq!(
        out,
        format!(
            "queued workflow w instance {q1} (1 running, max_running_instances 1): it starts when a run ends (to cancel it: pinball util -w w -i {q1} cancel)\n"
        )
    );
    let q2 = queued_id(&ok(&["util", "-f", "-w", "w", "start", "--queue"]).await);
    // The HTTP trigger queues too: 202, with the run it will be.
    let (status, answer) = post_raw(
        &format!("http://127.0.0.1:{port}/api/v1/workflows/w/runs"),
        r#"{"queue": true}"#,
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["queued"], true, "{answer}");
    let q3 = answer["instance"].as_str().unwrap().to_owned();
    assert!(q1 < q2 && q2 < q3, "{q1} {q2} {q3}");

    // Shown: the read API lists them first as QUEUED, the page offers Cancel, the master
    // counts them.
    let rows: serde_json::Value = serde_json::from_str(
        &get(format!(
            "http://127.0.0.1:{ui}/api/v1/workflows/w/instances"
        ))
        .await,
    )
    .unwrap();
    let listed: Vec<(String, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["instance"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let q = |i: &str| (i.to_owned(), "QUEUED".to_owned());
    assert_eq!(
        listed,
        [q(&q3), q(&q2), q(&q1), (first.clone(), "RUNNING".into())]
    );
    let page = get(format!("http://127.0.0.1:{ui}/instances/?workflow=w")).await;
    assert!(
        page.contains(&format!(
            "data-command=\"cancel\" data-workflow=\"w\" data-instance=\"{q2}\""
        )),
        "{page}"
    );
    let metrics = get(format!("http://127.0.0.1:{port}/metrics")).await;
    assert!(
        metrics.lines().any(|l| l == "pinball_queued_runs 3"),
        "{metrics}"
    );

    // Cancel: the second queued run never starts; a second cancel, or one of a run that
    // started, is refused with exit 1.
    let o = run(&["util", "-f", "-w", "w", "-i", &q2, "cancel"]).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        format!("cancelled the queued run of workflow w instance {q2}; it had not started\n")
    );
    for (i, says) in [
        (&q2, format!("workflow w instance {q2} not found")),
        (
            &first,
            format!("workflow w instance {first} is not queued: it has started"),
        ),
    ] {
        let o = run(&["util", "-f", "-w", "w", "-i", i, "cancel"]).await;
        assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
        assert!(text(&o.stderr).contains(&says), "{}", text(&o.stderr));
    }

    // The first run ends: the oldest queued run starts (and only it).
    std::fs::write(d.join(format!("go-{first}")), "").unwrap();
    wait_until(
        Duration::from_secs(30),
        "the first queued run starts",
        || std::future::ready(started(d, &q1)),
    )
    .await;
    assert!(!started(d, &q3), "the limit of 1 holds while {q1} runs");
    for i in [&q1, &q3] {
        std::fs::write(d.join(format!("go-{i}")), "").unwrap();
    }
    wait_until(Duration::from_secs(30), "the last queued run ends", || {
        std::future::ready(runs(d).iter().any(|r| r.0 == q3 && r.2.is_some()))
    })
    .await;

    // Never two at once, in queue order, the cancelled one never.
    let all = runs(d);
    let order: Vec<&str> = all.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(order, [first.as_str(), q1.as_str(), q3.as_str()]);
    for pair in all.windows(2) {
        let (prev_end, next_start) = (pair[0].2.unwrap(), pair[1].1);
        assert!(next_start >= prev_end, "overlap: {all:?}");
    }
    let metrics = get(format!("http://127.0.0.1:{port}/metrics")).await;
    for line in [
        "pinball_queued_runs 0",
        "pinball_queued_runs_total{outcome=\"started\"} 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    // --queue is start's alone.
    let o = run(&["util", "-f", "-w", "w", "-i", &q1, "retry", "--queue"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
}
