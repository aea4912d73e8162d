//! `spawn_app()`: a real master over real HTTP on 127.0.0.1:0, on a real database.

use std::net::SocketAddr;
use std::time::Duration;

use pinball::master::{HttpMasterClient, Master, MasterClient, api};
use pinball::storage;
use pinball::token::*;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::quick_policy;

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
    let master = tokio::time::timeout(
        Duration::from_secs(60),
        Master::start(store, master_name, pinball::modes::naming()),
    )
    .await
    .unwrap_or_else(|_| panic!("the master on {url} did not load within a minute"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(pinball::master::server::serve(
        master,
        listener,
        api::ApiSettings::open(max_request_bytes),
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

/// A master on a fresh SQLite file of its own, removed with it.
pub struct FreshApp {
    pub app: TestApp,
    _dir: TempDir,
}

impl std::ops::Deref for FreshApp {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl FreshApp {
    pub async fn stop(self) {
        self.app.stop().await;
    }
}

pub async fn fresh_app() -> FreshApp {
    let dir = tempfile::tempdir().unwrap();
    FreshApp {
        app: spawn_app(&dir).await,
        _dir: dir,
    }
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
