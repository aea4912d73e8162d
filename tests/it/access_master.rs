//! Access control on the master (CONTRACT §7.1), over real HTTP against a real `pinball -m
//! master` process: tokens and roles, the browser's cross-site requests, and the refusal to
//! listen beyond loopback without authentication.

use std::time::Duration;

use pinball::master::{HttpMasterClient, MasterClient, MasterError};
use pinball::token::*;
use serde_json::{Value, json};

use crate::helpers::*;

/// POSTs `body` to `path` with the given headers; the status and the JSON answer.
async fn post(port: u16, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/v1/{path}"))
        .body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = req.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn client(port: u16, token: Option<&str>) -> HttpMasterClient {
    HttpMasterClient::new("127.0.0.1", port, quick_policy())
        .with_token(token.map(|t| pinball::config::Secret(t.into())).as_ref())
}

#[tokio::test]
async fn every_call_needs_a_known_token_and_a_role_that_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    let master = master_with(dir.path(), &api_tokens_yaml()).await;
    let port = master.port;
    let json_type = ("content-type", "application/json");
    let query = r#"{"queries": [{"name_prefix": "/"}]}"#;

    // Without a token, or with one the master does not know: 401 in the contract's shape.
    let (status, body) = post(port, "query", &[json_type], query).await;
    assert_eq!((status, code(&body)), (401, "UNAUTHORIZED"), "{body}");
    let wrong = bearer("not-a-token-of-this-master");
    let (status, body) = post(
        port,
        "query",
        &[json_type, ("authorization", &wrong)],
        query,
    )
    .await;
    assert_eq!((status, code(&body)), (401, "UNAUTHORIZED"), "{body}");
    let health = reqwest::get(format!("http://127.0.0.1:{port}/api/v1/health"))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 401, "health needs a token too");

    // A viewer reads, and may not write.
    let viewer = client(port, Some(VIEWER));
    assert!(viewer.query_prefix("/workflow/").await.unwrap().is_empty());
    assert_eq!(viewer.health().await.unwrap().status, "ok");
    let err = viewer
        .modify(ModifyRequest::update(vec![token("/x")]))
        .await
        .unwrap_err();
    assert!(matches!(err, MasterError::Forbidden(_)), "{err}");
    assert!(err.to_string().contains("worker role"), "{err}");

    // A worker claims and writes job tokens, but neither definitions nor wide signals.
    let worker = client(port, Some(WORKER));
    worker
        .modify(ModifyRequest::update(vec![token(
            "/workflow/w/1/job/runnable/a",
        )]))
        .await
        .unwrap();
    let claimed = worker
        .query_and_own(claim(
            "/workflow/w/1/job/runnable/",
            Some(1),
            "w1",
            now() + 60,
            None,
        ))
        .await
        .unwrap();
    assert_eq!(claimed.tokens.len(), 1);
    for name in [
        "/definition/workflow/w",
        "/workflow/__SIGNAL__/EXIT",
        "/workflow/w/__SIGNAL__/DRAIN",
    ] {
        let err = worker
            .modify(ModifyRequest::update(vec![token(name)]))
            .await
            .unwrap_err();
        assert!(matches!(err, MasterError::Forbidden(_)), "{name}: {err}");
    }
    // A handover is the operator's: a worker's token is refused before anything is checked.
    let handover = pinball::master::api::handover::HandoverRequest::default();
    let err = worker.hand_over(&handover).await.unwrap_err();
    assert!(
        matches!(err, MasterError::Forbidden(_)) && err.to_string().contains("master handover"),
        "{err}"
    );

    // An operator does everything (a master that takes no lease cannot hand it over).
    let operator = client(port, Some(OPERATOR));
    let err = operator.hand_over(&handover).await.unwrap_err();
    assert!(
        err.to_string().contains("this master cannot hand over"),
        "{err}"
    );
    operator
        .modify(ModifyRequest::update(vec![token(
            "/workflow/__SIGNAL__/EXIT",
        )]))
        .await
        .unwrap();
    assert!(
        !operator
            .query_prefix("/workflow/__SIGNAL__/")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_command_line_presents_the_configured_or_environment_token() {
    let dir = tempfile::tempdir().unwrap();
    let master = master_with(dir.path(), &api_tokens_yaml()).await;
    let config = dir.path().join("cli.yaml");
    std::fs::write(&config, format!("master_port: {}\n", master.port)).unwrap();
    let config = config.to_str().unwrap();

    let out = pinball_out(&["-c", config, "token", "ls", "/"], dir.path()).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("API token"), "{stderr}");

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pinball"))
        .args(["-c", config, "token", "ls", "/"])
        .env("PINBALL_API_TOKEN", VIEWER)
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains(VIEWER),
        "the token is never printed: {stderr}"
    );
}

