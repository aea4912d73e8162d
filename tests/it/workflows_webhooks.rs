//! Webhook notices (CONTRACT §4.5) with a real `pinball -m all` process and a real HTTP
//! receiver on loopback that checks every signature: a job's success, retry and final failure
//! and the run's failure each post one notice per target, in JSON (signed) or Slack's body; a
//! 503 is tried again with the same delivery id, a 429's `Retry-After` is waited out, a
//! redirect is not followed; a rule naming an unknown webhook is refused before anything runs.

use std::time::Duration;

use crate::helpers::receiver::{Received, Receiver};
use crate::helpers::*;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const SECRET: &str = "a-secret-of-the-receiver";

/// Whether `r` carries a valid signature of its body under [`SECRET`].
fn signed(r: &Received) -> bool {
    use hmac::Mac;
    let ts = r.header("x-pinball-timestamp");
    let Some(hex) = r.header("x-pinball-signature").strip_prefix("sha256=") else {
        return false;
    };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}.{}", r.body).as_bytes());
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    want == hex && (now() - ts.parse::<i64>().unwrap()).abs() < 300
}

#[tokio::test]
async fn a_run_s_events_post_signed_notices_once_each_through_errors_and_never_redirect() {
    let hook = Receiver::start().await;
    // The first JSON post fails (503), the first Slack post is asked to wait 2 s (429), the
    // moved target redirects.
    hook.script("json", vec![(503, vec![])]);
    hook.script("slack", vec![(429, vec![("retry-after", "2".into())])]);
    hook.script(
        "moved",
        vec![(
            302,
            vec![("location", "http://127.0.0.1:1/elsewhere".into())],
        )],
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (port, ui) = (free_port(), free_port());
    std::fs::write(
        d.join("wf.yaml"),
        "workflows:\n  w:\n    params:\n      region: {type: string, default: eu}\n    notify:\n      - {on: [failure], to: [ops-slack, pager]}\n      - {on: [finish], to: [moved]}\n    jobs:\n      ok: {command: 'true', notify: [{on: [success], to: [pager]}]}\n      bad: {command: 'exit 3', depends_on: [ok], max_attempts: 2, notify: [{on: [retry, failure], to: [pager]}]}\n",
    )
    .unwrap();
    let cfg = d.join("pinball.yaml");
    std::fs::write(
        &cfg,
        format!(
            "database_url: sqlite://{}\nmaster_port: {port}\nui_port: {ui}\nui_host: ui.example.com\nworkers: 2\nlocal_logs_dir_prefix: {}\nparser_params:\n  workflows_config: {}\nwebhooks:\n  pager: {{url: '{}', format: json, secret: {SECRET}, headers: {{X-Team: data}}}}\n  ops-slack: {{url: '{}', format: slack}}\n  moved: {{url: '{}'}}\n",
            d.join("pinball.db").display(),
            d.join("logs").display(),
            d.join("wf.yaml").display(),
            hook.url("json"),
            hook.url("slack"),
            hook.url("moved"),
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();

    // A rule naming a webhook the configuration lacks is refused offline, naming it.
    let bad = d.join("bad.yaml");
    std::fs::write(
        &bad,
        "workflows:\n  x:\n    notify: [{on: [failure], to: [nobody-hook]}]\n    jobs:\n      a: {command: 'true'}\n",
    )
    .unwrap();
    let o = pinball_out(&["-c", c, "validate", bad.to_str().unwrap()], d).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("notify: unknown webhook `nobody-hook`"),
        "{}",
        text(&o.stderr)
    );

    let _all = spawn_pinball(&["-c", c, "-m", "all"], d);
    wait_until(Duration::from_secs(60), "the master is ready", || {
        is_ready(port)
    })
    .await;
    let o = pinball_out(
        &["-c", c, "util", "-f", "-w", "w", "start", "-p", "region=us"],
        d,
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let i = started_instance(&text(&o.stdout));

    // Taken: ok's success, bad's retry and failure, the run's failure (pager); the run's
    // failure (slack). The moved target was asked once.
    let taken = |path: &str| {
        hook.received()
            .into_iter()
            .filter(|r| r.path == path && r.status == 200)
            .count()
    };
    wait_until(Duration::from_secs(60), "every notice is taken", || {
        std::future::ready(taken("json") == 4 && taken("slack") == 1)
    })
    .await;
    let all = hook.received();
    let json: Vec<&Received> = all.iter().filter(|r| r.path == "json").collect();
    assert_eq!(json.len(), 5, "4 notices, one tried twice: {json:#?}");
    for r in &json {
        assert!(signed(r), "a valid signature: {r:#?}");
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(r.header("x-team"), "data");
        assert_eq!(r.json()["delivery"], r.header("x-pinball-delivery"));
    }
    // The 503'd one came again with the same delivery id; every other id once.
    assert_eq!(json[0].status, 503);
    let again = json
        .iter()
        .skip(1)
        .filter(|r| r.header("x-pinball-delivery") == json[0].header("x-pinball-delivery"))
        .count();
    assert_eq!(again, 1, "{json:#?}");
    let mut ids: Vec<&str> = json[1..]
        .iter()
        .map(|r| r.header("x-pinball-delivery"))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4);

    let event = |kind: &str, job: Option<&str>| {
        json.iter()
            .filter(|r| r.status == 200)
            .map(|r| r.json())
            .find(|v| v["event"] == kind && v["job"].as_str() == job)
            .unwrap_or_else(|| panic!("no {kind} of {job:?}: {json:#?}"))
    };
    let failure = event("failure", Some("bad"));
    assert_eq!(failure["workflow"], "w");
    assert_eq!(failure["instance"], i.as_str());
    assert_eq!(failure["status"], "FAILURE");
    assert_eq!(failure["exit_code"], 3);
    assert_eq!(failure["attempt"], 2);
    assert_eq!(failure["params"]["region"], "us");
    assert!(failure["logical_time"].is_i64(), "{failure}");
    assert_eq!(
        failure["links"]["log"],
        format!(
            "http://ui.example.com:{ui}/file/?workflow=w&instance={i}&job=bad&execution=1&log_type=stderr"
        )
    );
    assert_eq!(event("retry", Some("bad"))["attempt"], 1);
    assert_eq!(event("success", Some("ok"))["exit_code"], 0);
    let run = event("failure", None);
    assert_eq!(run["status"], "FAILURE");
    assert_eq!(
        run["links"]["instance"],
        format!("http://ui.example.com:{ui}/jobs/?workflow=w&instance={i}")
    );

    // Slack: its body, no signature without a secret, the 429's wait kept.
    let slack: Vec<&Received> = all.iter().filter(|r| r.path == "slack").collect();
    assert_eq!(slack.len(), 2, "{slack:#?}");
    assert!(slack[1].at.duration_since(slack[0].at) >= Duration::from_secs(2));
    let body = slack[1].json();
    let says = body["text"].as_str().unwrap();
    assert!(
        says.contains("failure: workflow *w* instance") && says.contains("region=us"),
        "{body}"
    );
    assert_eq!(body["blocks"][0]["text"]["text"], says);
    assert_eq!(slack[1].header("x-pinball-signature"), "");

    // The redirect was not followed: asked once, nothing went anywhere else.
    let moved = all.iter().filter(|r| r.path == "moved").count();
    assert_eq!(moved, 1);
    assert!(
        all.iter()
            .all(|r| ["json", "slack", "moved"].contains(&r.path.as_str()))
    );
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "pinball_webhook_notices_total{outcome=\"sent\"} 5",
        "pinball_webhook_notices_total{outcome=\"failed\"} 1",
        "pinball_webhook_notices_total{outcome=\"retried\"} 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }

    // The workflow's page lists its rules and each webhook's last delivery.
    wait_until(Duration::from_secs(30), "the UI is ready", || is_ready(ui)).await;
    let page = reqwest::get(format!("http://127.0.0.1:{ui}/schedule/?workflow=w"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for row in [
        "<tr><td>the workflow</td><td>failure</td><td>ops-slack, pager</td></tr>",
        "<tr><td>job bad</td><td>retry, failure</td><td>pager</td></tr>",
        "<td>HTTP 200: ok</td>",
        "<strong>given up</strong>: HTTP 302",
    ] {
        assert!(page.contains(row), "{row} in:\n{page}");
    }

    // util test-notify posts one signed test notice and prints the answer; an unknown name
    // is bad usage.
    let o = pinball_out(&["-c", c, "util", "test-notify", "--to", "pager"], d).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let said = text(&o.stdout);
    assert!(
        said.starts_with("posted a test notice to webhook pager (delivery ")
            && said.ends_with(": it answered 200 ok\n"),
        "{said}"
    );
    let last = hook.received().pop().unwrap();
    assert_eq!(
        (last.path.as_str(), last.json()["event"].as_str()),
        ("json", Some("test"))
    );
    assert!(signed(&last));
    let o = pinball_out(&["-c", c, "util", "test-notify", "--to", "nowhere"], d).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("webhook `nowhere` is not in the configuration"));
}

/// How many instances the second test runs.
const RUNS: usize = 25;

#[tokio::test]
async fn notices_outlive_a_receiver_that_hangs_then_is_down_and_killed_processes_each_once() {
    use pinball::master::{HttpMasterClient, MasterClient};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (port, hook_port) = (free_port(), free_port());
    std::fs::write(
        d.join("wf.yaml"),
        "workflows:\n  w:\n    notify: [{on: [failure], to: [later]}]\n    jobs:\n      a: {command: 'exit 1'}\n",
    )
    .unwrap();
    let cfg = d.join("pinball.yaml");
    std::fs::write(
        &cfg,
        format!(
            "database_url: sqlite://{}\nmaster_port: {port}\nworkers: 4\nlocal_logs_dir_prefix: {}\nparser_params:\n  workflows_config: {}\nwebhooks:\n  later: {{url: 'http://127.0.0.1:{hook_port}/later', timeout_sec: 1}}\n",
            d.join("pinball.db").display(),
            d.join("logs").display(),
            d.join("wf.yaml").display(),
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    // The target first takes connections and never answers.
    let hung = crate::helpers::receiver::hang_on(hook_port).await;
    let mut master = spawn_pinball(&["-c", c, "-m", "master"], d);
    wait_until(Duration::from_secs(60), "the master is ready", || {
        is_ready(port)
    })
    .await;
    let o = pinball_out(&["-c", c, "import", "-f"], d).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    // Three workers processes end the runs.
    let mut workers: Vec<_> = (0..3)
        .map(|_| spawn_pinball(&["-c", c, "-m", "workers"], d))
        .collect();
    let start = ["-c", c, "util", "-f", "-w", "w", "start"];
    let runs = (0..RUNS).map(|_| pinball_out(&start, d));
    for o in futures_util::future::join_all(runs).await {
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    // The runs end whatever the target does: every failure's notice is recorded.
    let client = HttpMasterClient::new("127.0.0.1", port, quick_policy());
    wait_until(
        Duration::from_secs(60),
        "every run's notice is recorded",
        || async {
            client
                .query_prefix("/webhook/w/")
                .await
                .is_ok_and(|t| t.len() == RUNS)
        },
    )
    .await;
    // The target stops taking connections; the master and one workers process are killed
    // and the master comes back on the same database.
    hung.abort();
    master.start_kill().unwrap();
    master.wait().await.unwrap();
    workers[0].start_kill().unwrap();
    workers[0].wait().await.unwrap();
    let _master = spawn_pinball(&["-c", c, "-m", "master"], d);
    wait_until(Duration::from_secs(60), "the master is back", || {
        is_ready(port)
    })
    .await;
    assert_eq!(
        client.query_prefix("/webhook/w/").await.unwrap().len(),
        RUNS,
        "no notice lost"
    );
    // 20 s without a target, then a healthy one on the same port.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let hook = Receiver::start_on(hook_port).await;
    wait_until(Duration::from_secs(90), "every notice is taken", || async {
        client
            .query_prefix("/webhook/w/")
            .await
            .is_ok_and(|t| t.is_empty())
    })
    .await;
    let got = hook.received();
    let mut instances: Vec<String> = got
        .iter()
        .map(|r| r.json()["instance"].as_str().unwrap().to_owned())
        .collect();
    instances.sort();
    instances.dedup();
    assert_eq!(instances.len(), RUNS, "every run's failure: {got:#?}");
    let mut ids: Vec<&str> = got.iter().map(|r| r.header("x-pinball-delivery")).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (got.len(), ids.len()),
        (RUNS, RUNS),
        "each notice once, none twice"
    );
    drop(workers);
}

#[tokio::test]
async fn a_missed_deadline_and_a_run_past_its_max_duration_are_told_once_across_a_restart() {
    use pinball::master::{HttpMasterClient, MasterClient};
    let hook = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (port, ui) = (free_port(), free_port());
    let dd = d.display();
    // `slow` may run 2 s; `daily`'s scheduled run (today's, at once) must have succeeded 3 s
    // from now. Both wait for a file.
    // The schedule's first run is 2 s from now; its deadline 4 s after that, the same day
    // (or the next, when midnight falls between).
    let now = jiff::Timestamp::now();
    let first = now + jiff::SignedDuration::from_secs(2);
    let due = first + jiff::SignedDuration::from_secs(4);
    let at = due.strftime("%H:%M:%S").to_string();
    let same_day = due.strftime("%F").to_string() == first.strftime("%F").to_string();
    let today = first.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    std::fs::write(
        d.join("wf.yaml"),
        format!(
            "workflows:\n  slow:\n    max_duration_sec: 2\n    notify: [{{on: [deadline_missed], to: [pager]}}]\n    jobs:\n      a: {{command: 'while test ! -e {dd}/go; do sleep 0.1; done'}}\n  daily:\n    schedule: {{recurrence: 1D, start: '{today}'}}\n    deadline: {{at: '{at}', time_zone: UTC, same_day: {same_day}}}\n    notify: [{{on: [deadline_missed], to: [pager]}}]\n    jobs:\n      a: {{command: 'while test ! -e {dd}/go; do sleep 0.1; done'}}\n"
        ),
    )
    .unwrap();
    let cfg = d.join("pinball.yaml");
    std::fs::write(
        &cfg,
        format!(
            "database_url: sqlite://{}\nmaster_port: {port}\nui_port: {ui}\nworkers: 4\nlocal_logs_dir_prefix: {}\nparser_params:\n  workflows_config: {}\nwebhooks:\n  pager: {{url: '{}'}}\n",
            d.join("pinball.db").display(),
            d.join("logs").display(),
            d.join("wf.yaml").display(),
            hook.url("pager"),
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let _master = spawn_pinball(&["-c", c, "-m", "master,workers,ui"], d);
    wait_until(Duration::from_secs(60), "the master is ready", || {
        is_ready(port)
    })
    .await;
    let o = pinball_out(&["-c", c, "import", "-f"], d).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let mut scheduler = spawn_pinball(&["-c", c, "-m", "scheduler"], d);
    let o = pinball_out(&["-c", c, "util", "-f", "-w", "slow", "start"], d).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let slow = started_instance(&text(&o.stdout));
    let told = |w: &'static str| {
        hook.received()
            .into_iter()
            .filter(move |r| r.json()["workflow"] == w)
            .collect::<Vec<_>>()
    };
    wait_until(Duration::from_secs(30), "both misses are told", || {
        std::future::ready(told("slow").len() == 1 && told("daily").len() == 1)
    })
    .await;
    let n = told("slow")[0].json();
    assert_eq!(
        (
            n["event"].as_str(),
            n["instance"].as_str(),
            n["status"].as_str()
        ),
        (
            Some("deadline_missed"),
            Some(slow.as_str()),
            Some("RUNNING")
        )
    );
    assert_eq!(n["reason"], "it has run longer than max_duration_sec (2 s)");
    let n = told("daily")[0].json();
    assert_eq!(n["event"], "deadline_missed");
    // The miss is the run's record, never claimable again; a scheduler killed and started
    // again tells nothing more.
    let client = HttpMasterClient::new("127.0.0.1", port, quick_policy());
    let watch = client
        .get(&format!("/deadline/slow/{slow}"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(watch.expiration_time, Some(i64::MAX));
    assert!(watch.data.unwrap().contains("max_duration_sec (2 s)"));
    // The run's page says so.
    wait_until(Duration::from_secs(30), "the UI is ready", || is_ready(ui)).await;
    let page = reqwest::get(format!(
        "http://127.0.0.1:{ui}/jobs/?workflow=slow&instance={slow}"
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(
        page.contains("deadline missed at ")
            && page.contains(": it has run longer than max_duration_sec (2 s)"),
        "{page}"
    );
    scheduler.start_kill().unwrap();
    scheduler.wait().await.unwrap();
    let _scheduler = spawn_pinball(&["-c", c, "-m", "scheduler"], d);
    std::fs::write(d.join("go"), "").unwrap();
    wait_until(Duration::from_secs(30), "the runs end", || async {
        client
            .query_prefix(&format!("/workflow/slow/{slow}/__SIGNAL__/ARCHIVE"))
            .await
            .is_ok_and(|t| !t.is_empty())
    })
    .await;
    let o = pinball_out(&["-c", c, "util", "-f", "-w", "slow", "start"], d).await;
    assert!(
        o.status.success(),
        "a run that ends in time is told nothing"
    );
    let fast = started_instance(&text(&o.stdout));
    wait_until(
        Duration::from_secs(30),
        "its watch is met and removed",
        || async {
            client
                .get(&format!("/deadline/slow/{fast}"))
                .await
                .is_ok_and(|t| t.is_none())
        },
    )
    .await;
    assert_eq!((told("slow").len(), told("daily").len()), (1, 1));
}

/// A certificate for 127.0.0.1 made as `openssl req -x509` makes it by default (its own CA,
/// `CA:TRUE`): the PEM files of the certificate and its key, under `dir` as `name`.
fn self_signed_ca(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=receiver",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(made.success(), "openssl made no certificate");
    (cert, key)
}

#[tokio::test]
async fn an_https_receiver_with_a_self_signed_ca_certificate_is_reached_when_it_is_pinned() {
    // The receiver shows its own CA certificate (CA:TRUE); the webhook names it in ca_file.
    // Another target names a different certificate: refused in words that say what to change.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cert, key) = self_signed_ca(d, "receiver");
    let (other, _) = self_signed_ca(d, "other");
    let hook = Receiver::start_tls(&cert, &key).await;
    let url = format!("https://127.0.0.1:{}/pinned", hook.port);
    let cfg = d.join("pinball.yaml");
    std::fs::write(
        &cfg,
        format!(
            "database_url: sqlite://{}\nwebhooks:\n  pinned: {{url: '{url}', ca_file: {}}}\n  other: {{url: '{url}', ca_file: {}}}\n  unnamed: {{url: '{url}'}}\n",
            d.join("pinball.db").display(),
            cert.display(),
            other.display(),
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let o = pinball_out(&["-c", c, "util", "test-notify", "--to", "pinned"], d).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).ends_with(": it answered 200 ok\n"));
    let got = hook.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["event"], "test");
    for (target, setting) in [("other", "other.ca_file"), ("unnamed", "unnamed.ca_file")] {
        let o = pinball_out(&["-c", c, "util", "test-notify", "--to", target], d).await;
        assert_eq!(o.status.code(), Some(1), "{target}");
        let said = text(&o.stderr);
        assert!(
            said.contains(&format!("the server's certificate is a CA certificate (CA:TRUE); name it in webhooks.{setting} to pin it, or issue a server certificate with CA:FALSE")),
            "{target}: {said}"
        );
    }
    assert_eq!(hook.received().len(), 1, "nothing reached the receiver");
}
