//! Claims: the per-pattern index of claimable and leased tokens, and the state's claim,
//! lease-extension and index methods.

use std::collections::{BTreeMap, BTreeSet};

use super::found::Rank;
use super::{Claim, Entry, MAX_INDEXES, State, Txn};
use crate::master::pattern::Pattern;
use crate::token::MasterError;
use crate::token::*;

/// Where a claimable token stands in line: highest priority first, then the one that became
/// claimable first (its version: written unowned, or last written before its lease ended), so
/// no workflow waits for another because of its name; the name only breaks ties.
type Place = (Rank, i64, Box<str>);

/// The end of a lease of `secs` granted at `now` (whole seconds, as `expiration_time` is): one
/// second more, so the lease is never shorter than asked however far into `now` it is granted.
pub(super) fn lease_end(now: i64, secs: u64) -> i64 {
    now.saturating_add(secs as i64).saturating_add(1)
}

fn place(name: &str, e: &Entry) -> Place {
    (Rank(e.priority), e.version, name.into())
}

/// The tokens matching one `*` pattern, split into claimable (in line, one line per pool) and
/// leased (by lease end). Invariant: every matching token is in exactly one set; a leased
/// token whose lease has ended stays in `leased` until the next claim promotes it.
#[derive(Debug)]
pub(super) struct ClaimIndex {
    pub(super) pattern: Pattern,
    claimable: BTreeMap<Box<str>, BTreeSet<Place>>,
    leased: BTreeSet<(i64, Box<str>)>,
}

impl ClaimIndex {
    pub(super) fn insert(&mut self, name: &str, e: &Entry) {
        match e.lease_end() {
            Some(t) => {
                self.leased.insert((t, name.into()));
            }
            None => self.line_up(name, e),
        }
    }

    fn line_up(&mut self, name: &str, e: &Entry) {
        self.claimable
            .entry(pool_of(e.data.as_deref()))
            .or_default()
            .insert(place(name, e));
    }

    pub(super) fn remove(&mut self, name: &str, e: &Entry) {
        if let Some(t) = e.lease_end()
            && self.leased.remove(&(t, name.into()))
        {
            return;
        }
        let pool = pool_of(e.data.as_deref());
        if let Some(line) = self.claimable.get_mut(&pool) {
            line.remove(&place(name, e));
            if line.is_empty() {
                self.claimable.remove(&pool);
            }
        }
    }

    /// Moves tokens whose lease ended at or before `now` to the claimable set.
    fn promote(&mut self, now: i64, tokens: &BTreeMap<Box<str>, Entry>) {
        while let Some(first) = self.leased.first()
            && first.0 <= now
        {
            let (_, name) = self.leased.pop_first().expect("checked first");
            if let Some(e) = tokens.get(&name) {
                self.line_up(&name, e);
            }
        }
    }

    /// The best `limit` claimable names of `pools` (every pool when `None`), best first: the
    /// heads of each pool's line, merged.
    fn best(&self, pools: Option<&[String]>, limit: usize) -> Vec<Box<str>> {
        let mut found: Vec<&Place> = match pools {
            None => self
                .claimable
                .values()
                .flat_map(|line| line.iter().take(limit))
                .collect(),
            Some(pools) => pools
                .iter()
                .filter_map(|p| self.claimable.get(p.as_str()))
                .flat_map(|line| line.iter().take(limit))
                .collect(),
        };
        if self.claimable.len() > 1 {
            found.sort();
            found.dedup();
        }
        found
            .into_iter()
            .take(limit)
            .map(|(_, _, n)| n.clone())
            .collect()
    }

    fn len(&self) -> usize {
        self.claimable.values().map(BTreeSet::len).sum::<usize>() + self.leased.len()
    }
}

impl State {
    /// For a claim pattern with an index: how many matching tokens wait to be claimed and how
    /// many are leased (a lease that ended counts until the next claim finds it).
    pub fn claim_counts(&self, pattern: &str) -> Option<(usize, usize)> {
        self.indexes.get(pattern).map(|i| {
            (
                i.claimable.values().map(BTreeSet::len).sum(),
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
            let names = index.best(pools, limit);
            return (names, index.leased.first().map(|(t, _)| *t));
        }
        let mut found: Vec<Place> = Vec::new();
        let mut next_lease_end: Option<i64> = None;
        for (name, e) in self
            .range(pattern.literal_prefix())
            .filter(|(k, _)| pattern.matches(k))
        {
            if e.is_owned(now) {
                let end = e.lease_end().expect("owned tokens have a lease");
                next_lease_end = Some(next_lease_end.map_or(end, |t| t.min(end)));
            } else if pools.is_none_or(|p| p.iter().any(|p| *p == *pool_of(e.data.as_deref()))) {
                found.push(place(name, e));
            }
        }
        found.sort();
        (
            found.into_iter().take(limit).map(|(_, _, n)| n).collect(),
            next_lease_end,
        )
    }

    fn build_index(&mut self, pattern: &Pattern) {
        let mut index = ClaimIndex {
            pattern: pattern.clone(),
            claimable: BTreeMap::new(),
            leased: BTreeSet::new(),
        };
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
