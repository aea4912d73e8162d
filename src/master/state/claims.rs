//! Claims: the per-pattern index of claimable and leased tokens, and the state's claim,
//! lease-extension and index methods.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use super::found::Rank;
use super::lease_time::lease_end;
use super::pools::{Pools, take_in_pool};
use super::{Claim, Entry, MAX_INDEXES, State, Txn};
use crate::master::pattern::Pattern;
use crate::token::MasterError;
use crate::token::*;

/// Where a claimable token stands in line: highest priority first, then the one that became
/// claimable first (its version: written unowned, or last written before its lease ended), so
/// no workflow waits for another because of its name; the name only breaks ties. Last, the
/// slots it takes in its pool.
type Place = (Rank, i64, Box<str>, u32);

/// How far past the head of a limited pool's line a claim looks for a token that fits.
const MAX_PASS: usize = 64;

fn place(name: &str, e: &Entry, slots: u32) -> Place {
    (Rank(e.priority), e.version, name.into(), slots)
}

/// One pool's line: its claimable tokens in order, and the slots its leased tokens hold (kept
/// beside the line, so a claim finds both with one lookup). A line lives while it has either.
#[derive(Debug, Default)]
struct Line {
    places: BTreeSet<Place>,
    used: u64,
}

impl Line {
    fn is_empty(&self) -> bool {
        self.places.is_empty() && self.used == 0
    }
}

/// The tokens matching one `*` pattern, split into claimable (in line, one line per pool) and
/// leased (by lease end). Invariant: every matching token is in exactly one set; a leased
/// token whose lease has ended stays in `leased` until the next claim promotes it.
#[derive(Debug)]
pub(super) struct ClaimIndex {
    pub(super) pattern: Pattern,
    lines: BTreeMap<Box<str>, Line>,
    leased: BTreeSet<(i64, Box<str>)>,
    /// A limited pool's head that did not fit, and since when (the master's seconds).
    blocked: HashMap<Box<str>, (Box<str>, i64)>,
}

impl ClaimIndex {
    fn new(pattern: Pattern) -> ClaimIndex {
        ClaimIndex {
            pattern,
            lines: BTreeMap::new(),
            leased: BTreeSet::new(),
            blocked: HashMap::new(),
        }
    }

    pub(super) fn insert(&mut self, name: &str, e: &Entry) {
        match e.lease_end() {
            Some(t) => {
                self.leased.insert((t, name.into()));
                let (pool, slots) = pool_use(e.data.as_deref());
                self.lines.entry(pool).or_default().used += u64::from(slots);
            }
            None => self.line_up(name, e),
        }
    }

    fn line_up(&mut self, name: &str, e: &Entry) {
        let (pool, slots) = pool_use(e.data.as_deref());
        self.lines
            .entry(pool)
            .or_default()
            .places
            .insert(place(name, e, slots));
    }

    fn release(&mut self, e: &Entry) {
        let (pool, slots) = pool_use(e.data.as_deref());
        if let Some(line) = self.lines.get_mut(&pool) {
            line.used = line.used.saturating_sub(u64::from(slots));
            if line.is_empty() {
                self.lines.remove(&pool);
            }
        }
    }

    pub(super) fn remove(&mut self, name: &str, e: &Entry) {
        if let Some(t) = e.lease_end()
            && self.leased.remove(&(t, name.into()))
        {
            self.release(e);
            return;
        }
        let (pool, slots) = pool_use(e.data.as_deref());
        if let Some(line) = self.lines.get_mut(&pool) {
            line.places.remove(&place(name, e, slots));
            if line.is_empty() {
                self.lines.remove(&pool);
            }
        }
    }

    /// Moves tokens whose lease ended at or before `now` to the claimable set; their slots
    /// are free again.
    fn promote(&mut self, now: i64, tokens: &BTreeMap<Box<str>, Entry>) {
        while let Some(first) = self.leased.first()
            && first.0 <= now
        {
            let (_, name) = self.leased.pop_first().expect("checked first");
            if let Some(e) = tokens.get(&name) {
                self.release(e);
                self.line_up(&name, e);
            }
        }
    }

    /// The slots pool `pool`'s leased tokens hold.
    pub(super) fn used(&self, pool: &str) -> u64 {
        self.lines.get(pool).map_or(0, |l| l.used)
    }

    /// The tokens waiting in pool `pool`'s line.
    pub(super) fn waiting(&self, pool: &str) -> usize {
        self.lines.get(pool).map_or(0, |l| l.places.len())
    }

