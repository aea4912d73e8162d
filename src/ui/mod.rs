//! The UI (`-m ui`): browser pages (`pages`, one file each, askama templates under
//! `templates/`), the JSON read API of CONTRACT §6 (`api`), and the actions (`actions`, which
//! call `ops`). It reads the database directly through its read model (`data`: active and
//! archived tokens, and the summaries `summaries` keeps of finished instances); actions go
//! through the master. Everything it serves, scripts and styles included, is inside the binary.

pub mod actions;
pub mod api;
pub mod auth;
pub mod error;
pub mod format;
pub mod gantt;
pub mod graph;
pub mod logs;
pub mod masters;
pub mod openapi;
pub mod pages;
pub mod sessions;
pub mod signin;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::config::Config;
use crate::master::MasterClient;
use crate::ops::OpsSettings;
use crate::ops::read::DataLayer;

/// Everything a UI request can reach.
#[derive(Clone)]
pub struct Ui {
    pub data: DataLayer,
    /// Actions and the status label go through the master.
    pub client: Arc<dyn MasterClient>,
    pub config: Arc<Config>,
    /// What the actions' commands need to know.
    pub ops: OpsSettings,
    /// The anti-forgery token every action must carry on a UI without users: 128 bits from the
    /// OS's secure random source, per process, embedded in pages (another site cannot read
    /// it). With users, each session has its own ([`Ui::csrf_of`]).
    pub csrf: Arc<str>,
    /// The database as the UI's monitor last saw it (pinged while the UI serves).
    pub db: Arc<crate::storage::DbWatch>,
    /// Who may sign in (none: the UI is open, which start-up allows on loopback only).
    pub users: Arc<auth::Users>,
    /// The signed-in users' sessions.
    pub sessions: sessions::BoundedStore,
    /// Heavy pages (the runs grid) built at once on the blocking pool; more wait their turn.
    pub heavy_pages: Arc<tokio::sync::Semaphore>,
    /// Host names the UI answers to beyond IP addresses and `localhost`.
    pub host_names: Arc<[String]>,
    /// The `api_tokens` a script may present to the UI's JSON API instead of a session.
    pub tokens: crate::web::auth::Access,
    /// The masters' line of the footer (who leads, its standbys), kept by [`masters::follow`].
    pub masters: masters::Shown,
}

impl Ui {
    pub fn new(data: DataLayer, client: Arc<dyn MasterClient>, config: Arc<Config>) -> Self {
        let csrf = random_hex();
        Ui {
            db: Arc::new(crate::storage::DbWatch::new()),
            data,
            client,
            ops: OpsSettings::from_config(&config),
            users: Arc::new(auth::Users::new(&config.ui_users)),
            sessions: sessions::BoundedStore::default(),
            heavy_pages: Arc::new(tokio::sync::Semaphore::new(HEAVY_PAGES)),
            host_names: auth::ui_host_names(&config).into(),
            tokens: crate::web::auth::Access::new(&config.api_tokens),
            config,
            csrf: csrf.into(),
            masters: masters::Shown::default(),
        }
    }

    /// The anti-forgery token that pages and actions of this request carry: the session's
    /// own, or the process's on a UI without users.
    pub fn csrf_of(&self, caller: &auth::UiCaller) -> String {
        caller.csrf.clone().unwrap_or_else(|| self.csrf.to_string())
    }

    /// The heavy-page permit (the runs grid, the pools' use), waited for at most
    /// [`HEAVY_WAIT`]: well within the UI's bound on an answer, so the one who has it can
    /// finish; a viewer who cannot have it soon is told at once that the UI is busy (503).
    /// Owned, so it goes with the work to the blocking pool and is released however the
    /// request ends.
    pub async fn heavy_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, error::UiError> {
        tokio::time::timeout(HEAVY_WAIT, self.heavy_pages.clone().acquire_owned())
            .await
            .map_err(|_| {
                error::UiError::Unavailable(
                    "the UI is building this page for others; try again in a moment".into(),
                )
            })?
            .map_err(|_| error::UiError::Unavailable("the UI is stopping".into()))
    }

    /// Where the master is, for the status label.
    pub fn master_addr(&self) -> String {
        format!("{}:{}", self.config.master_host, self.config.master_port)
    }
}

/// How long a viewer waits for the heavy-page permit.
const HEAVY_WAIT: std::time::Duration = std::time::Duration::from_millis(900);

/// Heavy pages built at once: one, so a core stays free for everything else (the master, in
/// `-m all`).
const HEAVY_PAGES: usize = 1;

/// 128 bits from the OS's secure random source, as hex.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS has a secure random source");
    crate::token::hex(&bytes)
}

const SCRIPT: &str = include_str!("../../static/pinball.js");
const STYLE: &str = include_str!("../../static/pinball.css");

const FAVICON: &str = include_str!("../../static/favicon.svg");

/// A file compiled into the binary, served with its type and a short cache lifetime.
fn static_file(content_type: &'static str, body: &'static str) -> axum::routing::MethodRouter {
    get(move || async move {
        (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "max-age=300"),
            ],
            body,
        )
            .into_response()
    })
}

