//! Claims on the wire (`/query_and_own`, CONTRACT §2): the request, the grant a claim records
//! in a token's data, the answer with its context; and the pools a claim may be limited to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Query, Token};

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryAndOwnRequest {
    #[schema(min_length = 1, max_length = 255)]
    pub owner: String,
    /// The lease's end, in seconds since the epoch (not needed with `lease_sec`). A claim is
    /// never granted once this time has passed.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub expiration_time: i64,
    /// The lease's length, counted by the master from the moment it grants the claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 86400)]
    pub lease_sec: Option<u64>,
    #[serde(default)]
    pub query: Option<Query>,
    /// How long to wait for a claimable token, in milliseconds (at most 600000).
    #[serde(default)]
    #[schema(maximum = 600000)]
    pub wait_ms: Option<u64>,
    /// Claim only tokens of these pools (a token's pool is the string `pool` at the top of
    /// its JSON data; `default` when it has none). Without it, tokens of every pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 16)]
    pub pools: Option<Vec<String>>,
    /// Record each grant in the claimed token's data, in the commit that grants it: a token
    /// whose data is a JSON object gets [`Grant`] under `"grant"` (its count of such grants,
    /// the new owner, the master's time, and the grant it replaced). A worker's claim asks for
    /// it, so the start of a run is durable without a write of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub record_grant: bool,
    /// Answer a grant with its context (see [`ClaimContext`]), read in the commit that grants
    /// it: a worker's claim asks for it, so its job's signals need no read of their own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub context: bool,
}

/// A claim's grant as the master records it in the token's data (`record_grant`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// How many grants were recorded in this token's data, this one included.
    pub n: u64,
    pub owner: String,
    /// The master's time of the grant, in seconds since the epoch.
    pub at: i64,
    /// How long the claim waited at the master (parked) before this grant, in milliseconds:
    /// the grant came at least this long after the claim was sent, whatever the clocks say.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub waited_ms: u64,
    /// The owner and time of the grant before this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_at: Option<i64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `data` with a grant to `owner` at `at`, after the claim waited `waited_ms`, recorded under
/// `"grant"`, counting on from the one there; `None` when `data` is not a JSON object. Only
/// the top level is parsed: the rest of the object is copied as it is.
pub fn record_grant(data: &str, owner: &str, at: i64, waited_ms: u64) -> Option<String> {
    use serde_json::value::RawValue;
    let mut object: BTreeMap<String, &RawValue> = serde_json::from_str(data).ok()?;
    let before: Option<Grant> = object
        .get("grant")
        .and_then(|g| serde_json::from_str(g.get()).ok());
    let grant = Grant {
        n: before.as_ref().map_or(0, |g| g.n) + 1,
        owner: owner.to_owned(),
        at,
        waited_ms,
        prev_at: before.as_ref().map(|g| g.at),
        prev_owner: before.map(|g| g.owner),
    };
    let grant = serde_json::value::to_raw_value(&grant).ok()?;
    object.insert("grant".to_owned(), &grant);
    serde_json::to_string(&object).ok()
}

/// The pool of a token without one.
pub const DEFAULT_POOL: &str = "default";

/// Letters, digits, `_` and `-`, at most 64 of them.
pub fn is_pool_name(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 64
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The pool a token's data names: the string `pool` at the top of a JSON object, `default`
/// when there is none. Data that cannot name a pool is not parsed at all.
pub fn pool_of(data: Option<&str>) -> Box<str> {
    pool_use(data).0
}

/// A token's pool ([`pool_of`]) and the slots it takes there: the number `pool_slots` at the
/// top of its JSON data, 1 when there is none.
pub fn pool_use(data: Option<&str>) -> (Box<str>, u32) {
    #[derive(Deserialize)]
    struct Pooled {
        pool: Option<String>,
        pool_slots: Option<u32>,
    }
    match data {
        Some(d) if d.contains("\"pool") => match serde_json::from_str::<Pooled>(d) {
            Ok(p) => (
                p.pool
                    .filter(|p| !p.is_empty())
                    .map_or_else(|| DEFAULT_POOL.into(), String::into_boxed_str),
                p.pool_slots.unwrap_or(1).max(1),
            ),
            Err(_) => (DEFAULT_POOL.into(), 1),
        },
        _ => (DEFAULT_POOL.into(), 1),
    }
}

/// A pool's definition, the data of its token (`pinball pool set`): the slots its running
/// jobs may hold together (none: unlimited) and what it is for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolDef {
    #[serde(default)]
    pub slots: Option<u32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl QueryAndOwnRequest {
    /// Claims up to `max_tokens` of the tokens matching `name_prefix` for `owner` until
    /// `expiration_time`, waiting up to `wait_ms` for one to become claimable.
    pub fn new(
        owner: &str,
        expiration_time: i64,
        name_prefix: &str,
        max_tokens: Option<u32>,
        wait_ms: Option<u64>,
    ) -> Self {
        QueryAndOwnRequest {
            owner: owner.to_owned(),
            expiration_time,
            lease_sec: None,
            query: Some(Query {
                name_prefix: name_prefix.to_owned(),
                max_tokens,
            }),
            wait_ms,
            pools: None,
            record_grant: false,
            context: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueryAndOwnResponse {
    pub tokens: Vec<Token>,
    /// With `context` asked, when tokens were granted and their context is within its bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ClaimContext>,
}

/// What the claimant of a token reads before it acts on it, as of the grant's commit: for a
/// job, the signal tokens of its instance, its workflow and of every workflow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClaimContext {
    pub tokens: Vec<Token>,
    /// The master's version when they were read: a watch of them from here misses nothing
    /// written after it (as a `/query` answer's `version`).
    pub version: i64,
}