/// The drive-by attack: a page on any site POSTs a job with `fetch(..., {mode: "no-cors"})`,
/// which can send only `text/plain` (or form) bodies, and carries the page's `Origin`.
#[tokio::test]
async fn a_web_page_of_another_site_cannot_write_a_job() {
    let dir = tempfile::tempdir().unwrap();
    // An open master on loopback, as the README's first command runs it.
    let master = master_with(dir.path(), "").await;
    let port = master.port;
    let job = json!({"updates": [{"name": "/workflow/w/1/job/runnable/a",
        "data": "{\"command\": \"id > /tmp/proof\"}"}]})
    .to_string();

    let (status, body) = post(port, "modify", &[("content-type", "text/plain")], &job).await;
    assert_eq!(status, 415, "{body}");
    let (status, body) = post(port, "modify", &[], &job).await;
    assert_eq!(status, 415, "a body without a type is refused too: {body}");
    let (status, body) = post(
        port,
        "modify",
        &[
            ("content-type", "application/json"),
            ("origin", "http://evil.example"),
        ],
        &job,
    )
    .await;
    assert_eq!((status, code(&body)), (403, "FORBIDDEN"), "{body}");
    let (status, _) = post(
        port,
        "modify",
        &[
            ("content-type", "application/json"),
            ("sec-fetch-site", "cross-site"),
        ],
        &job,
    )
    .await;
    assert_eq!(status, 403);

    let c = client(port, None);
    assert!(
        c.query_prefix("/workflow/").await.unwrap().is_empty(),
        "no refused request wrote anything"
    );
    // The same body, as the API's own clients send it, is accepted.
    let (status, body) = post(
        port,
        "modify",
        &[("content-type", "application/json")],
        &job,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_master_will_not_listen_beyond_loopback_without_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("exposed.yaml");
    std::fs::write(
        &config,
        format!(
            "database_url: sqlite://{}\nmaster_port: 0\nmaster_bind: 0.0.0.0\n",
            dir.path().join("pinball.db").display()
        ),
    )
    .unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        pinball_out(
            &["-c", config.to_str().unwrap(), "-m", "master"],
            dir.path(),
        ),
    )
    .await
    .expect("the master refuses at once");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("0.0.0.0") && stderr.contains("api_tokens"),
        "{stderr}"
    );

    // With tokens, or with the explicit opt-out, it starts.
    for extra in [
        format!("master_bind: 0.0.0.0\n{}", api_tokens_yaml()),
        "master_bind: 0.0.0.0\nallow_unauthenticated: true\n".to_string(),
    ] {
        let sub = tempfile::tempdir().unwrap();
        let master = master_with(sub.path(), &extra).await;
        let c = client(master.port, Some(VIEWER));
        assert_eq!(c.health().await.unwrap().status, "ok", "{extra}");
    }
}

/// Workers and the scheduler in their own process, with a `worker` token only, run a workflow
/// end to end against a master that requires tokens: the role has every right they need.
#[tokio::test]
async fn workers_and_the_scheduler_need_only_the_worker_role() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("workflows.yaml"),
        "workflows:\n  w:\n    schedule: {recurrence: 2S, overrun_policy: SKIP, max_running_instances: 1}\n    jobs:\n      a: {command: 'echo PINBALL:EVENT_ATTR:k=v'}\n      b: {command: 'echo got %(k)s', depends_on: [a]}\n",
    )
    .unwrap();
    let master = master_with(d, &api_tokens_yaml()).await;
    let common = format!(
        "master_port: {}\nparser_params:\n  workflows_config: {}\nlocal_logs_dir_prefix: {}\narchive_delay_sec: 1\nworker_poll_time_sec: 1\n",
        master.port,
        d.join("workflows.yaml").display(),
        d.display()
    );
    let cli = d.join("cli.yaml");
    std::fs::write(&cli, format!("{common}api_token: {OPERATOR}\n")).unwrap();
    let workers = d.join("workers.yaml");
    std::fs::write(&workers, format!("{common}api_token: {WORKER}\n")).unwrap();
    let out = pinball_out(
        &["-c", cli.to_str().unwrap(), "import", "-f", "reschedule"],
        d,
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _w = spawn_pinball(
        &["-c", workers.to_str().unwrap(), "-m", "workers,scheduler"],
        d,
    );
    // The scheduler starts instances of the schedule; workers run them to the archive.
    let store =
        pinball::storage::open(&format!("sqlite://{}", d.join("pinball.db").display())).unwrap();
    wait_until(
        Duration::from_secs(60),
        "a scheduled instance runs and is archived",
        || async {
            store
                .read("default", pinball::storage::Table::Archived, "/workflow/w/")
                .await
                .unwrap_or_default()
                .iter()
                .any(|t| {
                    t.name.ends_with("/job/waiting/b")
                        && t.data
                            .as_deref()
                            .is_some_and(|d| d.contains("\"exit_code\":0"))
                })
        },
    )
    .await;
}