    /// The best `limit` claimable names of `pools` (every pool when `None`), best first: the
    /// heads of each pool's line, merged; in a pool with a slot limit, only what fits.
    fn best(
        &mut self,
        pools: Option<&[String]>,
        limit: usize,
        limits: &Pools,
        now: i64,
    ) -> Vec<Box<str>> {
        let lines: Vec<(&Box<str>, &Line)> = match pools {
            None => self.lines.iter().collect(),
            Some(pools) => pools
                .iter()
                .filter_map(|p| self.lines.get_key_value(p.as_str()))
                .collect(),
        };
        let mut found: Vec<&Place> =
            Vec::with_capacity(lines.len().saturating_mul(limit.min(MAX_PASS)).min(4096));
        let many = lines.len() > 1;
        for (pool, line) in lines {
            let Some(head) = line.places.first() else {
                continue;
            };
            let Some(slots) = limits.limit(pool) else {
                found.extend(line.places.iter().take(limit));
                continue;
            };
            let free = u64::from(slots).saturating_sub(line.used);
            // How long a head that does not fit has waited (only then is it looked up).
            let head_fits = u64::from(head.3) <= free;
            if head_fits && limit == 1 {
                // A claim of one job takes the head: the line need not be walked.
                found.push(head);
                if !self.blocked.is_empty() {
                    self.blocked.remove(pool);
                }
                continue;
            }
            let waited = match head_fits {
                true => None,
                false => match self.blocked.get(pool) {
                    Some((name, since)) if *name == head.2 => Some(now - since),
                    _ => None,
                },
            };
            take_in_pool(
                free,
                line.places.iter().take(MAX_PASS).map(|p| (p, p.3)),
                waited,
                (limits.starvation_sec, limit),
                &mut found,
            );
            // The head waits from the first claim it did not fit.
            if head_fits {
                if !self.blocked.is_empty() {
                    self.blocked.remove(pool);
                }
            } else if waited.is_none() {
                self.blocked.insert(pool.clone(), (head.2.clone(), now));
            }
        }
        if many {
            found.sort();
            found.dedup();
        }
        found.into_iter().take(limit).map(|p| p.2.clone()).collect()
    }

    fn len(&self) -> usize {
        self.lines.values().map(|l| l.places.len()).sum::<usize>() + self.leased.len()
    }
}

impl State {
    /// For a claim pattern with an index: how many matching tokens wait to be claimed and how
    /// many are leased (a lease that ended counts until the next claim finds it).
    pub fn claim_counts(&self, pattern: &str) -> Option<(usize, usize)> {
        self.indexes.get(pattern).map(|i| {
            (
                i.lines.values().map(|l| l.places.len()).sum(),
                i.leased.len(),
            )
        })
    }
    /// Patterns with a claim index, so a reloaded state can rebuild them.
    pub fn indexed_patterns(&self) -> Vec<Pattern> {
        self.indexes.values().map(|i| i.pattern.clone()).collect()
    }

    /// `/query_and_own`: claims up to `max_tokens` unowned matching tokens, best first.
    pub fn claim(
        &mut self,
        req: &QueryAndOwnRequest,
        now: i64,
        txn: &mut Txn,
    ) -> Result<Claim, MasterError> {
        self.claim_after(req, now, Duration::ZERO, txn)
    }

    /// [`State::claim`] for a claim that waited `waited` (parked) before this try.
    pub fn claim_after(
        &mut self,
        req: &QueryAndOwnRequest,
        now: i64,
        waited: Duration,
        txn: &mut Txn,
    ) -> Result<Claim, MasterError> {
        let Some(query) = &req.query else {
            return Ok(Claim::default());
        };
        let pattern = Pattern::parse(&query.name_prefix)?;
        let limit = query.max_tokens.map_or(MAX_TOKENS_PER_REQUEST, |n| {
            (n as usize).min(MAX_TOKENS_PER_REQUEST)
        });
        // The lease is the master's to time: `lease_sec` from now, or the caller's end; one
        // that has already ended is never granted (it would be claimable again at once).
        let expires = match req.lease_sec {
            Some(l) => lease_end(now, l),
            None => req.expiration_time,
        };
        if expires <= now {
            return Ok(Claim::default());
        }
        let (names, mut next_lease_end) =
            self.claimable(&pattern, req.pools.as_deref(), now, limit);
        let mut tokens = Vec::with_capacity(names.len());
        for name in names {
            let mut entry = self.tokens[&*name].clone();
            entry.owner = Some(req.owner.as_str().into());
            entry.expiration_time = Some(expires);
            entry.version = self.next_version();
            if req.record_grant {
                entry.record_grant(&req.owner, now, waited);
            }
            tokens.push(entry.to_token(&name));
            self.put(&name, Some(entry), txn);
        }
        if !tokens.is_empty() {
            next_lease_end = Some(next_lease_end.map_or(expires, |t| t.min(expires)));
        }
        Ok(Claim {
            tokens,
            next_lease_end: next_lease_end.filter(|t| *t != NEVER),
        })
    }

