//! Reads never hold the writer, and answers share one memory budget (issue 22, M2 and M3),
//! against a real `pinball -m master` process over HTTP: a master of 100,000 tokens keeps
//! committing quickly while viewers scan everything and park watches of hundreds of queries;
//! eight concurrent answers of 20 MB each are refused beyond `max_answers_bytes_total`.

use std::time::{Duration, Instant};

use pinball::master::{HttpMasterClient, MasterClient};
use pinball::token::*;
use serde_json::json;

use crate::helpers::*;

fn client(port: u16, token: &str) -> HttpMasterClient {
    HttpMasterClient::new("127.0.0.1", port, quick_policy())
        .with_token(Some(&pinball::config::Secret(token.into())))
}

/// The `p`th percentile of `samples` (sorted in place).
fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let at = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[at]
}

/// A viewer's raw `/query`: the status and how long the answer took.
async fn raw_query(port: u16, body: &serde_json::Value) -> (u16, Duration) {
    let started = Instant::now();
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/v1/query"))
        .bearer_auth(VIEWER)
        .json(body)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let _ = r.bytes().await;
    (status, started.elapsed())
}

#[tokio::test]
async fn commits_stay_quick_while_viewers_scan_a_100k_token_master() {
    let dir = tempfile::tempdir().unwrap();
    let master = master_with(dir.path(), &api_tokens_yaml()).await;
    let port = master.port;
    let ops = client(port, OPERATOR);
    for batch in 0..10 {
        let tokens = (0..10_000)
            .map(|n| Token::new(format!("/bulk/{batch}/{n:05}"), Some("x".repeat(64))))
            .collect();
        ops.modify(ModifyRequest::update(tokens)).await.unwrap();
    }
    // Viewers: two loops of whole-master scans (1,000 queries of everything each, sorted by
    // priority, so a full sort of every match would be the cost), and eight parked watches of
    // 250 queries each, woken by every commit below.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..2 {
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let queries: Vec<_> = (0..1000)
                .map(|_| json!({"name_prefix": "/", "max_tokens": 10}))
                .collect();
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                statuses.push(raw_query(port, &json!({"queries": queries})).await.0);
            }
            statuses
        }));
    }
    for _ in 0..8 {
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let queries: Vec<_> = (0..250).map(|_| json!({"name_prefix": "/"})).collect();
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body =
                    json!({"queries": queries, "wait_ms": 5000, "after_version": i64::MAX / 2});
                statuses.push(raw_query(port, &body).await.0);
            }
            statuses
        }));
    }
    // Meanwhile: 200 commits, one after another, and the health probe.
    let mut commits = Vec::new();
    let mut health = Vec::new();
    for n in 0..200 {
        let started = Instant::now();
        ops.modify(ModifyRequest::update(vec![Token::new(
            format!("/writes/{n}"),
            Some("w".into()),
        )]))
        .await
        .unwrap();
        commits.push(started.elapsed());
        if n % 10 == 0 {
            let started = Instant::now();
            ops.health().await.unwrap();
            health.push(started.elapsed());
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut statuses = Vec::new();
    for l in load {
        statuses.extend(l.await.unwrap());
    }
    let p99 = percentile(&mut commits, 0.99);
    let health_p99 = percentile(&mut health, 0.99);
    eprintln!(
        "commits p50 {:?} p99 {p99:?}; health p99 {health_p99:?}; viewer answers {:?}",
        percentile(&mut commits, 0.5),
        statuses
            .iter()
            .fold(std::collections::BTreeMap::new(), |mut m, s| {
                *m.entry(*s).or_insert(0) += 1;
                m
            })
    );
    assert!(
        p99 < Duration::from_millis(100),
        "commits took {p99:?} (p99) while viewers scanned"
    );
    assert!(
        health_p99 < Duration::from_millis(250),
        "health took {health_p99:?}"
    );
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 400)),
        "viewers got an answer or a refusal naming a bound: {statuses:?}"
    );
}

#[tokio::test]
async fn answers_beyond_the_process_wide_budget_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let master = master_with(
        dir.path(),
        &format!("{}max_answers_bytes_total: 50000000\n", api_tokens_yaml()),
    )
    .await;
    let port = master.port;
    let ops = client(port, OPERATOR);
    let tokens = (0..20)
        .map(|n| Token::new(format!("/big/{n:02}"), Some("b".repeat(1 << 20))))
        .collect();
    ops.modify(ModifyRequest::update(tokens)).await.unwrap();
    // Eight viewers ask for the 20 MB at once and read their answers only once all have
    // their status: at most two answers fit in 50 MB.
    let asks = (0..8).map(|_| async move {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/api/v1/query"))
            .bearer_auth(VIEWER)
            .json(&json!({"queries": [{"name_prefix": "/big/"}]}))
            .send()
            .await
            .unwrap()
    });
    let answers = futures_util::future::join_all(asks).await;
    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    let served = statuses.iter().filter(|s| **s == 200).count();
    assert!((1..=2).contains(&served), "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        8 - served,
        "{statuses:?}"
    );
    for r in answers {
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        if status == 200 {
            let answer: QueryResponse = serde_json::from_str(&body).unwrap();
            assert_eq!(answer.tokens[0].len(), 20);
        } else {
            assert!(body.contains("max_answers_bytes_total"), "{body}");
        }
    }
    // Once sent, the budget is free again.
    let viewer = client(port, VIEWER);
    wait_until(
        Duration::from_secs(10),
        "a big answer fits again",
        || async {
            viewer
                .query_prefix("/big/")
                .await
                .is_ok_and(|t| t.len() == 20)
        },
    )
    .await;
}
