//! Pools with slots (CONTRACT §4.4): the slot limit of each pool, read from the pool tokens
//! under `Naming::pool_prefix` as they are written, and the rule a claim follows in a limited
//! pool. A slot is held by a claim's lease: the claim index counts the slots of the leased
//! tokens of each pool, so a run's end (which deletes or releases its token) and a lapsed
//! lease (a dead worker) give the slot back, and nothing else has to clean up.

use std::collections::HashMap;

use super::{Entry, State, Txn};
use crate::token::{PoolDef, pool_of};

/// The slot limits of the pools that have one.
#[derive(Debug, Default)]
pub(super) struct Pools {
    /// Where pool tokens are (none: no pool has a limit).
    prefix: Option<Box<str>>,
    /// foldhash: a claim looks up every limited pool it serves, and SipHash's cost showed.
    limits: HashMap<Box<str>, u32, foldhash::fast::RandomState>,
    /// How long the head of a pool's line may be passed by smaller jobs before it reserves
    /// the slots it needs.
    pub(super) starvation_sec: i64,
}

impl Pools {
    /// Follows a write of `name` (its new value, or `None` when deleted).
    pub(super) fn follow(&mut self, name: &str, new: Option<&Entry>) {
        let Some(pool) = self.prefix.as_deref().and_then(|p| name.strip_prefix(p)) else {
            return;
        };
        let slots = new
            .and_then(|e| e.data.as_deref())
            .and_then(|d| serde_json::from_str::<PoolDef>(d).ok())
            .and_then(|d| d.slots);
        match slots {
            Some(n) => self.limits.insert(pool.into(), n),
            None => self.limits.remove(pool),
        };
    }

    pub(super) fn limit(&self, pool: &str) -> Option<u32> {
        self.limits.get(pool).copied()
    }

    /// Whether `name` is a pool token: a change to one may let a waiting claim through.
    pub(super) fn is_pool_token(&self, name: &str) -> bool {
        self.prefix.as_deref().is_some_and(|p| name.starts_with(p))
    }

    pub(super) fn any(&self) -> bool {
        !self.limits.is_empty()
    }

    fn limited(&self) -> impl Iterator<Item = &str> {
        self.limits.keys().map(|k| &**k)
    }
}

/// What a claim may take from one pool's line: given its free slots, the waiting tokens with
/// the slots each needs (best first), and how long the head has waited without fitting, the
/// tokens to take (at most `limit`), added to `taken` (no allocation of its own: a claim runs
/// this for every limited pool it serves). Smaller tokens may pass a head that does not fit
/// until it has waited `starvation_sec`; from then on the pool's free slots are kept for it.
/// Stops at the first token it can: a claim of one job looks at one token when the head fits.
pub(super) fn take_in_pool<T>(
    free: u64,
    line: impl Iterator<Item = (T, u32)>,
    head_blocked_for: Option<i64>,
    (starvation_sec, limit): (i64, usize),
    taken: &mut Vec<T>,
) {
    let mut free = free;
    let mut n = 0;
    for (i, (item, need)) in line.enumerate() {
        if n == limit || free == 0 {
            break;
        }
        if u64::from(need) <= free {
            free -= u64::from(need);
            taken.push(item);
            n += 1;
        } else if i == 0 && head_blocked_for.is_some_and(|t| t >= starvation_sec) {
            break; // the head reserves the slots
        }
    }
}

impl State {
    /// Follows the pool tokens under `prefix` (their slot limits), with `starvation_sec` for
    /// [`take_in_pool`].
    pub fn with_pools(mut self, prefix: &str, starvation_sec: i64) -> State {
        self.pools.prefix = Some(prefix.into());
        self.pools.starvation_sec = starvation_sec;
        let found: Vec<(Box<str>, Entry)> = self
            .range(prefix)
            .map(|(n, e)| (n.clone(), e.clone()))
            .collect();
        for (name, e) in found {
            self.pools.follow(&name, Some(&e));
        }
        self
    }

    /// Whether `txn`'s write of `name` may let a waiting claim into a limited pool: a pool's
    /// limit changed, or a leased token of a limited pool ended (deleted, or let go).
    pub fn frees_slots(&self, txn: &Txn, name: &str) -> bool {
        if self.pools.is_pool_token(name) {
            return true;
        }
        if !self.pools.any() {
            return false;
        }
        let Some(Some(old)) = txn.before.get(name) else {
            return false;
        };
        old.lease_end().is_some()
            && self
                .tokens
                .get(name)
                .is_none_or(|e| e.lease_end().is_none())
            && self.pools.limit(&pool_of(old.data.as_deref())).is_some()
    }

    /// Every pool with a slot limit and its use in the claim index of `pattern`.
    pub fn limited_pools(&self, pattern: &str) -> Vec<(String, PoolUsage)> {
        self.pools
            .limited()
            .map(|p| (p.to_owned(), self.pool_usage(pattern, p)))
            .collect()
    }

    /// Pool `pool`'s limit and the slots its leased tokens hold (in the claim index of
    /// `pattern`), for the pools page and metrics.
    pub fn pool_usage(&self, pattern: &str, pool: &str) -> PoolUsage {
        let index = self.indexes.get(pattern);
        PoolUsage {
            slots: self.pools.limit(pool),
            used: index.map_or(0, |i| i.used(pool)),
            waiting: index.map_or(0, |i| i.waiting(pool)),
        }
    }
}

/// A pool as the master sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    pub slots: Option<u32>,
    pub used: u64,
    pub waiting: usize,
}

#[cfg(test)]
mod tests {
    use super::take_in_pool;

    #[test]
    fn a_claim_takes_what_fits_and_a_starved_head_reserves_the_slots() {
        let take = |free: u64, needs: &[u32], waited: Option<i64>, limit: usize| {
            let mut taken = vec![9];
            let line = needs.iter().copied().enumerate();
            take_in_pool(free, line, waited, (60, limit), &mut taken);
            assert_eq!(taken.remove(0), 9, "what was there stays");
            taken
        };
        // 3 free: 1 + 2 fit, the next 1 does not.
        assert_eq!(take(3, &[1, 2, 1], None, 10), [0, 1]);
        // A head of 2 with 1 free: smaller ones pass it while it has waited less than 60 s...
        assert_eq!(take(1, &[2, 1, 1], Some(10), 10), [1]);
        // ...and from then on the slot is kept for it.
        assert!(take(1, &[2, 1, 1], Some(60), 10).is_empty());
        assert_eq!(take(5, &[1, 1, 1], None, 2), [0, 1]);
        assert!(take(0, &[1], None, 2).is_empty());
    }
}
