//! `spawn_app()` and the other helpers the integration tests share.

use std::net::SocketAddr;
use std::time::Duration;

use pinball::master::client::RetryPolicy;
use pinball::master::{HttpMasterClient, Master, MasterClient, api};
use pinball::storage;
use pinball::token::*;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The MariaDB URL tests may use, or `None` (with a visible message) when it is not set.
pub fn mysql_url(test: &str) -> Option<String> {
    match std::env::var("PINBALL_TEST_MYSQL_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("SKIPPED (MySQL part of {test}): PINBALL_TEST_MYSQL_URL is not set");
            None
        }
    }
}

/// The instance `util start` reports ("exported workflow W instance I.  Its tokens ...").
pub fn started_instance(out: &str) -> String {
    out.split(" instance ")
        .nth(1)
        .and_then(|s| s.split('.').next())
        .unwrap_or_else(|| panic!("util start said: {out}"))
        .to_owned()
}

/// A master name no other test uses, so tests can share one MariaDB database.
pub fn unique_master(prefix: &str) -> String {
    format!("{prefix}_{}_{}", std::process::id(), fastrand::u32(..))
}

/// The database URLs a backend-independent test runs against: a fresh SQLite file always,
/// MariaDB when configured.
pub fn backends(dir: &TempDir, test: &str) -> Vec<String> {
    let mut urls = vec![format!(
        "sqlite://{}",
        dir.path().join("pinball.db").display()
    )];
    urls.extend(mysql_url(test));
    urls
}

pub fn quick_policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        initial_backoff: Duration::from_millis(20),
        ..Default::default()
    }
}

/// A master serving over real HTTP on 127.0.0.1:0.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: HttpMasterClient,
    pub url: String,
    pub master_name: String,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_app_on(url: &str, master_name: &str, max_request_bytes: usize) -> TestApp {
    let store = storage::open(url).expect("storage opens");
    // The master retries an unreachable database forever; a test must fail instead.
    let master = tokio::time::timeout(Duration::from_secs(60), Master::start(store, master_name))
        .await
        .unwrap_or_else(|_| panic!("the master on {url} did not load within a minute"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(
        master,
        listener,
        max_request_bytes,
        async move {
            let _ = stopped.await;
        },
    ));
    let client = HttpMasterClient::new("127.0.0.1", addr.port(), quick_policy());
    TestApp {
        addr,
        client,
        url: url.into(),
        master_name: master_name.into(),
        stop: Some(stop),
        server: Some(server),
    }
}

/// A master on a fresh SQLite file in `dir`.
pub async fn spawn_app(dir: &TempDir) -> TestApp {
    let url = format!("sqlite://{}", dir.path().join("pinball.db").display());
    spawn_app_on(&url, "default", api::DEFAULT_MAX_REQUEST_BYTES).await
}

impl TestApp {
    pub fn endpoint(&self, path: &str) -> String {
        format!("http://{}/api/v1/{path}", self.addr)
    }

    /// Stops the server and waits until it has let go of everything.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }

    /// Stops this master and starts a new one on the same database.
    pub async fn restart(self) -> TestApp {
        let (url, name) = (self.url.clone(), self.master_name.clone());
        self.stop().await;
        spawn_app_on(&url, &name, api::DEFAULT_MAX_REQUEST_BYTES).await
    }

    pub async fn insert(&self, tokens: Vec<Token>) -> Vec<Token> {
        self.client
            .modify(ModifyRequest::update(tokens))
            .await
            .unwrap()
            .updates
    }

    pub async fn all(&self, prefix: &str) -> Vec<Token> {
        self.client.query_prefix(prefix).await.unwrap()
    }
}

pub fn token(name: &str) -> Token {
    Token::new(name, Some(format!("data of {name}")))
}

/// POSTs a raw body and returns the status and the parsed JSON answer.
pub async fn post_raw(url: &str, body: impl Into<reqwest::Body>) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(url)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let json = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, json)
}

pub fn now() -> i64 {
    pinball::clock::now()
}

/// A `pinball` process started from the built binary, with its stderr drained in the background.
pub struct Process {
    pub child: tokio::process::Child,
    pub port: u16,
}

/// Writes a configuration file for a master on port 0 with the given database.
pub fn write_config(dir: &std::path::Path, url: &str, master_name: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{master_name}.yaml"));
    std::fs::write(
        &path,
        format!("database_url: {url}\nmaster_port: 0\nmaster_name: {master_name}\n"),
    )
    .unwrap();
    path
}

/// Starts `pinball -c CONFIG -m master` and waits for the line that says where it listens.
pub async fn start_master_process(config: &std::path::Path) -> Process {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pinball"))
        .args(["-c", config.to_str().unwrap(), "-m", "master"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the pinball binary starts");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the master logs its address within a minute")
            .unwrap()
            .expect("the master exited before listening");
        if let Some(addr) = line.split("master listening addr=").nth(1) {
            break addr.trim().rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    // Keep reading, so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Process { child, port }
}
