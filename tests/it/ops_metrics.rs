//! `/metrics`, `/health` and `/ready` on every listener, as an operator's Prometheus sees them:
//! `pinball -m master,ui` and `pinball -m workers,scheduler` (with `metrics_bind`) as separate
//! processes with API tokens, a workflow with a chain, a failure and emails, and a schedule
//! every second. Every scrape is parsed by the Prometheus project's own Python parser
//! (`prometheus_client`, from PyPI in `.ci/run`'s virtual environment).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::helpers::*;

/// One sample: its name, its labels, its value.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append({"name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;

/// The python that has `prometheus_client` (`PINBALL_PROM_PYTHON`), or why not.
fn parser_python() -> Option<String> {
    std::env::var("PINBALL_PROM_PYTHON").ok()
}

/// Parses Prometheus text with `prometheus_client`; panics with the parser's words when the
/// text is not valid exposition format.
pub async fn parse(python: &str, text: &str) -> Vec<Sample> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(python)
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// GETs `path` on `port` with an optional bearer token: status and body.
async fn get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(format!("http://127.0.0.1:{port}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    match req.timeout(Duration::from_secs(10)).send().await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

/// The sum of the samples named `name` whose labels include `labels`.
fn total(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .peekable();
    found.peek()?;
    Some(found.sum())
}

async fn scrape(python: &str, port: u16) -> Vec<Sample> {
    let (status, text) = get(port, "/metrics", Some(VIEWER)).await;
    assert_eq!(status, 200, "a viewer token reads /metrics: {text}");
    parse(python, &text).await
}

const WORKFLOWS: &str = "workflows:
  m:
    notify_emails: [ops@example.com, nobody@example.com]
    jobs:
      a: {command: 'sleep 1'}
      b: {command: 'echo b', depends_on: [a]}
      c: {command: 'exit 3', depends_on: [a]}
  s:
    schedule: {recurrence: 1S, overrun_policy: START_NEW, max_running_instances: 3}
    jobs:
      j: {command: 'true'}
";

fn write_config(dir: &Path, ports: (u16, u16, u16, u16)) -> String {
    let (master, ui, probes, smtp) = ports;
    std::fs::write(dir.join("wf.yaml"), WORKFLOWS).unwrap();
    let path = dir.join("pinball.yaml");
    std::fs::write(
        &path,
        format!(
            "database_url: sqlite://{db}\nmaster_port: {master}\nui_port: {ui}\nmetrics_bind: 127.0.0.1:{probes}\n\
             api_token: {OPERATOR}\n{tokens}workers: 2\nworker_poll_time_sec: 1\nlocal_logs_dir_prefix: {logs}\n\
             parser_params: {{workflows_config: {wf}}}\ndefault_email: pinball@example.com\n\
             smtp_host: 127.0.0.1\nsmtp_port: {smtp}\nsmtp_starttls: 'off'\nsmtp_timeout_sec: 2\nlog_format: json\n",
            db = dir.join("pinball.db").display(),
            tokens = api_tokens_yaml(),
            logs = dir.join("logs").display(),
            wf = dir.join("wf.yaml").display(),
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn every_metric_is_served_parsed_and_moving_while_workflows_run() {
    let Some(python) = parser_python() else {
        crate::helpers::skipped(
            "PINBALL_PROM_PYTHON is not set (.ci/run installs prometheus_client)",
        );
        return;
    };
    if std::env::var("PINBALL_AIOSMTPD_PYTHON").is_err() {
        crate::helpers::skipped("PINBALL_AIOSMTPD_PYTHON is not set (.ci/run installs aiosmtpd)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ports = (free_port(), free_port(), free_port(), free_port());
    let (master, ui, probes, smtp) = ports;
    let config = write_config(dir.path(), ports);
    let _front = spawn_pinball(&["-c", &config, "-m", "master,ui"], dir.path());
    wait_until(
        Duration::from_secs(30),
        "the master and UI are ready",
        || async {
            get(master, "/ready", None).await.0 == 200 && get(ui, "/ready", None).await.0 == 200
        },
    )
    .await;
    let _back = spawn_pinball(&["-c", &config, "-m", "workers,scheduler"], dir.path());
    wait_until(
        Duration::from_secs(30),
        "the workers' listener is ready",
        || async { get(probes, "/ready", None).await.0 == 200 },
    )
    .await;

    // Every listener: /health and /ready without a token, /metrics only with one.
    for port in [master, ui, probes] {
        let (status, body) = get(port, "/health", None).await;
        assert_eq!(
            (status, body.contains("alive")),
            (200, true),
            "{port}: {body}"
        );
        assert_eq!(get(port, "/metrics", None).await.0, 401, "{port}: no token");
        assert_eq!(
            get(port, "/metrics", Some("not-a-known-token-at-all"))
                .await
                .0,
            401,
            "{port}: unknown token"
        );
    }
    let before = scrape(&python, master).await;
    let before_workers = scrape(&python, probes).await;

    let out = pinball_out(&["-c", &config, "import", "-f"], dir.path()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = pinball_out(
        &["-c", &config, "util", "-f", "-w", "m", "start"],
        dir.path(),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // While `a` sleeps: a running job, and workers parked waiting for more.
    let seen = std::sync::Mutex::new((false, false));
    wait_until(
        Duration::from_secs(30),
        "a running job and parked claims are seen",
        || async {
            let s = scrape(&python, master).await;
            let mut seen = seen.lock().unwrap();
            seen.0 |= total(&s, "pinball_jobs_running", &[]).unwrap_or(0.0) >= 1.0;
            seen.1 |= total(&s, "pinball_master_parked_claims", &[]).unwrap_or(0.0) >= 1.0;
            seen.0 && seen.1
        },
    )
    .await;

    // The SMTP server is down at first: the failure's email is retried...
    wait_until(
        Duration::from_secs(60),
        "an email retry is counted",
        || async {
            let s = scrape(&python, probes).await;
            total(&s, "pinball_email_retries_total", &[]).unwrap_or(0.0) >= 1.0
        },
    )
    .await;
    // ... then it comes up: one recipient accepted, the other refused for good.
    let _smtp = RealSmtp::start_on(
        "metrics",
        ServerOptions {
            tls: ServerTls::None,
            auth: None,
            mechanisms: "PLAIN",
            reject: &["nobody@example.com"],
        },
        smtp,
    )
    .await
    .unwrap();
    wait_until(
        Duration::from_secs(90),
        "emails sent and failed are counted",
        || async {
            let s = scrape(&python, probes).await;
            total(&s, "pinball_emails_sent_total", &[]).unwrap_or(0.0) >= 1.0
                && total(&s, "pinball_emails_failed_total", &[]).unwrap_or(0.0) >= 1.0
        },
    )
    .await;
    wait_until(
        Duration::from_secs(30),
        "scheduled runs are counted",
        || async {
            let s = scrape(&python, probes).await;
            total(&s, "pinball_schedule_skew_seconds_count", &[]).unwrap_or(0.0) >= 2.0
        },
    )
    .await;

    // The UI counts its own requests.
    assert_eq!(get(ui, "/", None).await.0, 200);
    let ui_samples = scrape(&python, ui).await;
    assert!(
        total(
            &ui_samples,
            "pinball_http_requests_total",
            &[("listener", "ui"), ("endpoint", "/")]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "the UI's request to / is counted"
    );

    let after = scrape(&python, master).await;
    let after_workers = scrape(&python, probes).await;
    let grew = |b: &[Sample], a: &[Sample], name: &str, labels: &[(&str, &str)]| {
        let (was, is) = (
            total(b, name, labels).unwrap_or(0.0),
            total(a, name, labels),
        );
        assert!(
            is.is_some_and(|is| is > was),
            "{name} {labels:?} should have grown from {was}: now {is:?}"
        );
    };
    let modify = [("listener", "master"), ("endpoint", "/api/v1/modify")];
    grew(&before, &after, "pinball_http_requests_total", &modify);
    grew(
        &before,
        &after,
        "pinball_http_request_duration_seconds_count",
        &modify,
    );
    grew(
        &before,
        &after,
        "pinball_commits_total",
        &[("result", "ok")],
    );
    grew(
        &before,
        &after,
        "pinball_commit_duration_seconds_count",
        &[],
    );
    grew(&before, &after, "pinball_commit_rows_sum", &[]);
    grew(&before, &after, "pinball_claim_wait_seconds_count", &[]);
    grew(
        &before,
        &after,
        "pinball_job_to_job_latency_seconds_count",
        &[],
    );
    grew(&before, &after, "pinball_master_tokens", &[]);
    assert!(total(&after, "pinball_jobs_runnable", &[]).is_some());
    let m = [("workflow", "m")];
    grew(
        &before_workers,
        &after_workers,
        "pinball_job_duration_seconds_count",
        &m,
    );
    grew(
        &before_workers,
        &after_workers,
        "pinball_jobs_finished_total",
        &[("workflow", "m"), ("outcome", "success")],
    );
    grew(
        &before_workers,
        &after_workers,
        "pinball_jobs_finished_total",
        &[("workflow", "m"), ("outcome", "failure")],
    );
    // A histogram's buckets are cumulative and its +Inf bucket is its count.
    let inf = total(
        &after_workers,
        "pinball_job_duration_seconds_bucket",
        &[("workflow", "m"), ("le", "+Inf")],
    );
    assert_eq!(
        inf,
        total(&after_workers, "pinball_job_duration_seconds_count", &m)
    );
    // The 1-second job sits above the 0.5 s bucket.
    let half = total(
        &after_workers,
        "pinball_job_duration_seconds_bucket",
        &[("workflow", "m"), ("le", "0.5")],
    )
    .unwrap();
    assert!(
        half < inf.unwrap(),
        "the sleeping job is in a higher bucket"
    );

    // log_format: json: every line of both processes is one JSON object; a job's end names
    // its workflow, instance, job and execution as fields.
    let mut ended = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("pinball.") && name.ends_with(".log")) {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{name}: not one JSON object a line ({e}): {line}"));
            assert!(
                v["level"].is_string() && v["timestamp"].is_string(),
                "{line}"
            );
            if v["message"] == "job ended" && v["workflow"] == "m" {
                assert!(v["instance"].is_string() && v["job"].is_string(), "{line}");
                assert!(v["execution"].is_u64(), "{line}");
                ended += 1;
            }
        }
    }
    assert!(
        ended >= 3,
        "the three jobs of m ended in the JSON log ({ended})"
    );
}

#[tokio::test]
async fn the_workers_listener_is_ready_only_while_its_master_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (master, probes) = (free_port(), free_port());
    let path = dir.path().join("pinball.yaml");
    std::fs::write(
        &path,
        format!(
            "database_url: sqlite://{}\nmaster_port: {master}\nmetrics_bind: 127.0.0.1:{probes}\nworkers: 1\nclient_connect_attempts: 1\nlocal_logs_dir_prefix: {}\n",
            dir.path().join("pinball.db").display(),
            dir.path().join("logs").display(),
        ),
    )
    .unwrap();
    let config = path.display().to_string();
    let _workers = spawn_pinball(&["-c", &config, "-m", "workers"], dir.path());
    wait_until(
        Duration::from_secs(30),
        "the workers' listener answers",
        || async { get(probes, "/health", None).await.0 == 200 },
    )
    .await;
    let (status, body) = get(probes, "/ready", None).await;
    assert_eq!(status, 503, "no master yet: {body}");
    assert!(
        body.contains("master"),
        "the reason names the master: {body}"
    );
    // Without api_tokens on loopback, metrics are open to local users, like the API.
    assert_eq!(get(probes, "/metrics", None).await.0, 200);

    let mut front = spawn_pinball(&["-c", &config, "-m", "master"], dir.path());
    wait_until(
        Duration::from_secs(30),
        "ready once the master answers",
        || async { get(probes, "/ready", None).await.0 == 200 },
    )
    .await;
    front.kill().await.unwrap();
    wait_until(
        Duration::from_secs(30),
        "not ready once the master is gone",
        || async { get(probes, "/ready", None).await.0 == 503 },
    )
    .await;
}

#[tokio::test]
async fn a_metrics_listener_beyond_loopback_needs_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pinball.yaml");
    std::fs::write(
        &path,
        format!(
            "database_url: sqlite://{}\nmetrics_bind: 0.0.0.0:{}\nlocal_logs_dir_prefix: {}\n",
            dir.path().join("pinball.db").display(),
            free_port(),
            dir.path().join("logs").display(),
        ),
    )
    .unwrap();
    let out = pinball_out(
        &["-c", path.to_str().unwrap(), "-m", "scheduler"],
        dir.path(),
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("metrics listener") && err.contains("api_tokens"),
        "{err}"
    );
}

/// The series of a scrape: each sample's name and labels, without its value.
fn series(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(key, _)| key.to_owned()))
        .collect()
}

#[tokio::test]
async fn invented_methods_add_no_series_on_any_listener() {
    let dir = tempfile::tempdir().unwrap();
    let master = crate::helpers::master_with(dir.path(), &api_tokens_yaml()).await;
    let port = master.port;
    // Twice, so the scrape's own series exists before the baseline is taken.
    get(port, "/metrics", Some(VIEWER)).await;
    let (_, before) = get(port, "/metrics", Some(VIEWER)).await;
    // 10,000 requests, each with a method of 1,000 random letters, on the probes, the API
    // (without credentials and with a viewer's) and /metrics itself.
    let paths = [
        "/health",
        "/ready",
        "/api/v1/query",
        "/metrics",
        "/api/v1/health",
    ];
    let mut senders = Vec::new();
    for s in 0..20 {
        senders.push(tokio::spawn(async move {
            let c = reqwest::Client::new();
            let mut answered = 0;
            for n in 0..500 {
                let word: String = (0..1000).map(|_| fastrand::uppercase()).collect();
                let method = reqwest::Method::from_bytes(word.as_bytes()).unwrap();
                let path = paths[(s + n) % paths.len()];
                let mut req = c.request(method, format!("http://127.0.0.1:{port}{path}"));
                if n % 2 == 0 {
                    req = req.bearer_auth(VIEWER);
                }
                if req.send().await.is_ok() {
                    answered += 1;
                }
            }
            answered
        }));
    }
    let mut answered = 0;
    for s in senders {
        answered += s.await.unwrap();
    }
    assert_eq!(answered, 10_000, "every request was answered");
    let (status, after) = get(port, "/metrics", Some(VIEWER)).await;
    assert_eq!(status, 200);
    let (old, new) = (series(&before), series(&after));
    let added: Vec<_> = new.difference(&old).collect();
    assert!(added.is_empty(), "new series: {added:#?}");
    assert!(
        after.len() < before.len() + 1024,
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );
}
