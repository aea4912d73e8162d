//! Access control on the UI (CONTRACT §7.1), over real HTTP and in a real browser, against a
//! real deployment: `pinball -m master` with API tokens, `pinball -m ui` with users and its own
//! token, and the command line with a third. Sign-in, sessions and their cookies, roles, the
//! audit log of the UI's and the CLI's actions, the `Host` check and the headers every page
//! carries.

use std::time::Duration;

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

use crate::helpers::webdriver::Browser;
use crate::helpers::*;

const LONG: Duration = Duration::from_secs(30);

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in; the session cookie (`name=value`) and the whole `Set-Cookie` header.
async fn sign_in(root: &str, user: &str, password: &str) -> Option<(String, String)> {
    let r = http()
        .post(format!("{root}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encoded(&[
            ("username", user),
            ("password", password),
            ("next", "/audit/"),
        ]))
        .send()
        .await
        .unwrap();
    if r.status().as_u16() != 303 {
        assert_eq!(r.status().as_u16(), 401, "a failed sign-in is 401");
        return None;
    }
    assert_eq!(
        r.headers()[LOCATION],
        "/audit/",
        "back where the user was going"
    );
    let set = r.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let pair = set.split(';').next().unwrap().to_owned();
    Some((pair, set))
}

async fn get(root: &str, path: &str, cookie: Option<&str>) -> (u16, HeaderMap, String) {
    let mut req = http().get(format!("{root}{path}"));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let r = req.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.text().await.unwrap())
}

fn csrf(html: &str) -> String {
    html.split("data-csrf=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned()
}

async fn act(root: &str, cookie: &str, csrf: &str, form: &[(&str, &str)]) -> (u16, String) {
    let mut fields = vec![("csrf", csrf)];
    fields.extend_from_slice(form);
    let r = http()
        .post(format!("{root}/command/"))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encoded(&fields))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn the_ui_needs_a_sign_in_and_only_operators_act() {
    let d = deploy(true).await;
    let root = &d.root;

    // Without a session: pages send to the sign-in, the read API is 401, styles are served.
    let (status, headers, _) = get(root, "/workflows/", None).await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/login?next=%2Fworkflows%2F");
    let (status, _, body) = get(root, "/api/v1/workflows", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("UNAUTHORIZED"), "{body}");
    assert_eq!(get(root, "/static/pinball.css", None).await.0, 200);
    // Metrics: a scraper has no session, and this UI has no api_tokens to check one against.
    let (status, _, body) = get(root, "/metrics", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("api_tokens"), "{body}");
    let (status, _, body) = get(root, "/login", None).await;
    assert_eq!(status, 200);
    assert!(body.contains("name=\"password\""), "{body}");

    assert!(sign_in(root, "alice", "wrong").await.is_none());
    assert!(sign_in(root, "nobody", "alice's password").await.is_none());

    // A viewer sees, and may not act.
    let (viewer, set_cookie) = sign_in(root, "victor", "victor's password").await.unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(flag), "{flag} in {set_cookie}");
    }
    assert!(
        set_cookie.contains("Max-Age=") || set_cookie.contains("Expires="),
        "the session cookie expires: {set_cookie}"
    );
    let (status, _, page) = get(root, "/workflows/", Some(&viewer)).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("victor (viewer)"),
        "the page says who is signed in"
    );
    let token = csrf(&page);
    let (status, body) = act(
        root,
        &viewer,
        &token,
        &[("command", "start"), ("workflow", "w")],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (_, _, api) = get(root, "/api/v1/workflows", Some(&viewer)).await;
    assert!(api.contains("\"w\""), "viewers read the API: {api}");

    // An operator acts; the audit log names them, the action and the result.
    let (operator, _) = sign_in(root, "alice", "alice's password").await.unwrap();
    let token = csrf(&get(root, "/workflows/", Some(&operator)).await.2);
    let (status, body) = act(
        root,
        &operator,
        &token,
        &[("command", "start"), ("workflow", "w")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("exported workflow w instance"), "{body}");
    // So does the command line's, under its operating-system user and its token.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pinball"))
        .args([
            "-c",
            d.cli_config.to_str().unwrap(),
            "util",
            "-f",
            "-w",
            "w",
            "drain",
        ])
        .env("USER", "carol")
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, _, audit) = get(root, "/audit/", Some(&viewer)).await;
    // The master's own entry for the signal it applied names the token that asked.
    let (applied, rows): (Vec<&str>, Vec<&str>) = audit
        .split("<tr>")
        .skip(2)
        .partition(|r| r.contains("<td>(api)</td>"));
    assert!(
        applied
            .iter()
            .any(|r| r.contains("<td>ops</td>") && r.contains("set /workflow/w/__SIGNAL__/DRAIN")),
        "{audit}"
    );
    assert!(rows.len() >= 3, "import, start and drain: {audit}");
    assert!(
        rows[0].contains("carol") && rows[0].contains("drain") && rows[0].contains("ops"),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].contains("alice")
            && rows[1].contains("start")
            && rows[1].contains(">ui<")
            && rows[1].contains("exported workflow w instance"),
        "{}",
        rows[1]
    );

    // Signing out ends the session on the server: the old cookie opens nothing.
    let r = http()
        .post(format!("{root}/logout"))
        .header("cookie", &operator)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(get(root, "/workflows/", Some(&operator)).await.0, 303);
    let (status, _) = act(
        root,
        &operator,
        &token,
        &[("command", "drain"), ("workflow", "w")],
    )
    .await;
    assert_eq!(status, 303, "a signed-out session cannot act");
}

