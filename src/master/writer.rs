//! The master's single writer: it drains what is queued into one batch, applies it to memory
//! under the write lock (recording an undo log), commits the batch in one database
//! transaction (group commit), and only then replies. Parked claims (`query_and_own` with
//! `wait_ms`) live here too: after every batch, and when a lease ends, the writer retries
//! them, so a claim is granted in the same commit as the insert that made a token claimable,
//! with no polling and no database work while waiting.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::pattern::Pattern;
use super::requests::{self, Answer, RequestKey, Requests, Seen};
use super::service::{Command, Key, MAX_BATCH, MAX_RETRY_DELAY, Reply, Shared, build_state};
use super::state::{Pending, State, Txn};
use super::watch::Watches;
use crate::storage::GroupOf;
use crate::storage::{Cause, CommitBatch, RequestOutcome, StorageError, TokenRef, TokenStore};
use crate::token::MasterError;
use crate::token::*;

mod commit;
mod keyed;
mod parked;

use keyed::{Check, Keyed, reject, reject_writes, replay};
use parked::Parked;

/// A reply computed in a batch, sent once the batch is committed (or failed).
enum Outcome {
    Modify(Reply<ModifyResponse>, Result<ModifyResponse, MasterError>),
    Archive(Reply<ArchiveResponse>, Result<ArchiveResponse, MasterError>),
    Claim(
        Reply<QueryAndOwnResponse>,
        Result<QueryAndOwnResponse, MasterError>,
    ),
    Audit(Reply<AuditResponse>),
}

impl Outcome {
    fn send(self, failure: Option<&MasterError>) {
        // A caller that went away does not care about its reply.
        match self {
            Outcome::Modify(tx, r) => drop(tx.send(failure.map_or(r, |e| Err(e.clone())))),
            Outcome::Archive(tx, r) => drop(tx.send(failure.map_or(r, |e| Err(e.clone())))),
            Outcome::Claim(tx, r) => drop(tx.send(failure.map_or(r, |e| Err(e.clone())))),
            Outcome::Audit(tx) => {
                drop(tx.send(failure.map_or(Ok(AuditResponse {}), |e| Err(e.clone()))))
            }
        }
    }
}

/// What a caller is told when a batch could not be committed. The database's own words go to
/// the log (they can name hosts, files and tables), not to the client.
fn unavailable(e: &StorageError) -> MasterError {
    if let StorageError::Deposed(why) = e {
        return MasterError::Unavailable(format!("the change was not committed: {why}"));
    }
    let cause = e.cause().unwrap_or(Cause::Refused);
    MasterError::Held(match e {
        StorageError::CommitUnknown { .. } => format!(
            "the outcome of this change is unknown: {cause} and the database did not confirm \
             the commit; read the tokens again to see whether it applied (the master reloads \
             them from the database first)"
        ),
        _ => format!("the change was not committed: {cause}"),
    })
}

/// What a write is told while the monitor finds the database unreachable.
fn refused_while(cause: Cause) -> MasterError {
    MasterError::Held(format!(
        "the change was not committed: {cause}; the master serves reads from memory and takes \
         writes again as soon as the database answers"
    ))
}

/// A commit that takes longer than this counts as lost (its outcome unknown).
const COMMIT_WITHIN: Duration = Duration::from_secs(20);

/// Starts the writer task for `shared`, fed by `rx`; it stops when every sender is gone.
pub(super) fn spawn(
    shared: Arc<Shared>,
    storage: Arc<dyn TokenStore>,
    rx: mpsc::Receiver<Command>,
    requests: Requests,
) {
    let runnable = Pattern::parse(&shared.options.naming.followed_claims)
        .expect("the followed claim pattern is valid");
    let writer = Writer {
        requests,
        keyed: Keyed::default(),
        deferred: Vec::new(),
        forgot_at: Instant::now(),
        watches: Watches::new(shared.clone()),
        reachable: shared.db.subscribe(),
        shared,
        storage,
        rx,
        parked: VecDeque::new(),
        closing: false,
        retry_at: None,
        frozen: false,
        full: false,
        runnable_since: HashMap::new(),
        runnable,
    };
    tokio::spawn(writer.run());
}

