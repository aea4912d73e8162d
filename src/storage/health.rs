//! What a process knows about its database, kept apart from everything that waits for it, so
//! health checks, `/ready` and the master's writer read it at once. A monitor task pings the
//! database every [`PING_EVERY`] with a bound of [`PING_WITHIN`], so an outage shows within a
//! second; the master's writer also records whether its commits land. The UI uses the same
//! watch to answer 503 at once while the database is unreachable.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::watch;

use super::{Cause, TokenStore};

/// How often the monitor pings the database.
const PING_EVERY: Duration = Duration::from_millis(100);
/// How long a ping may take before the database counts as not answering.
const PING_WITHIN: Duration = Duration::from_millis(700);

/// The database as the master last saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DbStatus {
    /// Why the last ping failed (`None`: it answered).
    pub unreachable: Option<Cause>,
    /// Why the last commit failed, when none has landed since.
    pub failing: Option<Cause>,
    /// When the current trouble began (seconds since the epoch).
    pub since: Option<f64>,
}

impl DbStatus {
    /// The trouble, in the words a caller is told, or `None` when the database is fine.
    pub fn trouble(&self) -> Option<Cause> {
        self.unreachable.or(self.failing)
    }

    /// Whether the database cannot be reached (its ping, or a commit, failed on the
    /// connection).
    pub fn is_unreachable(&self) -> bool {
        self.unreachable.is_some() || self.failing.is_some_and(Cause::is_connection)
    }
}

/// Shared between the monitor, the writer and the readers.
pub struct DbWatch {
    status: Mutex<DbStatus>,
    /// Whether the last ping answered: the writer waits on it to retry at once.
    reachable: watch::Sender<bool>,
}

impl Default for DbWatch {
    fn default() -> Self {
        Self::new()
    }
}

impl DbWatch {
    pub fn new() -> Self {
        DbWatch {
            status: Mutex::new(DbStatus::default()),
            reachable: watch::channel(true).0,
        }
    }

    pub fn status(&self) -> DbStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.reachable.subscribe()
    }

    fn update(&self, change: impl FnOnce(&mut DbStatus)) {
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let was = s.trouble();
        change(&mut s);
        match (was, s.trouble()) {
            (None, Some(cause)) => {
                s.since = Some(crate::clock::now_f64());
                tracing::error!(%cause, "the database is in trouble");
            }
            (Some(_), None) => {
                s.since = None;
                tracing::info!("the database answers again");
            }
            (Some(a), Some(b)) if a != b => {
                tracing::warn!(was = %a, now = %b, "the database's trouble changed")
            }
            _ => {}
        }
        let reachable = s.unreachable.is_none();
        drop(s);
        self.reachable
            .send_if_modified(|r| std::mem::replace(r, reachable) != reachable);
    }

    /// Records a commit's outcome (`None`: it landed).
    pub fn commit_result(&self, failure: Option<Cause>) {
        self.update(|s| s.failing = failure);
    }

    fn ping_result(&self, failure: Option<Cause>) {
        self.update(|s| {
            s.unreachable = failure;
            // A commit that failed on a broken connection says nothing once pings answer.
            if failure.is_none() && s.failing.is_some_and(Cause::is_connection) {
                s.failing = None;
            }
        });
    }
}

/// Pings the database until `watch` is dropped by everyone else.
pub fn spawn_monitor(watch: Weak<DbWatch>, storage: Arc<dyn TokenStore>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PING_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let result = tokio::time::timeout(PING_WITHIN, storage.ping()).await;
            let Some(watch) = watch.upgrade() else { break };
            watch.ping_result(match result {
                Ok(Ok(())) => None,
                Ok(Err(e)) => {
                    let cause = e.cause().unwrap_or(Cause::Unreachable);
                    if watch.status().unreachable.is_none() {
                        tracing::warn!(error = %e, "the database does not answer its ping");
                    }
                    // A server that answers with an error (a full disk) is still reachable;
                    // commits say what they meet.
                    cause.is_connection().then_some(cause)
                }
                Err(_) => Some(Cause::Timeout),
            });
        }
    });
}
