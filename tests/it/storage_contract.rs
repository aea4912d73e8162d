//! The storage contract, run against SQLite always and MariaDB and PostgreSQL when configured: what a master
//! commits is what it loads, prefixes are exact, names are case-sensitive, masters are isolated,
//! and token data of 16 MiB fits.

use pinball::storage::{self, CommitBatch, Storage, Table, TokenRef};
use pinball::token::Token;

use crate::helpers::*;

fn row<'a>(name: &'a str, version: i64, data: Option<&'a str>) -> TokenRef<'a> {
    TokenRef {
        name,
        version,
        owner: Some("w"),
        expiration_time: Some(123),
        priority: 2.5,
        data,
    }
}

async fn open(url: &str) -> Box<dyn Storage> {
    let store = storage::open(url).unwrap();
    store.migrate().await.unwrap();
    store
        .migrate()
        .await
        .expect("migrations run twice without harm");
    store
}

async fn contract(url: &str) {
    let store = open(url).await;
    let master = unique_master("contract");
    let loaded = store.load_active(&master).await.unwrap();
    assert!(loaded.tokens.is_empty(), "{url}: a new master starts empty");
    assert_eq!(loaded.version_floor, 0);

    let names = ["/a/b", "/a/B", "/a/b/c", "/a/bc", "/a0", "/b"];
    let upserts: Vec<TokenRef> = names
        .iter()
        .enumerate()
        .map(|(i, n)| row(n, i as i64 + 1, Some(n)))
        .collect();
    store
        .commit(
            &master,
            &CommitBatch {
                upserts,
                version_floor: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let loaded = store.load_active(&master).await.unwrap();
    assert_eq!(loaded.version_floor, 10, "{url}");
    let mut got: Vec<&str> = loaded.tokens.iter().map(|t| t.name.as_str()).collect();
    got.sort();
    let mut want = names.to_vec();
    want.sort();
    assert_eq!(got, want, "{url}: every row loads, names case-sensitive");
    let t = &loaded.tokens.iter().find(|t| t.name == "/a/b/c").unwrap();
    assert_eq!(
        **t,
        Token {
            name: "/a/b/c".into(),
            version: Some(3),
            owner: Some("w".into()),
            expiration_time: Some(123),
            priority: 2.5,
            data: Some("/a/b/c".into())
        }
    );

    let under: Vec<String> = store
        .read(&master, Table::Active, "/a/b")
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(
        under,
        vec!["/a/b", "/a/b/c", "/a/bc"],
        "{url}: a prefix read is a raw string prefix"
    );

    // Update one, delete one, archive one (its active row goes too), in one batch.
    let archived = [row("/a/bc", 4, Some("/a/bc"))];
    let audit = pinball::token::AuditEntry {
        id: 0,
        at: 1.7e9,
        via: "ops".into(),
        action: pinball::token::AuditRequest {
            actor: "alice".into(),
            command: "abort".into(),
            workflow: Some("w".into()),
            instance: Some("1".into()),
            jobs: vec!["a".into(), "b".into()],
            ok: true,
            result: "aborted ✓".into(),
        },
    };
    let batch = CommitBatch {
        upserts: vec![row("/a/b", 20, Some("new"))],
        deletes: vec!["/b", "/a/bc"],
        archived: archived.to_vec(),
        version_floor: 21,
        audits: vec![&audit, &audit],
        archived_at: None,
        ..Default::default()
    }
    .grouped(pinball::token::name::archive_prefix);
    store.commit(&master, &batch).await.unwrap();
    let log = store.audit_log(&master, None, 10).await.unwrap();
    assert_eq!(log.len(), 2, "{url}");
    assert!(log[0].id > log[1].id, "{url}: newest first");
    assert_eq!(log[0].action, audit.action, "{url}");
    assert_eq!((log[0].at, log[0].via.as_str()), (1.7e9, "ops"));
    let older = store.audit_log(&master, Some(log[0].id), 10).await.unwrap();
    assert_eq!(older.len(), 1, "{url}: a page before an id");
    let loaded = store.load_active(&master).await.unwrap();
    assert_eq!(loaded.version_floor, 21);
    assert_eq!(loaded.tokens.len(), 4, "{url}");
    assert_eq!(
        loaded
            .tokens
            .iter()
            .find(|t| t.name == "/a/b")
            .unwrap()
            .data
            .as_deref(),
        Some("new")
    );
    assert_eq!(store.count(&master, Table::Archived).await.unwrap(), 1);

    // The same name can be archived again at a later version; both stay.
    let again = [row("/a/bc", 30, Some("second life"))];
    store
        .commit(
            &master,
            &CommitBatch {
                archived: again.to_vec(),
                version_floor: 31,
                ..Default::default()
            }
            .grouped(pinball::token::name::archive_prefix),
        )
        .await
        .unwrap();
    let history = store.read(&master, Table::Archived, "/a/bc").await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|t| t.version.unwrap())
            .collect::<Vec<_>>(),
        vec![4, 30],
        "{url}"
    );

    // Another master in the same database sees none of it.
    let other = unique_master("other");
    assert!(
        store.load_active(&other).await.unwrap().tokens.is_empty(),
        "{url}: masters are isolated"
    );
    assert_eq!(store.count(&other, Table::Archived).await.unwrap(), 0);
}