struct Writer {
    /// The outcomes of committed keyed writes.
    requests: Requests,
    keyed: Keyed,
    /// Replays whose original is in the batch being committed: applied in the next one.
    deferred: Vec<Command>,
    /// When outcomes older than their window were last deleted from the database.
    forgot_at: Instant,
    shared: Arc<Shared>,
    storage: Arc<dyn TokenStore>,
    /// Whether the database answers its pings (the monitor's view).
    reachable: watch::Receiver<bool>,
    rx: mpsc::Receiver<Command>,
    parked: VecDeque<Parked>,
    watches: Watches,
    closing: bool,
    /// When unhealthy: the next time to try reloading.
    retry_at: Option<(Instant, Duration)>,
    /// A commit failed, or writes were refused for an unreachable database, and none has
    /// succeeded since: leases are kept from running out (their holders cannot renew them)
    /// until the database takes commits again.
    frozen: bool,
    /// Whether every connection was taken lately (leases are held meanwhile).
    full: bool,
    /// When each runnable job no worker holds was committed, for the job-to-job metric.
    runnable_since: HashMap<Box<str>, Instant>,
    /// What workers claim: the runnable jobs of every instance.
    runnable: Pattern,
}

/// How long after every connection was taken leases are still held.
const FULL_HOLDS: Duration = Duration::from_secs(2);

/// How often outcomes older than their window are deleted from the database.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// How often a writer whose last commit failed tries one of its own.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// The most runnable jobs whose start the job-to-job metric follows at once.
const MAX_FOLLOWED: usize = 100_000;