#[tokio::test]
async fn the_audit_log_names_who_really_asked_and_shows_text_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let master = master_with(dir.path(), &api_tokens_yaml()).await;
    let port = master.port;
    let json_type = ("content-type", "application/json");
    let entry = |actor: &str| {
        json!({"actor": actor, "command": "start", "ok": true, "result": "started"}).to_string()
    };
    // A worker's token writes no audit entry, whoever it claims to be.
    let (status, body) = post(
        port,
        "audit",
        &[json_type, ("authorization", &bearer(WORKER))],
        &entry("alice"),
    )
    .await;
    assert_eq!((status, code(&body)), (403, "FORBIDDEN"), "{body}");
    // An operator's actor text must show as written: no controls, no reordering marks.
    for forged in ["ali\u{202E}ecil", "alice\nroot", "a\u{200B}lice"] {
        let (status, body) = post(
            port,
            "audit",
            &[json_type, ("authorization", &bearer(OPERATOR))],
            &entry(forged),
        )
        .await;
        assert_eq!(status, 400, "{forged:?}: {body}");
        assert!(body.to_string().contains("U+"), "{body}");
    }
    // An operator's raw write of a signal is audited by the master itself, under the token's
    // name; a worker's write of an instance's job is not (it is routine).
    let ops = client(port, Some(OPERATOR));
    ops.modify(ModifyRequest {
        updates: vec![Token::new("/workflow/__SIGNAL__/DRAIN", Some("{}".into()))],
        ..Default::default()
    })
    .await
    .unwrap();
    client(port, Some(WORKER))
        .modify(ModifyRequest {
            updates: vec![Token::new("/workflow/w/1/job/waiting/j", Some("{}".into()))],
            ..Default::default()
        })
        .await
        .unwrap();
    let store = pinball::storage::open(&format!(
        "sqlite://{}",
        dir.path().join("pinball.db").display()
    ))
    .unwrap();
    let log = store.audit_log("default", None, 10).await.unwrap();
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!(log[0].via, "ops");
    assert_eq!(log[0].action.command, "modify");
    assert_eq!(log[0].action.result, "set /workflow/__SIGNAL__/DRAIN");
}

#[tokio::test]
async fn a_worker_token_bound_to_an_owner_prefix_and_pools_acts_only_within_them() {
    const HOST_B: &str = "host-b-token-0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let master = master_with(
        dir.path(),
        &format!(
            "{}  - {{name: host_b, token: {HOST_B}, role: worker, owner_prefix: hostb_, pools: [heavy]}}\n",
            api_tokens_yaml()
        ),
    )
    .await;
    let b = client(master.port, Some(HOST_B));
    let ops = client(master.port, Some(OPERATOR));
    let job = |name: &str, pool: &str| {
        Token::new(
            format!("/workflow/w/1/job/runnable/{name}"),
            Some(format!(r#"{{"pool": "{pool}"}}"#)),
        )
    };
    ops.modify(ModifyRequest::update(vec![
        job("light", "default"),
        job("big", "heavy"),
    ]))
    .await
    .unwrap();
    fn forbidden<T: std::fmt::Debug>(r: Result<T, MasterError>) -> String {
        let e = r.expect_err("refused");
        assert!(matches!(e, MasterError::Forbidden(_)), "{e}");
        e.to_string()
    }
    let exp = now() + 60;
    // Claims: as another host's owner, or of another pool, are refused.
    let e = forbidden(
        b.query_and_own(claim("/workflow/", None, "hostc_1_1_0", exp, None))
            .await,
    );
    assert!(e.contains("owner_prefix"), "{e}");
    let e = forbidden(
        b.query_and_own(QueryAndOwnRequest {
            pools: Some(vec!["default".into()]),
            ..claim("/workflow/", None, "hostb_1_1_0", exp, None)
        })
        .await,
    );
    assert!(e.contains("heavy"), "{e}");
    // A claim naming no pool takes the token's pools only.
    let got = b
        .query_and_own(claim("/workflow/", None, "hostb_1_1_0", exp, None))
        .await
        .unwrap();
    let names: Vec<&str> = got.tokens.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["/workflow/w/1/job/runnable/big"]);
    // A job another host holds cannot be rewritten, nor can an owner of another host be set.
    let held = ops
        .query_and_own(claim(
            "/workflow/w/1/job/runnable/light",
            None,
            "hostc_1_1_0",
            exp,
            None,
        ))
        .await
        .unwrap()
        .tokens
        .remove(0);
    let e = forbidden(
        b.modify(ModifyRequest::update(vec![Token {
            data: Some(r#"{"command": "touch /tmp/pwned"}"#.into()),
            ..held.clone()
        }]))
        .await,
    );
    assert!(e.contains("hostc_1_1_0"), "{e}");
    let e = forbidden(
        b.modify(ModifyRequest::update(vec![Token {
            owner: Some("hostc_9".into()),
            expiration_time: Some(exp),
            ..Token::new("/workflow/w/2/job/runnable/x", Some("{}".into()))
        }]))
        .await,
    );
    assert!(e.contains("owner_prefix"), "{e}");
    // Nor can it send a log as another host's worker.
    let e = forbidden(
        b.append_log(LogRequest {
            workflow: "w".into(),
            instance: "1".into(),
            job: "light".into(),
            execution: 0,
            kind: "stdout".into(),
            offset: 0,
            data: String::new(),
            host: "b".into(),
            owner: "hostc_1_1_0".into(),
        })
        .await,
    );
    assert!(e.contains("owner_prefix"), "{e}");
}
