//! The bottom layer: the token (CONTRACT §2), the request and response types of the master's
//! JSON API, the API's error codes, and every token name (`name`). Shared by storage, the
//! master and all its clients; it depends on nothing else in the crate. The stateless input
//! checks every request passes before it reaches the master's writer live here too.

mod api;
mod error;
pub mod name;

use std::collections::HashSet;

use serde::{Deserialize, Deserializer, Serialize};

pub use api::*;
pub use error::MasterError;

/// Bytes as lowercase hex text (digests, random ids).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Longest accepted token name, in bytes (CONTRACT §2).
pub const MAX_NAME_BYTES: usize = 512;
/// Longest accepted owner, in bytes (the database column is VARCHAR(255)).
pub const MAX_OWNER_BYTES: usize = 255;
/// Longest accepted `wait_ms`: ten minutes. A longer park would outlive every HTTP timeout.
pub const MAX_WAIT_MS: u64 = 600_000;
/// Most tokens one request may write, archive or claim: bounds the time one request holds
/// the writer.
pub const MAX_TOKENS_PER_REQUEST: usize = 50_000;
/// Most queries one `/query` may carry.
pub const MAX_QUERIES_PER_REQUEST: usize = 1_000;
/// Default largest answer of one `/query`, in bytes of names and data (`max_answer_bytes`).
/// Tokens one `/query` may look at, by default (`max_query_visits`).
pub const DEFAULT_MAX_QUERY_VISITS: usize = 2_000_000;
/// Bytes of answers a master holds at once, all requests together, by default
/// (`max_answers_bytes_total`).
pub const DEFAULT_MAX_ANSWERS_BYTES_TOTAL: usize = 512 << 20;
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 256 << 20;
/// Longest lease the master grants by `lease_sec`: a day.
pub const MAX_LEASE_SEC: u64 = 86_400;
/// `expiration_time` that means "never claimable".
pub const NEVER: i64 = i64::MAX;
/// Names that start with this are the master's own bookkeeping and cannot be written.
pub const RESERVED_PREFIX: &str = "/__";
/// The visible, read-only version counter (PINBALL_SPEC §1.2).
pub const BLESSED_VERSION_NAME: &str = "/__BLESSED_VERSION__";

/// A token as it travels on the wire. `version` is absent (or null) in an insert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// 1 to 512 bytes of `A-Z a-z 0-9 _ . / : -`; names starting with `/__` are the master's.
    #[schema(min_length = 1, max_length = 512, pattern = "^[A-Za-z0-9_./:-]+$")]
    pub name: String,
    #[serde(default)]
    pub version: Option<i64>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub expiration_time: Option<i64>,
    #[serde(default, deserialize_with = "null_as_zero")]
    pub priority: f64,
    #[serde(default)]
    pub data: Option<String>,
}

fn null_as_zero<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(0.0))
}

impl Token {
    /// A fresh token to insert, with no owner and priority 0.
    pub fn new(name: impl Into<String>, data: Option<String>) -> Self {
        Token {
            name: name.into(),
            version: None,
            owner: None,
            expiration_time: None,
            priority: 0.0,
            data,
        }
    }

    /// Whether the token is owned at `now` (seconds): the master's ownership predicate.
    pub fn is_owned(&self, now: i64) -> bool {
        is_owned(self.owner.as_deref(), self.expiration_time, now)
    }
}

/// A token is owned iff its owner is non-empty and its expiration time is set, non-zero and in
/// the future (PINBALL_SPEC §1.1). An expired lease, or a retry delay without an owner, is claimable.
pub fn is_owned(owner: Option<&str>, expiration_time: Option<i64>, now: i64) -> bool {
    matches!(owner, Some(o) if !o.is_empty())
        && matches!(expiration_time, Some(t) if t != 0 && t > now)
}

/// Checks a token name: 1..=512 bytes of `[A-Za-z0-9_./:-]`.
pub fn validate_name(name: &str) -> Result<(), MasterError> {
    if name.is_empty() {
        return Err(MasterError::input("token name is empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(MasterError::input(format!(
            "token name {}... is {} bytes long; the limit is {MAX_NAME_BYTES}",
            &name[..40],
            name.len()
        )));
    }
    if let Some(c) = name.chars().find(|c| !is_name_char(*c)) {
        return Err(MasterError::input(format!(
            "token name {name:?} contains {c:?}; names use only A-Z a-z 0-9 _ . / : -"
        )));
    }
    Ok(())
}

