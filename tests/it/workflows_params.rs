//! Runs with parameters and a logical time (CONTRACT §4.1-4.2), with real processes: a master,
//! workers, the scheduler and the command line. Jobs print what they find in their environment.

use std::time::Duration;

use crate::helpers::*;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const SHOW: &str = "env | grep ^PINBALL_ | sort";

#[tokio::test]
async fn typed_params_and_the_logical_time_reach_every_job() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let app = spawn_app(&dir).await;
    let workflows = format!(
        "workflows:\n  p:\n    params:\n      region: {{type: string, default: eu, choices: [eu, us]}}\n      limit: {{type: int, default: 1000}}\n      ratio: {{type: float, default: 0.5}}\n      full: {{type: bool, default: false}}\n      day: {{type: date, required: true}}\n      at: {{type: timestamp, default: '2026-01-01T00:00:00Z'}}\n    jobs:\n      show: {{command: '{SHOW}'}}\n  s:\n    schedule: {{cron: '* * * * * *'}}\n    params:\n      region: {{type: string, default: apac}}\n    jobs:\n      show: {{command: '{SHOW}'}}\n"
    );
    let config = workflows_config(d, "pinball.yaml", app.addr.port(), &workflows, "");
    let cfg = config.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut full = vec!["-c".to_string(), cfg.to_string()];
        full.extend(args.iter().map(|s| s.to_string()));
        async move {
            let args: Vec<&str> = full.iter().map(String::as_str).collect();
            pinball_out(&args, d).await
        }
    };
    pinball_ok(&config, &[&["import", "-f"]], d).await;
    // Wrong values are refused before anything starts, naming the param and its type.
    for (args, says) in [
        (&[][..], "param day: is required: give -p day=VALUE (date)"),
        (&["-p", "day=2026-02-30"], "param day: expected date"),
        (
            &["-p", "day=2026-02-01", "-p", "limit=many"],
            "param limit: expected int (a whole number), got \"many\"",
        ),
        (
            &["-p", "day=2026-02-01", "-p", "region=mars"],
            "\"mars\" is not one of eu, us",
        ),
        (
            &["-p", "day=2026-02-01", "-p", "nope=1"],
            "unknown param nope",
        ),
        (
            &["-p", "day=2026-02-01", "--logical-time", "soon"],
            "\"soon\" is not a time",
        ),
    ] {
        let mut full = vec!["util", "-f", "-w", "p", "start"];
        full.extend_from_slice(args);
        let o = run(&full).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains(says),
            "{args:?}: {}",
            text(&o.stderr)
        );
    }
    let o = run(&["status", "-w", "p"]).await;
    assert!(text(&o.stderr).contains("has no runs"), "nothing started");

    let _workers = spawn_pinball(&["-c", cfg, "-m", "workers"], d);
    let o = run(&[
        "util",
        "-f",
        "-w",
        "p",
        "start",
        "-p",
        "day=2026-02-01",
        "-p",
        "region=us",
        "--logical-time",
        "2026-02-01",
    ])
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let finished = |w: &'static str| {
        let run = &run;
        async move {
            wait_until(Duration::from_secs(60), "the run ends", || async {
                let o = run(&["status", "-w", w]).await;
                text(&o.stdout)
                    .lines()
                    .nth(1)
                    .is_some_and(|l| l.contains("SUCCESS"))
            })
            .await;
        }
    };
    finished("p").await;
    let o = run(&["logs", "-w", "p", "-i", "latest", "-j", "show"]).await;
    let env = text(&o.stdout);
    for line in [
        "PINBALL_PARAM_region=us",
        "PINBALL_PARAM_limit=1000",
        "PINBALL_PARAM_ratio=0.5",
        "PINBALL_PARAM_full=false",
        "PINBALL_PARAM_day=2026-02-01",
        "PINBALL_PARAM_at=2026-01-01T00:00:00Z",
        "PINBALL_LOGICAL_TIME=2026-02-01T00:00:00+00:00",
        "PINBALL_LOGICAL_DATE=2026-02-01",
        "PINBALL_INTERVAL_START=2026-02-01T00:00:00+00:00",
        "PINBALL_RUN_KIND=manual",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} in:\n{env}");
    }
    let o = run(&["status", "-w", "p", "-i", "latest"]).await;
    assert!(
        text(&o.stdout).contains("manual run for 2026-02-01, params at=2026-01-01T00:00:00Z day=2026-02-01 full=false limit=1000 ratio=0.5 region=us"),
        "{}",
        text(&o.stdout)
    );
    // A rerun keeps the params and the logical time.
    let o = run(&["util", "-f", "-w", "p", "-i", "latest", "rerun"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    wait_until(Duration::from_secs(60), "the rerun ends", || async {
        let o = run(&["status", "-w", "p", "-i", "latest"]).await;
        text(&o.stdout).contains("rerun run for 2026-02-01")
            && text(&o.stdout).contains(": SUCCESS")
    })
    .await;
    let o = run(&["logs", "-w", "p", "-i", "latest", "-j", "show"]).await;
    assert!(
        text(&o.stdout).contains("PINBALL_PARAM_region=us\n"),
        "{}",
        text(&o.stdout)
    );

    // A scheduled run gets the defaults, its due time and the interval since the last.
    let _scheduler = spawn_pinball(&["-c", cfg, "-m", "scheduler"], d);
    finished("s").await;
    let o = run(&["logs", "-w", "s", "-i", "latest", "-j", "show"]).await;
    let env: std::collections::BTreeMap<String, String> = text(&o.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(env["PINBALL_RUN_KIND"], "scheduled", "{env:?}");
    assert_eq!(env["PINBALL_PARAM_region"], "apac");
    let at: jiff::Timestamp = env["PINBALL_LOGICAL_TIME"].parse().unwrap();
    let from: jiff::Timestamp = env["PINBALL_INTERVAL_START"].parse().unwrap();
    assert_eq!(at.subsec_nanosecond(), 0, "a due time, not a start time");
    assert_eq!((at - from).get_seconds(), 1, "{env:?}");
    app.stop().await;
}

#[tokio::test]
async fn validate_names_the_file_workflow_and_param() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wf.yaml");
    std::fs::write(
        &file,
        "workflows:\n  w:\n    params:\n      limit: {type: int, default: lots}\n    jobs:\n      a: {command: 'true'}\n",
    )
    .unwrap();
    let o = pinball_out(&["validate", file.to_str().unwrap()], dir.path()).await;
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("wf.yaml")
            && err.contains("workflow w")
            && err.contains("param limit: default: expected int"),
        "{err}"
    );
}

