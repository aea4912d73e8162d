//! One master per database (issues 23 and 30), with real processes: a second `pinball -m master`
//! on the same SQLite file stops at start with the first one's address; on the same MariaDB or
//! PostgreSQL database and master name it stands by (503, naming the leader) and takes over when
//! the leader stops (at once) or hangs (when its lease runs out), and the hung one never
//! acknowledges a write again. Another master name is a master of its own; a master killed
//! outright is replaced at once.

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
async fn a_second_master_on_one_mariadb_database_stands_by_and_takes_over_when_the_leader_stops() {
    if let Some(url) = mysql_url("one_master::mariadb") {
        second_master_on_one_server(&url).await;
    }
}

#[tokio::test]
async fn a_second_master_on_one_postgresql_database_stands_by_and_takes_over_when_the_leader_stops()
{
    if let Some(url) = postgres_url("one_master::postgresql") {
        second_master_on_one_server(&url).await;
    }
}

async fn second_master_on_one_server(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let master = unique_master("one");
    let config = write_config_with(dir.path(), url, &master, "");
    let mut first = start_master_process(&config).await;
    assert_eq!(write_one(first.port, "/one/before").await.0, 200);
    let leader = format!("127.0.0.1:{}", first.port);
    // The second stands by: not ready, every call refused with where the leader is.
    let second = start_master_process(&config).await;
    let (status, why) = ready(second.port).await;
    assert_eq!(status, 503);
    assert_eq!(
        why["reason"].as_str().unwrap(),
        format!("standby; the leader is {leader}")
    );
    let (status, refused) = write_one(second.port, "/one/lost").await;
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["error"]["code"], "UNAVAILABLE");
    assert_eq!(refused["error"]["leader"], leader.as_str());
    // And when it may lead, should the leader fall silent: when the lease it read runs out
    // (10 s by default, renewed every 2 s), plus its half-second read.
    let after = refused["error"]["retry_after_ms"].as_u64().unwrap();
    assert!((100..=10_500).contains(&after), "{refused}");
    let health = get_health(second.port).await;
    assert_eq!(health["role"], "standby", "{health}");
    assert_eq!(health["leader"], leader.as_str());
    let led = get_health(first.port).await;
    assert_eq!(led["role"], "leader", "{led}");
    assert_eq!(led["leader"], leader.as_str());
    let epoch = led["epoch"].as_i64().unwrap();
    // The leader's health and the dashboard's footer list the standby.
    let standby = format!("127.0.0.1:{}", second.port);
    wait_until(
        Duration::from_secs(30),
        "the leader lists its standby",
        || async { get_health(first.port).await["standbys"] == serde_json::json!([standby]) },
    )
    .await;
    let ui_port = free_port();
    let ui_config = dir.path().join("ui.yaml");
    std::fs::write(
        &ui_config,
        format!("database_url: {url}\nmaster_name: {master}\nui_port: {ui_port}\n"),
    )
    .unwrap();
    let _ui = spawn_pinball(&["-c", ui_config.to_str().unwrap(), "-m", "ui"], dir.path());
    let footer = format!(
        "<footer class=\"masters\">master {master}: leader {leader} (epoch {epoch}); standbys: {standby}</footer>"
    );
    wait_until(
        Duration::from_secs(30),
        "the footer names the masters",
        || async {
            match reqwest::get(format!("http://127.0.0.1:{ui_port}/workflows/")).await {
                Ok(r) => r.text().await.is_ok_and(|t| t.contains(&footer)),
                Err(_) => false,
            }
        },
    )
    .await;
    // The first serves on, and took the write the second refused.
    assert_eq!(ready(first.port).await.0, 200);
    assert_eq!(write_one(first.port, "/one/after").await.0, 200);
    // A planned handover: the leader stopped (SIGTERM) gives its lease up, and the standby
    // takes over at once, with every acknowledged write.
    let pid = first.child.id().unwrap() as i32;
    // SAFETY: a signal to the child this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let stopped = std::time::Instant::now();
    wait_until(Duration::from_secs(30), "the standby leads", || async {
        ready(second.port).await.0 == 200
    })
    .await;
    eprintln!(
        "planned handover: the standby was ready {:?} after SIGTERM",
        stopped.elapsed()
    );
    assert_eq!(first.child.wait().await.unwrap().code(), Some(0));
    assert_eq!(
        names(second.port, "/one/").await,
        ["/one/after", "/one/before"]
    );
    let took = get_health(second.port).await;
    assert_eq!(took["role"], "leader");
    assert!(took["epoch"].as_i64().unwrap() > epoch, "{took}");
}