pub fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | ':' | '-')
}

/// Checks a name that a request wants to write: valid and not reserved.
fn validate_writable_name(name: &str) -> Result<(), MasterError> {
    validate_name(name)?;
    if name.starts_with(RESERVED_PREFIX) {
        return Err(MasterError::input(format!(
            "token name {name} is reserved: names starting with {RESERVED_PREFIX} belong to the master"
        )));
    }
    Ok(())
}

fn validate_version(token: &Token) -> Result<(), MasterError> {
    match token.version {
        Some(v) if v <= 0 => Err(MasterError::input(format!(
            "token {} has version {v}; versions are positive",
            token.name
        ))),
        _ => Ok(()),
    }
}

fn validate_fields(token: &Token) -> Result<(), MasterError> {
    validate_writable_name(&token.name)?;
    validate_version(token)?;
    if let Some(owner) = &token.owner
        && owner.len() > MAX_OWNER_BYTES
    {
        return Err(MasterError::input(format!(
            "token {} has an owner of {} bytes; the limit is {MAX_OWNER_BYTES}",
            token.name,
            owner.len()
        )));
    }
    if let Some(t) = token.expiration_time
        && t < 0
    {
        return Err(MasterError::input(format!(
            "token {} has expiration_time {t}; it is seconds since the epoch and cannot be negative",
            token.name
        )));
    }
    if !token.priority.is_finite() {
        return Err(MasterError::input(format!(
            "token {} has a priority that is not a finite number",
            token.name
        )));
    }
    Ok(())
}

fn require_version(token: &Token) -> Result<(), MasterError> {
    if token.version.is_none() {
        return Err(MasterError::input(format!(
            "token {} does not have version set",
            token.name
        )));
    }
    Ok(())
}

/// Rejects a name that appears twice across the given lists.
fn reject_duplicates<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), MasterError> {
    let mut seen = HashSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(MasterError::input(format!(
                "token {name} appears more than once in one request"
            )));
        }
    }
    Ok(())
}

impl ModifyRequest {
    /// A request that only inserts or updates.
    pub fn update(tokens: Vec<Token>) -> Self {
        ModifyRequest {
            updates: tokens,
            ..ModifyRequest::default()
        }
    }

    /// A request that only deletes.
    pub fn delete(tokens: Vec<Token>) -> Self {
        ModifyRequest {
            deletes: tokens,
            ..ModifyRequest::default()
        }
    }

    pub fn validate(&self) -> Result<(), MasterError> {
        check_count("modify", self.updates.len() + self.deletes.len())?;
        if let Some(l) = self.lease_sec
            && (l == 0 || l > MAX_LEASE_SEC)
        {
            return Err(MasterError::input(format!(
                "lease_sec {l} must be between 1 and {MAX_LEASE_SEC}"
            )));
        }
        for t in &self.updates {
            validate_fields(t)?;
        }
        for t in &self.deletes {
            validate_writable_name(&t.name)?;
            validate_version(t)?;
            require_version(t)?;
        }
        reject_duplicates(
            self.updates
                .iter()
                .chain(&self.deletes)
                .map(|t| t.name.as_str()),
        )
    }
}

impl ArchiveRequest {
    pub fn validate(&self) -> Result<(), MasterError> {
        check_count("archive", self.tokens.len())?;
        for t in &self.tokens {
            validate_writable_name(&t.name)?;
            validate_version(t)?;
            require_version(t)?;
        }
        reject_duplicates(self.tokens.iter().map(|t| t.name.as_str()))
    }
}

impl QueryRequest {
    pub fn validate(&self) -> Result<(), MasterError> {
        if let Some(w) = self.wait_ms
            && w > MAX_WAIT_MS
        {
            return Err(MasterError::input(format!(
                "wait_ms {w} is longer than the limit of {MAX_WAIT_MS}"
            )));
        }
        if self.wait_ms.is_some() != self.after_version.is_some() {
            return Err(MasterError::input(
                "a watch needs both wait_ms and after_version",
            ));
        }
        if self.queries.len() > MAX_QUERIES_PER_REQUEST {
            return Err(MasterError::input(format!(
                "query carries {} queries; the limit is {MAX_QUERIES_PER_REQUEST} per request",
                self.queries.len()
            )));
        }
        Ok(())
    }
}