/// The dashboard's Start builds its form from the declared params and sends them; wrong values
/// are refused with the same sentence as the command line's.
#[tokio::test]
async fn the_dashboard_starts_a_run_with_its_params() {
    let c = cluster(
        "workflows:\n  p:\n    params:\n      region: {type: string, default: eu, choices: [eu, us]}\n      full: {type: bool, default: false}\n      day: {type: date, required: true, description: 'the day to load'}\n    jobs:\n      a: {command: 'true'}\n",
        0,
        0,
    )
    .await;
    let root = ui_server(&c).await;
    let page = reqwest::get(format!("{root}/schedule/?workflow=p"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for field in [
        r#"<input name="param.day" type="date" value="" required>"#,
        r#"<select name="param.region"><option selected>eu</option><option>us</option></select>"#,
        r#"<select name="param.full"><option selected>false</option><option>true</option></select>"#,
        r#"<input name="logical_time" type="date">"#,
        "the day to load",
    ] {
        assert!(page.contains(field), "{field} in the page");
    }
    let csrf = page
        .split("data-csrf=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let post = |fields: Vec<(&'static str, &'static str)>| {
        let mut form: Vec<(&str, &str)> = vec![
            ("csrf", csrf.as_str()),
            ("command", "start"),
            ("workflow", "p"),
        ];
        form.extend(fields);
        let body = encoded(&form);
        let url = format!("{root}/command/");
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, body) = post(vec![("param.region", "mars"), ("param.day", "2026-02-01")]).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("\\\"mars\\\" is not one of eu, us") || body.contains("is not one of eu, us"),
        "{body}"
    );
    let (status, body) = post(vec![("bogus", "1")]).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("unknown field \\\"bogus\\\"") || body.contains("bogus"),
        "{body}"
    );
    let (status, body) = post(vec![
        ("param.region", "us"),
        ("param.full", "true"),
        ("param.day", "2026-02-01"),
        ("logical_time", "2026-02-01"),
    ])
    .await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let i = answer["created"]["instance"].as_str().unwrap().to_owned();
    let jobs = c.jobs("p", &i).await;
    let run = jobs["a"].job.run.clone().unwrap();
    assert_eq!(run.params["region"], "us");
    assert_eq!(run.params["full"], "true");
    assert_eq!(run.logical_date(), "2026-02-01");
    assert_eq!(run.kind, pinball::workflow::run_info::RunKind::Manual);
    c.stop().await;
}
