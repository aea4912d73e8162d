//! A standby master (CONTRACT §7.3): a `-m master` whose lease another master holds. It answers
//! on its own address meanwhile: `/ready` 503 naming the leader, and every `/api/v1/*` call 503
//! `UNAVAILABLE` with `"leader": "HOST:PORT"`, so a client goes there (`/api/v1/health` with the
//! health's fields beside: its role, the leader, the epoch). It looks at the lease row every
//! half second (by the database's clock), and when the lease has expired (the leader died, hung
//! or was cut off) or its holder is a dead process of this host, it takes the lease (a greater
//! epoch: the old leader can never commit again), loads the tokens and serves, on the same
//! listener.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::api::ApiSettings;
use super::lease::{HoldSpec, Refused};
use super::options::MasterOptions;
use super::service::Master;
use crate::storage::{LeaseHolder, Storage, TokenStore};
use crate::token::Health;
use crate::web::error::ApiError;

/// What a standby knows: its master's name and store kind, and the lease as last read.
#[derive(Clone)]
struct Seen {
    master: String,
    storage: &'static str,
    since: Instant,
    /// The lease as last read, and when.
    lease: watch::Receiver<Option<(LeaseHolder, Instant)>>,
    /// How often the lease is read.
    poll: Duration,
}

impl Seen {
    fn leader(&self) -> (String, Option<i64>) {
        match &*self.lease.borrow() {
            Some((h, _)) if h.expires_in_ms > 0 => (h.address.clone(), Some(h.epoch)),
            Some((h, _)) => (String::new(), Some(h.epoch)),
            None => (String::new(), None),
        }
    }

    /// When this standby may lead at the latest if the leader stays silent: when the lease
    /// it read runs out, plus one read (sooner when the leader's process is found dead). A
    /// client that cannot reach the leader backs off no longer than that, so it does not
    /// sleep past the takeover.
    fn retry_after(&self) -> Duration {
        let left = match &*self.lease.borrow() {
            Some((h, at)) => {
                Duration::from_millis(h.expires_in_ms.max(0) as u64).saturating_sub(at.elapsed())
            }
            None => Duration::ZERO,
        };
        left + self.poll
    }
}

/// The standby's routes: the probes, its health, and a refusal naming the leader for the rest,
/// behind the same guard (tokens, roles, host names) as the leader's.
fn router(seen: Seen, settings: ApiSettings) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/metrics", get(|| async { crate::metrics::answer() }))
        .fallback(refuse)
        .layer(middleware::from_fn_with_state(settings, super::api::guard))
        .route("/health", get(crate::web::probes::alive))
        .route("/ready", get(ready))
        .with_state(seen)
}

async fn refuse(State(seen): State<Seen>) -> ApiError {
    ApiError::Standby {
        leader: seen.leader().0,
        retry_after: seen.retry_after(),
    }
}

async fn ready(State(seen): State<Seen>) -> Response {
    let (leader, _) = seen.leader();
    let reason = if leader.is_empty() {
        "standby; no master leads now".to_owned()
    } else {
        format!("standby; the leader is {leader}")
    };
    crate::web::probes::readiness(Err(reason))
}

/// 503 like every call to a standby (CONTRACT §7.3), with the health's fields beside the
/// error: its role, the leader and the lease's epoch.
async fn health(State(seen): State<Seen>) -> Response {
    let (leader, epoch) = seen.leader();
    let health = Health {
        status: "standby".into(),
        master: seen.master.clone(),
        storage: seen.storage.into(),
        uptime_sec: seen.since.elapsed().as_secs(),
        time: crate::clock::now(),
        role: "standby".into(),
        leader: (!leader.is_empty()).then(|| leader.clone()),
        epoch,
        ..Health::default()
    };
    let mut body = serde_json::to_value(health).unwrap_or_default();
    body["error"] = crate::web::error::standby_error(&leader, seen.retry_after());
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(body),
    )
        .into_response()
}

/// How often a standby reads the lease row.
fn poll(lease: Duration) -> Duration {
    (lease / 20).clamp(Duration::from_millis(100), Duration::from_millis(500))
}

/// How long a standby's note stays fresh: it renews it every few reads.
pub const STANDBY_SEEN_MS: i64 = 10_000;

