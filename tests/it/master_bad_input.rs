//! Bad requests to the master are `INPUT_ERROR`s that name the problem and change nothing.

use pinball::master::MasterClient;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn bad_input_is_an_input_error_that_names_the_problem_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    let app = spawn_app_on(&url, "default", 4096).await;
    app.insert(vec![token("/keep")]).await;
    let before = app.all("").await;
    let long = "a".repeat(600);
    let cases: Vec<(&str, String, &str)> = vec![
        ("modify", "{not json".into(), "invalid request body"),
        (
            "modify",
            json!({"updates": [{"name": "/a", "colour": "red"}]}).to_string(),
            "colour",
        ),
        (
            "modify",
            json!({"updates": [{"name": "has space"}]}).to_string(),
            "has space",
        ),
        (
            "modify",
            json!({"updates": [{"name": format!("/{long}")}]}).to_string(),
            "512",
        ),
        (
            "modify",
            json!({"updates": [{"name": ""}]}).to_string(),
            "empty",
        ),
        (
            "modify",
            json!({"updates": [{"name": "/__BLESSED_VERSION__", "version": 1}]}).to_string(),
            "reserved",
        ),
        (
            "modify",
            json!({"updates": [{"name": "/a"}, {"name": "/a"}]}).to_string(),
            "more than once",
        ),
        (
            "modify",
            json!({"updates": [{"name": "/a", "expiration_time": -5}]}).to_string(),
            "negative",
        ),
        // PostgreSQL stores no NUL in text: no backend takes one (it would fail the commit).
        (
            "modify",
            json!({"updates": [{"name": "/a", "data": "a\u{0}b"}]}).to_string(),
            "NUL character",
        ),
        (
            "modify",
            json!({"updates": [{"name": "/a", "owner": "w\u{0}"}]}).to_string(),
            "NUL character",
        ),
        (
            "modify",
            json!({"updates": [{"name": "/a", "version": -3}]}).to_string(),
            "positive",
        ),
        (
            "modify",
            json!({"updates": [{"name": "/a", "priority": "high"}]}).to_string(),
            "priority",
        ),
        ("modify", "x".repeat(5000), "limit"),
        (
            "query",
            json!({"queries": [{"name_prefix": "/a", "max_tokens": -1}]}).to_string(),
            "max_tokens",
        ),
        (
            "query",
            json!({"queries": [{"name_prefix": "/a b"}]}).to_string(),
            "/a b",
        ),
        (
            "query_and_own",
            json!({"owner": "", "expiration_time": 5}).to_string(),
            "owner",
        ),
        (
            "query_and_own",
            json!({"owner": "w", "expiration_time": 5, "wait_ms": 99_999_999}).to_string(),
            "wait_ms",
        ),
        (
            "query_and_own",
            json!({"owner": "w", "expiration_time": 5, "query": {"name_prefix": "/w/a*/"}})
                .to_string(),
            "whole path segment",
        ),
        (
            "archive",
            json!({"tokens": [{"name": "/keep"}]}).to_string(),
            "version",
        ),
        (
            "group",
            json!({"name_prefix": "/", "group_suffix": "/", "extra": 1}).to_string(),
            "extra",
        ),
    ];
    for (endpoint, body, expected) in cases {
        let (status, answer) = post_raw(&app.endpoint(endpoint), body.clone()).await;
        let shown = &body[..body.len().min(80)];
        assert_eq!(status, 400, "{endpoint} {shown}: {answer}");
        assert_eq!(answer["error"]["code"], "INPUT_ERROR", "{endpoint} {shown}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "{endpoint} {shown}: message {message:?} should mention {expected:?}"
        );
    }
    assert_eq!(app.all("").await, before, "no bad request changed anything");
    let health = app.client.health().await.unwrap();
    assert_eq!(health.status, "ok", "the master still serves");
    let (status, answer) = post_raw(&app.endpoint("no_such_call"), "{}").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("NOT_FOUND"))
    );
    app.stop().await;
}
