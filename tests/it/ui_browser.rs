//! The dashboard in a real headless browser (Debian's chromium over WebDriver) against a real
//! `pinball -m all` process: follow a workflow to its instance, watch the graph change colour as
//! jobs finish, read a failed job's stderr, retry it, abort a running instance. Screenshots go
//! to `target/ui-screenshots/`.

use std::time::Duration;

use crate::helpers::started_instance;
use crate::helpers::webdriver::Browser;
use crate::helpers::{free_port, pinball_out, spawn_pinball, wait_until};

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

/// `pinball -m all` in `dir` with the `workflows` YAML, `workers` workers, finished instances
/// kept `archive_delay_sec`; the UI's root once it serves workflow `w`.
async fn run_all(
    dir: &std::path::Path,
    workflows: &str,
    workers: u32,
    archive_delay_sec: u64,
    w: &str,
) -> (tokio::process::Child, String) {
    let (master, ui) = (free_port(), free_port());
    std::fs::write(dir.join("workflows.yaml"), workflows).unwrap();
    std::fs::write(
        dir.join("pinball.yaml"),
        format!(
            "database_url: sqlite://pinball.db\nmaster_port: {master}\nui_port: {ui}\nworkers: {workers}\narchive_delay_sec: {archive_delay_sec}\nlocal_logs_dir_prefix: {}/logs/\nparser_params:\n  workflows_config: workflows.yaml\n",
            dir.display()
        ),
    )
    .unwrap();
    let all = spawn_pinball(&["-m", "all"], dir);
    let root = format!("http://127.0.0.1:{ui}");
    wait_until(LONG, "the UI serves the imported workflows", || async {
        match reqwest::get(format!("{root}/api/v1/workflows")).await {
            Ok(r) => r.text().await.is_ok_and(|t| t.contains(w)),
            Err(_) => false,
        }
    })
    .await;
    (all, root)
}