pub fn router(ui: Ui) -> Router {
    let statics = Router::new()
        .route(
            "/static/pinball.js",
            static_file("text/javascript; charset=utf-8", SCRIPT),
        )
        .route(
            "/static/pinball.css",
            static_file("text/css; charset=utf-8", STYLE),
        )
        .route("/static/favicon.svg", static_file("image/svg+xml", FAVICON))
        .route("/favicon.ico", static_file("image/svg+xml", FAVICON));
    let sessions = auth::sessions(&ui.config, ui.sessions.clone());
    let probe = MetricsAccess {
        access: ui.tokens.clone(),
        host_names: ui.host_names.clone(),
        signed_in_only: !ui.config.ui_users.is_empty(),
    };
    Router::new()
        .merge(api::router(ui.clone()))
        .merge(pages::router(ui.clone()))
        .merge(actions::router(ui.clone()))
        .merge(auth::router(ui.clone()))
        .merge(statics)
        .layer(axum::middleware::from_fn_with_state(
            ui.db.clone(),
            within_bound,
        ))
        .layer(axum::middleware::from_fn_with_state(
            ui.clone(),
            auth::guard,
        ))
        .layer(sessions)
        // Probes for load balancers: no session, no data beyond the answer.
        .route("/health", get(crate::web::probes::alive))
        .route("/ready", get(move || ready(ui.data.store.clone())))
        .route(
            "/metrics",
            get(move |headers| metrics(probe.clone(), headers)),
        )
        .route_layer(axum::middleware::from_fn(|req, next| {
            crate::metrics::track("ui", req, next)
        }))
}

/// Who may read the UI's `/metrics`: with `api_tokens`, a token of the viewer role or above
/// (the master's tokens: a scraper has no session); without them, only a UI open to all.
#[derive(Clone)]
struct MetricsAccess {
    access: crate::web::auth::Access,
    host_names: Arc<[String]>,
    signed_in_only: bool,
}

/// `GET /metrics`: this process's metrics, behind [`MetricsAccess`].
async fn metrics(who: MetricsAccess, headers: axum::http::HeaderMap) -> Response {
    if who.signed_in_only && who.access.is_open() {
        return crate::web::error::ApiError::Master(crate::token::MasterError::Unauthorized(
            "the UI needs a sign-in and a scraper has none: set api_tokens and scrape with a viewer token"
                .into(),
        ))
        .into_response();
    }
    crate::web::probes::guarded(&who.access, &who.host_names, &headers)
}

/// `GET /ready`: 200 when the database answers within a second, 503 with the reason otherwise.
async fn ready(store: Arc<dyn crate::storage::Storage>) -> Response {
    crate::web::probes::readiness(
        match tokio::time::timeout(Duration::from_secs(1), store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e
                .cause()
                .map_or("the database cannot be read", |c| c.says())
                .to_owned()),
            Err(_) => Err(crate::storage::Cause::Timeout.says().to_owned()),
        },
    )
}

/// How long a page or an API answer may wait for the database before the UI answers 503.
const ANSWER_WITHIN: Duration = Duration::from_millis(1800);

/// Answers 503 (a page, or JSON under `/api/`) at once while the monitor finds the database
/// unreachable, and when the database keeps a request waiting longer than [`ANSWER_WITHIN`],
/// so a database outage never hangs a browser.
async fn within_bound(
    axum::extract::State(db): axum::extract::State<Arc<crate::storage::DbWatch>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let path = req.uri().path().to_owned();
    let status = db.status();
    let trouble = if path.starts_with("/static/") || !status.is_unreachable() {
        match tokio::time::timeout(ANSWER_WITHIN, next.run(req)).await {
            Ok(answer) => return answer,
            Err(_) => crate::storage::StorageError::unavailable(
                crate::storage::Cause::Timeout,
                format!("{path} waited more than {} ms", ANSWER_WITHIN.as_millis()),
            ),
        }
    } else {
        crate::storage::StorageError::unavailable(
            status
                .trouble()
                .unwrap_or(crate::storage::Cause::Unreachable),
            format!("{path} refused while the database does not answer its ping"),
        )
    };
    let e = error::UiError::Database(trouble);
    if api {
        e.into_response()
    } else {
        error::PageError(e).into_response()
    }
}

/// Serves the UI until `shutdown` resolves. The master's process writes the summaries of
/// archived instances; a list brings them up to date first (one bounded pass) if that process
/// has not yet.
pub async fn serve(
    ui: Ui,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "ui listening");
    crate::storage::spawn_monitor(Arc::downgrade(&ui.db), ui.data.store.clone());
    masters::follow(
        Arc::downgrade(&ui.masters),
        ui.data.store.clone(),
        ui.data.master.clone(),
    );
    ui.sessions.purge_every(Duration::from_secs(60));
    let limits = crate::web::http::ServeLimits::from_config(&ui.config);
    let served = crate::web::http::serve(listener, router(ui), limits, shutdown).await;
    served?;
    tracing::info!("ui stopped");
    Ok(())
}