#[tokio::test]
async fn the_storage_contract_holds_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    for url in backends(&dir, "the_storage_contract_holds_on_every_backend") {
        contract(&url).await;
    }
}

/// The master's lease: taken with an epoch greater than every one before, refused to a second
/// claim while it runs (naming its holder), renewed only under its own epoch, and checked by
/// every commit: a commit under an epoch that was taken over fails and writes nothing.
async fn lease_contract(url: &str) {
    use storage::{LeaseClaim, LeaseOutcome, RequestOutcome, StorageError, Take};
    let store = open(url).await;
    let master = unique_master("lease");
    let claim = |holder: &'static str, take| LeaseClaim {
        holder,
        address: "127.0.0.1:9001",
        lease_ms: 60_000,
        take,
    };
    let first = store
        .take_lease(&master, &claim("one", Take::IfExpired))
        .await
        .unwrap();
    assert_eq!(first, LeaseOutcome::Taken { epoch: 1 }, "{url}");
    match store
        .take_lease(&master, &claim("two", Take::IfExpired))
        .await
        .unwrap()
    {
        LeaseOutcome::Held(h) => {
            assert_eq!((h.epoch, h.holder.as_str()), (1, "one"), "{url}");
            assert_eq!(h.address, "127.0.0.1:9001");
            assert!(
                h.expires_in_ms > 50_000 && h.expires_in_ms <= 60_000,
                "{h:?}"
            );
        }
        other => panic!("{url}: a held lease was taken: {other:?}"),
    }
    assert!(store.renew_lease(&master, 1, 60_000).await.unwrap());
    let outcome = RequestOutcome {
        key: "caller:key-1".into(),
        body_hash: "ab".repeat(32),
        answer: "[[3,null]]".into(),
        created_at: 1_000,
    };
    // A batch answers many keyed requests: more than one statement's worth of outcomes.
    let earlier: Vec<RequestOutcome> = (0..150)
        .map(|n| RequestOutcome {
            key: format!("caller:key-early-{n}"),
            created_at: 999,
            ..outcome.clone()
        })
        .collect();
    let batch = CommitBatch {
        upserts: vec![row("/lease/a", 1, None)],
        version_floor: 1,
        epoch: Some(1),
        requests: std::iter::once(&outcome).chain(&earlier).collect(),
        ..Default::default()
    };
    store.commit(&master, &batch).await.unwrap();
    assert_eq!(
        store.request_outcomes(&master, 1_000).await.unwrap(),
        std::slice::from_ref(&outcome),
        "{url}"
    );
    let all = store.request_outcomes(&master, 0).await.unwrap();
    assert_eq!(all.len(), 151, "{url}: every outcome of the batch");
    assert!(all.contains(&earlier[149]), "{url}");
    assert!(
        store
            .request_outcomes(&master, 1_001)
            .await
            .unwrap()
            .is_empty()
    );
    // Taken over: the old epoch neither renews nor commits.
    let taken = store
        .take_lease(&master, &claim("two", Take::OrReplace(1)))
        .await
        .unwrap();
    assert_eq!(taken, LeaseOutcome::Taken { epoch: 2 }, "{url}");
    assert!(
        !store.renew_lease(&master, 1, 60_000).await.unwrap(),
        "{url}"
    );
    let stale = CommitBatch {
        upserts: vec![row("/lease/b", 2, None)],
        version_floor: 2,
        epoch: Some(1),
        ..Default::default()
    };
    let err = store.commit(&master, &stale).await.unwrap_err();
    assert!(matches!(err, StorageError::Deposed(_)), "{url}: {err}");
    let loaded = store.load_active(&master).await.unwrap();
    let names: Vec<&str> = loaded.tokens.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["/lease/a"],
        "{url}: the deposed commit wrote nothing"
    );
    // A clean stop ends the lease: the next claim takes it at once.
    store.release_lease(&master, 2).await.unwrap();
    let next = store
        .take_lease(&master, &claim("three", Take::IfExpired))
        .await
        .unwrap();
    assert_eq!(next, LeaseOutcome::Taken { epoch: 3 }, "{url}");
    // Old outcomes are forgotten in a commit.
    let forget = CommitBatch {
        version_floor: 2,
        epoch: Some(3),
        forget_requests_before: Some(1_001),
        ..Default::default()
    };
    store.commit(&master, &forget).await.unwrap();
    assert!(store.request_outcomes(&master, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_master_lease_and_request_outcomes_hold_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    for url in backends(&dir, "the_master_lease_holds_on_every_backend") {
        lease_contract(&url).await;
    }
}

/// A commit of the old leader racing a takeover, round after round: it lands before the
/// takeover (the new leader's load sees it) or it is refused as deposed and writes nothing;
/// never after the takeover, where it would overwrite the new leader's write.
async fn commits_racing_takeovers(url: &str) {
    use storage::{LeaseClaim, LeaseOutcome, StorageError, Take};
    let store = open(url).await;
    let master = unique_master("race");
    let claim = |take| LeaseClaim {
        holder: "racer",
        address: "127.0.0.1:9001",
        lease_ms: 60_000,
        take,
    };
    let mut epoch = match store.take_lease(&master, &claim(Take::Always)).await {
        Ok(LeaseOutcome::Taken { epoch }) => epoch,
        other => panic!("{url}: {other:?}"),
    };
    let (mut landed, mut refused) = (0, 0);
    for round in 1..=30 {
        let (old, new) = (format!("old-{round}"), format!("new-{round}"));
        let stale = CommitBatch {
            upserts: vec![row("/race", round, Some(&old))],
            version_floor: round,
            epoch: Some(epoch),
            ..Default::default()
        };
        let takeover = async {
            let taken = store
                .take_lease(&master, &claim(Take::OrReplace(epoch)))
                .await
                .unwrap();
            let LeaseOutcome::Taken { epoch: next } = taken else {
                panic!("{url}: the takeover was refused: {taken:?}");
            };
            let seen = store.load_active(&master).await.unwrap().tokens;
            let fresh = CommitBatch {
                upserts: vec![row("/race", round, Some(&new))],
                version_floor: round,
                epoch: Some(next),
                ..Default::default()
            };
            store.commit(&master, &fresh).await.unwrap();
            (next, seen)
        };
        let (late, (next, seen)) = tokio::join!(store.commit(&master, &stale), takeover);
        let seen_old = seen.iter().any(|t| t.data.as_deref() == Some(old.as_str()));
        match late {
            Ok(()) => {
                landed += 1;
                assert!(
                    seen_old,
                    "{url}: round {round}: an acknowledged commit of the old leader was not there when the new one loaded"
                );
            }
            Err(StorageError::Deposed(_)) => {
                refused += 1;
                assert!(!seen_old, "{url}: round {round}: a refused commit wrote");
            }
            Err(e) => panic!("{url}: round {round}: {e}"),
        }
        let now = store.load_active(&master).await.unwrap().tokens;
        let last: Vec<_> = now.iter().filter_map(|t| t.data.as_deref()).collect();
        assert_eq!(last, [new.as_str()], "{url}: round {round}");
        epoch = next;
    }
    eprintln!("{url}: 30 commits raced a takeover: {landed} landed before it, {refused} refused");
}

#[tokio::test]
async fn a_commit_racing_a_takeover_lands_before_it_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    for url in backends(
        &dir,
        "a_commit_racing_a_takeover_lands_before_it_or_not_at_all",
    ) {
        commits_racing_takeovers(&url).await;
    }
}

