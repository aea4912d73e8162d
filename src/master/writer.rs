//! The master's single writer: it drains what is queued into one batch, applies it to memory
//! under the write lock (recording an undo log), commits the batch in one database
//! transaction (group commit), and only then replies. Parked claims (`query_and_own` with
//! `wait_ms`) live here too: after every batch, and when a lease ends, the writer retries
//! them, so a claim is granted in the same commit as the insert that made a token claimable,
//! with no polling and no database work while waiting.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::pattern::Pattern;
use super::service::{Command, MAX_BATCH, MAX_RETRY_DELAY, Reply, Shared, build_state};
use super::state::{State, Txn};
use super::watch::Watches;
use crate::storage::{CommitBatch, Storage, StorageError, TokenRef};
use crate::token::MasterError;
use crate::token::*;

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

struct Parked {
    req: QueryAndOwnRequest,
    pattern: Pattern,
    deadline: Instant,
    /// The earliest lease end (seconds) among matching tokens: retry then.
    next_lease_end: Option<i64>,
    reply: Reply<QueryAndOwnResponse>,
}

/// What a caller is told when a batch could not be committed. The database's own words go to
/// the log (they can name hosts, files and tables), not to the client.
fn unavailable(e: &StorageError) -> MasterError {
    MasterError::Unavailable(match e {
        StorageError::CommitUnknown(_) => {
            "the outcome of this change is unknown: the database did \
             not confirm the commit; read the tokens again to see whether it applied (the master \
             reloads them from the database first)"
                .into()
        }
        _ => "the change was not committed: the database is unavailable".into(),
    })
}

/// Starts the writer task for `shared`, fed by `rx`; it stops when every sender is gone.
pub(super) fn spawn(shared: Arc<Shared>, storage: Box<dyn Storage>, rx: mpsc::Receiver<Command>) {
    let shared_budget = shared.options.max_answer_bytes;
    let writer = Writer {
        shared,
        storage,
        rx,
        parked: VecDeque::new(),
        watches: Watches::new(shared_budget),
        closing: false,
        retry_at: None,
        frozen: false,
    };
    tokio::spawn(writer.run());
}

struct Writer {
    shared: Arc<Shared>,
    storage: Box<dyn Storage>,
    rx: mpsc::Receiver<Command>,
    parked: VecDeque<Parked>,
    watches: Watches,
    closing: bool,
    /// When unhealthy: the next time to try reloading.
    retry_at: Option<(Instant, Duration)>,
    /// A commit failed and none has succeeded since: leases are kept from running out (their
    /// holders cannot renew them) until the database takes commits again.
    frozen: bool,
}

impl Writer {
    async fn run(mut self) {
        loop {
            let wake = self.next_wakeup();
            let first = tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => Some(cmd),
                    None => break,
                },
                _ = sleep_until(wake) => None,
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
            .chain([self.retry_at.map(|(t, _)| t), self.watches.next_deadline()])
            .flatten()
            .min()
    }

    async fn run_batch(&mut self, cmds: Vec<Command>) {
        let shared = self.shared.clone();
        let mut state = shared.state.write().await;
        if !self.shared.healthy.load(Ordering::Acquire) && !self.try_reload(&mut state).await {
            let err = MasterError::Unavailable(
                "the master cannot reach its database; try again shortly".into(),
            );
            for cmd in cmds {
                reject(cmd, &err);
            }
            return;
        }
        let now = crate::clock::now();
        if self.frozen {
            let o = &self.shared.options;
            state.extend_leases(&o.leased_prefix, now, o.lease_sec as i64);
        }
        let mut txn = Txn::default();
        let mut outcomes = self.apply(cmds, &mut state, &mut txn, now);
        self.retry_parked(&mut state, &mut txn, now, &mut outcomes);
        state.seal(&mut txn);
        if txn.is_empty() {
            outcomes.into_iter().for_each(|o| o.send(None));
            self.watches.expire(&state, self.closing);
            return;
        }
        let touched: Vec<Box<str>> = if self.watches.len() > 0 {
            txn.touched().map(Into::into).collect()
        } else {
            Vec::new()
        };
        if self.commit(&mut state, txn, outcomes).await {
            self.watches.wake(&state, &touched);
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
            match cmd {
                Command::Modify(req, reply) => {
                    outcomes.push(Outcome::Modify(reply, state.modify(&req, now, txn)))
                }
                Command::Watch(req, reply) => self.watches.add(state, req, reply),
                Command::Archive(req, reply) => {
                    let result = state.archive(&req, txn).map(|()| ArchiveResponse {});
                    outcomes.push(Outcome::Archive(reply, result));
                }
                Command::Claim(req, reply) => match state.claim(&req, now, txn) {
                    // A claim without a query claims nothing and has nothing to wait for.
                    Ok(claim)
                        if claim.tokens.is_empty()
                            && req.wait_ms.unwrap_or(0) > 0
                            && !self.closing
                            && let Some(query) = &req.query =>
                    {
                        let pattern =
                            Pattern::parse(&query.name_prefix).expect("validated before queueing");
                        let deadline =
                            Instant::now() + Duration::from_millis(req.wait_ms.unwrap_or(0));
                        self.parked.push_back(Parked {
                            req,
                            pattern,
                            deadline,
                            next_lease_end: claim.next_lease_end,
                            reply,
                        });
                    }
                    result => outcomes.push(Outcome::Claim(
                        reply,
                        result.map(|c| QueryAndOwnResponse { tokens: c.tokens }),
                    )),
                },
                Command::Audit(entry, reply) => {
                    txn.audit(entry);
                    outcomes.push(Outcome::Audit(reply));
                }
                Command::Close => self.closing = true,
            }
        }
        outcomes
    }

