//! Connections shared fairly (issue 22, M5), against real processes: a master with
//! `max_connections: 40` under 80 unauthenticated slow-header sockets (reopened as fast as the
//! master closes them) and 40 viewer watches parked as long as the master lets them, while a
//! real `-m workers` process runs a chain of ten jobs to its end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

/// Keeps `n` sockets open that never finish their headers, reopening each one the master
/// closes; counts the connections made.
fn slow_sockets(port: u16, n: usize, stop: Arc<AtomicBool>, opened: Arc<AtomicUsize>) {
    for _ in 0..n {
        let (stop, opened) = (stop.clone(), opened.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
                let Ok(Ok(mut s)) = tokio::time::timeout(Duration::from_secs(5), connect).await
                else {
                    continue;
                };
                let _ = s
                    .write_all(b"POST /api/v1/query HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                    .await;
                opened.fetch_add(1, Ordering::Relaxed);
                // Held open until the master closes it (or the test ends).
                let mut buf = [0u8; 64];
                tokio::select! {
                    _ = s.read(&mut buf) => {}
                    () = async { while !stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    } } => {}
                }
            }
        });
    }
}

#[tokio::test]
async fn slow_strangers_and_one_token_s_watches_cannot_starve_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let chain: String = (0..10)
        .map(|n| {
            let after = if n == 0 {
                String::new()
            } else {
                format!(", depends_on: [j{}]", n - 1)
            };
            format!("      j{n}: {{command: 'true'{after}}}\n")
        })
        .collect();
    std::fs::write(
        d.join("wf.yaml"),
        format!("workflows:\n  chain:\n    jobs:\n{chain}"),
    )
    .unwrap();
    let master = master_with(
        d,
        &format!(
            "{}max_connections: 40\nmax_parked_per_token: 10\n",
            api_tokens_yaml()
        ),
    )
    .await;
    let port = master.port;
    let common = format!(
        "database_url: sqlite://{}\nmaster_port: {port}\nparser_params:\n  workflows_config: {}\nlocal_logs_dir_prefix: {}\nworkers: 2\nworker_poll_time_sec: 1\n",
        d.join("pinball.db").display(),
        d.join("wf.yaml").display(),
        d.join("logs").display(),
    );
    let ops = d.join("ops.yaml");
    std::fs::write(&ops, format!("{common}api_token: {OPERATOR}\n")).unwrap();
    let workers_cfg = d.join("workers.yaml");
    std::fs::write(&workers_cfg, format!("{common}api_token: {WORKER}\n")).unwrap();
    let ops = ops.to_str().unwrap();
    let out = pinball_out(&["-c", ops, "import", "-f"], d).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The attack: 80 slow strangers, and a viewer parking 40 watches that nothing wakes.
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    slow_sockets(port, 80, stop.clone(), opened.clone());
    let refused = Arc::new(AtomicUsize::new(0));
    for _ in 0..40 {
        let (stop, refused) = (stop.clone(), refused.clone());
        tokio::spawn(async move {
            let c = reqwest::Client::new();
            let body = json!({"queries": [{"name_prefix": "/nothing/"}], "wait_ms": 30_000, "after_version": i64::MAX / 2});
            while !stop.load(Ordering::Relaxed) {
                let sent = c
                    .post(format!("http://127.0.0.1:{port}/api/v1/query"))
                    .bearer_auth(VIEWER)
                    .json(&body)
                    .timeout(Duration::from_secs(40))
                    .send()
                    .await;
                if sent.is_ok_and(|r| r.status().as_u16() == 503) {
                    refused.fetch_add(1, Ordering::Relaxed);
                    // A refused dashboard tries again a little later.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
    }
    wait_until(
        Duration::from_secs(20),
        "the attack is in place",
        || async { opened.load(Ordering::Relaxed) >= 80 },
    )
    .await;

    // Meanwhile, the real work: the command line starts the chain, the workers run it.
    let mut workers = spawn_pinball(&["-c", workers_cfg.to_str().unwrap(), "-m", "workers"], d);
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        pinball_out(&["-c", ops, "util", "-f", "-w", "chain", "start"], d),
    )
    .await
    .expect("the command line got through within 20 s");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let instance = started_instance(&String::from_utf8_lossy(&out.stdout));
    let client = pinball::master::HttpMasterClient::new("127.0.0.1", port, quick_policy())
        .with_token(Some(&pinball::config::Secret(OPERATOR.into())));
    let prefix = format!("/workflow/chain/{instance}/");
    wait_until(
        Duration::from_secs(25),
        "the chain of ten jobs finishes",
        || async {
            use pinball::master::MasterClient;
            client
                .query_prefix(&prefix)
                .await
                .is_ok_and(|ts| finished(&ts))
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let _ = workers.kill().await;
    assert!(
        refused.load(Ordering::Relaxed) > 0,
        "the viewer's watches beyond max_parked_per_token were refused"
    );
    assert!(
        opened.load(Ordering::Relaxed) > 80,
        "slow strangers were closed to admit others"
    );
}

/// F5 of issue 23: requests that wait (claims, watches) hold a connection each; all of them
/// together hold at most three quarters of `max_connections`, whatever `max_parked_per_token`
/// allows, so a write on a new connection (a renewal, a job's end) is answered at once while
/// 60 claims try to park at a master of 40 connections.
#[tokio::test]
async fn parked_claims_leave_a_quarter_of_the_connections_for_renewals() {
    let dir = tempfile::tempdir().unwrap();
    let master = master_with(
        dir.path(),
        "max_connections: 40\nmax_parked_per_token: 1000\n",
    )
    .await;
    let url = format!("http://127.0.0.1:{}/api/v1/query_and_own", master.port);
    let refused = Arc::new(AtomicUsize::new(0));
    let mut claims = Vec::new();
    for n in 0..60 {
        let (url, refused) = (url.clone(), refused.clone());
        claims.push(tokio::spawn(async move {
            // One connection each, as 60 worker processes would hold.
            let client = pinball::config::http_client_builder().build().unwrap();
            let body = json!({"owner": format!("idle{n}"), "expiration_time": now() + 60,
                "query": {"name_prefix": "/nothing/"}, "wait_ms": 20_000});
            let status = client
                .post(&url)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16());
            if matches!(status, Ok(503)) {
                refused.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    wait_until(
        Duration::from_secs(10),
        "the claims beyond the bound are refused",
        || async { refused.load(Ordering::SeqCst) >= 30 },
    )
    .await;
    // A write on a connection of its own, as a renewal or a job's end comes.
    let write = async {
        let body = json!({"updates": [{"name": "/renewal", "data": "x"}]});
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/api/v1/modify", master.port))
            .json(&body)
            .send()
            .await
            .map(|r| r.status().as_u16())
    };
    let answered = tokio::time::timeout(Duration::from_secs(5), write)
        .await
        .expect("a write is answered while claims are parked, not after their 20 s");
    assert_eq!(answered.unwrap(), 200);
    for c in claims {
        c.abort();
    }
}