impl Writer {
    async fn run(mut self) {
        loop {
            let wake = self.next_wakeup();
            let reload_pending = !self.shared.healthy.load(Ordering::Acquire);
            let first = tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => Some(cmd),
                    None => break,
                },
                _ = sleep_until(wake) => None,
                // The database answers again: reload now rather than at the next backoff.
                Ok(()) = self.reachable.changed(), if reload_pending => {
                    self.retry_at = None;
                    None
                }
            };
            let mut cmds: Vec<Command> = first.into_iter().collect();
            while cmds.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(cmd) => cmds.push(cmd),
                    Err(_) => break,
                }
            }
            self.run_batch(cmds).await;
            self.shared
                .parked
                .store(self.parked.len(), Ordering::Relaxed);
            metrics::gauge!(crate::metrics::PARKED).set(self.parked.len() as f64);
        }
        for p in self.parked.drain(..) {
            let _ = p.reply.send(Ok(QueryAndOwnResponse::default()));
        }
        tracing::info!(master = %self.shared.name, "master writer stopped");
    }

    /// The earliest of: a parked claim's deadline, a lease end that may free a token for a
    /// parked claim, and the next reload attempt.
    fn next_wakeup(&self) -> Option<Instant> {
        let now = Instant::now();
        let now_ms = crate::clock::now_ms();
        let lease = |secs: i64| {
            now + Duration::from_millis((secs * 1000 - now_ms).clamp(0, 86_400_000) as u64 + 1)
        };
        self.parked
            .iter()
            .flat_map(|p| [Some(p.deadline), p.next_lease_end.map(lease)])
            .chain([
                self.retry_at.map(|(t, _)| t),
                self.watches.next_deadline(),
                self.probe_due().then(|| now + PROBE_EVERY),
                (!self.deferred.is_empty()).then_some(now),
            ])
            .flatten()
            .min()
    }

    /// Whether the last commit failed on a database that still answers (a full disk, a
    /// read-only file): the writer then commits a probe of its own every [`PROBE_EVERY`], so
    /// `/ready` turns 200 once the database takes commits again, with no client writing.
    fn probe_due(&self) -> bool {
        let db = self.shared.db.status();
        db.failing.is_some() && !db.is_unreachable()
    }

    /// Takes what was deferred first, then refuses the writes that cannot be committed now
    /// (deposed, database unreachable, reloading). Returns the commands to apply and, when
    /// the database does not answer, why; `None` when nothing may be applied at all.
    async fn admit(&mut self, mut cmds: Vec<Command>) -> Option<(Vec<Command>, Option<Cause>)> {
        if !self.deferred.is_empty() {
            let mut all = std::mem::take(&mut self.deferred);
            all.append(&mut cmds);
            cmds = all;
        }
        self.keyed.clear();
        // Unreachable by the monitor's ping, or by a commit that failed on its connection
        // (the ping may not have noticed yet): no write waits for a pool timeout then.
        let db = self.shared.db.status();
        let trouble = db.is_unreachable().then(|| db.trouble()).flatten();
        if let Some(why) = self.shared.deposed() {
            let err = MasterError::Unavailable(format!("the change was not committed: {why}"));
            for p in self.parked.drain(..) {
                let _ = p.reply.send(Err(err.clone()));
            }
            reject_writes(cmds, &err);
            return None;
        }
        let cmds = match trouble {
            // Writes fail at once while the database does not answer; watches and the
            // shutdown need no database.
            Some(cause) => reject_writes(cmds, &refused_while(cause)),
            None if !self.shared.healthy.load(Ordering::Acquire) && !self.try_reload().await => {
                let err = MasterError::Held(
                    "the change was not committed: the master is reloading its tokens from the \
                     database; try again shortly"
                        .into(),
                );
                reject_writes(cmds, &err)
            }
            None => cmds,
        };
        if let Some(cause) = trouble {
            // Writes refused for an unreachable database are commits that cannot happen: the
            // holders cannot renew their leases, so the leases are held as after a failed
            // commit (a lease otherwise ran out in memory during the outage, and the first
            // claim after it took a job whose worker was only waiting to commit its end).
            if !self.frozen {
                self.frozen = true;
                tracing::warn!("leases are held while the database takes no commits");
            }
            // Parked claims cannot be granted without the database: their callers back off.
            let err = refused_while(cause);
            for p in self.parked.drain(..) {
                let _ = p.reply.send(Err(err.clone()));
            }
        }
        Some((cmds, trouble))
    }

    async fn run_batch(&mut self, cmds: Vec<Command>) {
        let Some((cmds, trouble)) = self.admit(cmds).await else {
            return;
        };
        let shared = self.shared.clone();
        let mut state = shared.state.write().await;
        let now = crate::clock::now();
        self.hold_leases(&mut state, trouble.is_none(), now);
        let version_before = state.last_version();
        let mut txn = Txn::default();
        let mut outcomes = self.apply(cmds, &mut state, &mut txn, now);
        if trouble.is_none() {
            self.retry_parked(&mut state, &mut txn, now, &mut outcomes);
        }
        if txn.is_empty() && self.probe_due() {
            state.probe(&mut txn);
        }
        state.seal(&mut txn);
        if txn.is_empty() {
            // Keyed writes that changed nothing have nothing to replay.
            self.keyed.clear();
            outcomes.into_iter().for_each(|o| o.send(None));
            self.watches.expire(&state, self.closing);
            return;
        }
        // Readers keep seeing the committed state while the batch goes to the database: the
        // state lock is never held across database work.
        let pending = state.detach(txn, version_before);
        drop(state);
        self.finish(pending, outcomes, now).await;
    }

    /// Gives leases their full length again while they cannot be renewed: after the database
    /// took no commits, and while every connection of the master is taken.
    fn hold_leases(&mut self, state: &mut State, reachable: bool, now: i64) {
        // Every connection taken within the last moments: a renewal may be waiting in the
        // kernel's backlog, so no lease runs out meanwhile (as when the database is away).
        let full = crate::clock::now_ms() - self.shared.full_at_ms.load(Ordering::Relaxed)
            < FULL_HOLDS.as_millis() as i64;
        if full != self.full {
            self.full = full;
            match full {
                true => tracing::warn!(
                    "every connection of the master is taken: leases are held until some are free"
                ),
                false => {
                    tracing::info!("the master's connections are free again; leases run again")
                }
            }
        }
        if (self.frozen && reachable) || full {
            let o = &self.shared.options;
            state.extend_leases(&o.naming.leased_prefix, now, o.lease_sec as i64);
        }
    }

    /// Commits a detached batch, then applies it to memory and answers (or undoes it and
    /// answers the failure).
    async fn finish(&mut self, pending: Pending, outcomes: Vec<Outcome>, now: i64) {
        let shared = self.shared.clone();
        let result = self.commit(&pending).await;
        let mut state = shared.state.write().await;
        match result {
            Ok(()) => {
                let touched: Vec<Box<str>> = if self.watches.len() > 0 {
                    pending.rows().map(|(n, _)| n.into()).collect()
                } else {
                    Vec::new()
                };
                self.follow_runnable(&pending);
                if !pending.archived().is_empty() {
                    self.shared.archived.send_modify(|n| *n += 1);
                }
                self.keep_outcomes(now);
                state.redo(pending);
                record_state(&state, &self.shared.options.naming);
                outcomes.into_iter().for_each(|o| o.send(None));
                self.watches.wake(&state, &touched);
            }
            Err(e) => {
                if matches!(e, StorageError::CommitUnknown { .. }) {
                    state.discard_unknown(&pending);
                } else {
                    state.discard(&pending);
                }
                let err = unavailable(&e);
                outcomes.into_iter().for_each(|o| o.send(Some(&err)));
            }
        }
        self.watches.expire(&state, self.closing);
    }

    /// Applies each request to memory, recording the changes in `txn`; a claim that finds
    /// nothing and may wait is parked instead of answered.
    fn apply(
        &mut self,
        cmds: Vec<Command>,
        state: &mut State,
        txn: &mut Txn,
        now: i64,
    ) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            let check = match &cmd {
                Command::Modify(_, _, key, _)
                | Command::Archive(_, key, _)
                | Command::Claim(_, key, _)
                | Command::Audit(_, key, _) => self.check(key),
                Command::Watch(..) | Command::Close => Check::Apply,
            };
            let cmd = match check {
                Check::Apply => cmd,
                Check::Defer => {
                    self.deferred.push(cmd);
                    continue;
                }
                Check::Replay(answer) => {
                    outcomes.push(replay(cmd, &answer, state));
                    continue;
                }
                Check::Refuse(e) => {
                    reject(cmd, &e);
                    continue;
                }
            };
            match cmd {
                Command::Modify(req, logs, key, reply) => {
                    let result = state.modify(&req, now, txn);
                    if let Ok(r) = &result {
                        // The run's last log bytes land with its end, or not at all.
                        txn.add_logs(logs);
                        self.keyed.applied(&key, Answer::of_modify(r), now);
                    }
                    outcomes.push(Outcome::Modify(reply, result))
                }
                Command::Watch(req, reply) => self.watches.add(state, req, reply),
                Command::Archive(req, key, reply) => {
                    let result = state.archive(&req, txn).map(|()| ArchiveResponse {});
                    if result.is_ok() {
                        self.keyed.applied(&key, Answer::Empty, now);
                    }
                    outcomes.push(Outcome::Archive(reply, result));
                }
                Command::Claim(req, key, reply) => {
                    if let Some(o) = self.claim_or_park(req, key, reply, state, txn, now) {
                        outcomes.push(o);
                    }
                }
                Command::Audit(entry, key, reply) => {
                    txn.audit(entry);
                    self.keyed.applied(&key, Answer::Empty, now);
                    outcomes.push(Outcome::Audit(reply));
                }
                Command::Close => self.closing = true,
            }
        }
        outcomes
    }

    /// Reloads memory from the database after a commit with an unknown outcome. Returns whether
    /// the master is healthy again; otherwise schedules the next attempt with backoff. The
    /// tokens are read and indexed without the state lock (only the writer changes the state,
    /// and it is here), and swapped in at the end.
    async fn try_reload(&mut self) -> bool {
        let (at, delay) = self
            .retry_at
            .unwrap_or((Instant::now(), Duration::from_millis(100)));
        if Instant::now() < at {
            return false;
        }
        let since = crate::clock::now() - requests::WINDOW_SEC;
        let loaded = match self.storage.load_active(&self.shared.name).await {
            Ok(loaded) => match self
                .storage
                .request_outcomes(&self.shared.name, since)
                .await
            {
                Ok(outcomes) => Ok((loaded, outcomes)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match loaded {
            Ok((loaded, outcomes)) => {
                // What the database holds answers replays: a write whose commit was unknown
                // is known now, one way or the other.
                self.requests = Requests::load(outcomes);
                let (patterns, floor) = {
                    let state = self.shared.state.read().await;
                    (state.indexed_patterns(), state.last_version())
                };
                let mut fresh = build_state(loaded, &self.shared.options);
                fresh.raise_version_floor(floor);
                fresh.rebuild_indexes(&patterns);
                // The database was away: its leases get their full length again.
                let o = &self.shared.options;
                fresh.extend_leases(
                    &o.naming.leased_prefix,
                    crate::clock::now(),
                    o.lease_sec as i64,
                );
                let tokens = fresh.len();
                *self.shared.state.write().await = fresh;
                self.shared.healthy.store(true, Ordering::Release);
                self.shared.db.commit_result(None);
                self.retry_at = None;
                tracing::info!(
                    tokens,
                    "master reloaded its tokens from the database and accepts writes again"
                );
                true
            }
            Err(e) => {
                let next = (delay * 2).min(MAX_RETRY_DELAY);
                tracing::warn!(error = %e, retry_in_ms = next.as_millis() as u64, "database still unavailable; master cannot reload yet");
                self.retry_at = Some((Instant::now() + next, next));
                false
            }
        }
    }
}

/// The gauges of what memory holds, after a batch.
fn record_state(state: &State, naming: &super::Naming) {
    let followed = naming.followed_claims.as_str();
    metrics::gauge!(crate::metrics::TOKENS).set(state.len() as f64);
    metrics::gauge!(crate::metrics::QUEUED_RUNS)
        .set(state.count_prefix(&naming.queue_prefix) as f64);
    if let Some((waiting, held)) = state.claim_counts(followed) {
        metrics::gauge!(crate::metrics::JOBS_RUNNABLE).set(waiting as f64);
        metrics::gauge!(crate::metrics::JOBS_RUNNING).set(held as f64);
    }
    // Pools with slots: the operator's pool tokens, a closed set of labels.
    for (pool, u) in state.limited_pools(followed) {
        let slots = u.slots.unwrap_or(0) as f64;
        metrics::gauge!(crate::metrics::POOL_SLOTS, "pool" => pool.clone()).set(slots);
        metrics::gauge!(crate::metrics::POOL_SLOTS_USED, "pool" => pool.clone()).set(u.used as f64);
        metrics::gauge!(crate::metrics::POOL_WAITING, "pool" => pool).set(u.waiting as f64);
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