/// Waits until the lease of `master` may be taken: expired by the database's clock, or held by
/// a process of this host that is gone. Each read goes to `seen`; every fourth notes this
/// standby (at `address`) where the leader and the dashboard list standbys.
async fn wait_free(
    store: &dyn TokenStore,
    master: &str,
    address: &str,
    every: Duration,
    seen: &watch::Sender<Option<(LeaseHolder, Instant)>>,
) {
    let mut failing = false;
    let holder = super::lease::holder_identity();
    for n in 0u64.. {
        if n % 4 == 0
            && let Err(e) = store.note_standby(master, address, &holder, false).await
        {
            tracing::debug!(master, error = %e, "a standby master cannot note itself");
        }
        match store.lease_holder(master).await {
            Ok(Some(h)) => {
                let free = h.expires_in_ms <= 0 || super::lease::holder_is_dead(&h.holder);
                seen.send_replace(Some((h, Instant::now())));
                if free {
                    return;
                }
                failing = false;
            }
            Ok(None) => return,
            Err(e) => {
                if !failing {
                    tracing::warn!(master, error = %e, "a standby master cannot read the lease; trying again");
                }
                failing = true;
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Becomes master `name`'s leader: takes its lease and loads its tokens, or stands by (serving
/// the standby's answers on `listener`) until the lease can be taken, as often as another
/// master wins it first. `None` when `stop` comes first.
pub async fn lead(
    store: Arc<dyn Storage>,
    name: &str,
    options: MasterOptions,
    spec: HoldSpec,
    listener: Arc<TcpListener>,
    settings: ApiSettings,
    stop: watch::Receiver<bool>,
) -> Result<Option<Master>, Refused> {
    let (seen_tx, seen_rx) = watch::channel(None);
    // The standby's server, once this process stands by: dropping the sender ends it.
    let mut standby: Option<tokio::sync::oneshot::Sender<()>> = None;
    let stopped = || {
        let mut stop = stop.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    };
    loop {
        let attempt = Master::serve_exclusively(store.clone(), name, options.clone(), spec.clone());
        let refused = tokio::select! {
            taken = attempt => match taken {
                Ok(master) => {
                    let epoch = master.epoch().unwrap_or(0);
                    metrics::gauge!(crate::metrics::IS_LEADER).set(1.0);
                    metrics::gauge!(crate::metrics::EPOCH).set(epoch as f64);
                    if standby.take().is_some() {
                        let holder = super::lease::holder_identity();
                        if let Err(e) = store.note_standby(name, &spec.address, &holder, true).await {
                            tracing::debug!(master = name, error = %e, "cannot take this master's standby note away");
                        }
                        metrics::counter!(crate::metrics::TAKEOVERS).increment(1);
                        tracing::info!(master = name, epoch, address = %spec.address, "this standby took the lease over: it leads now");
                    }
                    return Ok(Some(master));
                }
                Err(refused) => refused,
            },
            () = stopped() => return Ok(None),
        };
        if spec.file_locked {
            return Err(refused);
        }
        let Refused::Leased { held, .. } = &refused;
        metrics::gauge!(crate::metrics::IS_LEADER).set(0.0);
        metrics::gauge!(crate::metrics::EPOCH).set(held.epoch as f64);
        seen_tx.send_replace(Some((held.clone(), Instant::now())));
        if standby.is_none() {
            tracing::info!(master = name, leader = %held.address, epoch = held.epoch, "another master leads: this one stands by and takes over when its lease runs out");
            let (quit, quitting) = tokio::sync::oneshot::channel::<()>();
            let seen = Seen {
                master: name.to_owned(),
                storage: store.kind(),
                since: Instant::now(),
                lease: seen_rx.clone(),
                poll: poll(spec.lease),
            };
            let app = router(seen, settings.clone());
            let limits = settings.limits;
            let on = listener.clone();
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "standby master listening");
            }
            tokio::spawn(async move {
                let until = async move {
                    let _ = quitting.await;
                };
                if let Err(e) = crate::web::http::serve(on, app, limits, until).await {
                    tracing::error!(error = %e, "the standby's listener failed");
                }
            });
            standby = Some(quit);
        }
        tokio::select! {
            () = wait_free(store.as_ref(), name, &spec.address, poll(spec.lease), &seen_tx) => {}
            () = stopped() => return Ok(None),
        }
    }
}
