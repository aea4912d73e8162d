//! One master per database (issue 23, F1), with real processes: a second `pinball -m master` on
//! the same SQLite file, or the same MariaDB or PostgreSQL database, and master name stops at
//! start with the first one's address, and the first serves on; another master name is a master
//! of its own. A master that hung past its lease is replaced, and never acknowledges a write
//! again; a master killed outright is replaced at once.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn a_second_master_on_one_sqlite_file_stops_and_says_who_serves_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("pinball.db").display());
    let config = write_config(dir.path(), &url, "default");
    let first = start_master_process(&config).await;
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        pinball_out(
            &["-c", config.to_str().unwrap(), "-m", "master"],
            dir.path(),
        ),
    )
    .await
    .expect("the second master stops at once");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("master default is already served by")
            && err.contains(&format!(":{}", first.port)),
        "{err}"
    );
    // The first still serves.
    let (status, _) = ready(first.port).await;
    assert_eq!(status, 200);
    // A master of another name on the same file is not held up.
    let other = write_config(dir.path(), &url, "other");
    let second = start_master_process(&other).await;
    assert_eq!(ready(second.port).await.0, 200);
    // Once the first is gone, a master of its name starts again.
    drop(first);
    wait_until(
        Duration::from_secs(30),
        "a new master takes the file",
        || async {
            let mut child = spawn_pinball(
                &["-c", config.to_str().unwrap(), "-m", "master"],
                dir.path(),
            );
            let stopped = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
            let started = stopped.is_err();
            let _ = child.kill().await;
            started
        },
    )
    .await;
}

/// `pinball -c CONFIG -m master` as a second master: its exit code and what it printed, or
/// `None` when it was still serving after `within` (it is killed then).
async fn second_master(
    config: &std::path::Path,
    dir: &std::path::Path,
    within: Duration,
) -> Option<(Option<i32>, String)> {
    let args = ["-c", config.to_str().unwrap(), "-m", "master"];
    let out = tokio::time::timeout(within, pinball_out(&args, dir))
        .await
        .ok()?;
    Some((
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

async fn write_one(port: u16, name: &str) -> (u16, serde_json::Value) {
    let body = serde_json::json!({"updates": [{"name": name, "data": "acknowledged?"}]});
    post_raw(
        &format!("http://127.0.0.1:{port}/api/v1/modify"),
        body.to_string(),
    )
    .await
}

async fn names(port: u16, prefix: &str) -> Vec<String> {
    let body = serde_json::json!({"queries": [{"name_prefix": prefix}]});
    let (status, answer) = post_raw(
        &format!("http://127.0.0.1:{port}/api/v1/query"),
        body.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    answer["tokens"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_second_master_on_one_mariadb_database_stops_and_says_who_serves_it() {
    if let Some(url) = mysql_url("one_master::mariadb") {
        second_master_on_one_server(&url).await;
    }
}

#[tokio::test]
async fn a_second_master_on_one_postgresql_database_stops_and_says_who_serves_it() {
    if let Some(url) = postgres_url("one_master::postgresql") {
        second_master_on_one_server(&url).await;
    }
}

async fn second_master_on_one_server(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let master = unique_master("one");
    let config = write_config_with(dir.path(), url, &master, "");
    let first = start_master_process(&config).await;
    assert_eq!(write_one(first.port, "/one/before").await.0, 200);
    let (code, err) = second_master(&config, dir.path(), Duration::from_secs(30))
        .await
        .expect("the second master stops at once");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("master {master} is already served by"))
            && err.contains(&format!(":{}", first.port)),
        "{err}"
    );
    // The first serves on, and took the write the second never saw.
    assert_eq!(ready(first.port).await.0, 200);
    assert_eq!(write_one(first.port, "/one/after").await.0, 200);
    assert_eq!(
        names(first.port, "/one/").await,
        ["/one/after", "/one/before"]
    );
}

#[tokio::test]
async fn a_hung_mariadb_master_is_replaced_and_never_acknowledges_a_write_again() {
    if let Some(url) = mysql_url("one_master::hung") {
        hung_master_on(&url).await;
    }
}

#[tokio::test]
async fn a_hung_postgresql_master_is_replaced_and_never_acknowledges_a_write_again() {
    if let Some(url) = postgres_url("one_master::hung_postgresql") {
        hung_master_on(&url).await;
    }
}

async fn hung_master_on(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let master = unique_master("hung");
    let config = write_config_with(dir.path(), url, &master, "master_lease_sec: 2\n");
    let mut first = start_master_process(&config).await;
    assert_eq!(write_one(first.port, "/hung/acked").await.0, 200);
    let pid = first.child.id().unwrap() as i32;
    // SAFETY: signals to the child this test started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    // A second master waits for the hung one's lease to run out, then serves.
    let since = std::time::Instant::now();
    let second = loop {
        if let Some(second) = try_master_process(&config).await {
            break second;
        }
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "no second master took over the hung one's lease"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        since.elapsed() >= Duration::from_millis(1500),
        "the second master did not wait for the hung one's lease to run out"
    );
    assert_eq!(write_one(second.port, "/hung/by_second").await.0, 200);
    // The hung master wakes up: it must not acknowledge a write, and it stops. It may have
    // stopped listening before the write arrives: refused too.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let body =
        serde_json::json!({"updates": [{"name": "/hung/by_first", "data": "acknowledged?"}]});
    let answer = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/api/v1/modify", first.port))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await;
    if let Ok(r) = answer {
        let status = r.status().as_u16();
        assert_ne!(
            status,
            200,
            "a deposed master acknowledged a write: {}",
            r.text().await.unwrap_or_default()
        );
    }
    let exited = tokio::time::timeout(Duration::from_secs(30), first.child.wait())
        .await
        .expect("the deposed master stops")
        .unwrap();
    assert_eq!(exited.code(), Some(1));
    // Everything acknowledged is there; the refused write is not.
    assert_eq!(
        names(second.port, "/hung/").await,
        ["/hung/acked", "/hung/by_second"]
    );
}

#[tokio::test]
async fn a_killed_mariadb_master_is_replaced_at_once_without_waiting_for_its_lease() {
    if let Some(url) = mysql_url("one_master::killed") {
        killed_master_on(&url).await;
    }
}

#[tokio::test]
async fn a_killed_postgresql_master_is_replaced_at_once_without_waiting_for_its_lease() {
    if let Some(url) = postgres_url("one_master::killed_postgresql") {
        killed_master_on(&url).await;
    }
}

async fn killed_master_on(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let master = unique_master("killed");
    // A lease far longer than the test waits: only knowing its holder is dead lets a new
    // master in.
    let config = write_config_with(dir.path(), url, &master, "master_lease_sec: 600\n");
    let mut first = start_master_process(&config).await;
    assert_eq!(write_one(first.port, "/killed/acked").await.0, 200);
    first.child.kill().await.unwrap();
    // Listening, which a master refused the lease never gets to.
    let second = start_master_process(&config).await;
    assert_eq!(names(second.port, "/killed/").await, ["/killed/acked"]);
}
