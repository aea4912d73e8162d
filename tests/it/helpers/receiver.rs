//! A webhook receiver for the tests: a real HTTP server on loopback that records every request
//! (path, headers, body, when) and answers each path as the test scripted it (a status, a
//! `Retry-After`, a `Location`), then 200.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub at: Instant,
    /// What it was answered.
    pub status: u16,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

/// A scripted answer: status and extra headers.
pub type Answer = (u16, Vec<(&'static str, String)>);

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    script: BTreeMap<String, VecDeque<Answer>>,
}

#[derive(Clone, Default)]
pub struct Receiver {
    inner: Arc<Mutex<Inner>>,
    pub port: u16,
}

impl Receiver {
    /// Listens on a free loopback port.
    pub async fn start() -> Receiver {
        Receiver::start_on(0).await
    }

    /// Listens on loopback port `port` (0: a free one).
    pub async fn start_on(port: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let r = Receiver {
            port: listener.local_addr().unwrap().port(),
            ..Receiver::default()
        };
        tokio::spawn(axum::serve(listener, r.app()).into_future());
        r
    }

    /// Listens for HTTPS on a free loopback port, showing the certificate of the PEM file
    /// `cert` (with its key in `key`). A client that refuses it never reaches [`Receiver::received`].
    pub async fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Receiver {
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let tcp = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let r = Receiver {
            port: tcp.local_addr().unwrap().port(),
            ..Receiver::default()
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = TlsListener { tcp, acceptor };
        tokio::spawn(axum::serve(listener, r.app()).into_future());
        r
    }

    fn app(&self) -> axum::Router {
        axum::Router::new()
            .route("/{*path}", axum::routing::post(take))
            .with_state(self.clone())
    }

    /// The next answers of `path` (then 200).
    pub fn script(&self, path: &str, answers: Vec<Answer>) {
        self.inner
            .lock()
            .unwrap()
            .script
            .insert(path.to_owned(), answers.into());
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

async fn take(
    State(r): State<Receiver>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut inner = r.inner.lock().unwrap();
    let (status, extra) = inner
        .script
        .get_mut(&path)
        .and_then(VecDeque::pop_front)
        .unwrap_or((200, vec![]));
    inner.received.push(Received {
        path,
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body,
        at: Instant::now(),
        status,
    });
    let mut resp = (StatusCode::from_u16(status).unwrap(), "ok").into_response();
    for (k, v) in extra {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

/// A listener on `port` that accepts connections and never answers, until dropped.
pub async fn hang_on(port: u16) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    })
}

/// TCP with a TLS handshake on each connection; a failed handshake is dropped.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((socket, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(socket).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
