//! The HTTP trigger (CONTRACT §4.3) against a real master process with API tokens: a `trigger`
//! token starts runs and does nothing else; an idempotency key starts one run however often
//! (and however concurrently) it is sent; refusals say why with the API's error body.

use crate::helpers::*;

const TRIGGER: &str = "trigger-token-0123456789abcdef";

async fn post(url: &str, token: Option<&str>, body: &str) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn a_trigger_token_starts_runs_once_per_key_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tokens = format!(
        "{}  - {{name: ci, token: {TRIGGER}, role: trigger}}\n",
        api_tokens_yaml()
    );
    let master = master_with(d, &tokens).await;
    let base = format!("http://127.0.0.1:{}/api/v1", master.port);
    let wf = d.join("wf.yaml");
    std::fs::write(
        &wf,
        "workflows:\n  w:\n    params:\n      day: {type: date, required: true}\n    schedule: {recurrence: 1D, max_running_instances: 3}\n    jobs:\n      a: {command: 'true'}\n",
    )
    .unwrap();
    let cli = d.join("cli.yaml");
    std::fs::write(
        &cli,
        format!(
            "master_port: {}\napi_token: {OPERATOR}\nparser_params:\n  workflows_config: {}\n",
            master.port,
            wf.display()
        ),
    )
    .unwrap();
    // A scheduled workflow's required param is refused at import: give it a default instead.
    let o = pinball_out(&["-c", cli.to_str().unwrap(), "import", "-f"], d).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("param day: is required"));
    std::fs::write(
        &wf,
        "workflows:\n  w:\n    params:\n      day: {type: date, default: '2026-01-01'}\n    schedule: {recurrence: 1D, start: '2030-01-01T00:00:00Z', max_running_instances: 3}\n    jobs:\n      a: {command: 'true'}\n",
    )
    .unwrap();
    pinball_ok(&cli, &[&["import", "-f"]], d).await;

    let runs = format!("{base}/workflows/w/runs");
    let body = r#"{"params": {"day": "2026-02-01"}, "logical_time": "2026-02-01", "idempotency_key": "ci-build-17"}"#;
    let (status, first) = post(&runs, Some(TRIGGER), body).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["workflow"], "w");
    assert_eq!(first["params"]["day"], "2026-02-01");
    assert_eq!(first["logical_time"], 1769904000);
    // The same key: the same run, nothing started, even sent twice at once.
    let (a, b) = tokio::join!(
        post(&runs, Some(TRIGGER), body),
        post(&runs, Some(OPERATOR), body)
    );
    for (status, again) in [a, b] {
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["instance"], first["instance"]);
    }
    // Two new keys at once: two runs.
    let k = |n: u32| format!(r#"{{"idempotency_key": "race-{n}"}}"#);
    let (k1, k2) = (k(1), k(2));
    let (x, y) = tokio::join!(
        post(&runs, Some(TRIGGER), &k1),
        post(&runs, Some(TRIGGER), &k2)
    );
    assert_eq!((x.0, y.0), (201, 201), "{x:?} {y:?}");
    assert_ne!(x.1["instance"], y.1["instance"]);
    assert_eq!(x.1["params"]["day"], "2026-01-01", "the default");

    // Refusals, with the API's error body.
    for (url, token, body, status, code, says) in [
        (
            runs.clone(),
            Some(TRIGGER),
            r#"{"params": {"day": "soon"}}"#,
            400,
            "INPUT_ERROR",
            "param day: expected date",
        ),
        (
            runs.clone(),
            Some(TRIGGER),
            r#"{"whatever": 1}"#,
            400,
            "INPUT_ERROR",
            "unknown field",
        ),
        (
            runs.clone(),
            Some(TRIGGER),
            r#"{"idempotency_key": "a/b"}"#,
            400,
            "INPUT_ERROR",
            "idempotency_key",
        ),
        (
            format!("{base}/workflows/nope/runs"),
            Some(TRIGGER),
            "{}",
            404,
            "NOT_FOUND",
            "workflow nope not found",
        ),
        (
            runs.clone(),
            Some(TRIGGER),
            "{}",
            409,
            "VERSION_CONFLICT",
            "too many instances running",
        ),
        (runs.clone(), None, "{}", 401, "UNAUTHORIZED", "API token"),
        (
            runs.clone(),
            Some(VIEWER),
            "{}",
            403,
            "FORBIDDEN",
            "the viewer role may not start runs",
        ),
        (
            runs.clone(),
            Some(WORKER),
            "{}",
            403,
            "FORBIDDEN",
            "the worker role may not start runs",
        ),
        (
            format!("{base}/modify"),
            Some(TRIGGER),
            r#"{"updates": [{"name": "/x"}]}"#,
            403,
            "FORBIDDEN",
            "modify",
        ),
        (
            format!("{base}/query"),
            Some(TRIGGER),
            r#"{"queries": [{"name_prefix": ""}]}"#,
            403,
            "FORBIDDEN",
            "query",
        ),
    ] {
        let (got, answer) = post(&url, token, body).await;
        assert_eq!(got, status, "{url} {body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{url} {body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{url} {body}: {answer}");
    }
    // Three runs, each audited under the token that asked.
    let out = pinball_out(
        &["-c", cli.to_str().unwrap(), "token", "ls", "/workflow/w/"],
        d,
    )
    .await;
    let listing = String::from_utf8_lossy(&out.stdout);
    let instances: std::collections::BTreeSet<&str> = listing
        .lines()
        .filter_map(|l| l.split("/workflow/w/").nth(1))
        .filter_map(|rest| rest.split('/').next())
        .collect();
    assert_eq!(instances.len(), 3, "{listing}");
    let store =
        pinball::storage::open(&format!("sqlite://{}", d.join("pinball.db").display())).unwrap();
    let audit = store.audit_log("default", None, 50).await.unwrap();
    let by_ci: Vec<bool> = audit
        .iter()
        .filter(|e| e.action.actor == "ci (api token)" && e.action.command == "start")
        .map(|e| e.action.ok)
        .collect();
    assert_eq!(
        by_ci.iter().filter(|ok| **ok).count(),
        3,
        "three starts by ci, the repeats not among them: {audit:?}"
    );
    assert_eq!(by_ci.len(), 6, "and its three refusals: {audit:?}");
}
