//! The dashboard in a real headless browser (Debian's chromium over WebDriver) against a real
//! `pinball -m all` process: follow a workflow to its instance, watch the graph change colour as
//! jobs finish, read a failed job's stderr, retry it, abort a running instance. Screenshots go
//! to `target/ui-screenshots/`.

use std::time::Duration;

use crate::helpers::started_instance;
use crate::helpers::{free_port, pinball_out, spawn_pinball, wait_until};
use crate::webdriver::Browser;

const LONG: Duration = Duration::from_secs(30);

/// The graph node's status, as the page shows it.
fn node_is(job: &str, status: &str) -> String {
    format!(
        "const n = document.getElementById('job-{job}'); return !!n && n.dataset.status === '{status}';"
    )
}

async fn start(dir: &std::path::Path, w: &str) -> String {
    let out = pinball_out(&["util", "-f", "-w", w, "start"], dir).await;
    started_instance(&String::from_utf8_lossy(&out.stdout))
}

#[tokio::test]
async fn an_operator_runs_pinball_from_the_browser() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let (master, ui) = (free_port(), free_port());
    std::fs::write(
        dir.path().join("workflows.yaml"),
        format!(
            "workflows:
  pipeline:
    owner: data-eng
    jobs:
      first: {{command: 'sleep 6'}}
      second: {{command: 'sleep 2', depends_on: [first]}}
  fragile:
    jobs:
      check: {{command: 'test -e {m} || {{ echo \"missing marker\" >&2; exit 1; }}'}}
  long:
    jobs:
      wait: {{command: 'sleep 120'}}
",
            m = marker.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("pinball.yaml"),
        format!(
            "database_url: sqlite://pinball.db\nmaster_port: {master}\nui_port: {ui}\nworkers: 3\narchive_delay_sec: 300\nlocal_logs_dir_prefix: {}/logs/\nparser_params:\n  workflows_config: workflows.yaml\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let _all = spawn_pinball(&["-m", "all"], dir.path());
    let root = format!("http://127.0.0.1:{ui}");
    wait_until(LONG, "the UI serves the imported workflows", || async {
        match reqwest::get(format!("{root}/api/v1/workflows")).await {
            Ok(r) => r.text().await.is_ok_and(|t| t.contains("pipeline")),
            Err(_) => false,
        }
    })
    .await;
    let b = Browser::start().await;

    // Start from the schedule page: the confirmation says what will happen, the answer is
    // util's.
    b.goto(&format!("{root}/schedule/?workflow=pipeline")).await;
    let button = b.wait_for("button[data-command=start]", LONG).await;
    b.click(&button).await;
    assert_eq!(
        b.accept_dialog().await,
        "Start a new instance of workflow pipeline now."
    );
    b.wait_until(
        "return document.getElementById('flash').textContent.startsWith('exported workflow pipeline instance');",
        LONG,
        "the start message",
    )
    .await;

    // Follow the workflow to its instance.
    b.goto(&format!("{root}/workflows/")).await;
    let link = b
        .wait_for("a[href='/instances/?workflow=pipeline']", LONG)
        .await;
    b.click(&link).await;
    let instance = b.wait_for("#instances-table tbody tr td a", LONG).await;
    b.click(&instance).await;
    b.wait_for("#graph", LONG).await;
    b.execute("window.notReloaded = true; return true;").await;
    b.wait_until(&node_is("first", "RUNNING"), LONG, "first runs")
        .await;
    let first = b.find("#job-first .shape").await.unwrap();
    assert_eq!(
        b.attribute(&first, "fill").await.as_deref(),
        Some("#66ccff")
    );
    b.screenshot("instance-running").await;
    // The page follows the run by itself: colours change without a reload.
    b.wait_until(&node_is("second", "SUCCESS"), LONG, "second succeeds")
        .await;
    let second = b.find("#job-second .shape").await.unwrap();
    assert_eq!(
        b.attribute(&second, "fill").await.as_deref(),
        Some("#89e894")
    );
    assert_eq!(
        b.execute("return window.notReloaded === true;").await,
        serde_json::Value::Bool(true),
        "updated in place"
    );
    b.wait_until(
        "return document.getElementById('instance-status').textContent === 'SUCCESS';",
        LONG,
        "the instance ends SUCCESS",
    )
    .await;
    b.screenshot("instance-success").await;

    // A failed job: its stderr, then Retry once the cause is fixed.
    let fragile = start(dir.path(), "fragile").await;
    b.goto(&format!("{root}/jobs/?workflow=fragile&instance={fragile}"))
        .await;
    b.wait_until(&node_is("check", "FAILURE"), LONG, "check fails")
        .await;
    let job = b.wait_for("tr[data-job=check] a", LONG).await;
    b.click(&job).await;
    let stderr = b
        .wait_for("a.log-link[href$='log_type=stderr']", LONG)
        .await;
    b.click(&stderr).await;
    let log = b.wait_for("#log", LONG).await;
    assert_eq!(b.text(&log).await, "missing marker");
    b.screenshot("failed-stderr").await;
    std::fs::write(&marker, "").unwrap();
    b.goto(&format!("{root}/jobs/?workflow=fragile&instance={fragile}"))
        .await;
    let retry = b.wait_for("button[data-command=retry]", LONG).await;
    b.click(&retry).await;
    let question = b.accept_dialog().await;
    assert!(
        question.starts_with(&format!("Retry workflow fragile instance {fragile}:")),
        "{question}"
    );
    b.wait_until(&node_is("check", "SUCCESS"), LONG, "the retry succeeds")
        .await;
    b.screenshot("retried").await;

    // Abort a running instance: it ends ABORTED.
    let long = start(dir.path(), "long").await;
    b.goto(&format!("{root}/jobs/?workflow=long&instance={long}"))
        .await;
    b.wait_until(&node_is("wait", "RUNNING"), LONG, "wait runs")
        .await;
    let abort = b.wait_for("button[data-command=abort]", LONG).await;
    b.click(&abort).await;
    let question = b.accept_dialog().await;
    assert!(question.contains("ends ABORTED"), "{question}");
    b.wait_until(
        "return document.getElementById('instance-status').textContent === 'ABORTED';",
        LONG,
        "the instance ends ABORTED",
    )
    .await;
    b.screenshot("aborted").await;
}

/// The instance's `{"status", "start_time", ...}` from the read API.
async fn instance_row(root: &str, w: &str, i: &str) -> serde_json::Value {
    let rows: Vec<serde_json::Value> =
        reqwest::get(format!("{root}/api/v1/workflows/{w}/instances"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    rows.into_iter()
        .find(|r| r["instance"] == i)
        .unwrap_or_else(|| panic!("no instance {i} of {w}"))
}

#[tokio::test]
async fn an_archived_instance_keeps_its_history_and_retry_links_to_the_new_instance() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let (master, ui) = (free_port(), free_port());
    std::fs::write(
        dir.path().join("workflows.yaml"),
        format!(
            "workflows:\n  fragile:\n    jobs:\n      check: {{command: 'test -e {} || exit 3'}}\n",
            marker.display()
        ),
    )
    .unwrap();
    // Archived as soon as it ends.
    std::fs::write(
        dir.path().join("pinball.yaml"),
        format!(
            "database_url: sqlite://pinball.db\nmaster_port: {master}\nui_port: {ui}\nworkers: 1\narchive_delay_sec: 0\nlocal_logs_dir_prefix: {}/logs/\nparser_params:\n  workflows_config: workflows.yaml\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let _all = spawn_pinball(&["-m", "all"], dir.path());
    let root = format!("http://127.0.0.1:{ui}");
    wait_until(LONG, "the UI serves the imported workflows", || async {
        match reqwest::get(format!("{root}/api/v1/workflows")).await {
            Ok(r) => r.text().await.is_ok_and(|t| t.contains("fragile")),
            Err(_) => false,
        }
    })
    .await;
    let old = start(dir.path(), "fragile").await;
    let page = format!("{root}/jobs/?workflow=fragile&instance={old}");
    let b = Browser::start().await;
    b.goto(&page).await;
    b.wait_until(
        "return !!document.querySelector('.summary .muted') && document.getElementById('instance-status').textContent === 'FAILURE';",
        LONG,
        "the instance is archived as FAILURE",
    )
    .await;
    // Only what applies: no signal on a finished, archived instance; Retry is there.
    b.goto(&page).await;
    b.wait_for("button[data-command=retry]", LONG).await;
    for gone in ["abort", "drain", "undrain", "unabort", "disable", "enable"] {
        assert!(
            b.find(&format!("button[data-command={gone}]"))
                .await
                .is_none(),
            "{gone} is not offered on an archived instance"
        );
    }
    b.screenshot("archived-failure").await;
    // The Abort a stale page (or a forged form) would send is refused, as an error.
    let answer = b
        .execute(&format!(
            "return (async () => {{
               const f = new URLSearchParams({{csrf: document.body.dataset.csrf, command: 'abort', workflow: 'fragile', instance: '{old}'}});
               const r = await fetch('/command/', {{method: 'POST', body: f}});
               return {{status: r.status, body: await r.json()}};
             }})();"
        ))
        .await;
    assert_eq!(answer["status"], 409, "{answer}");
    let said = answer["body"]["error"]["message"].as_str().unwrap();
    assert!(
        said.contains("archived") && said.contains("retry"),
        "says why and what to do instead: {said}"
    );
    // The CLI refuses it the same way.
    let cli = pinball_out(
        &["util", "-f", "-w", "fragile", "-i", &old, "drain"],
        dir.path(),
    )
    .await;
    assert_eq!(cli.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&cli.stderr).contains("archived"));
    // History intact: still FAILURE, still archived, nothing alive again.
    let row = instance_row(&root, "fragile", &old).await;
    assert_eq!(row["status"], "FAILURE", "{row}");
    b.goto(&page).await;
    b.wait_for(".summary .muted", LONG).await;

    // Retry: the answer links to the new instance, which has its own start and links back.
    std::fs::write(&marker, "").unwrap();
    let retry = b.wait_for("button[data-command=retry]", LONG).await;
    b.click(&retry).await;
    b.accept_dialog().await;
    let link = b.wait_for("#flash a", LONG).await;
    b.click(&link).await;
    b.wait_until(
        "return location.search.includes('instance=') && !location.search.includes('instance=OLD');"
            .replace("OLD", &old)
            .as_str(),
        LONG,
        "the new instance's page opens",
    )
    .await;
    let url = b.url().await;
    let new = url.rsplit("instance=").next().unwrap().to_owned();
    assert_ne!(new, old);
    let back = b
        .wait_for(
            &format!("a[href='/jobs/?workflow=fragile&instance={old}']"),
            LONG,
        )
        .await;
    assert_eq!(
        b.text(&back).await,
        old,
        "links back to the instance it came from"
    );
    b.wait_until(
        "return document.getElementById('instance-status').textContent === 'SUCCESS';",
        LONG,
        "the retry succeeds",
    )
    .await;
    let (old_row, new_row) = (
        instance_row(&root, "fragile", &old).await,
        instance_row(&root, "fragile", &new).await,
    );
    assert!(
        new_row["start_time"].as_f64().unwrap() >= old_row["end_time"].as_f64().unwrap(),
        "its own start time, not the old one's: {old_row} {new_row}"
    );
    b.screenshot("retried-new-instance").await;
}