    /// Commits a sealed batch in one transaction, then answers its callers; a failed commit is
    /// undone in memory and every caller in the batch is told. Returns whether it committed.
    async fn commit(&mut self, state: &mut State, txn: Txn, outcomes: Vec<Outcome>) -> bool {
        let result = {
            let batch = commit_batch(state, &txn);
            self.storage.commit(&self.shared.name, &batch).await
        };
        match result {
            Ok(()) => {
                outcomes.into_iter().for_each(|o| o.send(None));
                if self.frozen {
                    self.frozen = false;
                    tracing::info!("the database takes commits again; leases run again");
                }
                true
            }
            Err(e) => {
                let err = unavailable(&e);
                tracing::error!(error = %e, requests = outcomes.len(), "database commit failed; the batch was rolled back in memory");
                state.rollback(txn);
                if !self.frozen {
                    self.frozen = true;
                    tracing::warn!("leases are held while the database takes no commits");
                }
                if matches!(e, StorageError::CommitUnknown(_)) {
                    // The database may hold the batch or not: reload before the next write.
                    self.shared.healthy.store(false, Ordering::Release);
                    self.retry_at = Some((Instant::now(), Duration::from_millis(100)));
                }
                outcomes.into_iter().for_each(|o| o.send(Some(&err)));
                false
            }
        }
    }

    /// Retries the parked claims that this batch (or the clock) may have satisfied, oldest first.
    fn retry_parked(
        &mut self,
        state: &mut State,
        txn: &mut Txn,
        now: i64,
        outcomes: &mut Vec<Outcome>,
    ) {
        if self.parked.is_empty() {
            return;
        }
        let touched: Vec<Box<str>> = txn.touched().map(Into::into).collect();
        let instant = Instant::now();
        let mut still = VecDeque::with_capacity(self.parked.len());
        while let Some(mut p) = self.parked.pop_front() {
            if p.reply.is_closed() {
                // The caller hung up (a stopped scheduler, a killed worker): granting it a
                // token would lease that token to nobody for the claim's whole lease.
                continue;
            }
            let mut due = self.closing || p.next_lease_end.is_some_and(|t| t <= now);
            for name in touched.iter().filter(|n| p.pattern.matches(n)) {
                match state.get(name) {
                    Some(e) if is_owned(e.owner.as_deref(), e.expiration_time, now) => {
                        if let Some(t) = e.expiration_time.filter(|t| *t != NEVER) {
                            p.next_lease_end = Some(p.next_lease_end.map_or(t, |n| n.min(t)));
                        }
                    }
                    Some(_) => due = true,
                    None => {}
                }
            }
            if due {
                match state.claim(&p.req, now, txn) {
                    Ok(claim)
                        if claim.tokens.is_empty() && !self.closing && p.deadline > instant =>
                    {
                        p.next_lease_end = claim.next_lease_end;
                    }
                    result => {
                        let result = result.map(|c| QueryAndOwnResponse { tokens: c.tokens });
                        outcomes.push(Outcome::Claim(p.reply, result));
                        continue;
                    }
                }
            }
            if p.deadline <= instant {
                outcomes.push(Outcome::Claim(p.reply, Ok(QueryAndOwnResponse::default())));
                continue;
            }
            still.push_back(p);
        }
        self.parked = still;
    }

    /// Reloads memory from the database after a commit with an unknown outcome. Returns whether
    /// the master is healthy again; otherwise schedules the next attempt with backoff.
    async fn try_reload(&mut self, state: &mut State) -> bool {
        let (at, delay) = self
            .retry_at
            .unwrap_or((Instant::now(), Duration::from_millis(100)));
        if Instant::now() < at {
            return false;
        }
        match self.storage.load_active(&self.shared.name).await {
            Ok(loaded) => {
                let patterns = state.indexed_patterns();
                let floor = state.last_version();
                let mut fresh = build_state(loaded);
                fresh.raise_version_floor(floor);
                fresh.rebuild_indexes(&patterns);
                // The database was away: its leases get their full length again.
                let o = &self.shared.options;
                fresh.extend_leases(&o.leased_prefix, crate::clock::now(), o.lease_sec as i64);
                *state = fresh;
                self.shared.healthy.store(true, Ordering::Release);
                self.retry_at = None;
                tracing::info!(
                    tokens = state.len(),
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

fn reject(cmd: Command, err: &MasterError) {
    // A caller that went away does not care about its reply.
    match cmd {
        Command::Modify(_, r) => drop(r.send(Err(err.clone()))),
        Command::Archive(_, r) => drop(r.send(Err(err.clone()))),
        Command::Claim(_, r) => drop(r.send(Err(err.clone()))),
        Command::Audit(_, r) => drop(r.send(Err(err.clone()))),
        Command::Watch(_, r) => drop(r.send(Err(err.clone()))),
        Command::Close => {}
    }
}

/// The rows a sealed batch writes: every touched name's current value (or its deletion).
fn commit_batch<'a>(state: &'a State, txn: &'a Txn) -> CommitBatch<'a> {
    let mut batch = CommitBatch {
        version_floor: state.last_version(),
        ..Default::default()
    };
    for name in txn.touched() {
        match state.get(name) {
            Some(e) => batch.upserts.push(TokenRef {
                name,
                version: e.version,
                owner: e.owner.as_deref(),
                expiration_time: e.expiration_time,
                priority: e.priority,
                data: e.data.as_deref(),
            }),
            None => batch.deletes.push(name),
        }
    }
    batch.archived = txn.archived().iter().map(TokenRef::from).collect();
    batch.audits = txn.audits().iter().collect();
    batch
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
