//! The master's in-memory tokens and every rule of PINBALL_SPEC §1.4, as pure functions of the
//! state and an explicit `now`. Only `service` mutates it (one writer); each mutation is recorded
//! in a [`Txn`] so a batch whose commit fails can be undone exactly.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use super::pattern::Pattern;
use crate::token::MasterError;
use crate::token::*;

/// At most this many `*` patterns get a claim index; further patterns are answered by a scan.
const MAX_INDEXES: usize = 32;

/// A stored token, without its name (the map key). Boxed strings keep it at 64 bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub version: i64,
    pub owner: Option<Box<str>>,
    pub expiration_time: Option<i64>,
    pub priority: f64,
    pub data: Option<Box<str>>,
}

impl Entry {
    /// Records a claim's grant to `owner` in the data (`record_grant`), when it is a JSON
    /// object.
    pub fn record_grant(&mut self, owner: &str, now: i64, waited: std::time::Duration) {
        let waited_ms = waited.as_millis() as u64;
        if let Some(d) = self.data.as_deref()
            && let Some(stamped) = crate::token::record_grant(d, owner, now, waited_ms)
        {
            self.data = Some(stamped.into());
        }
    }

    pub fn from_token(t: &Token, version: i64) -> Entry {
        Entry {
            version,
            owner: t.owner.as_deref().map(Into::into),
            expiration_time: t.expiration_time,
            // -0.0 and 0.0 must order as one priority.
            priority: if t.priority == 0.0 { 0.0 } else { t.priority },
            data: t.data.as_deref().map(Into::into),
        }
    }

    /// Takes a loaded token apart without copying its strings.
    pub fn from_owned_token(t: Token) -> (String, Entry) {
        let priority = if t.priority == 0.0 { 0.0 } else { t.priority };
        let entry = Entry {
            version: t.version.unwrap_or(0),
            owner: t.owner.map(String::into_boxed_str),
            expiration_time: t.expiration_time,
            priority,
            data: t.data.map(String::into_boxed_str),
        };
        (t.name, entry)
    }

    pub fn to_token(&self, name: &str) -> Token {
        Token {
            name: name.to_owned(),
            version: Some(self.version),
            owner: self.owner.as_deref().map(Into::into),
            expiration_time: self.expiration_time,
            priority: self.priority,
            data: self.data.as_deref().map(Into::into),
        }
    }

    /// The lease end when the token has an owner and an expiration time, whether or not it is
    /// still in the future: the moment it becomes (or became) claimable.
    fn lease_end(&self) -> Option<i64> {
        match (&self.owner, self.expiration_time) {
            (Some(o), Some(t)) if !o.is_empty() && t != 0 => Some(t),
            _ => None,
        }
    }

    fn is_owned(&self, now: i64) -> bool {
        matches!(self.lease_end(), Some(t) if t > now)
    }
}

pub use super::budget::AnswerBudget;
use claims::ClaimIndex;
pub use found::Found;
pub use lease_time::granted_at;
use lease_time::lease_end;

mod claims;
mod found;
mod lease_time;
mod pools;

pub use pools::PoolUsage;

/// What one batch changed: the value each touched name had before the batch (so the batch can
/// be undone, and so the commit knows which rows to write), and the tokens it archived.
#[derive(Debug, Default)]
pub struct Txn {
    before: HashMap<Box<str>, Option<Entry>>,
    archived: Vec<Token>,
    audits: Vec<AuditEntry>,
    logs: Vec<crate::storage::LogChunk>,
}

impl Txn {
    pub fn is_empty(&self) -> bool {
        self.before.is_empty() && self.archived.is_empty() && self.audits.is_empty()
    }

    /// Adds an audit-log entry to this commit.
    pub fn audit(&mut self, entry: AuditEntry) {
        self.audits.push(entry);
    }

    /// Adds the last log chunks of a run this commit ends.
    pub fn add_logs(&mut self, chunks: Vec<crate::storage::LogChunk>) {
        self.logs.extend(chunks);
    }

    /// Names whose rows the commit must upsert or delete (the master's own excluded).
    pub fn touched(&self) -> impl Iterator<Item = &str> {
        self.before
            .keys()
            .map(|k| &**k)
            .filter(|n| !n.starts_with(RESERVED_PREFIX))
    }

    pub fn archived(&self) -> &[Token] {
        &self.archived
    }
}

/// A sealed batch on its way to the database: each touched name with its new value (`None`
/// for a deletion), the last version it issued, and what it archives and audits.
#[derive(Debug)]
pub struct Pending {
    after: Vec<(Box<str>, Option<Entry>)>,
    version: i64,
    archived: Vec<Token>,
    audits: Vec<AuditEntry>,
    logs: Vec<crate::storage::LogChunk>,
}