#[tokio::test]
async fn the_ui_answers_only_to_its_own_names_and_protects_its_pages() {
    // The UI of the README's first command: no users, on loopback.
    let d = deploy(false).await;
    let root = &d.root;
    let port = root.rsplit(':').next().unwrap();
    let (status, headers, page) = get(root, "/workflows/", None).await;
    assert_eq!(status, 200);
    let csp = headers["content-security-policy"].to_str().unwrap();
    for rule in [
        "frame-ancestors 'none'",
        "script-src 'self'",
        "default-src 'none'",
    ] {
        assert!(csp.contains(rule), "{rule} in {csp}");
    }
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    let token = csrf(&page);

    // DNS rebinding: a page served as evil.example, resolved to this machine.
    let evil = format!("evil.example:{port}");
    let r = http()
        .get(format!("{root}/workflows/"))
        .header("host", &evil)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 421);
    assert!(
        !r.text().await.unwrap().contains(&token),
        "the token is not handed out"
    );
    let r = http()
        .post(format!("{root}/command/"))
        .header("host", &evil)
        .header("origin", format!("http://{evil}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encoded(&[
            ("csrf", token.as_str()),
            ("command", "start"),
            ("workflow", "w"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 421);
    let (_, _, instances) = get(root, "/api/v1/workflows/w/instances", None).await;
    assert!(
        !instances.contains("\"instance\":"),
        "nothing was started: {instances}"
    );

    // The master behind it refuses such a name too, whatever the token.
    let master_port = std::fs::read_to_string(&d.cli_config)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("master_port: ").map(str::to_owned))
        .unwrap();
    let r = http()
        .post(format!("http://127.0.0.1:{master_port}/api/v1/query"))
        .header("host", format!("evil.example:{master_port}"))
        .header("authorization", format!("Bearer {WORKER}"))
        .header("content-type", "application/json")
        .body(r#"{"queries": []}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
}

#[tokio::test]
async fn signing_in_and_acting_in_a_real_browser() {
    let d = deploy(true).await;
    let root = &d.root;
    let b = Browser::start().await;
    b.goto(&format!("{root}/schedule/?workflow=w")).await;
    let user = b.wait_for("#username", LONG).await;
    assert!(b.url().await.contains("/login?next="), "{}", b.url().await);
    b.type_into(&user, "victor").await;
    let password = b.find("#password").await.unwrap();
    b.type_into(&password, "victor's password").await;
    let submit = b.find("button[type=submit]").await.unwrap();
    b.click(&submit).await;
    b.wait_for("nav .signout", LONG).await;
    assert!(
        b.url().await.ends_with("/schedule/?workflow=w"),
        "{}",
        b.url().await
    );

    // The session cookie: HttpOnly (no script reads it), SameSite=Strict, with an expiry.
    let cookies = b.cookies().await;
    let session = cookies
        .iter()
        .find(|c| c["name"] == "pinball_session")
        .expect("a session cookie");
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "Strict");
    assert!(session["expiry"].is_number(), "{session}");
    assert_eq!(
        b.execute("return document.cookie.includes('pinball_session');")
            .await,
        serde_json::Value::Bool(false)
    );
    // A viewer is offered no actions.
    assert_eq!(
        b.execute("const s = document.querySelector('button[data-command=start]'); return !!s && getComputedStyle(s).display;").await,
        "none"
    );
    b.screenshot("viewer-schedule").await;
    let out = b.find("nav .signout button").await.unwrap();
    b.click(&out).await;
    b.wait_for("#username", LONG).await;

    // An operator starts the workflow; the audit log shows it.
    let user = b.find("#username").await.unwrap();
    b.type_into(&user, "alice").await;
    let password = b.find("#password").await.unwrap();
    b.type_into(&password, "alice's password").await;
    b.click(&b.find("button[type=submit]").await.unwrap()).await;
    b.wait_for("nav .signout", LONG).await;
    b.goto(&format!("{root}/schedule/?workflow=w")).await;
    let start = b.wait_for("button[data-command=start]", LONG).await;
    b.click(&start).await;
    b.accept_dialog().await;
    b.wait_until(
        "return document.getElementById('flash').textContent.startsWith('exported workflow w instance');",
        LONG,
        "the start message",
    )
    .await;
    b.goto(&format!("{root}/audit/")).await;
    let table = b.wait_for("#audit-table tbody", LONG).await;
    let text = b.text(&table).await;
    assert!(text.contains("alice") && text.contains("start"), "{text}");
    b.screenshot("audit-log").await;
    drop(d);
}

