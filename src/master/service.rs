//! The master service: the handle every caller holds. Writes queue on a channel to the single
//! writer (`writer`), which applies them to memory, commits them to the database, and only
//! then replies. Reads take the read lock on memory, so they never see a change before it is
//! committed. Start-up loads every active token, retrying until the database answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{RwLock, mpsc, oneshot};

pub use super::lease::Refused;
pub use super::options::{MasterOptions, Naming};
use super::pattern::Pattern;
use super::state::{Entry, State};
use crate::storage::{
    DbWatch, Loaded, LogChunk, Logs, Retention, Storage, TokenStore, spawn_monitor,
};
use crate::token::MasterError;
use crate::token::*;

/// Requests applied in one batch at most (bounds the time the write lock is held).
pub(super) const MAX_BATCH: usize = 1024;
const CHANNEL_CAPACITY: usize = 8192;
pub(super) const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

pub(super) type Reply<T> = oneshot::Sender<Result<T, MasterError>>;

/// A write's idempotency key, when its client sent one.
pub(super) type Key = Option<super::requests::RequestKey>;

pub(super) enum Command {
    /// A write, with the log chunks it stores (its `logs`, checked and compressed).
    Modify(ModifyRequest, Vec<LogChunk>, Key, Reply<ModifyResponse>),
    Archive(ArchiveRequest, Key, Reply<ArchiveResponse>),
    Claim(QueryAndOwnRequest, Key, Reply<QueryAndOwnResponse>),
    /// An audit-log entry, committed with the batch it lands in.
    Audit(AuditEntry, Key, Reply<AuditResponse>),
    /// A query that waits for a change (`wait_ms` with `after_version`).
    Watch(QueryRequest, Reply<super::read::Answer>),
    /// Answer every parked claim now and park no more (shutdown).
    Close,
}

pub(super) struct Shared {
    pub(super) state: RwLock<State>,
    /// False while memory may differ from the database (a commit with an unknown outcome, or a
    /// failed reload): writes answer UNAVAILABLE until a reload succeeds, and so do reads of
    /// the names that commit touched (the state marks them uncertain).
    pub(super) healthy: AtomicBool,
    /// How many claims are parked, as the writer last counted them.
    pub(super) parked: AtomicUsize,
    pub(super) name: String,
    pub(super) options: MasterOptions,
    /// The database as the monitor and the writer last saw it.
    pub(super) db: Arc<DbWatch>,
    /// The bounds every read shares.
    pub(super) reads: super::read::ReadLimits,
    storage_kind: &'static str,
    started: Instant,
    /// The epoch of the lease this master holds (`None`: a master that takes none, in tests).
    pub(super) epoch: Option<i64>,
    /// Where it answers, as its lease records it (`None` without a lease).
    address: Option<String>,
    /// Set while the lease has gone unrenewed past 0.7 of its length: another master may take
    /// it over any moment, so this one serves nothing until a renewal lands again.
    pub(super) lapsed: AtomicBool,
    /// The standbys' addresses, as the lease's renewals last read them.
    pub(super) standbys: std::sync::Mutex<Vec<String>>,
    /// Why this master may serve no more (another master took its lease), once it is so.
    deposed: tokio::sync::watch::Sender<Option<String>>,
    /// Held by each renewal of the lease; true once the lease was given up, so no renewal
    /// lands after that (it would hold the lease again for a whole length).
    pub(super) renewals: tokio::sync::Mutex<bool>,
    /// An operator asked this master to hand its lease over (`POST /api/v1/master/handover`).
    pub(super) handover: tokio::sync::Notify,
    /// When the API's listener last had every connection taken (milliseconds since the
    /// epoch): callers on new connections, renewals among them, wait meanwhile.
    pub(super) full_at_ms: Arc<std::sync::atomic::AtomicI64>,
    /// How many commits have archived tokens: what derives data from the archive (the
    /// instance summaries) wakes on each.
    pub(super) archived: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    /// This master lost its lease: it commits nothing more, and whoever runs it stops it.
    pub(super) fn depose(&self, why: String) {
        self.deposed.send_if_modified(|d| {
            if d.is_some() {
                return false;
            }
            tracing::error!(master = %self.name, reason = %why, "this master no longer holds its lease; it stops");
            *d = Some(why);
            true
        });
    }

