//! Slack's incoming-webhook body for a notice: `text` (what notifications and old clients
//! show) and `blocks` with the same facts and links. Every value from the event is escaped as
//! Slack's mrkdwn asks (`&`, `<`, `>`), so a param or a name cannot forge a link or a mention.

use serde_json::{Value, json};

/// `&`, `<` and `>` as Slack's mrkdwn needs them.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => esc(s),
        Value::Null => String::new(),
        other => esc(&other.to_string()),
    }
}

/// The body posted to a `format: slack` target for `event` (the notice's facts).
pub fn body(event: &Value) -> String {
    let kind = text(&event["event"]);
    let icon = match event["event"].as_str() {
        Some("success") => ":white_check_mark:",
        Some("failure" | "deadline_missed") => ":x:",
        Some("retry") => ":repeat:",
        _ => ":warning:",
    };
    let mut what = format!("workflow *{}*", text(&event["workflow"]));
    if !event["instance"].is_null() {
        what.push_str(&format!(" instance {}", text(&event["instance"])));
    }
    if event["job"].is_string() {
        what.push_str(&format!(" job *{}*", text(&event["job"])));
    }
    let mut facts = vec![format!("status {}", text(&event["status"]))];
    if !event["exit_code"].is_null() {
        facts.push(format!("exit code {}", text(&event["exit_code"])));
    }
    if !event["attempt"].is_null() {
        facts.push(format!("attempt {}", text(&event["attempt"])));
    }
    if let Some(params) = event["params"].as_object().filter(|p| !p.is_empty()) {
        let shown: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", esc(k), text(v)))
            .collect();
        facts.push(format!("params {}", shown.join(" ")));
    }
    if let Some(r) = event["reason"].as_str() {
        facts.push(esc(r));
    }
    let plain = format!("{icon} {kind}: {what} ({})", facts.join(", "));
    let mut links = Vec::new();
    for (key, label) in [
        ("instance", "the run"),
        ("job", "the job"),
        ("log", "its log"),
    ] {
        if let Some(url) = event["links"][key].as_str() {
            links.push(format!("<{}|{label}>", esc(url)));
        }
    }
    let mut blocks = vec![json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": plain},
    })];
    if !links.is_empty() {
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": links.join(" · ")}],
        }));
    }
    json!({"text": plain, "blocks": blocks}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_reads_as_a_sentence_with_links_and_nothing_forged() {
        let event = json!({
            "event": "failure", "workflow": "daily", "instance": "17", "job": "load",
            "status": "FAILURE", "exit_code": 2, "attempt": 3,
            "params": {"region": "<!channel> & co"},
            "links": {"instance": "http://ui:8080/jobs/?workflow=daily&instance=17"},
        });
        let body: Value = serde_json::from_str(&body(&event)).unwrap();
        let text = body["text"].as_str().unwrap();
        assert_eq!(
            text,
            ":x: failure: workflow *daily* instance 17 job *load* (status FAILURE, exit code 2, attempt 3, params region=&lt;!channel&gt; &amp; co)"
        );
        assert_eq!(body["blocks"][0]["text"]["text"], text);
        assert_eq!(
            body["blocks"][1]["elements"][0]["text"],
            "<http://ui:8080/jobs/?workflow=daily&amp;instance=17|the run>"
        );
    }
}
