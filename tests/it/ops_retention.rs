//! `retention_days`, on SQLite and MariaDB: a master started with it deletes, in the
//! background, exactly the archived instances archived longer ago than that (FAILURE and
//! ABORTED alike), with their summaries and stored logs, and keeps every other one, including
//! an instance of which a part was archived again recently.

use std::time::Duration;

use pinball::master::service::MasterOptions;
use pinball::master::{LocalMasterClient, Master, MasterClient};
use pinball::storage::{CommitBatch, InstanceSummary, LogChunk, LogKey, Storage, Table, TokenRef};
use pinball::token::Token;

use crate::helpers::*;

const DAY: i64 = 86_400;

fn tokens_of(instance: &str) -> Vec<Token> {
    vec![
        Token {
            version: Some(1),
            ..Token::new(
                format!("/workflow/r/{instance}/job/waiting/a"),
                Some("{}".into()),
            )
        },
        Token {
            version: Some(2),
            ..Token::new(
                format!("/workflow/r/{instance}/__SIGNAL__/ARCHIVE"),
                Some("{}".into()),
            )
        },
    ]
}

/// Archives `tokens` as if `days_ago` days ago.
async fn archive(store: &dyn Storage, master: &str, tokens: &[Token], days_ago: i64) {
    let batch = CommitBatch {
        archived: tokens.iter().map(TokenRef::from).collect(),
        archived_at: Some(now() - days_ago * DAY),
        ..Default::default()
    }
    .grouped(pinball::token::name::archive_prefix);
    store.commit(master, &batch).await.unwrap();
}

fn summary(instance: &str) -> InstanceSummary {
    InstanceSummary {
        prefix: format!("/workflow/r/{instance}/"),
        workflow: "r".into(),
        instance: instance.into(),
        status: "FAILURE".into(),
        start_time: Some(1.0),
        end_time: Some(2.0),
        sort_time: 2.0,
        data: "{}".into(),
    }
}

fn log_of(instance: &str) -> LogChunk {
    LogChunk {
        name: format!("/workflow/r/{instance}/a"),
        execution: 0,
        kind: "stdout".into(),
        start: 0,
        raw_len: 2,
        data: b"hi".to_vec(),
        host: "h".into(),
        truncated_at: None,
        created_at: now(),
    }
}

async fn archived(store: &dyn Storage, master: &str, instance: &str) -> usize {
    store
        .read(master, Table::Archived, &format!("/workflow/r/{instance}/"))
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn retention_deletes_exactly_the_instances_archived_too_long_ago() {
    let dir = tempfile::tempdir().unwrap();
    for url in backends(&dir, "retention") {
        let master = unique_master("retention");
        let store = pinball::storage::open(&url).unwrap();
        store.migrate().await.unwrap();
        // 1 failed and 2 aborted 40 days ago; 3 ended 20 days ago; 4 was archived 40 days ago
        // and again (a part of it) 2 days ago; 5 is live.
        archive(store.as_ref(), &master, &tokens_of("1"), 40).await;
        let mut aborted = tokens_of("2");
        aborted[1].name = "/workflow/r/2/__SIGNAL__/ABORT".into();
        archive(store.as_ref(), &master, &aborted, 40).await;
        archive(store.as_ref(), &master, &tokens_of("3"), 20).await;
        let four = tokens_of("4");
        archive(store.as_ref(), &master, &four[..1], 40).await;
        archive(store.as_ref(), &master, &four[1..], 2).await;
        let summaries: Vec<_> = ["1", "2", "3", "4"].map(summary).into();
        store
            .write_summaries(&master, &summaries, &[], 0)
            .await
            .unwrap();
        let logs: Vec<_> = ["1", "3"].map(log_of).into();
        store.write_logs(&master, &logs).await.unwrap();

        let options = MasterOptions {
            retention_days: Some(30),
            ..MasterOptions::new(pinball::modes::naming())
        };
        let m = Master::start_with(pinball::storage::open(&url).unwrap(), &master, options).await;
        let client = LocalMasterClient(m.clone());
        let live: Vec<Token> = tokens_of("5")
            .into_iter()
            .map(|t| Token::new(t.name, t.data))
            .collect();
        client
            .modify(pinball::token::ModifyRequest::update(live))
            .await
            .unwrap();
        wait_until(
            Duration::from_secs(30),
            "retention deletes 1 and 2",
            || async {
                archived(store.as_ref(), &master, "1").await == 0
                    && archived(store.as_ref(), &master, "2").await == 0
            },
        )
        .await;
        // A second pass finds nothing more to delete.
        assert_eq!(
            pinball::master::retention::pass(
                store.as_ref(),
                &master,
                30,
                pinball::token::name::archive_prefix
            )
            .await
            .unwrap(),
            0,
            "{url}"
        );
        assert_eq!(archived(store.as_ref(), &master, "3").await, 2, "{url}");
        assert_eq!(archived(store.as_ref(), &master, "4").await, 2, "{url}");
        assert_eq!(
            client.query_prefix("/workflow/r/5/").await.unwrap().len(),
            2
        );
        let (left, total) = store.summaries(&master, "r", 0, 10).await.unwrap();
        let mut left: Vec<_> = left.into_iter().map(|s| s.instance).collect();
        left.sort();
        assert_eq!(
            (left, total),
            (vec!["3".to_owned(), "4".to_owned()], 2),
            "{url}"
        );
        let key = |name: &'static str| LogKey {
            name,
            execution: 0,
            kind: "stdout",
        };
        assert!(
            store
                .log_extent(&master, key("/workflow/r/1/a"))
                .await
                .unwrap()
                .is_none(),
            "{url}: the deleted instance's log went with it"
        );
        assert!(
            store
                .log_extent(&master, key("/workflow/r/3/a"))
                .await
                .unwrap()
                .is_some(),
            "{url}: a kept instance keeps its log"
        );
        m.close().await;
    }
}
