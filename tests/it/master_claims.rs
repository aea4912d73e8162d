//! Claims over real HTTP: a parked `query_and_own` wakes when a matching token is inserted or a
//! lease ends, answers empty after its wait, writes nothing when it gets nothing, and takes
//! nothing once its caller has hung up.

use std::time::{Duration, Instant};

use pinball::master::MasterClient;
use pinball::token::*;

use crate::helpers::*;

#[tokio::test]
async fn a_parked_claim_wakes_when_a_matching_token_is_inserted() {
    let app = fresh_app().await;
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
    let app = fresh_app().await;
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
    let app = fresh_app().await;
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
    let app = fresh_app().await;
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
async fn a_parked_claim_whose_caller_hung_up_takes_nothing() {
    let app = fresh_app().await;
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

/// Found by schemathesis: a waiting claim without a query killed the master's writer, and every
/// later request answered UNAVAILABLE.
#[tokio::test]
async fn a_waiting_claim_without_a_query_claims_nothing_and_the_master_serves_on() {
    let app = fresh_app().await;
    let (status, body) = post_raw(
        &format!("http://{}/api/v1/query_and_own", app.addr),
        r#"{"owner": "w", "expiration_time": 9999999999, "wait_ms": 50}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tokens"], serde_json::json!([]));
    app.client
        .modify(ModifyRequest::update(vec![token("/after")]))
        .await
        .expect("the master still writes");
    app.stop().await;
}

/// A claim that asks for its `context` gets, with its grant, the signals its job sees (its
/// instance's, its workflow's, every workflow's: not another's) as of the grant's commit, and
/// a version to watch them from; granted later from its park, the same. Past its bound the
/// answer goes without one (the claimant reads its signals itself).
#[tokio::test]
async fn a_claim_that_asks_for_its_context_gets_its_jobs_signals_with_the_grant() {
    let app = fresh_app().await;
    let seen = [
        "/workflow/__SIGNAL__/EXIT",
        "/workflow/wf/__SIGNAL__/DRAIN",
        "/workflow/wf/1/__SIGNAL__/ABORT",
    ];
    let unseen = [
        "/workflow/other/__SIGNAL__/DRAIN",
        "/workflow/wf/2/__SIGNAL__/ABORT",
    ];
    app.insert(seen.iter().chain(&unseen).map(|n| token(n)).collect())
        .await;
    let ask = |context| QueryAndOwnRequest {
        context,
        lease_sec: Some(60),
        ..claim("/workflow/*/*/job/runnable/", Some(1), "w", 0, Some(10_000))
    };
    let names = |c: &ClaimContext| {
        let mut n: Vec<String> = c.tokens.iter().map(|t| t.name.clone()).collect();
        n.sort();
        n
    };
    let mut expected: Vec<String> = seen.iter().map(|s| s.to_string()).collect();
    expected.sort();

    app.insert(vec![token("/workflow/wf/1/job/runnable/a")])
        .await;
    let got = app.client.query_and_own(ask(true)).await.unwrap();
    let context = got.context.expect("the grant carries its context");
    assert_eq!(names(&context), expected);
    assert!(
        context.version >= got.tokens[0].version.unwrap(),
        "watched from the grant's commit on: {context:?}"
    );
    let read = app
        .client
        .query(QueryRequest::new(vec![Query {
            name_prefix: "/workflow/wf/1/__SIGNAL__/".into(),
            max_tokens: None,
        }]))
        .await
        .unwrap();
    assert_eq!(
        context.tokens.iter().find(|t| t.name == seen[2]),
        read.tokens[0].first(),
        "as a read answers them, versions and data"
    );

    // Parked, then granted by the write that makes a job runnable: the same context.
    let client = app.client.clone();
    let waiter = tokio::spawn(async move { client.query_and_own(ask(true)).await });
    wait_parked(&app.client, 1).await;
    app.insert(vec![token("/workflow/wf/1/job/runnable/b")])
        .await;
    let got = waiter.await.unwrap().unwrap();
    assert_eq!(got.tokens[0].name, "/workflow/wf/1/job/runnable/b");
    assert_eq!(names(&got.context.unwrap()), expected);

    // Not asked: none.
    app.insert(vec![token("/workflow/wf/1/job/runnable/c")])
        .await;
    let got = app.client.query_and_own(ask(false)).await.unwrap();
    assert_eq!(got.tokens.len(), 1);
    assert_eq!(got.context, None);

    // More under a job's signal prefix than a context holds: the grant goes without one.
    let many: Vec<Token> = (0..300)
        .map(|n| token(&format!("/workflow/wf/3/__SIGNAL__/x{n:03}")))
        .collect();
    app.insert(many).await;
    app.insert(vec![token("/workflow/wf/3/job/runnable/d")])
        .await;
    let got = app.client.query_and_own(ask(true)).await.unwrap();
    assert_eq!(got.tokens[0].name, "/workflow/wf/3/job/runnable/d");
    assert_eq!(got.context, None, "over its bound");
    app.stop().await;
}
