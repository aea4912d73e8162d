//! Serving a router over HTTP/1 with bounds, for the master's API and the UI alike: a client
//! must send a request's headers within `header_timeout` (idle keep-alive connections are closed
//! after it too), at most `max_connections` are served at once (more wait in the kernel's
//! backlog), of which unauthenticated ones hold at most all but a reserve, and a few per
//! address (`conns`), and on shutdown open connections get `drain` to finish. axum's own
//! `serve` has none of these, so a few hundred half-open connections could hold a listener for
//! ever.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// The bounds of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    pub header_timeout: Duration,
    pub max_connections: usize,
    /// Connections kept for authenticated callers: strangers hold at most the rest.
    pub reserve: usize,
    /// Unauthenticated connections from one address at most.
    pub per_address: usize,
    /// How long open connections may take to finish once shutdown begins.
    pub drain: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits::for_connections(Duration::from_secs(30), 1000)
    }
}

impl ServeLimits {
    pub fn from_config(c: &crate::config::Config) -> Self {
        ServeLimits::for_connections(
            Duration::from_secs(c.client_header_timeout_sec.max(1)),
            c.max_connections,
        )
    }

    /// A quarter of the connections kept for authenticated callers; strangers from one
    /// address hold at most an eighth (and at least four).
    fn for_connections(header_timeout: Duration, max_connections: usize) -> Self {
        let max = max_connections.max(1);
        ServeLimits {
            header_timeout,
            max_connections: max,
            reserve: max / 4,
            per_address: (max / 8).max(4),
            drain: Duration::from_secs(5),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open connections finish for
/// up to `limits.drain`.
pub async fn serve(
    listener: impl std::borrow::Borrow<TcpListener>,
    app: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    serve_watched(listener, app, limits, None, shutdown).await
}

/// [`serve`], noting in `full` (milliseconds since the epoch) each moment every connection
/// was taken: a caller on a new connection then waits in the kernel's backlog.
pub async fn serve_watched(
    listener: impl std::borrow::Borrow<TcpListener>,
    app: Router,
    limits: ServeLimits,
    full: Option<Arc<AtomicI64>>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let conns = Arc::new(super::conns::Connections::new(
        limits.max_connections - limits.reserve,
        limits.per_address,
    ));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = take_slot(&slots, &conns, full.as_deref(), shutdown.as_mut()).await;
        let Some(permit) = permit else {
            break;
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.borrow().accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for connections to close.
                    tracing::warn!(error = %e, "cannot accept a connection; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let standing = conns.admit(peer.ip());
        let app = app.clone();
        let on_request = standing.clone();
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let app = app.clone();
                let mut req = req.map(axum::body::Body::new);
                // Who is asking, for per-address bounds (`ConnectInfo` reads it).
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req.extensions_mut().insert(on_request.clone());
                let answering = super::conns::Answering::new(on_request.clone());
                async move {
                    let response = app.oneshot(req).await;
                    drop(answering);
                    Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
                }
            });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(hold_connection(conn, standing, conns.clone(), permit));
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            drain_sec = limits.drain.as_secs(),
            "connections still open after the drain period; closing them"
        );
    }
    Ok(())
}

/// A connection slot, or `None` when `shutdown` came first. When every slot is taken, the
/// oldest stranger past its grace gives its slot up (looked for again every quarter of the
/// grace while none is), and `full` notes the moment (milliseconds since the epoch).
async fn take_slot(
    slots: &Arc<Semaphore>,
    conns: &super::conns::Connections,
    full: Option<&AtomicI64>,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    loop {
        if let Ok(p) = slots.clone().try_acquire_owned() {
            return Some(p);
        }
        if let Some(full) = full {
            full.store(crate::clock::now_ms(), Ordering::Relaxed);
        }
        conns.make_room();
        tokio::select! {
            permit = slots.clone().acquire_owned() => {
                return Some(permit.expect("the semaphore is never closed"))
            }
            () = tokio::time::sleep(super::conns::GRACE / 4) => {}
            () = &mut shutdown => return None,
        }
    }
}

/// Serves one connection to its end, holding its slot. A client that hangs up or is timed out
/// ends here; nothing to report. A stranger closed to make room ends when told, unless a
/// request of its began meanwhile: the request is polled by this task, so none is cut off half
/// answered (one that committed would lose its answer).
async fn hold_connection(
    conn: impl Future,
    standing: Arc<super::conns::Standing>,
    conns: Arc<super::conns::Connections>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    tokio::pin!(conn);
    loop {
        tokio::select! {
            _ = &mut conn => break,
            () = standing.close.notified() => {
                if standing.spare() {
                    break;
                }
            }
        }
    }
    conns.forget(&standing);
    drop(permit);
}
