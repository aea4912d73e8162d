//! The bottom layer: the token (CONTRACT §2), the request and response types of the master's
//! JSON API, the API's error codes, and every token name (`name`). Shared by storage, the
//! master and all its clients; it depends on nothing else in the crate. The stateless input
//! checks every request passes before it reaches the master's writer live here too.

mod api;
mod claim;
mod error;
mod validate;

use validate::{
    check_count, reject_duplicates, require_version, validate_fields, validate_version,
    validate_writable_name,
};
pub mod name;

use std::collections::HashSet;

use serde::{Deserialize, Deserializer, Serialize};

pub use api::*;
pub use claim::*;
pub use error::{Conflict, MasterError};

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

    /// The logs a run's end carries: at most one of each kind, all within
    /// [`MAX_LOGS_IN_MODIFY`] bytes (the master checks the jobs they name against the write).
    fn validate_logs(&self) -> Result<(), MasterError> {
        if self.logs.len() > 3 {
            return Err(MasterError::input(format!(
                "logs has {} entries; a run's end carries at most 3 (stdout, stderr, pinlog)",
                self.logs.len()
            )));
        }
        // The bytes the base64 carries, counted before it is decoded.
        let carried = |d: &str| {
            let padding = d.bytes().rev().take(2).take_while(|b| *b == b'=').count();
            (d.len() / 4 * 3).saturating_sub(padding)
        };
        if self.logs.iter().map(|l| carried(&l.data)).sum::<usize>() > MAX_LOGS_IN_MODIFY {
            return Err(MasterError::input(format!(
                "logs carry more than {MAX_LOGS_IN_MODIFY} bytes; send a longer log with /api/v1/logs"
            )));
        }
        for (i, l) in self.logs.iter().enumerate() {
            if self.logs[..i].iter().any(|o| o.kind == l.kind) {
                return Err(MasterError::input(format!(
                    "logs name the {} log twice",
                    l.kind
                )));
            }
        }
        Ok(())
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
        self.validate_logs()?;
        reject_duplicates(
            self.updates
                .iter()
                .chain(&self.deletes)
                .map(|t| t.name.as_str()),
        )
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

/// The most pools one claim may name.
pub const MAX_POOLS: usize = 16;
