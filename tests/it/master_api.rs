//! Scenarios 1-13 of PINBALL_SPEC §12 and the master's promises, over real HTTP against a
//! master on port 0: versions, all-or-nothing writes, claims and leases, long-polls, archive,
//! recovery, and bad input that is rejected without changing anything.

use std::collections::HashSet;

use pinball::master::{MasterClient, MasterError};
use pinball::storage::{self, Table};
use pinball::token::*;

use crate::helpers::*;

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
    let app = fresh_app().await;
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
    let app = fresh_app().await;
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
            ..Default::default()
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

#[tokio::test]
async fn a_version_conflict_names_the_token_and_both_versions() {
    let app = fresh_app().await;
    let t = app.insert(vec![token("/c/t")]).await.remove(0);
    let now = app.insert(vec![versioned(&t, "new")]).await.remove(0);
    // On the wire: the code, the message, and the conflict's facts beside them.
    let body =
        serde_json::json!({"updates": [{"name": "/c/t", "version": t.version, "data": "x"}]});
    let (status, answer) = post_raw(
        &format!("http://{}/api/v1/modify", app.addr),
        body.to_string(),
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "VERSION_CONFLICT");
    assert_eq!(answer["error"]["conflict"]["name"], "/c/t");
    assert_eq!(answer["error"]["conflict"]["expected"], t.version.unwrap());
    assert_eq!(answer["error"]["conflict"]["found"], now.version.unwrap());
    // Through the client: the same facts, typed.
    match app
        .client
        .modify(ModifyRequest::update(vec![t.clone()]))
        .await
    {
        Err(MasterError::VersionConflict(c)) => {
            assert_eq!(c.name, "/c/t");
            assert_eq!((c.expected, c.found), (t.version, now.version));
            assert!(c.message.contains("different version"), "{c:?}");
        }
        other => panic!("a stale write must conflict: {other:?}"),
    }
    // An insert of a name that exists expected no token at all.
    match app
        .client
        .modify(ModifyRequest::update(vec![token("/c/t")]))
        .await
    {
        Err(MasterError::VersionConflict(c)) => {
            assert_eq!((c.expected, c.found), (None, now.version), "{c:?}")
        }
        other => panic!("an insert of an existing name must conflict: {other:?}"),
    }
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
    let app = fresh_app().await;
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
            ..Default::default()
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
    let app = fresh_app().await;
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
    let app = fresh_app().await;
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
async fn concurrent_writers_all_commit_and_read_their_own_writes() {
    let app = fresh_app().await;
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

/// The original kept the blessed version's own version across a restart; a restart that
/// changes nothing advances no version.
#[tokio::test]
async fn a_restart_keeps_the_blessed_version() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(&dir).await;
    app.insert(vec![token("/x")]).await;
    let blessed = |ts: Vec<Token>| {
        ts.into_iter()
            .find(|t| t.name == "/__BLESSED_VERSION__")
            .unwrap()
            .version
            .unwrap()
    };
    let before = blessed(app.all("/__").await);
    let app = app.restart().await;
    assert_eq!(blessed(app.all("/__").await), before);
    let next = app.insert(vec![token("/y")]).await;
    assert!(next[0].version.unwrap() > before, "{next:?}");
    assert!(blessed(app.all("/__").await) > next[0].version.unwrap());
    app.stop().await;
}