#[tokio::test]
async fn an_operator_runs_pinball_from_the_browser() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let (_all, root) = run_all(
        dir.path(),
        &format!(
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
        3,
        300,
        "pipeline",
    )
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
        Some("#56b4e9")
    );
    b.screenshot("instance-running").await;
    // The page follows the run by itself: colours change without a reload.
    b.wait_until(&node_is("second", "SUCCESS"), LONG, "second succeeds")
        .await;
    let second = b.find("#job-second .shape").await.unwrap();
    assert_eq!(
        b.attribute(&second, "fill").await.as_deref(),
        Some("#009e73")
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

/// The instance's `{"status", "start_time", ...}` from the read API, `None` while the list
/// does not show it (yet).
async fn instance_row(root: &str, w: &str, i: &str) -> Option<serde_json::Value> {
    let rows: Vec<serde_json::Value> =
        reqwest::get(format!("{root}/api/v1/workflows/{w}/instances"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
    rows.into_iter().find(|r| r["instance"] == i)
}

/// Whether the read API shows the instance with a status for which `ok` holds.
async fn instance_is(root: &str, w: &str, i: &str, ok: impl Fn(&str) -> bool) -> bool {
    instance_row(root, w, i)
        .await
        .is_some_and(|r| r["status"].as_str().is_some_and(&ok))
}

#[tokio::test]
async fn an_archived_instance_keeps_its_history_and_retry_links_to_the_new_instance() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let (_all, root) = run_all(
        dir.path(),
        &format!(
            "workflows:\n  fragile:\n    jobs:\n      check: {{command: 'test -e {} || exit 3'}}\n",
            marker.display()
        ),
        1,
        0,
        "fragile",
    )
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
    let row = instance_row(&root, "fragile", &old).await.unwrap();
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
    let back = format!("a[href='/jobs/?workflow=fragile&instance={old}']");
    b.wait_for(&back, LONG).await;
    assert_eq!(
        b.text_of(&back).await.as_deref(),
        Some(old.as_str()),
        "links back to the instance it came from"
    );
    b.wait_until(
        "return document.getElementById('instance-status').textContent === 'SUCCESS';",
        LONG,
        "the retry succeeds",
    )
    .await;
    let (old_row, new_row) = (
        instance_row(&root, "fragile", &old).await.unwrap(),
        instance_row(&root, "fragile", &new).await.unwrap(),
    );
    assert!(
        new_row["start_time"].as_f64().unwrap() >= old_row["end_time"].as_f64().unwrap(),
        "its own start time, not the old one's: {old_row} {new_row}"
    );
    b.screenshot("retried-new-instance").await;
}

#[tokio::test]
async fn the_failure_comes_first_and_a_keyboard_alone_can_select_and_poison() {
    let dir = tempfile::tempdir().unwrap();
    let (_all, root) = run_all(dir.path(), "workflows:\n  etl:\n    jobs:\n      extract: {command: 'true'}\n      zz_transform: {command: 'echo first line >&2; echo the real cause >&2; exit 4', depends_on: [extract]}\n      load: {command: 'true', depends_on: [zz_transform]}\n      audit: {command: 'echo fine', depends_on: [extract]}\n", 2, 600, "etl").await;
    let i = start(dir.path(), "etl").await;
    wait_until(LONG, "the instance ends", || async {
        instance_is(&root, "etl", &i, |s| s == "FAILURE").await
    })
    .await;
    let b = Browser::start().await;
    b.goto(&format!("{root}/jobs/?workflow=etl&instance={i}"))
        .await;
    // What went wrong leads the page: the job, its exit code, attempts and its stderr's end.
    let banner = b.wait_for(".failure-banner", LONG).await;
    let said = b.text(&banner).await;
    assert!(
        said.contains("zz_transform failed: exit code 4, attempt 1"),
        "{said}"
    );
    let tail = b.find(".failure-banner .stderr-tail").await.unwrap();
    assert_eq!(b.text(&tail).await, "first line\nthe real cause");
    // The failed job is first in the table, though its name sorts last.
    assert_eq!(
        b.attribute_of("#jobs-table tbody tr", "data-job")
            .await
            .as_deref(),
        Some("zz_transform")
    );
    b.screenshot("failure-first").await;

    // A click opens the job's panel: its executions, logs and neighbours.
    let node = b.find("#job-audit").await.unwrap();
    b.click(&node).await;
    b.wait_until(
        "const p = document.getElementById('job-panel'); return !p.hidden && p.textContent.includes('#0 SUCCESS exit 0');",
        LONG,
        "the panel shows audit's execution",
    )
    .await;
    let panel = b.find("#job-panel").await.unwrap();
    let text = b.text(&panel).await;
    assert!(text.contains("Upstream: extract"), "{text}");
    assert!(text.contains("Downstream: none"), "{text}");
    assert!(
        b.find("#job-panel a[href*='log_type=stderr']")
            .await
            .is_some(),
        "a link to its logs"
    );
    b.screenshot("job-panel").await;

    // The keyboard alone: Tab to the failed node, Space selects it, Shift-Tab to Poison, Enter.
    b.goto(&format!("{root}/jobs/?workflow=etl&instance={i}"))
        .await;
    b.wait_for("#graph", LONG).await;
    b.tab_to(
        "return document.activeElement && document.activeElement.dataset.job === 'zz_transform';",
        false,
        60,
    )
    .await;
    b.press(" ", false).await;
    b.wait_until(
        "return document.getElementById('selection').textContent === 'Selected: zz_transform';",
        LONG,
        "Space selects the focused job",
    )
    .await;
    b.tab_to(
        "return document.activeElement && document.activeElement.dataset.command === 'poison';",
        true,
        60,
    )
    .await;
    b.press("\u{E007}", false).await;
    let question = b.accept_dialog().await;
    assert!(
        question.starts_with("Poison jobs zz_transform of workflow etl"),
        "{question}"
    );
    b.wait_until(
        "return document.getElementById('flash').textContent.startsWith('poisoned workflow etl');",
        LONG,
        "the poison is done",
    )
    .await;

    // The log page says how the execution ended.
    b.goto(&format!(
        "{root}/file/?workflow=etl&instance={i}&job=zz_transform&execution=0&log_type=stderr"
    ))
    .await;
    let outcome = b.wait_for("#log-outcome", LONG).await;
    let outcome = b.text(&outcome).await;
    assert!(
        outcome.starts_with("Execution 0: exit code 4 after"),
        "{outcome}"
    );
    // Touch: one finger pans the graph, two pinch it.
    b.goto(&format!("{root}/jobs/?workflow=etl&instance={i}"))
        .await;
    b.wait_for("#graph", LONG).await;
    let view =
        "return document.getElementById('graph').getAttribute('viewBox').split(' ').map(Number);";
    let at = |x: f64, y: f64| serde_json::json!({"x": x, "y": y});
    let touch = |kind: &str, points: Vec<serde_json::Value>| serde_json::json!({"type": kind, "touchPoints": points});
    let centre = b
        .execute("const r = document.getElementById('graph').getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2];")
        .await;
    let (cx, cy) = (centre[0].as_f64().unwrap(), centre[1].as_f64().unwrap());
    let before = b.execute(view).await;
    b.cdp(
        "Input.dispatchTouchEvent",
        touch("touchStart", vec![at(cx, cy)]),
    )
    .await;
    b.cdp(
        "Input.dispatchTouchEvent",
        touch("touchMove", vec![at(cx + 80.0, cy + 40.0)]),
    )
    .await;
    b.cdp("Input.dispatchTouchEvent", touch("touchEnd", vec![]))
        .await;
    let panned = b.execute(view).await;
    assert!(
        panned[0].as_f64() < before[0].as_f64(),
        "dragging right shows what is left: {before} {panned}"
    );
    b.cdp(
        "Input.dispatchTouchEvent",
        touch("touchStart", vec![at(cx - 20.0, cy), at(cx + 20.0, cy)]),
    )
    .await;
    b.cdp(
        "Input.dispatchTouchEvent",
        touch("touchMove", vec![at(cx - 80.0, cy), at(cx + 80.0, cy)]),
    )
    .await;
    b.cdp("Input.dispatchTouchEvent", touch("touchEnd", vec![]))
        .await;
    let pinched = b.execute(view).await;
    assert!(
        pinched[2].as_f64().unwrap() < panned[2].as_f64().unwrap() * 0.5,
        "spreading two fingers zooms in: {panned} {pinched}"
    );
}

#[tokio::test]
async fn waiting_to_retry_polling_killed_and_aborted_each_look_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let (_all, root) = run_all(dir.path(), "workflows:\n  states:\n    jobs:\n      flaky: {command: 'exit 1', max_attempts: 3, retry_delay_sec: 600}\n      gate: {condition: true, command: 'false', retry_delay_sec: 600}\n  long:\n    jobs:\n      wait: {command: 'sleep 120'}\n", 3, 600, "states").await;
    let i = start(dir.path(), "states").await;
    let long = start(dir.path(), "long").await;
    let b = Browser::start().await;
    b.goto(&format!("{root}/jobs/?workflow=states&instance={i}"))
        .await;
    b.wait_until(
        &node_is("flaky", "WAITING_RETRY"),
        LONG,
        "flaky waits for its retry",
    )
    .await;
    b.wait_until(&node_is("gate", "POLLING"), LONG, "gate polls")
        .await;
    let fill = |job: &str| {
        format!("return document.querySelector('#job-{job} .shape').getAttribute('fill');")
    };
    let icon =
        |job: &str| format!("return document.querySelector('#job-{job} .icon').textContent;");
    let (flaky_fill, gate_fill) = (
        b.execute(&fill("flaky")).await,
        b.execute(&fill("gate")).await,
    );
    assert_ne!(flaky_fill, gate_fill);
    assert_eq!(b.execute(&icon("flaky")).await, "↻");
    assert_eq!(b.execute(&icon("gate")).await, "◎");
    // The table says the same, and a condition's polls are not attempts.
    b.goto(&format!("{root}/jobs/?workflow=states&instance={i}"))
        .await;
    b.wait_for("tr[data-job=flaky] .status", LONG).await;
    assert_eq!(
        b.attribute_of("tr[data-job=flaky] .status", "data-state")
            .await
            .as_deref(),
        Some("WAITING_RETRY")
    );
    let gate_row = b.text_of("tr[data-job=gate]").await.unwrap();
    assert!(gate_row.contains("POLLING"), "{gate_row}");
    b.screenshot("states-waiting").await;

    // Killed by an abort, in an ABORTED instance: neither looks like a failure.
    b.goto(&format!("{root}/jobs/?workflow=long&instance={long}"))
        .await;
    b.wait_until(&node_is("wait", "RUNNING"), LONG, "wait runs")
        .await;
    let out = pinball_out(
        &["util", "-f", "-w", "long", "-i", &long, "abort"],
        dir.path(),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    b.wait_until(&node_is("wait", "KILLED"), LONG, "wait is shown killed")
        .await;
    b.wait_until(
        "return document.getElementById('instance-status').textContent === 'ABORTED';",
        LONG,
        "the instance ends ABORTED",
    )
    .await;
    b.goto(&format!("{root}/jobs/?workflow=long&instance={long}"))
        .await;
    b.wait_for("#instance-status", LONG).await;
    let aborted = b.attribute_of("#instance-status", "style").await.unwrap();
    let banner = b.wait_for(".failure-banner h2", LONG).await;
    assert!(
        b.text(&banner)
            .await
            .contains("wait was killed (by an abort of its instance)"),
        "the banner says how it ended"
    );
    assert_eq!(b.execute(&icon("wait")).await, "⚡");
    assert_ne!(
        b.execute(&fill("wait")).await,
        "#d55e00",
        "killed is not failure's colour"
    );
    assert!(
        !aborted.contains("#d55e00"),
        "ABORTED is not FAILURE's colour: {aborted}"
    );
    b.screenshot("states-killed-aborted").await;
}

#[tokio::test]
async fn the_runs_grid_shows_each_job_of_each_recent_run_and_charts_its_durations() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("count");
    // `b` fails in the second instance only.
    let (_all, root) = run_all(dir.path(), &format!(
            "workflows:\n  daily:\n    jobs:\n      a: {{command: 'true'}}\n      b: {{command: 'echo x >> {c}; test $(wc -l < {c}) -ne 2', depends_on: [a]}}\n      c: {{command: 'true', depends_on: [b]}}\n",
            c = count.display()
        ), 2, 0, "daily").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let i = start(dir.path(), "daily").await;
        wait_until(LONG, "the instance ends", || async {
            instance_is(&root, "daily", &i, |s| s != "RUNNING").await
        })
        .await;
        ids.push(i);
    }
    let b = Browser::start().await;
    b.goto(&format!("{root}/instances/?workflow=daily")).await;
    b.wait_for("#runs-grid", LONG).await;
    let states = b
        .execute(
            "return Array.from(document.querySelectorAll('#runs-grid [role=row][data-job]')).map(r => [r.dataset.job, Array.from(r.querySelectorAll('[role=cell]')).map(td => { const a = td.querySelector('a'); return a ? a.dataset.state : ''; })]);",
        )
        .await;
    assert_eq!(
        states,
        serde_json::json!([
            ["a", ["SUCCESS", "SUCCESS", "SUCCESS"]],
            ["b", ["SUCCESS", "FAILURE", "SUCCESS"]],
            ["c", ["SUCCESS", "NEVER_RUN", "SUCCESS"]],
        ]),
        "oldest run first; the second run's b failed and c never ran"
    );
    b.screenshot("runs-grid").await;
    // A cell opens that execution.
    let failed = b
        .find("#runs-grid [data-job=b] span:nth-of-type(3) a")
        .await
        .unwrap();
    b.click(&failed).await;
    b.wait_until(
        &format!(
            "return location.pathname === '/execution/' && location.search.includes('instance={}') && location.search.includes('job=b');",
            ids[1]
        ),
        LONG,
        "the cell opens b's execution in the second run",
    )
    .await;
    // A job's durations over the runs, one bar per run that ran it.
    b.goto(&format!("{root}/instances/?workflow=daily&chart=b"))
        .await;
    let chart = b.wait_for("#durations-chart", LONG).await;
    assert!(
        b.attribute(&chart, "aria-label")
            .await
            .unwrap()
            .starts_with("durations of b over the last 3 runs")
    );
    let bars = b
        .execute("return document.querySelectorAll('#durations-chart rect.bar').length;")
        .await;
    assert_eq!(bars, 3);
}