#[tokio::test]
async fn a_request_cannot_forge_lines_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (master, ui) = (free_port(), free_port());
    let config = dir.path().join("pinball.yaml");
    std::fs::write(
        &config,
        format!("database_url: sqlite://p.db\nmaster_port: {master}\nui_port: {ui}\n"),
    )
    .unwrap();
    let log = dir.path().join("stderr.log");
    let _p = tokio::process::Command::new(env!("CARGO_BIN_EXE_pinball"))
        .args(["-c", config.to_str().unwrap(), "-m", "master,ui"])
        .current_dir(dir.path())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let root = format!("http://127.0.0.1:{ui}");
    wait_until(LONG, "the UI serves", || async {
        reqwest::get(format!("{root}/workflows/")).await.is_ok()
    })
    .await;
    let forged = "x\n2026-01-01T00:00:00Z  INFO pinball: FORGED admin signed in";
    for csrf in ["wrong", ""] {
        let r = http()
            .post(format!("{root}/command/"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encoded(&[("csrf", csrf), ("command", forged)]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("refused an action"),
        "the refusal is logged: {text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.contains("FORGED") && !l.contains("refused")),
        "a request's text stays inside its own log line: {text}"
    );
}

#[tokio::test]
async fn each_session_has_its_own_anti_forgery_token() {
    let d = deploy(true).await;
    let root = &d.root;
    let (first, _) = sign_in(root, "alice", "alice's password").await.unwrap();
    let (second, _) = sign_in(root, "alice", "alice's password").await.unwrap();
    let token_of = |cookie: String| async move {
        let (status, _, page) = get(root, "/workflows/", Some(&cookie)).await;
        assert_eq!(status, 200);
        csrf(&page)
    };
    let (a, b) = (
        token_of(first.clone()).await,
        token_of(second.clone()).await,
    );
    assert_ne!(a, b, "two sessions share an anti-forgery token");
    assert_eq!(
        a,
        token_of(first.clone()).await,
        "a session keeps its token"
    );
    // One session's token does not act for another.
    let (status, body) = act(
        root,
        &second,
        &a,
        &[("command", "drain"), ("workflow", "w")],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = act(
        root,
        &second,
        &b,
        &[("command", "drain"), ("workflow", "w")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// `POST /api/v1/actions/{command}` as a script sends it: JSON, with a token or a cookie.
async fn json_act(
    root: &str,
    command: &str,
    auth: (Option<&str>, Option<&str>),
    body: &str,
    content_type: &str,
) -> (u16, String) {
    let mut req = http()
        .post(format!("{root}/api/v1/actions/{command}"))
        .header("content-type", content_type)
        .body(body.to_owned());
    if let Some(token) = auth.0 {
        req = req.bearer_auth(token);
    }
    if let Some(cookie) = auth.1 {
        req = req.header("cookie", cookie);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn scripts_act_through_the_json_twin_with_a_session_or_an_operator_token() {
    let d = deploy_with(true, &api_tokens_yaml()).await;
    let root = &d.root;
    const JSON: &str = "application/json";
    let w = r#"{"workflow": "w"}"#;
    for (auth, status, says) in [
        ((None, None), 401, "sign in first"),
        (
            (Some("not-a-token-of-anybody"), None),
            401,
            "not one this master knows",
        ),
        ((Some(VIEWER), None), 403, "viewers may look but not act"),
        ((Some(WORKER), None), 403, "viewers may look but not act"),
    ] {
        let (got, body) = json_act(root, "start", auth, w, JSON).await;
        assert_eq!(
            (got, body.contains(says)),
            (status, true),
            "{auth:?}: {body}"
        );
    }
    // A viewer's token reads the read API (a script has no session).
    let r = http()
        .get(format!("{root}/api/v1/workflows"))
        .bearer_auth(VIEWER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    let op = (Some(OPERATOR), None);
    let (status, body) = json_act(root, "start", op, w, JSON).await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .starts_with("exported workflow w instance"),
        "{body}"
    );
    let instance = answer["created"]["instance"].as_str().unwrap().to_owned();
    assert_eq!(answer["created"]["workflow"], "w");
    for (command, body, content_type, status, says) in [
        ("stop", w, JSON, 400, "not an action the UI offers"),
        (
            "start",
            r#"{"workflow": "w", "x": 1}"#,
            JSON,
            400,
            "unknown field `x`",
        ),
        (
            "start",
            "workflow=w",
            "application/x-www-form-urlencoded",
            400,
            "application/json",
        ),
        ("start", r#"{"workflow": "a/b"}"#, JSON, 400, "invalid"),
        (
            "retry",
            r#"{"workflow": "w", "instance": "1"}"#,
            JSON,
            409,
            "not found",
        ),
    ] {
        let (got, answer) = json_act(root, command, op, body, content_type).await;
        assert_eq!(got, status, "{command} {body}: {answer}");
        assert!(answer.contains(says), "{command} {body}: {answer}");
    }
    // Another site's page cannot drive it, token or not.
    let r = http()
        .post(format!("{root}/api/v1/actions/drain"))
        .bearer_auth(OPERATOR)
        .header("content-type", JSON)
        .header("origin", "http://evil.example")
        .body(w)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // A session acts without the page's token; a viewer's session does not.
    let (alice, _) = sign_in(root, "alice", "alice's password").await.unwrap();
    let (victor, _) = sign_in(root, "victor", "victor's password").await.unwrap();
    let body = format!(r#"{{"workflow": "w", "instance": "{instance}"}}"#);
    let (status, answer) = json_act(root, "abort", (None, Some(&victor)), &body, JSON).await;
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = json_act(root, "abort", (None, Some(&alice)), &body, JSON).await;
    assert_eq!(status, 200, "{answer}");

    // Each action is in the audit log under who asked.
    let (_, _, audit) = get(root, "/audit/", Some(&victor)).await;
    let rows: Vec<&str> = audit.split("<tr>").skip(2).collect();
    assert!(
        rows.iter()
            .any(|r| r.contains("ops (api token)") && r.contains("start")),
        "{audit}"
    );
    assert!(
        rows.iter()
            .any(|r| r.contains("alice") && r.contains("abort")),
        "{audit}"
    );
}
