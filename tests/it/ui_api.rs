//! The UI's JSON read API (CONTRACT §6) over HTTP, read from the database: statuses and times
//! of workflows, instances, jobs and executions, live and archived, and logs.

use std::time::Duration;

use pinball::ops::Command;
use serde_json::Value;

use crate::helpers::*;

async fn ui(c: &Cluster) -> String {
    format!("{}/api/v1", ui_server(c).await)
}

async fn get(url: String) -> (u16, Value) {
    let r = reqwest::get(&url).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_read_api_shows_what_ran_and_how_it_ended() {
    let yaml = "workflows:\n  good:\n    jobs:\n      a: {command: 'echo hello'}\n      b: {command: 'true', depends_on: [a]}\n  bad:\n    jobs:\n      x: {command: 'echo oops >&2; exit 3'}\n  slow:\n    jobs:\n      s: {command: 'sleep 30'}\n";
    let c = cluster(yaml, 3, 0).await;
    let (good, bad, slow) = finished_and_running(&c).await;
    let base = ui(&c).await;

    let (status, workflows) = get(format!("{base}/workflows")).await;
    assert_eq!(status, 200);
    let by_name = |name: &str| {
        workflows
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["workflow"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("good")["status"], "SUCCESS");
    assert_eq!(by_name("good")["last_instance"], good.as_str());
    assert_eq!(by_name("bad")["status"], "FAILURE");
    assert_eq!(by_name("slow")["status"], "RUNNING");
    assert_eq!(by_name("slow")["running_instances"], 1);

    let (_, jobs) = get(format!("{base}/workflows/good/instances/{good}/jobs")).await;
    let b = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == "b")
        .unwrap();
    assert_eq!(
        (b["status"].as_str(), b["attempts"].as_u64()),
        (Some("SUCCESS"), Some(1))
    );
    assert_eq!(b["depends_on"], serde_json::json!(["a"]));

    let (_, execs) = get(format!(
        "{base}/workflows/bad/instances/{bad}/jobs/x/executions"
    ))
    .await;
    let e = &execs[0];
    assert_eq!(
        (e["status"].as_str(), e["exit_code"].as_i64()),
        (Some("FAILURE"), Some(3))
    );
    let stderr = reqwest::get(format!(
        "http://{}{}",
        base.trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap(),
        e["log_urls"]["stderr"].as_str().unwrap()
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert_eq!(stderr, "oops\n", "the failed job's stderr is readable");

    c.util(Command::Abort, Some("slow"), Some(&slow), &[]).await;
    c.archived("slow", &slow, Duration::from_secs(20)).await;
    let (_, instances) = get(format!("{base}/workflows/slow/instances")).await;
    assert_eq!(instances[0]["status"], "ABORTED");

    let second = c.start("good").await;
    c.archived("good", &second, Duration::from_secs(15)).await;
    let (_, instances) = get(format!("{base}/workflows/good/instances")).await;
    let ids: Vec<&str> = instances
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![second.as_str(), good.as_str()], "newest first");

    assert_eq!(get(format!("{base}/workflows/nope/instances")).await.0, 404);
    assert_eq!(
        get(format!(
            "{base}/workflows/good/instances/{good}/jobs/zz/executions"
        ))
        .await
        .0,
        404
    );
    let (code, body) = get(format!("{base}/workflows/bad-name/instances")).await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (400, Some("INPUT_ERROR"))
    );
    c.stop().await;
}

#[tokio::test]
async fn the_read_api_lists_schedules() {
    let c = cluster(&one_job("x", "j: {command: 'true'}"), 0, 0).await;
    let file = c.logs.path().join("defs.yaml");
    std::fs::write(&file, "workflows:\n  daily:\n    notify_emails: [ops@example.com]\n    schedule: {cron: '30 2 * * *', overrun_policy: DELAY}\n    jobs:\n      j: {command: 'true'}\n").unwrap();
    let mut config = c.config();
    config.parser_params.workflows_config = Some(file.display().to_string());
    c.apply_with(
        crate::helpers::action(Command::Reschedule, None, None, &[]),
        &config,
    )
    .await
    .unwrap();
    let base = ui(&c).await;
    let (_, schedules) = get(format!("{base}/schedules")).await;
    let s = &schedules[0];
    assert_eq!(s["workflow"], "daily");
    assert_eq!(s["cron"], "30 2 * * *");
    assert_eq!(s["overrun_policy"], "DELAY");
    assert_eq!(
        s["max_running_instances"], 3,
        "the configured default, when the schedule names none"
    );
    assert_eq!(s["emails"], serde_json::json!(["ops@example.com"]));
    assert!(s["next_run_time"].as_i64().unwrap() > pinball::clock::now());

    // The pages: the schedule with its policy explained, and its graph from the definition.
    let root = base.trim_end_matches("/api/v1");
    let html = reqwest::get(format!("{root}/schedules/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("cron 30 2 * * *"));
    assert!(html.contains("Delay the execution until the previous one finishes"));
    assert!(html.contains("ops@example.com"));
    let html = reqwest::get(format!("{root}/schedule/?workflow=daily"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"data-job="j" data-status="NEVER_RUN""#));
    assert!(html.contains("data-command=\"unschedule\""));
    let (code, _) = get(format!("{root}/schedule/?workflow=nothing_here")).await;
    assert_eq!(code, 404);
    c.stop().await;
}
