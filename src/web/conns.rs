//! Sharing a listener's connections fairly between strangers and the callers it knows. Every
//! connection starts as a stranger; the access check marks it trusted ([`trust`]) once one of
//! its requests carries valid credentials (an API token, a UI session; on an open listener,
//! any request that passed the check). Strangers may hold at most `max_connections` less a
//! reserve kept for trusted connections, and at most `per_address` of them may come from one
//! address; beyond either, and whenever every connection is taken, the oldest such stranger is
//! closed to make room. A new connection has [`GRACE`] to send its first request before it may
//! be closed so, however fast strangers come: so slow or idle unauthenticated sockets, however
//! many, never keep a worker, the UI or the command line from connecting. Used by
//! `http::serve` and the master's and the UI's access checks.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How long a new connection is safe from being closed to make room: time enough to send its
/// first request.
pub const GRACE: Duration = Duration::from_millis(250);

/// One connection's standing.
#[derive(Debug)]
pub struct Standing {
    addr: IpAddr,
    since: Instant,
    /// Requests being answered on it now (one at a time on HTTP/1).
    busy: AtomicUsize,
    /// When it last finished answering a request, in milliseconds after `since`.
    idle_since_ms: AtomicU64,
    trusted: AtomicBool,
    /// Told to close (it was the oldest stranger); counted no more.
    evicted: AtomicBool,
    /// Wakes the connection's task to close it.
    pub close: Notify,
}

impl Standing {
    pub fn is_trusted(&self) -> bool {
        self.trusted.load(Ordering::Relaxed)
    }

    fn is_stranger(&self) -> bool {
        !self.is_trusted() && !self.evicted.load(Ordering::Relaxed)
    }

    /// A stranger that is not being answered and has been idle (or silent since it came) for
    /// its grace: one that may be closed to make room. A request whose headers have arrived is
    /// never cut off, however long its answer takes.
    fn is_closable(&self, now: Instant) -> bool {
        let idle_since =
            self.since + Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
        self.is_stranger()
            && self.busy.load(Ordering::Relaxed) == 0
            && now.saturating_duration_since(idle_since) >= GRACE
    }

    /// Whether it may close now that it was told to: no request of its is being answered (if
    /// one is, it is a stranger no more to the eviction that chose it, and stays).
    pub fn spare(&self) -> bool {
        if self.busy.load(Ordering::Relaxed) == 0 {
            return true;
        }
        self.evicted.store(false, Ordering::Relaxed);
        false
    }

    /// A request's headers arrived: it is being answered.
    fn request_began(&self) {
        self.busy.fetch_add(1, Ordering::Relaxed);
    }

    /// Its answer is ready.
    fn request_ended(&self) {
        let ms = self.since.elapsed().as_millis() as u64;
        self.idle_since_ms.store(ms, Ordering::Relaxed);
        self.busy.fetch_sub(1, Ordering::Relaxed);
    }

    fn evict(&self) {
        self.evicted.store(true, Ordering::Relaxed);
        self.close.notify_one();
    }
}

/// A request being answered on a connection, from its headers to its answer (or until it is
/// dropped): the connection is not closed to make room meanwhile.
pub struct Answering(Arc<Standing>);

impl Answering {
    pub fn new(standing: Arc<Standing>) -> Answering {
        standing.request_began();
        Answering(standing)
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// Marks the connection carrying `extensions`' request as trusted.
pub fn trust(extensions: &axum::http::Extensions) {
    if let Some(s) = extensions.get::<Arc<Standing>>() {
        s.trusted.store(true, Ordering::Relaxed);
    }
}

/// A listener's open connections.
#[derive(Debug)]
pub struct Connections {
    open: Mutex<VecDeque<Arc<Standing>>>,
    /// Strangers at most, all addresses together.
    strangers: usize,
    /// Strangers at most from one address.
    per_address: usize,
}

impl Connections {
    pub fn new(strangers: usize, per_address: usize) -> Connections {
        Connections {
            open: Mutex::new(VecDeque::new()),
            strangers: strangers.max(1),
            per_address: per_address.max(1),
        }
    }

    /// Registers a connection from `addr`; closes the oldest strangers beyond the bounds.
    pub fn admit(&self, addr: IpAddr) -> Arc<Standing> {
        self.admit_at(addr, Instant::now())
    }

    fn admit_at(&self, addr: IpAddr, now: Instant) -> Arc<Standing> {
        let new = Arc::new(Standing {
            addr,
            since: now,
            busy: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            trusted: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            close: Notify::new(),
        });
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.push_back(new.clone());
        let from_here = open
            .iter()
            .filter(|s| s.is_stranger() && s.addr == addr)
            .count();
        if from_here > self.per_address
            && let Some(oldest) = open.iter().find(|s| s.is_closable(now) && s.addr == addr)
        {
            tracing::warn!(address = %addr, per_address = self.per_address, "closing the oldest unauthenticated connection of an address to admit a new one");
            oldest.evict();
        }
        let strangers = open.iter().filter(|s| s.is_stranger()).count();
        if strangers > self.strangers
            && let Some(oldest) = open.iter().find(|s| s.is_closable(now))
        {
            tracing::warn!(address = %oldest.addr, strangers = self.strangers, "closing the oldest unauthenticated connection to admit a new one");
            oldest.evict();
        }
        new
    }

    /// Every connection is taken: closes the oldest stranger past its grace, if there is one.
    pub fn make_room(&self) -> bool {
        let now = Instant::now();
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        match open.iter().find(|s| s.is_closable(now)) {
            Some(oldest) => {
                tracing::warn!(address = %oldest.addr, "every connection is taken: closing the oldest unauthenticated one");
                oldest.evict();
                true
            }
            None => false,
        }
    }

    /// Forgets a connection that ended.
    pub fn forget(&self, gone: &Arc<Standing>) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|s| !Arc::ptr_eq(s, gone));
    }

