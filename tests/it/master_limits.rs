//! Bounded work per request, against a real `pinball -m master` process: no request may build
//! an answer, hold a connection or carry a batch beyond the master's limits, and after each
//! refusal the master still serves.

use std::time::{Duration, Instant};

use pinball::master::{HttpMasterClient, MasterClient};
use pinball::token::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

async fn post_json(port: u16, path: &str, body: String) -> (u16, Value) {
    post_raw(&format!("http://127.0.0.1:{port}/api/v1/{path}"), body).await
}

#[tokio::test]
async fn a_hundred_queries_of_one_big_token_are_refused_not_built() {
    let dir = tempfile::tempdir().unwrap();
    // The defaults: 64 MiB requests, 256 MiB answers.
    let master = master_with(dir.path(), "").await;
    let client = HttpMasterClient::new("127.0.0.1", master.port, quick_policy());
    let big = Token::new("/big", Some("x".repeat(60 << 20)));
    client
        .modify(ModifyRequest::update(vec![big]))
        .await
        .unwrap();

    let queries: Vec<Value> = (0..100).map(|_| json!({"name_prefix": "/big"})).collect();
    let (status, body) = post_json(
        master.port,
        "query",
        json!({"queries": queries}).to_string(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("max_answer_bytes"), "{message}");

    let many: Vec<Value> = (0..1001).map(|_| json!({"name_prefix": "/none"})).collect();
    let (status, body) =
        post_json(master.port, "query", json!({"queries": many}).to_string()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("1000"));

    // One query of it is still answered, and the master is well.
    let one = client.query_prefix("/big").await.unwrap();
    assert_eq!(one[0].data.as_ref().map(String::len), Some(60 << 20));
    assert_eq!(client.health().await.unwrap().status, "ok");
}

#[tokio::test]
async fn a_batch_beyond_the_limit_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let master = master_with(dir.path(), "").await;
    let n = MAX_TOKENS_PER_REQUEST + 1;
    let updates: Vec<Value> = (0..n).map(|i| json!({"name": format!("/t/{i}")})).collect();
    let (status, body) = post_json(
        master.port,
        "modify",
        json!({"updates": updates}).to_string(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("smaller batches"),
        "{body}"
    );
    let client = HttpMasterClient::new("127.0.0.1", master.port, quick_policy());
    assert!(client.query_prefix("/t/").await.unwrap().is_empty());
}

/// Waits until the server closes `stream` (a read returns end of file or an error).
async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return true,
            Ok(_) => continue, // an error answer, then the close
        }
    }
}

#[tokio::test]
async fn half_open_connections_and_slow_bodies_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let master = master_with(
        dir.path(),
        "client_header_timeout_sec: 1\nclient_body_timeout_sec: 1\n",
    )
    .await;
    let addr = format!("127.0.0.1:{}", master.port);

    // Clients that never finish their headers.
    let mut open = Vec::new();
    for _ in 0..200 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"POST /api/v1/query HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .unwrap();
        open.push(s);
    }
    let started = Instant::now();
    for s in &mut open {
        let closed = tokio::time::timeout(Duration::from_secs(20), closed_by_server(s)).await;
        assert!(closed.is_ok(), "a half-open connection stayed open");
    }
    eprintln!(
        "200 half-open connections closed within {:?}",
        started.elapsed()
    );

    // A body that stops half way.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(
        b"POST /api/v1/query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"queries\"",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut answer))
        .await
        .expect("the master answers a stalled body")
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("client_body_timeout_sec"), "{answer}");

    let client = HttpMasterClient::new("127.0.0.1", master.port, quick_policy());
    assert_eq!(client.health().await.unwrap().status, "ok");
}

/// Runs `pinball import -f` of `defs` (YAML) against a master on `port`.
async fn import(dir: &std::path::Path, port: u16, defs: &str, extra: &str) -> std::process::Output {
    let file = dir.join("defs.yaml");
    std::fs::write(&file, defs).unwrap();
    let config = dir.join("import.yaml");
    std::fs::write(
        &config,
        format!(
            "master_port: {port}\nparser_params:\n  workflows_config: {}\n{extra}",
            file.display()
        ),
    )
    .unwrap();
    tokio::time::timeout(
        Duration::from_secs(60),
        pinball_out(&["-c", config.to_str().unwrap(), "import", "-f"], dir),
    )
    .await
    .expect("import answers within a minute")
}

#[tokio::test]
async fn definitions_that_would_exhaust_the_importer_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let master = master_with(dir.path(), "").await;

    // 113 KB that stand for 25 million addresses: one anchored list, named 5,000 times.
    let list: Vec<String> = (0..5000).map(|i| format!("e{i}@x.io")).collect();
    let mut bomb = format!(
        "workflows:\n  w:\n    notify_emails: &l [{}]\n    jobs:\n",
        list.join(", ")
    );
    for j in 0..5000 {
        bomb.push_str(&format!("      j{j}: {{command: 'true', emails: *l}}\n"));
    }
    let out = import(dir.path(), master.port, &bomb, "").await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("aliases"), "{stderr}");

    let out = import(
        dir.path(),
        master.port,
        "workflows:\n  __SIGNAL__:\n    jobs:\n      j: {command: 'true'}\n",
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("reserved"), "{stderr}");

    let out = import(
        dir.path(),
        master.port,
        "",
        "  command: sleep 600\n  timeout_sec: 1\nparser: exec\n",
    )
    .await;
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("timeout_sec"), "{stderr}");

    let client = HttpMasterClient::new("127.0.0.1", master.port, quick_policy());
    assert!(
        client
            .query_prefix("/definition/")
            .await
            .unwrap()
            .is_empty(),
        "nothing was imported"
    );
}
