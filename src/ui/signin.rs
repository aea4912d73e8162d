//! Bounds on signing in to the UI: password checks on a dedicated pool of threads fed by short
//! queues, and backoff per source address and per user after repeated failures. Called by
//! `auth::login` only.
//!
//! Why a pool of our own rather than `spawn_blocking` behind a semaphore: an argon2 check takes
//! ~19 MiB and tens of milliseconds, and a request that times out drops its future (and with it
//! any permit it held) while the blocking check runs on. Here the slot *is* the thread: at most
//! [`THREADS`] checks run and at most the queues' length wait, whatever happens to the requests
//! that asked, so memory stays flat under any flood. A sign-in that finds its queue full is
//! refused at once (429). Checks for configured user names have a lane of their own, served
//! first, so a flood of made-up names cannot keep a real user out (a flood naming a real user
//! locks that user, which is the point of the per-user backoff).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::config::access::verify_password;

/// Threads checking passwords (2 cores here: one leaves the other to the master and pages).
const THREADS: usize = 1;
/// Checks waiting for known user names, and for unknown ones.
const KNOWN_QUEUE: usize = 4;
const UNKNOWN_QUEUE: usize = 8;

/// Failures counted within this window.
const WINDOW: Duration = Duration::from_secs(5 * 60);
/// Failures (within [`WINDOW`]) before the first lockout.
const FREE_FAILURES: usize = 5;
/// The first lockout; each further failure doubles it, up to [`MAX_LOCK`].
const FIRST_LOCK: Duration = Duration::from_secs(1);
const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// Source addresses tracked at once; beyond it the oldest records are forgotten.
const MAX_ADDRESSES: usize = 10_000;

/// Why a sign-in was not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failures lately, from this address or for this user: retry after this long.
    Locked(Duration),
    /// The check queue is full: retry in a moment.
    Busy,
}

struct Check {
    password: String,
    hash: String,
    answer: oneshot::Sender<bool>,
}

#[derive(Default)]
struct Lanes {
    known: VecDeque<Check>,
    unknown: VecDeque<Check>,
    closed: bool,
}

struct Pool {
    lanes: Mutex<Lanes>,
    ready: Condvar,
}

/// The password-checking threads. Dropping it lets them finish what is queued and end.
pub struct Verifier {
    pool: Arc<Pool>,
}

impl Verifier {
    pub fn new() -> Verifier {
        let pool = Arc::new(Pool {
            lanes: Mutex::new(Lanes::default()),
            ready: Condvar::new(),
        });
        for n in 0..THREADS {
            let pool = pool.clone();
            std::thread::Builder::new()
                .name(format!("ui-password-{n}"))
                .spawn(move || pool.work())
                .expect("start a password-checking thread");
        }
        Verifier { pool }
    }

    /// Queues a check of `password` against `hash`; the answer comes on the receiver. `known`
    /// says whether the user name is configured (its lane is served first).
    pub fn submit(
        &self,
        password: &str,
        hash: &str,
        known: bool,
    ) -> Result<oneshot::Receiver<bool>, Refusal> {
        let (tx, rx) = oneshot::channel();
        let check = Check {
            password: password.to_owned(),
            hash: hash.to_owned(),
            answer: tx,
        };
        let mut lanes = self.pool.lanes.lock().unwrap_or_else(|e| e.into_inner());
        let (lane, cap) = if known {
            (&mut lanes.known, KNOWN_QUEUE)
        } else {
            (&mut lanes.unknown, UNKNOWN_QUEUE)
        };
        if lane.len() >= cap {
            return Err(Refusal::Busy);
        }
        lane.push_back(check);
        drop(lanes);
        self.pool.ready.notify_one();
        Ok(rx)
    }
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier::new()
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        self.pool
            .lanes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .closed = true;
        self.pool.ready.notify_all();
    }
}