async fn get_health(port: u16) -> serde_json::Value {
    reqwest::get(format!("http://127.0.0.1:{port}/api/v1/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
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
    let second = start_master_process(&config).await;
    assert_eq!(ready(second.port).await.0, 503, "the second stands by");
    let pid = first.child.id().unwrap() as i32;
    // SAFETY: signals to the child this test started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    // The standby waits for the hung one's lease to run out, then serves.
    let since = std::time::Instant::now();
    wait_until(
        Duration::from_secs(30),
        "the standby takes over",
        || async { ready(second.port).await.0 == 200 },
    )
    .await;
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
    // It stands by again, in the same process, naming the new leader.
    let standing = format!("standby; the leader is 127.0.0.1:{}", second.port);
    wait_until(
        Duration::from_secs(30),
        "the deposed master stands by again",
        || async { ready(first.port).await.1["reason"] == standing.as_str() },
    )
    .await;
    assert!(first.child.try_wait().unwrap().is_none(), "it did not exit");
    assert_eq!(write_one(first.port, "/hung/by_first").await.0, 503);
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

#[tokio::test]
async fn a_mariadb_leader_hands_its_lease_over_and_stands_by_then_takes_it_back() {
    if let Some(url) = mysql_url("one_master::handover") {
        handover_on(&url).await;
    }
}

#[tokio::test]
async fn a_postgresql_leader_hands_its_lease_over_and_stands_by_then_takes_it_back() {
    if let Some(url) = postgres_url("one_master::handover_postgresql") {
        handover_on(&url).await;
    }
}

/// Waits until the leader at `port` lists the standby at `standby` in its health.
async fn lists_standby(port: u16, standby: u16) {
    let standby = format!("127.0.0.1:{standby}");
    wait_until(
        Duration::from_secs(30),
        "the leader lists its standby",
        || async {
            get_health(port).await["standbys"]
                .as_array()
                .is_some_and(|s| s.iter().any(|a| a == standby.as_str()))
        },
    )
    .await;
}

/// `pinball master handover` with `config`: its exit code and what it printed.
async fn hand_over(config: &std::path::Path, dir: &std::path::Path) -> (Option<i32>, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        pinball_out(&["-c", config.to_str().unwrap(), "master", "handover"], dir),
    )
    .await
    .expect("the handover command ends");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

async fn handover_on(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let master = unique_master("handover");
    let config = write_config_with(dir.path(), url, &master, "");
    let mut first = start_master_process(&config).await;
    assert_eq!(write_one(first.port, "/handover/first").await.0, 200);
    let epoch = get_health(first.port).await["epoch"].as_i64().unwrap();
    // Without a standby there is no one to hand over to: refused, and it serves on.
    let client = dir.path().join("client.yaml");
    std::fs::write(
        &client,
        format!("master_hosts: [\"127.0.0.1:{}\"]\n", first.port),
    )
    .unwrap();
    let (code, said) = hand_over(&client, dir.path()).await;
    assert_ne!(code, Some(0), "{said}");
    assert!(
        said.contains("no standby master waits to take the lease"),
        "{said}"
    );
    assert_eq!(ready(first.port).await.0, 200);

    let mut second = start_master_process(&config).await;
    lists_standby(first.port, second.port).await;
    let both = format!(
        "master_hosts: [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\n",
        first.port, second.port
    );
    std::fs::write(&client, both).unwrap();
    let (code, said) = hand_over(&client, dir.path()).await;
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains(&format!(
            "the lease went from epoch {epoch} to {}; the leader is 127.0.0.1:{}",
            epoch + 1,
            second.port
        )),
        "{said}"
    );
    // The first stands by in the same process, naming the second; the second serves what
    // the first acknowledged.
    assert_eq!(
        ready(first.port).await.1["reason"],
        format!("standby; the leader is 127.0.0.1:{}", second.port).as_str()
    );
    assert!(first.child.try_wait().unwrap().is_none(), "it stands by");
    assert_eq!(write_one(second.port, "/handover/second").await.0, 200);
    assert_eq!(write_one(first.port, "/handover/lost").await.0, 503);

    // And back: the first leads again (a new master in the same process), the second stands by.
    lists_standby(second.port, first.port).await;
    let (code, said) = hand_over(&client, dir.path()).await;
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains(&format!("the leader is 127.0.0.1:{}", first.port)),
        "{said}"
    );
    assert_eq!(get_health(first.port).await["epoch"], epoch + 2);
    assert_eq!(write_one(first.port, "/handover/first_again").await.0, 200);
    assert_eq!(
        names(first.port, "/handover/").await,
        [
            "/handover/first",
            "/handover/first_again",
            "/handover/second"
        ]
    );
    assert!(second.child.try_wait().unwrap().is_none(), "it stands by");
    // Each handover is in the audit log, with who asked.
    let store = pinball::storage::open(url).unwrap();
    let log = store.audit_log(&master, None, 10).await.unwrap();
    let handovers: Vec<_> = log
        .iter()
        .filter(|e| e.action.command == "master handover")
        .collect();
    assert_eq!(handovers.len(), 2, "{log:?}");
    assert!(
        handovers
            .iter()
            .all(|e| e.action.ok && !e.action.actor.is_empty())
    );
}

#[tokio::test]
async fn a_master_on_sqlite_refuses_to_hand_over_and_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("pinball.db").display());
    let config = write_config(dir.path(), &url, "default");
    let first = start_master_process(&config).await;
    let client = dir.path().join("client.yaml");
    std::fs::write(&client, format!("master_port: {}\n", first.port)).unwrap();
    let (code, said) = hand_over(&client, dir.path()).await;
    assert_ne!(code, Some(0), "{said}");
    assert!(
        said.contains("this master cannot hand over: only a `-m master` process alone on MySQL/MariaDB or PostgreSQL can"),
        "{said}"
    );
    assert_eq!(ready(first.port).await.0, 200);
}