impl Pending {
    /// Names whose rows the commit upserts (with their new value) or deletes (`None`), the
    /// master's own excluded.
    pub fn rows(&self) -> impl Iterator<Item = (&str, Option<&Entry>)> {
        self.after
            .iter()
            .filter(|(n, _)| !n.starts_with(RESERVED_PREFIX))
            .map(|(n, e)| (&**n, e.as_ref()))
    }

    /// The last version the batch issued: the database's version floor after it.
    pub fn version(&self) -> i64 {
        self.version
    }

    pub fn archived(&self) -> &[Token] {
        &self.archived
    }

    pub fn audits(&self) -> &[AuditEntry] {
        &self.audits
    }

    pub fn logs(&self) -> &[crate::storage::LogChunk] {
        &self.logs
    }
}

/// The result of one claim attempt.
#[derive(Debug, Default)]
pub struct Claim {
    pub tokens: Vec<Token>,
    /// The earliest moment (seconds) a matching token that is leased now becomes claimable.
    pub next_lease_end: Option<i64>,
}

#[derive(Debug)]
pub struct State {
    tokens: BTreeMap<Box<str>, Entry>,
    indexes: HashMap<String, ClaimIndex>,
    last_version: i64,
    /// The names the latest batches wrote or deleted, with each batch's version, oldest
    /// first: a watch asks these, never the whole map (a deleted token has no version left to
    /// ask, and a broad pattern over every token would hold the writer).
    changes: std::collections::VecDeque<(i64, Box<str>)>,
    /// Changes at or below this version are no longer in `changes` (or predate this state).
    changes_floor: i64,
    /// Names a commit with an unknown outcome touched: the database may hold their new value
    /// or the old one, so reads that would answer them wait for the reload (which builds a
    /// fresh state without them); every other read is answered from memory.
    uncertain: BTreeSet<Box<str>>,
    /// The pools' slot limits.
    pools: pools::Pools,
}

/// How many changed names a state remembers for watches; a watch older than all of them is
/// answered at once (it may have missed one).
const REMEMBERED_CHANGES: usize = 65_536;
/// The most (name, pattern) pairs one watch's test compares; a test that would need more
/// answers the watch at once (a read, bounded like any other, off the writer).
const MAX_WATCH_TEST: usize = 65_536;

impl State {
    /// Builds the state from stored rows. `version_floor` is the persisted high-water mark:
    /// versions continue above it and above every loaded token's version.
    pub fn load(
        rows: impl IntoIterator<Item = (String, Entry)>,
        version_floor: i64,
        blessed_data: String,
    ) -> State {
        let tokens: BTreeMap<Box<str>, Entry> = rows
            .into_iter()
            .map(|(n, e)| (n.into_boxed_str(), e))
            .collect();
        let max_row = tokens.values().map(|e| e.version).max().unwrap_or(0);
        let mut state = State {
            tokens,
            indexes: HashMap::new(),
            last_version: version_floor.max(max_row),
            changes: std::collections::VecDeque::new(),
            changes_floor: version_floor.max(max_row),
            uncertain: BTreeSet::new(),
            pools: pools::Pools::default(),
        };
        // The floor is the blessed version of the last commit: it is kept across a restart (as
        // the original kept it), unless a row went past it.
        let version = if version_floor > max_row {
            version_floor
        } else {
            state.next_version()
        };
        state.tokens.insert(
            BLESSED_VERSION_NAME.into(),
            Entry {
                version,
                owner: Some("__master__".into()),
                expiration_time: Some(NEVER),
                priority: 0.0,
                data: Some(blessed_data.into()),
            },
        );
        state
    }

    /// Number of tokens, the master's own bookkeeping token excluded.
    pub fn len(&self) -> usize {
        self.tokens.len() - 1
    }

    /// How many tokens have names starting with `prefix` (an ordered range: no scan).
    pub fn count_prefix(&self, prefix: &str) -> usize {
        self.tokens
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(name, _)| name.starts_with(prefix))
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn last_version(&self) -> i64 {
        self.last_version
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.tokens.get(name)
    }

    /// Keeps versions above `floor` (used after a reload, so no version is ever issued twice).
    pub fn raise_version_floor(&mut self, floor: i64) {
        self.last_version = self.last_version.max(floor);
    }

    fn next_version(&mut self) -> i64 {
        self.last_version += 1;
        self.last_version
    }