    #[cfg(test)]
    fn strangers(&self) -> usize {
        let open = self.open.lock().unwrap();
        open.iter().filter(|s| s.is_stranger()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Connections made `ago` (past their grace when more than [`GRACE`]).
    fn admitted(c: &Connections, addr: &str, ago: Duration) -> Arc<Standing> {
        c.admit_at(ip(addr), Instant::now() - ago)
    }

    const OLD: Duration = Duration::from_secs(5);

    #[test]
    fn strangers_beyond_an_address_s_share_close_its_oldest() {
        let c = Connections::new(100, 2);
        let first = admitted(&c, "10.0.0.1", OLD);
        let second = admitted(&c, "10.0.0.1", OLD);
        let _other = admitted(&c, "10.0.0.2", OLD);
        let third = c.admit(ip("10.0.0.1"));
        assert!(
            first.evicted.load(Ordering::Relaxed),
            "the oldest of that address"
        );
        assert!(!second.evicted.load(Ordering::Relaxed));
        assert!(!third.evicted.load(Ordering::Relaxed));
        assert_eq!(c.strangers(), 3);
    }

    #[test]
    fn trusted_connections_are_never_closed_to_admit_strangers() {
        let c = Connections::new(2, 100);
        let worker = admitted(&c, "10.0.0.1", OLD);
        trust_standing(&worker);
        let a = admitted(&c, "10.0.0.2", OLD);
        let b = admitted(&c, "10.0.0.3", OLD);
        let d = c.admit(ip("10.0.0.4"));
        assert!(!worker.evicted.load(Ordering::Relaxed));
        assert!(a.evicted.load(Ordering::Relaxed), "the oldest stranger");
        assert!(!b.evicted.load(Ordering::Relaxed) && !d.evicted.load(Ordering::Relaxed));
        c.forget(&a);
        assert_eq!(c.strangers(), 2);
    }

    #[test]
    fn a_request_being_answered_keeps_its_connection() {
        let c = Connections::new(1, 1);
        let slow_to_answer = admitted(&c, "10.0.0.1", OLD);
        let answering = Answering::new(slow_to_answer.clone());
        let _silent = admitted(&c, "10.0.0.2", OLD);
        assert!(c.make_room());
        assert!(!slow_to_answer.evicted.load(Ordering::Relaxed));
        drop(answering);
        assert!(
            !slow_to_answer.is_closable(Instant::now()),
            "idle for less than its grace"
        );
    }

    #[test]
    fn a_new_connection_has_its_grace_to_send_a_request() {
        let c = Connections::new(1, 1);
        let fresh = c.admit(ip("10.0.0.1"));
        let newer = c.admit(ip("10.0.0.1"));
        assert!(!fresh.evicted.load(Ordering::Relaxed), "within its grace");
        assert!(!c.make_room(), "nobody past the grace to close");
        let old = admitted(&c, "10.0.0.2", OLD);
        assert!(c.make_room());
        assert!(old.evicted.load(Ordering::Relaxed));
        assert!(!newer.evicted.load(Ordering::Relaxed));
    }

    fn trust_standing(s: &Arc<Standing>) {
        let mut ext = axum::http::Extensions::new();
        ext.insert(s.clone());
        trust(&ext);
        assert!(s.is_trusted());
    }
}