#[tokio::test]
async fn a_token_of_16_mib_is_stored_and_loaded_whole() {
    let dir = tempfile::tempdir().unwrap();
    let data: String = (0..16 << 20)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    for url in backends(&dir, "a_token_of_16_mib_is_stored_and_loaded_whole") {
        let store = open(&url).await;
        let master = unique_master("big");
        let batch = CommitBatch {
            upserts: vec![row("/big", 1, Some(&data))],
            version_floor: 1,
            ..Default::default()
        };
        store
            .commit(&master, &batch)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let loaded = store.load_active(&master).await.unwrap();
        assert_eq!(
            loaded.tokens[0].data.as_deref().map(str::len),
            Some(data.len()),
            "{url}"
        );
        assert!(
            loaded.tokens[0].data.as_deref() == Some(data.as_str()),
            "{url}: data must come back unchanged"
        );
    }
}

#[tokio::test]
async fn an_unreachable_database_is_reported_not_hidden() {
    for url in [
        "mysql://root@127.0.0.1:1/none",
        "postgres://root@127.0.0.1:1/none",
    ] {
        let store = storage::open(url).unwrap();
        let err = store.ping().await.unwrap_err().to_string();
        assert!(err.contains("database unavailable"), "{url}: {err}");
    }
    let bad = storage::open("oracle://x")
        .err()
        .expect("an unknown scheme is refused")
        .to_string();
    assert!(
        bad.contains("sqlite://") && bad.contains("mysql://") && bad.contains("postgres://"),
        "{bad}"
    );
}