    fn range<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a Box<str>, &'a Entry)> + 'a {
        self.tokens
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    /// Replaces (or removes) one token, keeping every index in step. Returns the old value.
    fn put_raw(&mut self, name: &str, new: Option<Entry>) -> Option<Entry> {
        let old = match new {
            Some(e) => match self.tokens.get_mut(name) {
                Some(slot) => Some(std::mem::replace(slot, e)),
                None => self.tokens.insert(name.into(), e),
            },
            None => self.tokens.remove(name),
        };
        for index in self
            .indexes
            .values_mut()
            .filter(|i| i.pattern.matches(name))
        {
            if let Some(o) = &old {
                index.remove(name, o);
            }
            if let Some(n) = self.tokens.get(name) {
                index.insert(name, n);
            }
        }
        self.pools.follow(name, self.tokens.get(name));
        old
    }

    fn put(&mut self, name: &str, new: Option<Entry>, txn: &mut Txn) {
        let old = self.put_raw(name, new);
        if !txn.before.contains_key(name) {
            txn.before.insert(name.into(), old);
        }
    }

    /// Takes a sealed batch back out of memory while it commits, so readers keep seeing what
    /// is committed: every touched token gets its value from before the batch, and the visible
    /// version goes back to `version_before`. [`State::redo`] puts the batch back once the
    /// database holds it. Entries move, nothing is copied.
    pub fn detach(&mut self, txn: Txn, version_before: i64) -> Pending {
        let version = self.last_version;
        let after = txn
            .before
            .into_iter()
            .map(|(name, old)| {
                let new = self.put_raw(&name, old);
                (name, new)
            })
            .collect();
        self.last_version = version_before;
        Pending {
            after,
            version,
            archived: txn.archived,
            audits: txn.audits,
            logs: txn.logs,
        }
    }

    /// Applies a committed batch taken out by [`State::detach`].
    pub fn redo(&mut self, pending: Pending) {
        for (name, new) in pending.after {
            self.put_raw(&name, new);
        }
        self.raise_version_floor(pending.version);
    }

    /// Forgets a batch that was not committed; its versions are never issued again.
    pub fn discard(&mut self, pending: &Pending) {
        self.raise_version_floor(pending.version);
    }

    /// Forgets a batch whose commit has an unknown outcome, and marks the names it touched
    /// as uncertain until the state is reloaded.
    pub fn discard_unknown(&mut self, pending: &Pending) {
        self.discard(pending);
        self.uncertain
            .extend(pending.after.iter().map(|(n, _)| n.clone()));
    }

    /// Refuses a read that would answer a name whose last change has an unknown outcome.
    fn check_certain(&self, pattern: &Pattern) -> Result<(), MasterError> {
        let prefix = pattern.literal_prefix();
        let uncertain = self
            .uncertain
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|n| n.starts_with(prefix))
            .find(|n| pattern.matches(n));
        match uncertain {
            None => Ok(()),
            Some(name) => Err(MasterError::Unavailable(format!(
                "the outcome of the last change to {name} is unknown until the master reloads \
                 its tokens from the database; try again shortly"
            ))),
        }
    }

    /// Makes `txn` write something though no request did: the blessed version token, so the
    /// batch is a real commit (a probe of a database that refused the last one).
    pub fn probe(&mut self, txn: &mut Txn) {
        let blessed = self.tokens[BLESSED_VERSION_NAME].clone();
        self.put(BLESSED_VERSION_NAME, Some(blessed), txn);
    }

    /// Closes a batch that changed something: advances the visible blessed version.
    pub fn seal(&mut self, txn: &mut Txn) {
        if txn.is_empty() {
            return;
        }
        let mut blessed = self.tokens[BLESSED_VERSION_NAME].clone();
        blessed.version = self.next_version();
        let version = blessed.version;
        self.put(BLESSED_VERSION_NAME, Some(blessed), txn);
        for name in txn.before.keys() {
            if self.changes.len() == REMEMBERED_CHANGES
                && let Some((v, _)) = self.changes.pop_front()
            {
                self.changes_floor = v;
            }
            self.changes.push_back((version, name.clone()));
        }
    }

    /// Checks a versioned reference to an existing token (deletes, archives, updates).
    fn check_version(&self, t: &Token) -> Result<(), MasterError> {
        match (self.tokens.get(t.name.as_str()), t.version) {
            (Some(e), Some(v)) if e.version == v => Ok(()),
            (Some(e), expected) => Err(MasterError::VersionConflict(Conflict {
                name: t.name.clone(),
                expected,
                found: Some(e.version),
                message: format!(
                    "token {} with different version {} found",
                    t.name, e.version
                ),
            })),
            (None, Some(_)) => Err(MasterError::NotFound(format!("token {} not found", t.name))),
            (None, None) => Ok(()),
        }
    }