    /// Why this master may serve no more, if it may not.
    pub(super) fn deposed(&self) -> Option<String> {
        self.deposed.borrow().clone()
    }
}

/// The database ports a master uses, each handed to the part that needs it: its tokens (the
/// writer, the lease, the monitor), its job logs (the log sink), and what ages out (retention).
/// One database gives all three ([`From<Box<dyn Storage>>`]); a test may give its own tokens.
#[derive(Clone)]
pub struct Stores {
    pub tokens: Arc<dyn TokenStore>,
    pub logs: Arc<dyn Logs>,
    pub retention: Arc<dyn Retention>,
}

impl From<Box<dyn Storage>> for Stores {
    fn from(storage: Box<dyn Storage>) -> Stores {
        Stores::from(Arc::<dyn Storage>::from(storage))
    }
}

impl From<Arc<dyn Storage>> for Stores {
    fn from(storage: Arc<dyn Storage>) -> Stores {
        Stores {
            tokens: storage.clone(),
            logs: storage.clone(),
            retention: storage,
        }
    }
}

/// A handle to a running master. Cheap to clone; the writer stops when every handle is gone.
#[derive(Clone)]
pub struct Master {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Command>,
    logs: super::logs::LogSink,
    storage: Arc<dyn TokenStore>,
}

mod log_writes;

pub(super) fn build_state(loaded: Loaded, options: &MasterOptions) -> State {
    let rows = loaded.tokens.into_iter().map(Entry::from_owned_token);
    State::load(
        rows,
        loaded.version_floor,
        format!("blessed version created at {}", loaded.created_at),
    )
    .with_pools(
        &options.naming.pool_prefix,
        options.pool_starvation_sec as i64,
    )
}

/// Why a master takes no writes now (`/ready` says it).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotReady {
    /// Its database does not answer or fails: what the trouble is.
    #[error("{0}")]
    Database(&'static str),
    #[error("the master is reloading its tokens from the database")]
    Reloading,
    #[error(
        "the master could not renew its lease in time (its database does not answer): another master may take over, so it serves nothing until a renewal lands"
    )]
    Lapsed,
}

impl Master {
    /// [`Master::start_with`] the default options and `naming`.
    pub async fn start(storage: impl Into<Stores>, name: &str, naming: Naming) -> Master {
        Master::start_with(storage, name, MasterOptions::new(naming)).await
    }

    /// Loads every active token of master `name` from `storage` (retrying until the database
    /// answers), gives every lease its full length again (the master was down), and starts
    /// the writer task.
    pub async fn start_with(
        storage: impl Into<Stores>,
        name: &str,
        options: MasterOptions,
    ) -> Master {
        Master::open(storage, name, options, None)
            .await
            .expect("a master that takes no lease is never refused")
    }

    /// [`Master::start_with`], holding the lease of `name` as `hold` says (`-m master`): `Err`
    /// when another master holds it, naming that master.
    pub async fn serve_exclusively(
        storage: impl Into<Stores>,
        name: &str,
        options: MasterOptions,
        hold: super::lease::HoldSpec,
    ) -> Result<Master, Refused> {
        Master::open(storage, name, options, Some(hold)).await
    }