#[tokio::test]
async fn a_database_migrated_by_an_earlier_pinball_is_adopted_without_running_again() {
    // The earlier runner applied 0001 and 0002 and recorded them in `pinball_migrations`; the
    // UI since consumed the archive queue that 0002's backfill filled.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let url = format!("sqlite://{}", path.display());
    {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        for sql in [
            include_str!("../../migrations/sqlite/0001_tokens.sql"),
            include_str!("../../migrations/sqlite/0002_instance_summaries.sql"),
            "CREATE TABLE pinball_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL)",
            "INSERT INTO pinball_migrations VALUES (1, 'tokens', 0), (2, 'instance summaries', 0)",
            "INSERT INTO archived_tokens VALUES ('default', '/workflow/w/1/job/waiting/a', 1, NULL, NULL, 0, NULL, 0)",
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
    let store = open(&url).await;
    assert!(
        store.archive_queue("default", 10).await.unwrap().is_empty(),
        "0002's backfill did not run a second time"
    );
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .unwrap();
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        applied,
        vec![1, 2, 3, 4, 5, 6, 7, 8],
        "both adopted and recorded by the new migrator, and the audit log's, job logs', archive age's, master lease's, standbys' and the fence's epoch added"
    );
}

async fn logs_contract(url: &str) {
    use pinball::storage::{LogChunk, LogKey};
    let store = open(url).await;
    let master = unique_master("logs");
    let chunk = |start: i64, text: &str, created_at: i64| LogChunk {
        name: "/workflow/w/1/j".into(),
        execution: 2,
        kind: "stdout".into(),
        start,
        raw_len: text.len() as i64,
        data: text.as_bytes().to_vec(),
        host: "host-b".into(),
        truncated_at: None,
        created_at,
    };
    let key = LogKey {
        name: "/workflow/w/1/j",
        execution: 2,
        kind: "stdout",
    };
    assert_eq!(store.log_extent(&master, key).await.unwrap(), None);
    store
        .write_logs(&master, &[chunk(0, "hello ", 100), chunk(6, "world", 100)])
        .await
        .unwrap();
    // A resend of a stored chunk changes nothing.
    store
        .write_logs(&master, &[chunk(6, "WORLD", 200), chunk(11, "!", 5000)])
        .await
        .unwrap();
    let extent = store.log_extent(&master, key).await.unwrap().unwrap();
    assert_eq!((extent.size, extent.host.as_str()), (12, "host-b"), "{url}");
    let from_7: Vec<(i64, Vec<u8>)> = store
        .log_chunks(&master, key, 7, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.start, c.data))
        .collect();
    assert_eq!(
        from_7,
        [(6, b"world".to_vec()), (11, b"!".to_vec())],
        "{url}: the chunks that end after byte 7, the first stored kept"
    );
    let other = LogKey {
        kind: "stderr",
        ..key
    };
    assert_eq!(store.log_extent(&master, other).await.unwrap(), None);
    // Retention deletes by age, in batches.
    assert_eq!(store.delete_old_logs(&master, 1000, 1).await.unwrap(), 1);
    assert_eq!(store.delete_old_logs(&master, 1000, 10).await.unwrap(), 1);
    assert_eq!(
        store.log_chunks(&master, key, 0, 10).await.unwrap().len(),
        1
    );
    // A run's end stores its logs' last bytes in its own commit: bytes after what is stored go
    // in; bytes over what is stored are left out, the first kept; the commit itself lands.
    let (tail, over) = (chunk(12, "?\n", 100), chunk(11, "?", 100));
    let errs = LogChunk {
        kind: "stderr".into(),
        ..chunk(0, "oops\n", 100)
    };
    store
        .commit(
            &master,
            &CommitBatch {
                upserts: vec![row("/workflow/w/1/job/waiting/j", 40, Some("{}"))],
                version_floor: 40,
                logs: vec![&over, &tail, &errs, &tail],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let extent = store.log_extent(&master, key).await.unwrap().unwrap();
    assert_eq!(
        extent.size, 14,
        "{url}: the tail once, the overlap left out"
    );
    let ends: Vec<(i64, Vec<u8>)> = store
        .log_chunks(&master, key, 11, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.start, c.data))
        .collect();
    assert_eq!(ends, [(11, b"!".to_vec()), (12, b"?\n".to_vec())], "{url}");
    let stderr = store.log_extent(&master, other).await.unwrap().unwrap();
    assert_eq!(stderr.size, 5, "{url}");
    let loaded = store.load_active(&master).await.unwrap();
    assert!(
        loaded
            .tokens
            .iter()
            .any(|t| t.name == "/workflow/w/1/job/waiting/j"),
        "{url}: the commit landed"
    );
    // Cleaning up an archived instance takes its logs.
    store
        .delete_archived(&master, "/workflow/w/1/")
        .await
        .unwrap();
    assert_eq!(store.log_extent(&master, key).await.unwrap(), None, "{url}");
}

#[tokio::test]
async fn job_logs_are_stored_in_chunks_read_by_range_and_deleted_by_age() {
    let dir = tempfile::tempdir().unwrap();
    for url in backends(&dir, "job_logs_are_stored_in_chunks") {
        logs_contract(&url).await;
    }
}
