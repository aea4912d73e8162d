//! Scenarios 1-13 of PINBALL_SPEC §12 and the master's promises, over real HTTP against a
//! master on port 0: versions, all-or-nothing writes, claims and leases, long-polls, archive,
//! recovery, and bad input that is rejected without changing anything.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use pinball::master::{MasterClient, MasterError};
use pinball::storage::{self, Table};
use pinball::token::*;
use serde_json::json;

use crate::helpers::*;

fn claim(
    prefix: &str,
    max: Option<u32>,
    owner: &str,
    exp: i64,
    wait_ms: Option<u64>,
) -> QueryAndOwnRequest {
    QueryAndOwnRequest {
        owner: owner.into(),
        expiration_time: exp,
        query: Some(Query {
            name_prefix: prefix.into(),
            max_tokens: max,
        }),
        wait_ms,
    }
}

fn q(prefix: &str, max: Option<u32>) -> Query {
    Query {
        name_prefix: prefix.into(),
        max_tokens: max,
    }
}

fn versioned(t: &Token, data: &str) -> Token {
    Token {
        data: Some(data.into()),
        ..t.clone()
    }
}

#[tokio::test]
async fn scenario_1_a_fresh_master_shows_only_its_blessed_version() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir).await;
    let all = app.all("").await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].name, "/__BLESSED_VERSION__");
    assert_eq!(all[0].owner.as_deref(), Some("__master__"));
    let groups = app
        .client
        .group(GroupRequest {
            name_prefix: "/".into(),
            group_suffix: None,
        })
        .await
        .unwrap();
    assert_eq!(groups.counts.values().sum::<u64>(), 1);
    let claimed = app
        .client
        .query_and_own(claim("", Some(10), "o", now() + 60, None))
        .await
        .unwrap();
    assert!(claimed.tokens.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn scenarios_2_to_6_versions_conflicts_and_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir).await;
    // 2: insert, then update with the version.
    let t = app
        .insert(vec![token("/some_other_dir/some_token")])
        .await
        .remove(0);
    let v1 = t.version.unwrap();
    assert!(v1 > 0);
    let t2 = app.insert(vec![versioned(&t, "new data")]).await.remove(0);
    assert_ne!(t2.version, t.version);
    assert_eq!(app.all("/some_other_dir/").await.len(), 1);
    assert_eq!(app.all("/some_other_dir/").await[0].version, t2.version);
    // 3: a stale version, and an insert of an existing name, are conflicts.
    let stale = app
        .client
        .modify(ModifyRequest::update(vec![t.clone()]))
        .await;
    assert!(
        matches!(stale, Err(MasterError::VersionConflict(_))),
        "{stale:?}"
    );
    let reinsert = app
        .client
        .modify(ModifyRequest::update(vec![token(
            "/some_other_dir/some_token",
        )]))
        .await;
    assert!(matches!(reinsert, Err(MasterError::VersionConflict(_))));
    // 4: a rename is NOT_FOUND and changes nothing; a delete without a version is INPUT_ERROR.
    let before = app.all("").await;
    let rename = Token {
        name: "/renamed/some_token".into(),
        ..t2.clone()
    };
    let r = app.client.modify(ModifyRequest::update(vec![rename])).await;
    assert!(matches!(r, Err(MasterError::NotFound(_))), "{r:?}");
    let r = app
        .client
        .modify(ModifyRequest::delete(vec![token(
            "/some_other_dir/some_token",
        )]))
        .await;
    assert!(
        matches!(r, Err(MasterError::InputError(ref m)) if m.contains("version")),
        "{r:?}"
    );
    assert_eq!(app.all("").await, before);
    // 5: update B and delete A in one request.
    let [a, b]: [Token; 2] = app
        .insert(vec![token("/m/a"), token("/m/b")])
        .await
        .try_into()
        .unwrap();
    let count = app.all("").await.len();
    let r = app
        .client
        .modify(ModifyRequest {
            updates: vec![versioned(&b, "b2")],
            deletes: vec![a.clone()],
        })
        .await
        .unwrap();
    assert_eq!(r.updates.len(), 1);
    assert!(r.updates[0].version > b.version);
    assert_eq!(app.all("").await.len(), count - 1);
    assert!(app.all("/m/a").await.is_empty());
    // 6: one stale token fails the whole request.
    let [c, d]: [Token; 2] = app
        .insert(vec![token("/n/c"), token("/n/d")])
        .await
        .try_into()
        .unwrap();
    app.insert(vec![versioned(&d, "d2")]).await;
    let r = app
        .client
        .modify(ModifyRequest::update(vec![
            versioned(&c, "c2"),
            versioned(&d, "d3"),
        ]))
        .await;
    assert!(matches!(r, Err(MasterError::VersionConflict(_))));
    assert_eq!(app.all("/n/c").await[0], c, "C is unchanged");
    app.stop().await;
}

