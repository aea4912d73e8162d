//! The request and response bodies of the master's JSON API (CONTRACT §2), as they travel on
//! the wire. Unknown fields are refused, so a misspelt field is an error, not a silent default.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Token;

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModifyRequest {
    #[serde(default)]
    pub updates: Vec<Token>,
    #[serde(default)]
    pub deletes: Vec<Token>,
    /// A lease the master grants from its own clock: every update that carries an owner gets
    /// `expiration_time` = the master's now + `lease_sec` (its own `expiration_time` ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 86400)]
    pub lease_sec: Option<u64>,
    /// The last bytes of the logs of a run this write ends, stored in the same commit (so a
    /// run's end costs one commit, and its log is whole once its end is): each names a job
    /// this request updates or deletes at its version, sent by the worker holding it; one per
    /// kind of log, together at most [`MAX_LOGS_IN_MODIFY`] bytes (before base64).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 3)]
    pub logs: Vec<LogRequest>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModifyResponse {
    pub updates: Vec<Token>,
}

/// A name prefix, optionally with `*` segments (see [`super::pattern::Pattern`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Query {
    #[serde(default)]
    pub name_prefix: String,
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub queries: Vec<Query>,
    /// A watch: with `after_version`, wait up to this many milliseconds (at most 600000) until
    /// a token matching a query is written at a version above it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 600000)]
    pub wait_ms: Option<u64>,
    /// The `version` of an earlier answer: what the watch waits to be passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_version: Option<i64>,
}

impl QueryRequest {
    /// Reads `queries` once, without waiting.
    pub fn new(queries: Vec<Query>) -> Self {
        QueryRequest {
            queries,
            ..QueryRequest::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueryResponse {
    pub tokens: Vec<Vec<Token>>,
    /// The master's latest version when it answered: the `after_version` of the next watch.
    #[serde(default)]
    pub version: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupRequest {
    #[serde(default)]
    pub name_prefix: String,
    #[serde(default)]
    pub group_suffix: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupResponse {
    pub counts: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveRequest {
    #[serde(default)]
    pub tokens: Vec<Token>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArchiveResponse {}

/// `GET /api/v1/health`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` when the master serves reads and writes; `degraded` when its database is in
    /// trouble (reads are served from memory, writes are refused with `UNAVAILABLE`).
    pub status: String,
    /// `ok`, `unreachable` (the database does not answer its ping), `failing` (commits
    /// fail, `database_trouble` says why) or `reloading` (memory is being read again after a
    /// commit whose outcome is unknown).
    #[serde(default)]
    pub database: String,
    /// What is wrong with the database, in words (`the disk is full`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_trouble: Option<String>,
    /// Since when (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_trouble_since: Option<f64>,
    pub master: String,
    pub storage: String,
    pub tokens: usize,
    pub last_version: i64,
    pub uptime_sec: u64,
    /// Claims waiting (`wait_ms`) for a token to become claimable: idle workers and schedulers.
    #[serde(default)]
    pub parked_claims: usize,
    /// Notification emails recorded and not yet delivered (the outbox, `/email/`).
    #[serde(default)]
    pub emails_waiting: usize,
    /// The master's clock (seconds since the epoch): the time leases and schedules are due by.
    #[serde(default)]
    pub time: i64,
    /// `leader` (this master serves) or `standby` (another one does: `leader` says where).
    #[serde(default)]
    pub role: String,
    /// Where the leader answers (`HOST:PORT`): this master's address when it leads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// The epoch of the leader's lease (none on SQLite, whose file lock needs none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
    /// The standbys' addresses (`HOST:PORT`), as the leader last read them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub standbys: Vec<String>,
}

/// `POST /api/v1/audit`: one operator action, as the CLI or the UI ran it. The master adds when
/// and through which API token it came.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditRequest {
    /// Who acted: the UI's signed-in user, or the command line's operating-system user.
    #[schema(min_length = 1, max_length = 255)]
    pub actor: String,
    /// The command (`start`, `abort`, `token update`, ...).
    #[schema(min_length = 1, max_length = 255)]
    pub command: String,
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_]+$", min_length = 1, max_length = 128)]
    pub workflow: Option<String>,
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_]+$", min_length = 1, max_length = 128)]
    pub instance: Option<String>,
    #[serde(default)]
    #[schema(max_items = 1000, value_type = Vec<super::name::JobName>)]
    pub jobs: Vec<String>,
    pub ok: bool,
    /// What the command answered, or why it failed.
    #[schema(max_length = 4096)]
    pub result: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditResponse {}

/// One audit-log entry as stored: the request, when the master received it, and the API token
/// it came with (`anonymous` on an open master).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: f64,
    pub via: String,
    #[serde(flatten)]
    pub action: AuditRequest,
}

/// The most bytes of log one `/logs` request carries (before base64).
pub const MAX_LOG_CHUNK: usize = 256 * 1024;

/// The most bytes of log one `/modify` carries (its `logs`, before base64): the tail of a
/// run's logs, not the logs themselves.
pub const MAX_LOGS_IN_MODIFY: usize = 64 * 1024;

/// `/logs`: bytes `offset..` of one execution's log, as the worker wrote them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogRequest {
    #[schema(max_length = 255)]
    pub workflow: String,
    #[schema(max_length = 255)]
    pub instance: String,
    #[schema(max_length = 255)]
    pub job: String,
    /// The execution's index in the job's history.
    #[schema(minimum = 0)]
    pub execution: u32,
    /// `stdout`, `stderr` or `pinlog`.
    pub kind: String,
    /// Where in the log these bytes start.
    #[schema(minimum = 0)]
    pub offset: u64,
    /// The bytes, base64 (standard alphabet, padded), at most 256 KiB of them.
    pub data: String,
    /// The host the job runs on.
    #[schema(max_length = 255)]
    pub host: String,
    /// The worker sending it (its owner name), which must hold the job's lease.
    #[serde(default)]
    #[schema(max_length = 255)]
    pub owner: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogResponse {
    /// Set when the master keeps no more of this log (`log_max_bytes`): send no more of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_at: Option<u64>,
}