impl Pool {
    fn work(&self) {
        loop {
            let check = {
                let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(c) = lanes
                        .known
                        .pop_front()
                        .or_else(|| lanes.unknown.pop_front())
                    {
                        break c;
                    }
                    if lanes.closed {
                        return;
                    }
                    lanes = self.ready.wait(lanes).unwrap_or_else(|e| e.into_inner());
                }
            };
            // Nobody waits for this answer any more (the request ended): skip the work.
            if check.answer.is_closed() {
                continue;
            }
            let matches = verify_password(&check.password, &check.hash);
            let _ = check.answer.send(matches);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// An IPv4 address, or an IPv6 address's /64 (one host usually holds a whole /64).
    Address(IpAddr),
    /// A configured user name (unknown names are not tracked: the map stays bounded).
    User(String),
}

#[derive(Debug, Default)]
struct Record {
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

impl Record {
    fn prune(&mut self, now: Instant) {
        while self
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > WINDOW)
        {
            self.failures.pop_front();
        }
        if self.locked_until.is_some_and(|u| u <= now) {
            self.locked_until = None;
        }
    }

    fn is_idle(&self) -> bool {
        self.failures.is_empty() && self.locked_until.is_none()
    }
}

/// What happened on a failed sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// The lockout that this failure started, if it started one.
    pub locked_for: Option<Duration>,
}

/// Failed sign-ins lately, per source address and per configured user.
#[derive(Default)]
pub struct Throttle {
    records: Mutex<HashMap<Key, Record>>,
}

/// The key of a source address: IPv4 (or IPv4-mapped IPv6) as is, IPv6 by its /64.
fn address_key(addr: IpAddr) -> Key {
    match addr {
        IpAddr::V4(_) => Key::Address(addr),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Key::Address(IpAddr::V4(v4)),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                Key::Address(IpAddr::V6(s.into()))
            }
        },
    }
}

impl Throttle {
    /// How long a sign-in from `addr` for `user` must still wait, if it must.
    pub fn locked(&self, addr: IpAddr, user: Option<&str>, now: Instant) -> Option<Duration> {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let keys = [
            Some(address_key(addr)),
            user.map(|u| Key::User(u.to_owned())),
        ];
        keys.into_iter()
            .flatten()
            .filter_map(|k| {
                let r = records.get_mut(&k)?;
                r.prune(now);
                r.locked_until.map(|u| u.duration_since(now))
            })
            .max()
    }

    /// Records a failed sign-in; a lockout starts from the [`FREE_FAILURES`]th failure on.
    pub fn failed(&self, addr: IpAddr, user: Option<&str>, now: Instant) -> Failure {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if records.len() >= MAX_ADDRESSES {
            forget_some(&mut records, now);
        }
        let mut locked_for = None;
        for key in [
            Some(address_key(addr)),
            user.map(|u| Key::User(u.to_owned())),
        ]
        .into_iter()
        .flatten()
        {
            let r = records.entry(key).or_default();
            r.prune(now);
            r.failures.push_back(now);
            if r.failures.len() >= FREE_FAILURES {
                let doublings = u32::try_from(r.failures.len() - FREE_FAILURES).unwrap_or(u32::MAX);
                let lock = FIRST_LOCK
                    .checked_mul(2u32.saturating_pow(doublings))
                    .unwrap_or(MAX_LOCK)
                    .min(MAX_LOCK);
                r.locked_until = Some(now + lock);
                locked_for = locked_for.max(Some(lock));
            }
        }
        Failure { locked_for }
    }

    /// A user signed in: their own failures are forgotten (the address's are kept).
    pub fn succeeded(&self, user: &str) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.remove(&Key::User(user.to_owned()));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.records.lock().unwrap().len()
    }
}

/// Makes room: drops idle records, then, if the map is still full, the records whose last
/// failure is oldest, down to three quarters of the bound.
fn forget_some(records: &mut HashMap<Key, Record>, now: Instant) {
    records.retain(|_, r| {
        r.prune(now);
        !r.is_idle()
    });
    if records.len() < MAX_ADDRESSES {
        return;
    }
    let mut last: Vec<(Instant, Key)> = records
        .iter()
        .filter(|(k, _)| matches!(k, Key::Address(_)))
        .map(|(k, r)| (r.failures.back().copied().unwrap_or(now), k.clone()))
        .collect();
    last.sort_unstable_by_key(|(t, _)| *t);
    let excess = records.len() - MAX_ADDRESSES * 3 / 4;
    for (_, k) in last.into_iter().take(excess) {
        records.remove(&k);
    }
}

#[cfg(test)]
#[path = "signin_tests.rs"]
mod tests;