async fn the_110_tokens(app: &TestApp) {
    let mut tokens = Vec::new();
    for i in 0..10 {
        tokens.push(Token {
            priority: i as f64,
            ..token(&format!("/some_dir/some_token_{i}"))
        });
        for j in 0..10 {
            tokens.push(Token {
                priority: j as f64,
                ..token(&format!("/some_dir/some_token_{i}/some_other_token_{j}"))
            });
        }
    }
    app.insert(tokens).await;
}

#[tokio::test]
async fn scenarios_7_to_9_unique_versions_priorities_and_groups() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir).await;
    the_110_tokens(&app).await;
    let all = app.all("/some_dir").await;
    assert_eq!(all.len(), 110);
    assert_eq!(
        all.iter().map(|t| t.version).collect::<HashSet<_>>().len(),
        110,
        "versions are distinct"
    );
    let r = app
        .client
        .query(QueryRequest {
            queries: vec![
                q("/some_dir", Some(10)),
                q("/some_dir/some_token_0", Some(100)),
            ],
        })
        .await
        .unwrap();
    assert_eq!(r.tokens[0].len(), 10);
    assert!(r.tokens[0].iter().all(|t| t.priority == 9.0));
    assert_eq!(r.tokens[1].len(), 11);
    let g = app
        .client
        .group(GroupRequest {
            name_prefix: "/some_dir/".into(),
            group_suffix: Some("/".into()),
        })
        .await
        .unwrap();
    assert_eq!(g.counts.len(), 10);
    assert!(
        g.counts
            .iter()
            .all(|(k, n)| k.starts_with("/some_dir/some_token_") && !k.ends_with('/') && *n == 11)
    );
    let everything = app
        .client
        .group(GroupRequest {
            name_prefix: String::new(),
            group_suffix: Some("/".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        everything.counts.values().sum::<u64>(),
        111,
        "an empty prefix groups every token"
    );
    app.stop().await;
}

#[tokio::test]
async fn scenarios_10_and_11_claims_skip_owned_tokens_and_honour_priority() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir).await;
    let mut tokens = vec![
        Token {
            owner: Some("o".into()),
            expiration_time: Some(10),
            ..token("/t0")
        },
        Token {
            owner: Some("o".into()),
            expiration_time: Some(NEVER),
            ..token("/t1")
        },
    ];
    tokens.extend((0..108).map(|i| token(&format!("/u/{i}"))));
    app.insert(tokens).await;
    let got = app
        .client
        .query_and_own(claim("", Some(200), "o2", NEVER, None))
        .await
        .unwrap();
    assert_eq!(got.tokens.len(), 109);
    assert!(
        got.tokens
            .iter()
            .all(|t| t.owner.as_deref() == Some("o2") && t.expiration_time == Some(NEVER))
    );

    let runnable = [1.0, 5.0, 3.0].iter().enumerate().map(|(i, p)| Token {
        priority: *p,
        ..token(&format!("/workflow/w/{i}/job/runnable/j"))
    });
    app.insert(runnable.collect()).await;
    let got = app
        .client
        .query_and_own(claim(
            "/workflow/*/*/job/runnable/",
            Some(1),
            "w",
            now() + 60,
            None,
        ))
        .await
        .unwrap();
    assert_eq!(got.tokens.len(), 1);
    assert_eq!(got.tokens[0].priority, 5.0);
    let untouched = app.all("/workflow/").await;
    assert_eq!(
        untouched.iter().filter(|t| t.owner.is_none()).count(),
        2,
        "the others are untouched"
    );
    app.stop().await;
}