    /// The names to claim, best first, and the earliest end of a lease among the others.
    fn claimable(
        &mut self,
        pattern: &Pattern,
        pools: Option<&[String]>,
        now: i64,
        limit: usize,
    ) -> (Vec<Box<str>>, Option<i64>) {
        if pattern.has_wildcard()
            && (self.indexes.contains_key(pattern.as_str()) || self.indexes.len() < MAX_INDEXES)
        {
            if !self.indexes.contains_key(pattern.as_str()) {
                self.build_index(pattern);
            }
            let index = self.indexes.get_mut(pattern.as_str()).expect("built above");
            index.promote(now, &self.tokens);
            let names = index.best(pools, limit, &self.pools, now);
            return (names, index.leased.first().map(|(t, _)| *t));
        }
        // A scan: the same order and slot limits, without the starvation rule (patterns
        // without an index are rare: no wildcard, or more than MAX_INDEXES of them).
        let mut found: Vec<(Place, Box<str>)> = Vec::new();
        let mut used: HashMap<Box<str>, u64> = HashMap::new();
        let mut next_lease_end: Option<i64> = None;
        for (name, e) in self
            .range(pattern.literal_prefix())
            .filter(|(k, _)| pattern.matches(k))
        {
            let (pool, slots) = pool_use(e.data.as_deref());
            if e.is_owned(now) {
                let end = e.lease_end().expect("owned tokens have a lease");
                next_lease_end = Some(next_lease_end.map_or(end, |t| t.min(end)));
                *used.entry(pool).or_default() += u64::from(slots);
            } else if pools.is_none_or(|p| p.iter().any(|p| *p == *pool)) {
                found.push((place(name, e, slots), pool));
            }
        }
        found.sort();
        let mut free: HashMap<Box<str>, u64> = HashMap::new();
        let names = found
            .into_iter()
            .filter(|(p, pool)| match self.pools.limit(pool) {
                None => true,
                Some(slots) => {
                    let f = free.entry(pool.clone()).or_insert_with(|| {
                        u64::from(slots).saturating_sub(used.get(pool).copied().unwrap_or(0))
                    });
                    let fits = u64::from(p.3) <= *f;
                    if fits {
                        *f -= u64::from(p.3);
                    }
                    fits
                }
            })
            .take(limit)
            .map(|(p, _)| p.2)
            .collect();
        (names, next_lease_end)
    }

    fn build_index(&mut self, pattern: &Pattern) {
        let mut index = ClaimIndex::new(pattern.clone());
        for (name, e) in self
            .range(pattern.literal_prefix())
            .filter(|(k, _)| pattern.matches(k))
        {
            index.insert(name, e);
        }
        tracing::info!(
            pattern = pattern.as_str(),
            tokens = index.len(),
            "built claim index"
        );
        self.indexes.insert(pattern.as_str().to_owned(), index);
    }

    /// Gives every lease that would end within `secs` of `now` the length `secs` again, without
    /// a new version (its holder's next version-checked write still matches): after the master
    /// was down or could not commit, no lease has run out because of it. Leases that mean
    /// "never" are left alone, and so are tokens outside `prefix` (a schedule's
    /// `expiration_time` is its next run, not a lease). Returns how many were extended.
    pub fn extend_leases(&mut self, prefix: &str, now: i64, secs: i64) -> usize {
        let until = now.saturating_add(secs);
        let short: Vec<Box<str>> = self
            .tokens
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(n, _)| n.starts_with(prefix))
            .filter(|(n, e)| {
                !n.starts_with(RESERVED_PREFIX)
                    && e.lease_end().is_some_and(|t| t < until && t != NEVER)
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in &short {
            let mut e = self.tokens[name].clone();
            e.expiration_time = Some(until);
            self.put_raw(name, Some(e));
        }
        short.len()
    }

    /// Rebuilds the claim indexes of an earlier state (after a reload).
    pub fn rebuild_indexes(&mut self, patterns: &[Pattern]) {
        for p in patterns {
            self.build_index(p);
        }
    }
}

#[cfg(test)]
#[path = "claims_tests.rs"]
mod tests;