    /// `/modify`: all checks first, then every change, so the request applies whole or not at all.
    pub fn modify(
        &mut self,
        req: &ModifyRequest,
        now: i64,
        txn: &mut Txn,
    ) -> Result<ModifyResponse, MasterError> {
        for t in &req.updates {
            self.check_version(t)?;
        }
        for t in &req.deletes {
            if !self.tokens.contains_key(t.name.as_str()) {
                return Err(MasterError::NotFound(format!("token {} not found", t.name)));
            }
            self.check_version(t)?;
        }
        let mut updates = Vec::with_capacity(req.updates.len());
        for t in &req.updates {
            let mut entry = Entry::from_token(t, self.next_version());
            if let Some(lease) = req.lease_sec
                && entry.owner.as_deref().is_some_and(|o| !o.is_empty())
            {
                entry.expiration_time = Some(lease_end(now, lease));
            }
            updates.push(entry.to_token(&t.name));
            self.put(&t.name, Some(entry), txn);
        }
        for t in &req.deletes {
            self.put(&t.name, None, txn);
        }
        Ok(ModifyResponse { updates })
    }

    /// `/archive`: removes the tokens and keeps the master's stored copies for the archive table.
    pub fn archive(&mut self, req: &ArchiveRequest, txn: &mut Txn) -> Result<(), MasterError> {
        for t in &req.tokens {
            if !self.tokens.contains_key(t.name.as_str()) {
                return Err(MasterError::NotFound(format!("token {} not found", t.name)));
            }
            self.check_version(t)?;
        }
        for t in &req.tokens {
            let stored = self.tokens[t.name.as_str()].to_token(&t.name);
            txn.archived.push(stored);
            self.put(&t.name, None, txn);
        }
        Ok(())
    }

    /// `/query` for one query: lexicographic, or the `max_tokens` of highest priority. Every
    /// token answered is charged to `budget` before it is copied, so no query builds an answer
    /// larger than the master allows.
    pub fn query(&self, q: &Query, budget: &mut AnswerBudget) -> Result<Vec<Token>, MasterError> {
        let pattern = Pattern::parse(&q.name_prefix)?;
        let mut found = Found::new(q.max_tokens);
        // One pass, under the caller's lock (`read` reads long queries in chunks instead).
        self.scan(&pattern, None, usize::MAX, budget, &mut found)?;
        Ok(found.into_tokens())
    }

    /// Visits up to `chunk` tokens under `pattern`'s literal prefix, after `after` (exclusive),
    /// charging `budget` a visit each, and gives the matches to `found`. Returns the last name
    /// visited when the range goes on, `None` when it is done: a long read goes on from there
    /// under a new lock, so no read holds the state for long.
    pub fn scan(
        &self,
        pattern: &Pattern,
        after: Option<&str>,
        chunk: usize,
        budget: &mut AnswerBudget,
        found: &mut Found,
    ) -> Result<Option<String>, MasterError> {
        self.check_certain(pattern)?;
        let prefix = pattern.literal_prefix();
        let from = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Included(prefix),
        };
        let mut last: Option<&str> = None;
        for (visited, (k, e)) in self
            .tokens
            .range::<str, _>((from, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .enumerate()
        {
            if visited == chunk {
                return Ok(last.map(str::to_owned));
            }
            last = Some(k);
            budget.visit()?;
            if pattern.matches(k) {
                found.add(k, e, budget)?;
            }
        }
        Ok(None)
    }

    /// Whether a token matching one of `patterns` was written after `version` (a watch's test).
    pub fn changed_since(&self, patterns: &[Pattern], version: i64) -> bool {
        if version >= self.last_version {
            return false;
        }
        if version < self.changes_floor {
            return true;
        }
        let mut compared = 0;
        for (_, name) in self.changes.iter().rev().take_while(|(v, _)| *v > version) {
            compared += patterns.len();
            if compared > MAX_WATCH_TEST || patterns.iter().any(|p| p.matches(name)) {
                return true;
            }
        }
        false
    }

    /// `/group`: counts by the name up to, not including, the first `suffix` after the prefix.
    pub fn group(&self, req: &GroupRequest) -> Result<GroupResponse, MasterError> {
        let pattern = Pattern::parse(&req.name_prefix)?;
        if pattern.has_wildcard() {
            return Err(MasterError::input(
                "group takes a plain name_prefix, without * segments",
            ));
        }
        self.check_certain(&pattern)?;
        let prefix = pattern.as_str();
        let suffix = req.group_suffix.as_deref().unwrap_or("");
        let mut counts = BTreeMap::new();
        for (name, _) in self.range(prefix) {
            let key = match name[prefix.len()..].find(suffix) {
                Some(i) if !suffix.is_empty() => &name[..prefix.len() + i],
                _ => &name[..],
            };
            *counts.entry(key.to_owned()).or_insert(0u64) += 1;
        }
        Ok(GroupResponse { counts })
    }

    /// Every token in name order (tests and `/health`).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.tokens.iter().map(|(k, e)| (&**k, e))
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "state/model_tests.rs"]
mod model_tests;