#[tokio::test]
async fn scenario_12_archive_moves_tokens_out_of_the_master_into_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir).await;
    let [a, child]: [Token; 2] = app
        .insert(vec![token("/A"), token("/A/child")])
        .await
        .try_into()
        .unwrap();
    let count = app.all("").await.len();
    let wrong = Token {
        version: Some(1),
        ..a.clone()
    };
    let r = app
        .client
        .archive(ArchiveRequest {
            tokens: vec![wrong],
        })
        .await;
    assert!(matches!(r, Err(MasterError::VersionConflict(_))), "{r:?}");
    let r = app
        .client
        .archive(ArchiveRequest {
            tokens: vec![Token {
                version: Some(5),
                ..token("/missing")
            }],
        })
        .await;
    assert!(matches!(r, Err(MasterError::NotFound(_))), "{r:?}");
    app.client
        .archive(ArchiveRequest {
            tokens: vec![a, child],
        })
        .await
        .unwrap();
    assert!(app.all("/A").await.is_empty());
    assert_eq!(app.all("").await.len(), count - 2);
    let store = storage::open(&app.url).unwrap();
    assert_eq!(
        store.count("default", Table::Active).await.unwrap() as usize,
        count - 2 - 1,
        "the store agrees (blessed excluded)"
    );
    let archived = store.read("default", Table::Archived, "/A").await.unwrap();
    assert_eq!(
        archived.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        vec!["/A", "/A/child"]
    );
    app.stop().await;
}

#[tokio::test]
async fn scenario_13_a_restarted_master_has_every_token_and_newer_versions() {
    let dir = tempfile::tempdir().unwrap();
    for url in backends(&dir, "scenario_13") {
        let app = spawn_app_on(
            &url,
            &unique_master("recovery"),
            pinball::master::api::DEFAULT_MAX_REQUEST_BYTES,
        )
        .await;
        the_110_tokens(&app).await;
        app.client
            .query_and_own(claim(
                "/some_dir/some_token_1/",
                Some(3),
                "w",
                now() + 600,
                None,
            ))
            .await
            .unwrap();
        let before = app.all("/").await;
        let max_before = before.iter().filter_map(|t| t.version).max().unwrap();
        let app = app.restart().await;
        let after = app.all("/").await;
        let without_blessed = |ts: &[Token]| {
            ts.iter()
                .filter(|t| !t.name.starts_with("/__"))
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            without_blessed(&after),
            without_blessed(&before),
            "{url}: identical tokens, same versions"
        );
        let fresh = app.insert(vec![token("/after/restart")]).await.remove(0);
        assert!(
            fresh.version.unwrap() > max_before,
            "{url}: versions continue above every old one"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn a_parked_claim_wakes_when_a_matching_token_is_inserted() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir).await;
    let client = app.client.clone();
    let waiter = tokio::spawn(async move {
        let started = Instant::now();
        let r = client
            .query_and_own(claim(
                "/workflow/*/*/job/runnable/",
                Some(1),
                "w",
                now() + 60,
                Some(10_000),
            ))
            .await;
        (r, started.elapsed())
    });
    wait_parked(&app.client, 1).await;
    app.insert(vec![token("/workflow/other/1/job/waiting/x")])
        .await;
    app.insert(vec![token("/workflow/wf/1/job/runnable/a")])
        .await;
    let (r, waited) = waiter.await.unwrap();
    let tokens = r.unwrap().tokens;
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].name, "/workflow/wf/1/job/runnable/a");
    assert!(
        waited < Duration::from_secs(5),
        "woken by the insert, not by the timeout: {waited:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_parked_claim_that_finds_nothing_answers_empty_after_its_wait() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir).await;
    let started = Instant::now();
    let r = app
        .client
        .query_and_own(claim("/nothing/", Some(1), "w", now() + 60, Some(400)))
        .await
        .unwrap();
    assert!(r.tokens.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(390),
        "{:?}",
        started.elapsed()
    );
    app.stop().await;
}