    async fn open(
        stores: impl Into<Stores>,
        name: &str,
        options: MasterOptions,
        hold: Option<super::lease::HoldSpec>,
    ) -> Result<Master, Refused> {
        let Stores {
            tokens: storage,
            logs,
            retention,
        } = stores.into();
        let started = Instant::now();
        let (loaded, requests, epoch) =
            super::load::load_with_retry(storage.as_ref(), name, hold.as_ref()).await?;
        let requests = super::requests::Requests::load(requests);
        let state = super::load::restored(loaded, &options, name, storage.kind(), started);
        let db = Arc::new(DbWatch::new());
        spawn_monitor(Arc::downgrade(&db), storage.clone());
        // The background passes end with this master (dropped, or deposed): a process that
        // leads again runs its own.
        let deposed = tokio::sync::watch::Sender::new(None);
        let logs =
            super::logs::LogSink::spawn(logs, name.to_owned(), options.logs, deposed.subscribe());
        if let Some(days) = options.retention_days {
            super::retention::spawn(
                retention,
                name.to_owned(),
                days,
                options.naming.archive_group,
                deposed.subscribe(),
            );
        }
        let shared = Arc::new(Shared {
            reads: super::read::ReadLimits::new(
                options.max_answer_bytes,
                options.max_query_visits,
                options.max_answers_bytes_total,
            ),
            db,
            state: RwLock::new(state),
            healthy: AtomicBool::new(true),
            parked: AtomicUsize::new(0),
            name: name.to_owned(),
            options,
            storage_kind: storage.kind(),
            started: Instant::now(),
            epoch,
            address: hold.as_ref().map(|h| h.address.clone()),
            lapsed: AtomicBool::new(false),
            standbys: std::sync::Mutex::default(),
            deposed,
            renewals: tokio::sync::Mutex::new(false),
            handover: tokio::sync::Notify::new(),
            full_at_ms: Arc::default(),
            archived: tokio::sync::watch::Sender::new(0),
        });
        if let (Some(epoch), Some(spec)) = (epoch, hold.filter(|h| !h.file_locked)) {
            super::lease::spawn_renewal(
                storage.clone(),
                name.to_owned(),
                epoch,
                spec.lease,
                Arc::downgrade(&shared),
            );
        }
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        super::writer::spawn(shared.clone(), storage.clone(), rx, requests);
        Ok(Master {
            shared,
            tx,
            logs,
            storage,
        })
    }

    /// Where the API's listener notes when every connection was taken.
    pub fn full_marker(&self) -> Arc<std::sync::atomic::AtomicI64> {
        self.shared.full_at_ms.clone()
    }