/// axe-core's violations of impact `serious` or `critical` on the page open in `b`.
async fn axe_violations(b: &Browser, axe: &str) -> Vec<String> {
    b.execute(&format!("{axe}\n;return true;")).await;
    let found = b
        .execute(
            "return axe.run(document, {resultTypes: ['violations']}).then(r => r.violations
               .filter(v => v.impact === 'serious' || v.impact === 'critical')
               .map(v => `${v.id} (${v.impact}): ${v.help}; ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')}`));",
        )
        .await;
    found
        .as_array()
        .unwrap_or_else(|| panic!("axe did not run: {found}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_page_passes_axe_in_light_and_dark_and_the_lists_fit_a_phone() {
    let Ok(axe_path) = std::env::var("PINBALL_AXE_JS") else {
        crate::helpers::skipped(
            "(browser::axe): PINBALL_AXE_JS is not set (.ci/run installs axe-core)",
        );
        return;
    };
    let axe = std::fs::read_to_string(&axe_path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let w = "nightly_etl_with_a_long_name";
    let (_all, root) = run_all(dir.path(), "workflows:\n  nightly_etl_with_a_long_name:\n    owner: data-eng\n    notify: [{on: [failure, finish], to: ['Ops Team <ops@example.com>']}]\n    schedule: {recurrence: 1M, overrun_policy: SKIP}\n    jobs:\n      extract: {command: \"echo 'extracting'\\nsleep 0 && echo one more line with a long command that would widen every table on a phone screen\"}\n      transform: {command: 'echo oops >&2; exit 2', depends_on: [extract]}\n      gate: {condition: true, command: 'true'}\n", 2, 600, w).await;
    let i = start(dir.path(), w).await;
    wait_until(LONG, "the instance ends", || async {
        instance_is(&root, w, &i, |s| s == "FAILURE").await
    })
    .await;
    // A backfill of three dates (its runs fail, as the workflow does).
    let out = pinball_out(
        &[
            "backfill",
            "-w",
            w,
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-03",
            "--every",
            "1D",
        ],
        dir.path(),
    )
    .await;
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let backfill = said
        .strip_prefix("backfill ")
        .and_then(|r| r.split_once(':'))
        .map(|(id, _)| id.to_owned())
        .unwrap_or_else(|| panic!("{said}{}", String::from_utf8_lossy(&out.stderr)));
    let q = format!("workflow={w}&instance={i}&job=transform");
    let pages = [
        ("workflows", "/workflows/".to_string(), true),
        ("instances", format!("/instances/?workflow={w}"), true),
        (
            "instance",
            format!("/jobs/?workflow={w}&instance={i}"),
            true,
        ),
        ("executions", format!("/executions/?{q}"), true),
        (
            "job-executions",
            format!("/job_executions/?workflow={w}&job=transform"),
            true,
        ),
        ("execution", format!("/execution/?{q}&execution=0"), false),
        (
            "file",
            format!("/file/?{q}&execution=0&log_type=stderr"),
            false,
        ),
        ("schedules", "/schedules/".to_string(), true),
        ("schedule", format!("/schedule/?workflow={w}"), false),
        ("tokens", "/token_paths/?path=/workflow/".to_string(), true),
        (
            "token",
            format!("/token/?path=/schedule/workflow/{w}"),
            false,
        ),
        ("audit", "/audit/".to_string(), true),
        ("backfills", "/backfills/".to_string(), true),
        ("backfill", format!("/backfill/?id={backfill}"), true),
        ("pools", "/pools/".to_string(), true),
        ("search", "/search/?q=etl".to_string(), true),
        ("not-found", "/nothing/here".to_string(), false),
    ];
    let b = Browser::start().await;
    let mut problems = Vec::new();
    for dark in [false, true] {
        b.dark(dark).await;
        for (name, path, _) in &pages {
            b.goto(&format!("{root}{path}")).await;
            b.wait_for("main", LONG).await;
            for v in axe_violations(&b, &axe).await {
                problems.push(format!("{name}{}: {v}", if dark { " (dark)" } else { "" }));
            }
            b.screenshot(&format!(
                "page-{name}-{}",
                if dark { "dark" } else { "light" }
            ))
            .await;
        }
    }
    // Dark really is dark.
    let bg = b
        .execute("return getComputedStyle(document.body).backgroundColor;")
        .await;
    assert_eq!(
        bg, "rgb(13, 17, 23)",
        "the dark theme follows prefers-color-scheme"
    );
    b.dark(false).await;
    assert!(
        problems.is_empty(),
        "axe-core found:\n{}",
        problems.join("\n")
    );

    // A phone: the list pages never scroll sideways.
    b.phone(true).await;
    for (name, path, list) in &pages {
        if !list {
            continue;
        }
        b.goto(&format!("{root}{path}")).await;
        b.wait_for("main", LONG).await;
        let wide = b
            .execute("return [document.documentElement.scrollWidth, window.innerWidth];")
            .await;
        assert!(
            wide[0].as_u64() <= wide[1].as_u64(),
            "{name} scrolls sideways on a 390 px phone: {wide}"
        );
        b.screenshot(&format!("phone-{name}")).await;
    }
    // Commands keep their line breaks; recurrences read in words.
    b.phone(false).await;
    b.goto(&format!(
        "{root}/execution/?workflow={w}&instance={i}&job=extract&execution=0"
    ))
    .await;
    let info = b.wait_for("td.info", LONG).await;
    assert!(
        b.text(&info).await.contains("'extracting'\nsleep 0"),
        "the command's newline is kept"
    );
    b.goto(&format!("{root}/schedules/")).await;
    let table = b.wait_for("#schedules-table, table.data", LONG).await;
    assert!(b.text(&table).await.contains("every 1 minute"));
    let icon = reqwest::get(format!("{root}/favicon.ico")).await.unwrap();
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");
}

#[tokio::test]
async fn a_running_job_s_log_page_follows_its_output_without_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate");
    let (_all, root) = run_all(
        dir.path(),
        &format!(
            "workflows:\n  talk:\n    jobs:\n      t: {{command: 'echo first; while [ ! -e {} ]; do sleep 0.05; done; echo second; sleep 30'}}\n",
            gate.display()
        ),
        1,
        600,
        "talk",
    )
    .await;
    let i = start(dir.path(), "talk").await;
    let api = format!("{root}/api/v1/workflows/talk/instances/{i}/jobs/t/executions/0/logs/stdout");
    wait_until(LONG, "the job runs and has printed", || async {
        match reqwest::get(&api).await {
            Ok(r) => r.text().await.is_ok_and(|t| t == "first\n"),
            Err(_) => false,
        }
    })
    .await;
    let b = Browser::start().await;
    b.goto(&format!(
        "{root}/file/?workflow=talk&instance={i}&job=t&execution=0&log_type=stdout"
    ))
    .await;
    b.wait_until(
        "const l = document.getElementById('log'); return !!l && l.textContent === 'first\\n' && !!document.getElementById('log-follow');",
        LONG,
        "the page shows the first line while the job runs",
    )
    .await;
    std::fs::write(&gate, "").unwrap();
    b.wait_until(
        "return document.getElementById('log').textContent === 'first\\nsecond\\n';",
        LONG,
        "the page shows the next line without a reload",
    )
    .await;
    b.screenshot("log-following").await;
}