/// Longest text an audit entry's `result` may carry, and longest actor or command.
pub const MAX_AUDIT_RESULT: usize = 4096;
pub const MAX_AUDIT_FIELD: usize = 255;

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl AuditRequest {
    pub fn validate(&self) -> Result<(), MasterError> {
        let long = |what: &str, len: usize, max: usize| {
            Err(MasterError::input(format!(
                "audit {what} is {len} bytes long; the limit is {max}"
            )))
        };
        for (what, v) in [("actor", &self.actor), ("command", &self.command)] {
            if v.is_empty() {
                return Err(MasterError::input(format!("audit {what} is empty")));
            }
            if v.len() > MAX_AUDIT_FIELD {
                return long(what, v.len(), MAX_AUDIT_FIELD);
            }
            if let Some(c) = v.chars().find(|c| !shown_as_is(*c)) {
                return Err(MasterError::input(format!(
                    "audit {what} holds the character U+{:04X}, which would not show as written; use printable text",
                    c as u32
                )));
            }
        }
        for (what, v) in [("workflow", &self.workflow), ("instance", &self.instance)] {
            if let Some(v) = v
                && !(name::is_word(v) && v.len() <= name::MAX_WORD_BYTES)
            {
                return Err(MasterError::input(format!(
                    "audit {what} {v:?} is not a name"
                )));
            }
        }
        if self.jobs.len() > 1000 || self.jobs.iter().any(|j| !name::is_word(j)) {
            return Err(MasterError::input(
                "audit jobs must be at most 1000 job names",
            ));
        }
        if self.result.len() > MAX_AUDIT_RESULT {
            return long("result", self.result.len(), MAX_AUDIT_RESULT);
        }
        if let Some(c) = self
            .result
            .chars()
            .find(|c| !matches!(c, '\n' | '\t') && !shown_as_is(*c))
        {
            return Err(MasterError::input(format!(
                "audit result holds the character U+{:04X}, which would not show as written",
                c as u32
            )));
        }
        Ok(())
    }
}

/// Whether `c` shows as itself in a log or a page: no control character, and none of the
/// invisible marks that reorder or hide text (bidirectional controls, zero-width characters).
pub fn shown_as_is(c: char) -> bool {
    !c.is_control()
        && !matches!(
            c,
            '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
                | '\u{061C}'
        )
}

fn check_count(what: &str, n: usize) -> Result<(), MasterError> {
    if n > MAX_TOKENS_PER_REQUEST {
        return Err(MasterError::input(format!(
            "{what} carries {n} tokens; the limit is {MAX_TOKENS_PER_REQUEST} per request, so send them in smaller batches"
        )));
    }
    Ok(())
}

impl QueryAndOwnRequest {
    pub fn validate(&self) -> Result<(), MasterError> {
        if self.owner.is_empty() {
            return Err(MasterError::input("query_and_own needs a non-empty owner"));
        }
        if self.owner.len() > MAX_OWNER_BYTES {
            return Err(MasterError::input(format!(
                "owner is {} bytes long; the limit is {MAX_OWNER_BYTES}",
                self.owner.len()
            )));
        }
        match self.lease_sec {
            Some(l) if l == 0 || l > MAX_LEASE_SEC => {
                return Err(MasterError::input(format!(
                    "lease_sec {l} must be between 1 and {MAX_LEASE_SEC}"
                )));
            }
            Some(_) => {}
            None if self.expiration_time <= 0 => {
                return Err(MasterError::input(format!(
                    "expiration_time {} is not in the future; a claim needs a lease end in seconds since the epoch, or lease_sec",
                    self.expiration_time
                )));
            }
            None => {}
        }
        if let Some(w) = self.wait_ms
            && w > MAX_WAIT_MS
        {
            return Err(MasterError::input(format!(
                "wait_ms {w} is longer than the limit of {MAX_WAIT_MS}"
            )));
        }
        if let Some(pools) = &self.pools {
            if pools.is_empty() || pools.len() > MAX_POOLS {
                return Err(MasterError::input(format!(
                    "pools names {} pools; name between 1 and {MAX_POOLS}, or leave it out to claim from every pool",
                    pools.len()
                )));
            }
            if let Some(bad) = pools.iter().find(|p| !is_pool_name(p)) {
                return Err(MasterError::input(format!(
                    "pool {bad:?} is not a pool name: letters, digits, _ and - only, at most 64"
                )));
            }
        }
        Ok(())
    }
}

/// The most pools one claim may name.
pub const MAX_POOLS: usize = 16;