    /// Changes after every commit that archived tokens (its archive groups are queued in
    /// `archive_queue` by the same commit).
    pub fn archive_commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.archived.subscribe()
    }

    /// Resolves when this master may serve no more (another master took its lease), with why.
    pub async fn deposed(&self) -> String {
        let mut rx = self.shared.deposed.subscribe();
        let why = match rx.wait_for(Option::is_some).await {
            Ok(why) => why.clone(),
            Err(_) => None,
        };
        match why {
            Some(why) => why,
            None => std::future::pending().await,
        }
    }

    /// Gives the lease up (a clean stop), so the next master takes it at once.
    pub async fn release(&self) {
        // No renewal after this one: it would hold the lease again.
        *self.shared.renewals.lock().await = true;
        if let (Some(epoch), None) = (self.shared.epoch, self.shared.deposed()) {
            // Bounded: a stop never waits long for a database that does not answer.
            let released = tokio::time::timeout(
                Duration::from_secs(2),
                self.storage.release_lease(&self.shared.name, epoch),
            )
            .await;
            match released {
                Ok(Ok(())) => {
                    tracing::info!(master = %self.shared.name, epoch, "gave the master's lease up")
                }
                Ok(Err(e)) => {
                    tracing::warn!(master = %self.shared.name, error = %e, "cannot give the master's lease up; the next master waits for it to expire")
                }
                Err(_) => {
                    tracing::warn!(master = %self.shared.name, "the database did not take the lease back within 2 s; the next master waits for it to expire")
                }
            }
        }
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, MasterError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| MasterError::Unavailable("the master is shutting down".into()))?;
        rx.await
            .map_err(|_| MasterError::Unavailable("the master is shutting down".into()))?
    }

    pub async fn modify(&self, req: ModifyRequest) -> Result<ModifyResponse, MasterError> {
        self.modify_keyed(req, None).await
    }

    /// `/modify` with the idempotency key its client sent: a replay of a committed write gets
    /// the original answer.
    pub async fn modify_keyed(
        &self,
        mut req: ModifyRequest,
        key: Key,
    ) -> Result<ModifyResponse, MasterError> {
        req.validate()?;
        let logs = self.end_logs(&mut req).await?;
        self.call(|r| Command::Modify(req, logs, key, r)).await
    }

    pub async fn archive(&self, req: ArchiveRequest) -> Result<ArchiveResponse, MasterError> {
        self.archive_keyed(req, None).await
    }

    pub async fn archive_keyed(
        &self,
        req: ArchiveRequest,
        key: Key,
    ) -> Result<ArchiveResponse, MasterError> {
        req.validate()?;
        if req.tokens.is_empty() {
            return Ok(ArchiveResponse {});
        }
        self.call(|r| Command::Archive(req, key, r)).await
    }

    /// Records an operator action in the audit log; `via` names the API token it came with.
    pub async fn audit(&self, req: AuditRequest, via: &str) -> Result<AuditResponse, MasterError> {
        self.audit_keyed(req, via, None).await
    }

    pub async fn audit_keyed(
        &self,
        req: AuditRequest,
        via: &str,
        key: Key,
    ) -> Result<AuditResponse, MasterError> {
        req.validate()?;
        let entry = AuditEntry {
            id: 0,
            at: crate::clock::now_f64(),
            via: via.to_owned(),
            action: req,
        };
        self.call(|r| Command::Audit(entry, key, r)).await
    }

    /// Refuses a `/modify` of a token bound to `owner_prefix` that sets another owner, or
    /// rewrites a token another owner holds, or carries a log another owner sent.
    pub async fn check_binding(
        &self,
        token: &str,
        binding: &crate::web::auth::Binding,
        req: &ModifyRequest,
    ) -> Result<(), MasterError> {
        for t in &req.updates {
            if let Some(owner) = t.owner.as_deref().filter(|o| !o.is_empty()) {
                binding.check_owner(token, owner)?;
            }
        }
        for l in &req.logs {
            binding.check_owner(token, &l.owner)?;
        }
        let now = crate::clock::now();
        let state = self.shared.state.read().await;
        for t in req.updates.iter().chain(&req.deletes) {
            if let Some(e) = state.get(&t.name)
                && let Some(owner) = e.owner.as_deref().filter(|o| !o.is_empty())
                && e.expiration_time.is_some_and(|x| x > now)
            {
                binding.check_owner(token, owner).map_err(|_| {
                    MasterError::Forbidden(format!(
                        "{} is held by `{owner}`, which the token `{token}` may not act as (owner_prefix)",
                        t.name
                    ))
                })?;
            }
        }
        Ok(())
    }

    pub async fn query_and_own(
        &self,
        req: QueryAndOwnRequest,
    ) -> Result<QueryAndOwnResponse, MasterError> {
        self.query_and_own_keyed(req, None).await
    }

    pub async fn query_and_own_keyed(
        &self,
        mut req: QueryAndOwnRequest,
        key: Key,
    ) -> Result<QueryAndOwnResponse, MasterError> {
        req.validate()?;
        let cap = self.shared.options.max_wait_ms;
        req.wait_ms = req.wait_ms.map(|w| w.min(cap));
        if let Some(q) = &req.query {
            Pattern::parse(&q.name_prefix)?;
        }
        self.call(|r| Command::Claim(req, key, r)).await
    }

    pub async fn query(&self, req: QueryRequest) -> Result<QueryResponse, MasterError> {
        Ok(self.query_answer(req).await?.response)
    }

    /// `/query`, with the share of `max_answers_bytes_total` its answer holds until dropped.
    pub async fn query_answer(
        &self,
        mut req: QueryRequest,
    ) -> Result<super::read::Answer, MasterError> {
        req.validate()?;
        if req.wait_ms.is_some() {
            req.wait_ms = req.wait_ms.map(|w| w.min(self.shared.options.max_wait_ms));
            return self.call(|r| Command::Watch(req, r)).await;
        }
        let quick = {
            let state = self.shared.state.read().await;
            super::read::quick(&state, &req, &self.shared.reads)
        };
        match quick {
            Some(answer) => answer,
            None => super::read::long(self.shared.clone(), req).await,
        }
    }

    pub async fn group(&self, req: GroupRequest) -> Result<GroupResponse, MasterError> {
        let state = self.shared.state.read().await;
        state.group(&req)
    }

    /// The master's health, from memory: it never waits for the database.
    pub async fn health(&self) -> Result<Health, MasterError> {
        let db = self.shared.db.status();
        let reloading = !self.shared.healthy.load(Ordering::Acquire);
        let database = if db.is_unreachable() {
            "unreachable"
        } else if db.failing.is_some() {
            "failing"
        } else if reloading {
            "reloading"
        } else {
            "ok"
        };
        let state = self.shared.state.read().await;
        Ok(Health {
            status: if database == "ok" { "ok" } else { "degraded" }.into(),
            database: database.into(),
            database_trouble: db.trouble().map(|c| c.says().to_owned()),
            database_trouble_since: db.since,
            master: self.shared.name.clone(),
            storage: self.shared.storage_kind.into(),
            tokens: state.len(),
            last_version: state.last_version(),
            uptime_sec: self.shared.started.elapsed().as_secs(),
            parked_claims: self.shared.parked.load(Ordering::Relaxed),
            emails_waiting: state.count_prefix(&self.shared.options.naming.outbox_prefix),
            time: crate::clock::now(),
            role: "leader".into(),
            leader: self.shared.address.clone(),
            epoch: self.shared.epoch,
            standbys: self.shared.known_standbys(),
        })
    }

    /// The token names this master treats specially.
    pub fn naming(&self) -> &Naming {
        &self.shared.options.naming
    }

    /// Whether the master takes writes now: `Err` says why not (for `/ready`).
    pub fn ready(&self) -> Result<(), NotReady> {
        if self.lapsed() {
            return Err(NotReady::Lapsed);
        }
        if let Some(cause) = self.shared.db.status().trouble() {
            return Err(NotReady::Database(cause.says()));
        }
        if !self.shared.healthy.load(Ordering::Acquire) {
            return Err(NotReady::Reloading);
        }
        Ok(())
    }

    /// The master's name (`master_name`).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The epoch of the lease this master holds (`None`: it takes none).
    pub fn epoch(&self) -> Option<i64> {
        self.shared.epoch
    }

    /// Whether this master may hand its lease over now: its epoch and the standbys that may
    /// take it, or why not (CONTRACT §7.3).
    pub fn may_hand_over(&self) -> Result<(i64, Vec<String>), MasterError> {
        let why = |s: &str| {
            Err(MasterError::InputError(format!(
                "this master cannot hand over: {s}"
            )))
        };
        let Some(epoch) = self
            .shared
            .epoch
            .filter(|_| self.shared.options.may_hand_over)
        else {
            return why(
                "only a `-m master` process alone on MySQL/MariaDB or PostgreSQL can (stop it instead)",
            );
        };
        let standbys = self.shared.known_standbys();
        if standbys.is_empty() {
            return why(
                "no standby master waits to take the lease (start one first, or stop this master)",
            );
        }
        Ok((epoch, standbys))
    }

    /// Asks this master to stop serving and give its lease up, then stand by.
    pub fn hand_over(&self) {
        self.shared.handover.notify_one();
    }

    /// Waits until an operator asked this master to hand over.
    pub async fn handover_asked(&self) {
        self.shared.handover.notified().await;
    }

    /// Whether this master serves nothing now, its lease unrenewed past 0.7 of its length.
    pub fn lapsed(&self) -> bool {
        self.shared.lapsed.load(Ordering::Acquire)
    }

    /// Answers every parked claim (empty) and stops parking new ones: for a prompt shutdown.
    pub async fn close(&self) {
        let _ = self.tx.send(Command::Close).await;
    }
}
