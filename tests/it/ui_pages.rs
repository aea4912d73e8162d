//! The browser pages and actions over HTTP, against a real master, real workers and a real
//! SQLite file: what each page shows for live and archived instances, failures, retries and
//! aborts; the summaries of finished instances; the status rules of PINBALL_SPEC §8.3 on the
//! original's fixture (scenarios 57-59); actions and their anti-forgery checks.

use std::sync::Arc;
use std::time::Duration;

use pinball::master::MasterClient;
use pinball::ops::Command;
use pinball::ops::read::DataLayer;
use pinball::storage::{self, Storage};
use pinball::token::name::{self, JobState};

use crate::helpers::cluster;
use crate::helpers::*;
use crate::helpers::{inst, job, wf};

async fn page(url: String) -> (u16, String) {
    let r = reqwest::get(&url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The `<tr ...>` row of a table whose opening tag contains `marker`.
fn row<'a>(html: &'a str, marker: &str) -> &'a str {
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no row {marker} in the page"));
    let start = html[..start].rfind("<tr").unwrap();
    let end = start + html[start..].find("</tr>").unwrap();
    &html[start..end]
}

fn urlencoded(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn csrf(html: &str) -> String {
    let at = html.find("data-csrf=\"").unwrap() + "data-csrf=\"".len();
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

const YAML: &str = "workflows:
  good:
    owner: data-eng
    jobs:
      a: {command: 'echo hello; echo ''PINBALL:kv_job_url=j_1|https://tracker.example/job/1'''}
      c: {command: 'true', condition: true}
      b: {command: 'true', depends_on: [a, c]}
  bad:
    notify_emails: [ops@example.com]
    jobs:
      x: {command: 'echo first >&2; echo oops >&2; exit 3', max_attempts: 2}
  slow:
    jobs:
      s: {command: 'sleep 30'}
";

#[tokio::test]
async fn pages_show_live_and_archived_instances_with_their_statuses() {
    let c = cluster(YAML, 3, 0).await;
    let (good, bad, _slow) = finished_and_running(&c).await;
    let ui = ui_server(&c).await;

    // Workflows: status, owner, last instance; the archived ones from their summaries.
    let (code, html) = page(format!("{ui}/workflows/")).await;
    assert_eq!(code, 200);
    let g = row(&html, "data-workflow=\"good\"");
    assert!(
        g.contains(">SUCCESS<") && g.contains("data-eng") && g.contains(&good),
        "{g}"
    );
    let b = row(&html, "data-workflow=\"bad\"");
    assert!(b.contains(">FAILURE<") && b.contains(">ops<"), "{b}");
    assert!(
        b.contains(r#"<a class="start-link" href="/schedule/?workflow=bad#start""#),
        "every workflow has its Start, which opens the form of its params: {b}"
    );
    let s = row(&html, "data-workflow=\"slow\"");
    assert!(s.contains(">RUNNING<"));
    assert!(
        s.contains("data-sort=\"1\">1<"),
        "one running instance: {s}"
    );
    let store: Arc<dyn Storage> = Arc::from(storage::open(&c.app.url).unwrap());
    let (summaries, total) = store
        .summaries(&c.app.master_name, "bad", 0, 10)
        .await
        .unwrap();
    assert_eq!((total, summaries[0].status.as_str()), (1, "FAILURE"));

    // Instances of a workflow.
    let (_, html) = page(format!("{ui}/instances/?workflow=bad")).await;
    assert!(row(&html, &format!("data-instance=\"{bad}\"")).contains(">FAILURE<"));
    assert!(html.contains("1–1 of 1"));

    // The instance page: graph coloured by status, condition drawn as an octagon, the jobs
    // table with progress bars, the timeline with both attempts of the failed job.
    let (_, html) = page(format!("{ui}/jobs/?workflow=good&instance={good}")).await;
    assert!(
        html.contains(r##"data-job="a" data-status="SUCCESS" tabindex="0" role="button" aria-label="a: success"><rect class="shape" fill="#009e73""##)
    );
    assert!(html.contains(r#"class="node condition" id="job-c""#));
    assert!(html.contains(r#"<path class="edge" id="a/b""#));
    assert!(row(&html, "tr data-job=\"b\"").contains("class=\"progress\""));
    // The jobs table's search covers every page: by name or by status.
    let (_, html) = page(format!("{ui}/jobs/?workflow=good&instance={good}&jobs_q=b")).await;
    assert!(html.contains("<tr data-job=\"b\">") && !html.contains("<tr data-job=\"a\">"));
    assert!(html.contains("1 found"));
    let (_, html) = page(format!(
        "{ui}/jobs/?workflow=bad&instance={bad}&jobs_q=failure"
    ))
    .await;
    assert!(html.contains("<tr data-job=\"x\">"));
    let (_, html) = page(format!("{ui}/jobs/?workflow=bad&instance={bad}")).await;
    assert!(
        html.contains(r##"data-job="x" data-status="FAILURE" tabindex="0" role="button" aria-label="x: failure"><rect class="shape" fill="#d55e00""##)
    );
    assert!(html.contains(">x #0</text>") && html.contains(">x #1</text>"));
    // `latest` goes to the newest instance.
    let (code, html) = page(format!("{ui}/jobs/?workflow=bad&instance=latest")).await;
    assert_eq!(code, 200);
    assert!(html.contains(&format!("/ {bad}</h1>")));

    // Executions, one execution with its property link, its logs.
    let (_, html) = page(format!(
        "{ui}/executions/?workflow=bad&instance={bad}&job=x"
    ))
    .await;
    assert_eq!(html.matches(" FAILURE</span>").count(), 2, "both attempts");
    let host = format!("<td>{}</td>", pinball::config::host_name());
    assert_eq!(html.matches(&host).count(), 2, "each execution's host");
    let (_, html) = page(format!(
        "{ui}/execution/?workflow=good&instance={good}&job=a&execution=0"
    ))
    .await;
    assert!(
        html.contains(
            r#"kv_job_url=<a href="https://tracker.example/job/1" rel="noopener">j_1</a>"#
        )
    );
    assert!(html.contains("data-command=\"redo\""));
    let (_, html) = page(format!(
        "{ui}/file/?workflow=bad&instance={bad}&job=x&execution=1&log_type=stderr"
    ))
    .await;
    assert!(
        html.contains("first\noops\n</pre>"),
        "the failed job's stderr"
    );
    let (_, html) = page(format!("{ui}/job_executions/?workflow=bad&job=x")).await;
    assert!(html.contains(&format!(">{bad}</a>")));

    // The token explorer and one token.
    let (_, html) = page(format!("{ui}/token_paths/?path=/workflow/good/{good}/job/")).await;
    assert!(html.contains(&format!("/workflow/good/{good}/job/waiting/</a>")));
    assert!(
        html.contains(r#"data-sort="3">3<"#),
        "three job tokens: {html}"
    );
    let name = name::job_token(&wf("good"), &inst(&good), JobState::Waiting, &job("a"));
    let (code, html) = page(format!("{ui}/token/?path={name}")).await;
    assert_eq!(code, 200);
    assert!(html.contains("<td>archive</td>"), "an archived token");
    assert!(
        html.contains("\n  ") && html.contains("history") && html.contains("exit_code"),
        "its data pretty-printed: {html}"
    );

    // Bad requests get a page that names the problem.
    let (code, html) = page(format!("{ui}/jobs/?workflow=good&instance=999")).await;
    assert_eq!(code, 404);
    assert!(html.contains("workflow good instance 999 not found"));
    let (code, html) = page(format!("{ui}/instances/?workflow=no%20such")).await;
    assert_eq!(code, 400);
    assert!(html.contains("workflow"));
    assert_eq!(page(format!("{ui}/token_paths/?path=x")).await.0, 400);
    assert_eq!(page(format!("{ui}/nowhere")).await.0, 404);
    assert_eq!(page(format!("{ui}/jobs/?workflow=good")).await.0, 400);
    c.stop().await;
}

#[tokio::test]
async fn actions_need_the_pages_token_and_answer_like_util() {
    let c = cluster(YAML, 2, 0).await;
    let slow = c.start("slow").await;
    let ui = ui_server(&c).await;
    let (_, html) = page(format!("{ui}/workflows/")).await;
    let token = csrf(&html);
    let http = reqwest::Client::new();
    let post = |form: Vec<(&'static str, String)>, origin: Option<&'static str>| {
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencoded(v)))
            .collect();
        let mut r = http
            .post(format!("{ui}/command/"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.join("&"));
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };

    let r = post(
        vec![("command", "drain".into()), ("csrf", "wrong".into())],
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403, "a forged token is refused");
    let r = post(
        vec![("command", "drain".into()), ("csrf", token.clone())],
        Some("http://evil.example"),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403, "another site is refused");
    assert!(
        c.client
            .get("/workflow/__SIGNAL__/DRAIN")
            .await
            .unwrap()
            .is_none()
    );
    let r = post(
        vec![("command", "cleanup".into()), ("csrf", token.clone())],
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400, "only the UI's actions");

    // Drain everywhere: the util message, the signal set, the label says so.
    let r = post(
        vec![("command", "drain".into()), ("csrf", token.clone())],
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["message"],
        "set DRAIN.  Its token is /workflow/__SIGNAL__/DRAIN"
    );
    let again = c.util(Command::Drain, None, None, &[]).await;
    let r = post(
        vec![("command", "drain".into()), ("csrf", token.clone())],
        None,
    )
    .await
    .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["message"], again.trim_end(), "the message util prints");
    let label: serde_json::Value = reqwest::get(format!("{ui}/api/v1/status?workflow=slow"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(label["label"], "draining");
    c.util(Command::Undrain, None, None, &[]).await;

    // Abort the running instance from its page: it ends ABORTED.
    let r = post(
        vec![
            ("command", "abort".into()),
            ("csrf", token.clone()),
            ("workflow", "slow".into()),
            ("instance", slow.clone()),
        ],
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    c.archived("slow", &slow, Duration::from_secs(20)).await;
    let (_, html) = page(format!("{ui}/instances/?workflow=slow")).await;
    assert!(row(&html, &format!("data-instance=\"{slow}\"")).contains(">ABORTED<"));

    // A command that cannot run says why.
    let r = post(
        vec![
            ("command", "retry".into()),
            ("csrf", token.clone()),
            ("workflow", "slow".into()),
        ],
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("-i INSTANCE")
    );
    c.stop().await;
}

#[tokio::test]
async fn the_status_label_says_when_the_master_is_unreachable() {
    let c = cluster(YAML, 0, 0).await;
    let ui = ui_server(&c).await;
    let addr = c.app.addr;
    c.stop().await;
    let label: serde_json::Value = reqwest::get(format!("{ui}/api/v1/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        label["label"].as_str(),
        Some(format!("master unreachable at {}:{}", addr.ip(), addr.port()).as_str())
    );
}

#[tokio::test]
async fn an_action_while_the_master_is_away_is_unavailable_not_refused() {
    let c = cluster(YAML, 0, 0).await;
    let away = pinball::master::HttpMasterClient::new(
        "127.0.0.1",
        crate::helpers::free_port(),
        crate::helpers::quick_policy(),
    );
    let data = DataLayer::new(
        Arc::from(storage::open(&c.app.url).unwrap()),
        c.app.master_name.clone(),
        3,
    );
    let ui = pinball::ui::Ui::new(data, Arc::new(away), Arc::new(c.config()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ui_addr = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(pinball::ui::serve(ui, listener, std::future::pending()));
    let ui = ui_addr;
    let (_, html) = page(format!("{ui}/workflows/")).await;
    let r = reqwest::Client::new()
        .post(format!("{ui}/command/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("command=drain&csrf={}", csrf(&html)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAVAILABLE");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the master cannot be reached"),
        "{body}"
    );
    c.stop().await;
}
