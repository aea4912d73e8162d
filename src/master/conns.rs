//! Sharing a listener's connections fairly between strangers and the callers it knows. Every
//! connection starts as a stranger; the access check marks it trusted ([`trust`]) once one of
//! its requests carries valid credentials (an API token, a UI session; on an open listener,
//! any request that passed the check). Strangers may hold at most `max_connections` less a
//! reserve kept for trusted connections, and at most `per_address` of them may come from one
//! address; beyond either, the oldest such stranger is closed to admit the newcomer. So slow
//! or idle unauthenticated sockets, however many, never keep a worker, the UI or the command
//! line from connecting: a real client sends its request at once and is trusted before it is
//! the oldest stranger. Used by `http::serve` and the master's and the UI's access checks.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// One connection's standing.
#[derive(Debug)]
pub struct Standing {
    addr: IpAddr,
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

    fn evict(&self) {
        self.evicted.store(true, Ordering::Relaxed);
        self.close.notify_one();
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
        let new = Arc::new(Standing {
            addr,
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
            && let Some(oldest) = open.iter().find(|s| s.is_stranger() && s.addr == addr)
        {
            tracing::warn!(address = %addr, per_address = self.per_address, "closing the oldest unauthenticated connection of an address to admit a new one");
            oldest.evict();
        }
        let strangers = open.iter().filter(|s| s.is_stranger()).count();
        if strangers > self.strangers
            && let Some(oldest) = open.iter().find(|s| s.is_stranger())
        {
            tracing::warn!(address = %oldest.addr, strangers = self.strangers, "closing the oldest unauthenticated connection to admit a new one");
            oldest.evict();
        }
        new
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

    #[test]
    fn strangers_beyond_an_address_s_share_close_its_oldest() {
        let c = Connections::new(100, 2);
        let first = c.admit(ip("10.0.0.1"));
        let second = c.admit(ip("10.0.0.1"));
        let _other = c.admit(ip("10.0.0.2"));
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
        let worker = c.admit(ip("10.0.0.1"));
        trust_standing(&worker);
        let a = c.admit(ip("10.0.0.2"));
        let b = c.admit(ip("10.0.0.3"));
        let d = c.admit(ip("10.0.0.4"));
        assert!(!worker.evicted.load(Ordering::Relaxed));
        assert!(a.evicted.load(Ordering::Relaxed), "the oldest stranger");
        assert!(!b.evicted.load(Ordering::Relaxed) && !d.evicted.load(Ordering::Relaxed));
        c.forget(&a);
        assert_eq!(c.strangers(), 2);
    }

    fn trust_standing(s: &Arc<Standing>) {
        let mut ext = axum::http::Extensions::new();
        ext.insert(s.clone());
        trust(&ext);
        assert!(s.is_trusted());
    }
}
