//! Property-based fuzzing (proptest, a few hundred cases each, so CI runs it every time): the
//! YAML definitions parser, the configuration parser, token names, command templates, and every
//! request body over real HTTP against a real master. Whatever the input: no panic, no hang, and
//! an error that says what is wrong; the master still serves afterwards.

use std::path::Path;
use std::time::Duration;

use pinball::config::Config;
use pinball::master::MasterClient;
use pinball::token::name::{InstanceId, JobName, Name, WorkflowName};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::helpers::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text that looks like YAML: keys of the definitions and the configuration, punctuation,
/// anchors, aliases, tags, quotes and indentation.
fn yamlish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("workflows:".to_string()),
        Just("jobs:".to_string()),
        Just("command:".to_string()),
        Just("depends_on:".to_string()),
        Just("schedule:".to_string()),
        Just("recurrence: 1D".to_string()),
        Just("cron: '* * * * *'".to_string()),
        Just("max_attempts: 3".to_string()),
        Just("master_port:".to_string()),
        Just("api_tokens:".to_string()),
        Just("&a".to_string()),
        Just("*a".to_string()),
        Just("!!str".to_string()),
        Just("%(x)s".to_string()),
        "[a-z_]{1,8}".prop_map(|s| s),
        "[0-9]{1,6}".prop_map(|s| s),
        Just("\n".to_string()),
        Just("\n  ".to_string()),
        Just("\n    ".to_string()),
        Just("- ".to_string()),
        Just(": ".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(", ".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("\t".to_string()),
        any::<char>().prop_map(|c| c.to_string()),
    ];
    prop::collection::vec(piece, 0..60).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn a_definitions_file_never_crashes_the_parser(text in yamlish()) {
        if let Err(e) = pinball::parser::parse_yaml(&text, "fuzz.yaml") {
            let message = e.to_string();
            prop_assert!(message.contains("fuzz.yaml"), "the error names the file: {}", message);
        }
    }

    #[test]
    fn a_configuration_file_never_crashes_the_parser(text in yamlish()) {
        if let Err(e) = Config::parse(&text, Path::new("fuzz-config.yaml")) {
            let message = e.to_string();
            prop_assert!(!message.is_empty());
        }
    }

    #[test]
    fn token_names_parse_to_what_they_format(s in "(/[a-zA-Z0-9_*.]{0,6}){0,8}/?") {
        if let Some(name) = Name::parse(&s) {
            prop_assert_eq!(name.format(), s.clone());
        }
        for part in s.split('/') {
            let ok = [
                WorkflowName::parse(part).is_ok(),
                InstanceId::parse(part).is_ok(),
                JobName::parse(part).is_ok(),
            ];
            let word = !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            prop_assert_eq!(ok[2], word && part.len() <= 128);
        }
    }

    #[test]
    fn a_command_template_never_crashes_the_substitution(template in ".{0,80}", value in ".{0,20}") {
        let attributes = [("x".to_string(), value)].into();
        let _ = pinball::parser::template::substitute(&template, &attributes);
    }
}

/// Arbitrary JSON, bounded: the shapes of the API's bodies with wrong types, extra fields, big
/// numbers, nulls and nesting.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "(/[a-z_]{0,4}){0,4}".prop_map(Value::String),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![
            Just("updates".to_string()),
            Just("deletes".to_string()),
            Just("queries".to_string()),
            Just("query".to_string()),
            Just("tokens".to_string()),
            Just("name".to_string()),
            Just("version".to_string()),
            Just("owner".to_string()),
            Just("expiration_time".to_string()),
            Just("priority".to_string()),
            Just("data".to_string()),
            Just("name_prefix".to_string()),
            Just("max_tokens".to_string()),
            Just("wait_ms".to_string()),
            Just("group_suffix".to_string()),
            Just("actor".to_string()),
            Just("command".to_string()),
            "[a-z]{1,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn no_request_body_crashes_or_hangs_the_master() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(fresh_app());
    let base = format!("http://{}/api/v1", app.addr);
    let endpoints = [
        "modify",
        "query",
        "query_and_own",
        "group",
        "archive",
        "audit",
    ];
    let mut runner = proptest::test_runner::TestRunner::new(config(300));
    runner
        .run(
            &(0..endpoints.len(), json_value(), any::<bool>()),
            |(e, body, raw)| {
                let url = format!("{base}/{}", endpoints[e]);
                let mut text = body.to_string().into_bytes();
                if raw {
                    // Cut the JSON short, even inside a character: malformed bodies too.
                    text.truncate(text.len() / 2);
                }
                let (status, answer) = rt.block_on(async {
                    tokio::time::timeout(Duration::from_secs(10), post_raw(&url, text.clone()))
                        .await
                        .expect("the master answers within 10 s")
                });
                prop_assert!(
                    matches!(status, 200 | 400 | 404 | 409),
                    "{} with {}: {} {}",
                    endpoints[e],
                    String::from_utf8_lossy(&text),
                    status,
                    answer
                );
                if status != 200 {
                    prop_assert!(
                        answer["error"]["message"]
                            .as_str()
                            .is_some_and(|m| !m.is_empty()),
                        "a clear error: {}",
                        answer
                    );
                }
                Ok(())
            },
        )
        .unwrap();
    rt.block_on(async {
        assert_eq!(app.client.health().await.unwrap().status, "ok");
        app.stop().await;
    });
}