#[tokio::test]
async fn an_ended_lease_makes_a_token_claimable_and_wakes_a_parked_claim() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir).await;
    app.insert(vec![token("/workflow/wf/1/job/runnable/a")])
        .await;
    let lease_end = now() + 2;
    let first = app
        .client
        .query_and_own(claim(
            "/workflow/*/*/job/runnable/",
            Some(1),
            "dead_worker",
            lease_end,
            None,
        ))
        .await
        .unwrap();
    assert_eq!(first.tokens.len(), 1);
    let started = Instant::now();
    let second = app
        .client
        .query_and_own(claim(
            "/workflow/*/*/job/runnable/",
            Some(1),
            "heir",
            now() + 60,
            Some(10_000),
        ))
        .await
        .unwrap();
    assert_eq!(
        second.tokens.len(),
        1,
        "the token is claimable once its lease ends"
    );
    assert_eq!(second.tokens[0].owner.as_deref(), Some("heir"));
    assert!(now() >= lease_end, "not before the lease ended");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken at the lease end: {:?}",
        started.elapsed()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_claim_that_gets_nothing_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir).await;
    app.insert(vec![token("/x")]).await;
    let blessed = |ts: Vec<Token>| {
        ts.into_iter()
            .find(|t| t.name == BLESSED_VERSION_NAME)
            .unwrap()
            .version
    };
    let before = blessed(app.all("/__").await);
    for _ in 0..5 {
        app.client
            .query_and_own(claim("/nothing/", Some(1), "w", now() + 60, None))
            .await
            .unwrap();
    }
    assert_eq!(
        blessed(app.all("/__").await),
        before,
        "no version advanced, no commit happened"
    );
    app.stop().await;
}

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

#[tokio::test]
async fn concurrent_writers_all_commit_and_read_their_own_writes() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir).await;
    let mut tasks = Vec::new();
    for w in 0..32 {
        let client = app.client.clone();
        tasks.push(tokio::spawn(async move {
            let mut t = client
                .modify(ModifyRequest::update(vec![token(&format!("/c/{w}"))]))
                .await
                .unwrap()
                .updates
                .remove(0);
            for i in 0..20 {
                t.data = Some(format!("{w}:{i}"));
                t = client
                    .modify(ModifyRequest::update(vec![t.clone()]))
                    .await
                    .unwrap()
                    .updates
                    .remove(0);
            }
            t
        }));
    }
    let mut finals = Vec::new();
    for task in tasks {
        finals.push(task.await.unwrap());
    }
    let stored = app.all("/c/").await;
    assert_eq!(stored.len(), 32);
    for t in finals {
        assert!(stored.contains(&t), "{} is stored as acknowledged", t.name);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_parked_claim_whose_caller_hung_up_takes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir).await;
    let client = app.client.clone();
    let gone = tokio::spawn(async move {
        client
            .query_and_own(claim(
                "/workflow/*/*/job/runnable/",
                Some(1),
                "gone",
                now() + 600,
                Some(30_000),
            ))
            .await
    });
    wait_parked(&app.client, 1).await;
    gone.abort(); // the caller disconnects, as a killed worker or scheduler would
    let _ = gone.await;
    // Every batch drops parked claims whose caller is gone: write until the master has.
    let mut n = 0;
    wait_until(
        Duration::from_secs(10),
        "the hung-up claim is dropped",
        || {
            n += 1;
            let name = format!("/unrelated/{n}");
            let app = &app;
            async move {
                app.insert(vec![token(&name)]).await;
                app.client.health().await.unwrap().parked_claims == 0
            }
        },
    )
    .await;
    app.insert(vec![token("/workflow/wf/1/job/runnable/a")])
        .await;
    let got = app
        .client
        .query_and_own(claim(
            "/workflow/*/*/job/runnable/",
            Some(1),
            "alive",
            now() + 60,
            None,
        ))
        .await
        .unwrap();
    assert_eq!(
        got.tokens.len(),
        1,
        "the token went to a live claimer, not to the one that hung up"
    );
    assert_eq!(got.tokens[0].owner.as_deref(), Some("alive"));
    app.stop().await;
}
