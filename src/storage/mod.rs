//! Persistence: one [`Storage`] trait, one implementation per SQL backend (SQLite, MySQL/MariaDB,
//! PostgreSQL), picked from the database URL. The master writes through it (load at start-up, one transaction
//! per batch); the UI reads through it. SQL lives only in this module's files.

mod cause;
pub mod copy;
pub mod exclusive;
mod health;
mod migrate;
mod mysql;
mod postgres;
mod sql;
mod sqlite;

use async_trait::async_trait;

pub use cause::Cause;
pub use health::{DbStatus, DbWatch, spawn_monitor};
pub use mysql::MysqlStorage;
pub use postgres::PostgresStorage;
pub use sqlite::SqliteStorage;

use crate::token::{AuditEntry, Token};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The change was not made (the transaction rolled back or never began), or a read failed.
    #[error("database unavailable, {cause}: {detail}")]
    Unavailable { cause: Cause, detail: String },
    /// The COMMIT itself failed on a broken connection: the change may or may not be in the
    /// database.
    #[error("commit outcome unknown, {cause}: {detail}")]
    CommitUnknown { cause: Cause, detail: String },
    #[error("invalid database URL {url}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("database schema migration failed: {0}")]
    Migration(String),
    /// Another master took this master's lease (a greater epoch): nothing was committed, and
    /// this master may never commit again.
    #[error("{0}")]
    Deposed(String),
}

impl StorageError {
    pub fn unavailable(cause: Cause, detail: impl Into<String>) -> Self {
        StorageError::Unavailable {
            cause,
            detail: detail.into(),
        }
    }

    /// Why the call failed, when the database was the reason.
    pub fn cause(&self) -> Option<Cause> {
        match self {
            StorageError::Unavailable { cause, .. } | StorageError::CommitUnknown { cause, .. } => {
                Some(*cause)
            }
            StorageError::BadUrl { .. } | StorageError::Migration(_) | StorageError::Deposed(_) => {
                None
            }
        }
    }
}

impl From<sqlx::Error> for StorageError {
    fn from(e: sqlx::Error) -> Self {
        StorageError::unavailable(Cause::of(&e), e.to_string())
    }
}

/// Which of a master's two tables to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Active,
    Archived,
}

impl Table {
    /// The statement for this table, of the two given.
    fn pick(self, active: &'static str, archived: &'static str) -> &'static str {
        match self {
            Table::Active => active,
            Table::Archived => archived,
        }
    }
}

/// Everything a master needs to rebuild its memory.
#[derive(Debug, Default)]
pub struct Loaded {
    pub tokens: Vec<Token>,
    /// Every version issued so far is at most this.
    pub version_floor: i64,
    /// When this master's state was first created (shown in the blessed-version token).
    pub created_at: String,
}

/// A token row to write, borrowed from the master's memory.
#[derive(Debug, Clone, Copy)]
pub struct TokenRef<'a> {
    pub name: &'a str,
    pub version: i64,
    pub owner: Option<&'a str>,
    pub expiration_time: Option<i64>,
    pub priority: f64,
    pub data: Option<&'a str>,
}

impl<'a> From<&'a Token> for TokenRef<'a> {
    fn from(t: &'a Token) -> Self {
        TokenRef {
            name: &t.name,
            version: t.version.unwrap_or(0),
            owner: t.owner.as_deref(),
            expiration_time: t.expiration_time,
            priority: t.priority,
            data: t.data.as_deref(),
        }
    }
}

/// A finished (archived) instance as lists show it, kept in `instance_summaries` so that long
/// histories are not re-read token by token.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceSummary {
    /// `/workflow/W/I/`.
    pub prefix: String,
    pub workflow: String,
    pub instance: String,
    pub status: String,
    pub start_time: Option<f64>,
    pub end_time: Option<f64>,
    /// The end time, or the start time when it has none: what "latest" orders by.
    pub sort_time: f64,
    /// Details as JSON (job counts).
    pub data: String,
}

/// How a caller groups archived names (into instances): a name's group is a prefix of it.
pub type GroupOf = for<'n> fn(&'n str) -> &'n str;

/// The distinct groups (instances) of `rows`, in order, as `group` cuts a name: what a
/// commit queues for summaries.
pub fn archive_groups<'a>(rows: &[TokenRef<'a>], group: GroupOf) -> Vec<&'a str> {
    let mut out: Vec<&'a str> = rows.iter().map(|t| group(t.name)).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// What a master asks for when it takes its lease (`master_lease`).
#[derive(Debug, Clone, Copy)]
pub struct LeaseClaim<'a> {
    /// This process: `HOST pid PID boot BOOT_ID`.
    pub holder: &'a str,
    /// Where it answers, for whoever finds the lease taken.
    pub address: &'a str,
    /// How long the lease lasts without a renewal, by the database's clock.
    pub lease_ms: i64,
    pub take: Take,
}

/// When a lease held by another may be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Only when it has expired by the database's clock.
    IfExpired,
    /// Also when it is still held under this epoch (its holder is known to be dead).
    OrReplace(i64),
    /// Whatever the row says (SQLite: the file lock proves no other master runs).
    Always,
}

/// The answer to a [`LeaseClaim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// Taken under this epoch, greater than every one before.
    Taken { epoch: i64 },
    /// Held by another master.
    Held(LeaseHolder),
}

/// The row of a master's lease, as a master that finds it taken reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub epoch: i64,
    pub holder: String,
    pub address: String,
    /// When it was taken, by the database's clock (milliseconds since the epoch).
    pub since_ms: i64,
    /// How long until it expires unless renewed.
    pub expires_in_ms: i64,
}

/// The outcome of a write a client sent with an idempotency key, kept in the commit of the
/// write so that a replay gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestOutcome {
    /// The caller and its key.
    pub key: String,
    /// SHA-256 of the request, hex: a replay must be the same request.
    pub body_hash: String,
    /// What the master answered, compactly (see `master::requests`).
    pub answer: String,
    /// When it was committed (seconds).
    pub created_at: i64,
}

/// One group commit: applied in a single transaction, all or nothing.
#[derive(Debug, Default)]
pub struct CommitBatch<'a> {
    /// The epoch of the lease this master holds: the commit fails with
    /// [`StorageError::Deposed`] unless it is still the lease row's (`None`: not checked).
    pub epoch: Option<i64>,
    /// Outcomes of the keyed requests this batch answers.
    pub requests: Vec<&'a RequestOutcome>,
    /// Outcomes older than this (seconds) are deleted in the same transaction.
    pub forget_requests_before: Option<i64>,
    pub upserts: Vec<TokenRef<'a>>,
    pub deletes: Vec<&'a str>,
    /// Rows copied into the archive table (their active rows are among `deletes`).
    pub archived: Vec<TokenRef<'a>>,
    /// The groups (instances) of `archived`, queued for their summaries in the same
    /// transaction (see [`archive_groups`]).
    pub archive_groups: Vec<&'a str>,
    pub version_floor: i64,
    /// Audit-log entries written in the same transaction (their `id` is assigned).
    pub audits: Vec<&'a AuditEntry>,
    /// The last log chunks of the runs this batch ends, stored with their ends: each unless
    /// bytes from its start on are stored already (the first bytes kept, nothing twice).
    pub logs: Vec<&'a LogChunk>,
    /// When the `archived` rows were archived (seconds); now when `None`. Set by `db copy`,
    /// which keeps each row's own time, and by tests of retention.
    pub archived_at: Option<i64>,
}

impl<'a> CommitBatch<'a> {
    /// This batch with `archive_groups` filled from `archived`, as `group` cuts a name.
    pub fn grouped(mut self, group: GroupOf) -> Self {
        self.archive_groups = archive_groups(&self.archived, group);
        self
    }
}

/// One stored piece of a job's log: bytes `start..start + raw_len` of the `kind` log of
/// execution `execution` of the job `name` (`/workflow/<wf>/<instance>/<job>`), compressed.
#[derive(Debug, Clone, PartialEq)]
pub struct LogChunk {
    pub name: String,
    pub execution: i64,
    pub kind: String,
    pub start: i64,
    pub raw_len: i64,
    /// The bytes, deflate-compressed.
    pub data: Vec<u8>,
    /// The host the job ran on.
    pub host: String,
    /// Set on the last chunk the master keeps of a log longer than its bound: the bound.
    pub truncated_at: Option<i64>,
    pub created_at: i64,
}

/// What the database holds of one log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogExtent {
    /// Bytes stored from the start (the end of the last chunk).
    pub size: i64,
    pub truncated_at: Option<i64>,
    pub host: String,
}

/// Which log: the job (`/workflow/<wf>/<instance>/<job>`), the execution and the kind.
#[derive(Debug, Clone, Copy)]
pub struct LogKey<'a> {
    pub name: &'a str,
    pub execution: i64,
    pub kind: &'a str,
}

/// What the master needs of its database: its tokens (loaded whole, committed in batches), its
/// lease, the outcomes of keyed writes, and whether the database answers.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// `sqlite`, `mysql` or `postgres`.
    fn kind(&self) -> &'static str;
    /// Runs the backend's migrations (idempotent; safe when several processes start at once).
    async fn migrate(&self) -> Result<(), StorageError>;
    /// Reads every active token of `master`, in no particular order, creating the master's row
    /// if it is new.
    async fn load_active(&self, master: &str) -> Result<Loaded, StorageError>;
    async fn commit(&self, master: &str, batch: &CommitBatch<'_>) -> Result<(), StorageError>;
    async fn ping(&self) -> Result<(), StorageError>;
    /// Takes master `master`'s lease as `claim` says, in one transaction; answers the holder
    /// when another one holds it.
    async fn take_lease(
        &self,
        master: &str,
        claim: &LeaseClaim<'_>,
    ) -> Result<LeaseOutcome, StorageError>;
    /// Extends the lease by `lease_ms` from the database's now while `epoch` is still the
    /// row's; false when another master has taken it since. Runs on a connection of its own,
    /// never behind the pool's writers.
    async fn renew_lease(
        &self,
        master: &str,
        epoch: i64,
        lease_ms: i64,
    ) -> Result<bool, StorageError>;
    /// Ends the lease held under `epoch` (a clean stop), so the next master takes it at once.
    async fn release_lease(&self, master: &str, epoch: i64) -> Result<(), StorageError>;
    /// Who holds master `master`'s lease, and for how long yet by the database's clock (`None`:
    /// no master ever took it). A read: what a standby looks at.
    async fn lease_holder(&self, master: &str) -> Result<Option<LeaseHolder>, StorageError>;
    /// Notes the master at `address` as a standby of `master` now (by the database's clock);
    /// with `leading`, takes the note away (it leads).
    async fn note_standby(
        &self,
        master: &str,
        address: &str,
        holder: &str,
        leading: bool,
    ) -> Result<(), StorageError>;
    /// The addresses of `master`'s standbys noted within the last `within_ms`.
    async fn standbys(&self, master: &str, within_ms: i64) -> Result<Vec<String>, StorageError>;
    /// The outcomes of keyed requests committed at or after `since` (seconds), oldest first.
    async fn request_outcomes(
        &self,
        master: &str,
        since: i64,
    ) -> Result<Vec<RequestOutcome>, StorageError>;
}

/// Reads of what the master committed (live tokens, the archive, summaries of finished
/// instances, the audit log), for the UI, `ops` and the scheduler; and the summaries the
/// archiving process keeps.
#[async_trait]
pub trait Archive: Send + Sync + 'static {
    /// Tokens whose name starts with `prefix`, in name order (archived: then version order).
    async fn read(
        &self,
        master: &str,
        table: Table,
        prefix: &str,
    ) -> Result<Vec<Token>, StorageError>;
    /// Names only (no data) starting with `prefix`, in name order, each once.
    async fn names(
        &self,
        master: &str,
        table: Table,
        prefix: &str,
    ) -> Result<Vec<String>, StorageError>;
    async fn count(&self, master: &str, table: Table) -> Result<u64, StorageError>;
    /// Up to `limit` queued archive prefixes, oldest first, with their sequence numbers: the
    /// instances archived since the summaries were last brought up to date.
    async fn archive_queue(
        &self,
        master: &str,
        limit: u32,
    ) -> Result<Vec<(i64, String)>, StorageError>;
    /// In one transaction: upserts `summaries`, deletes the summaries of `removed` prefixes and
    /// drops the queue up to `done_seq`.
    async fn write_summaries(
        &self,
        master: &str,
        summaries: &[InstanceSummary],
        removed: &[String],
        done_seq: i64,
    ) -> Result<(), StorageError>;
    /// Each workflow's `per_workflow` latest summaries (greatest `sort_time` first).
    async fn latest_summaries(
        &self,
        master: &str,
        per_workflow: u32,
    ) -> Result<Vec<InstanceSummary>, StorageError>;
    /// One page of a workflow's summaries, newest instance first, and how many there are.
    async fn summaries(
        &self,
        master: &str,
        workflow: &str,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<InstanceSummary>, u64), StorageError>;
    /// Up to `limit` audit-log entries of `master`, newest first, older than `before` if given.
    async fn audit_log(
        &self,
        master: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StorageError>;
}

/// Job logs stored beside the tokens: written (and aged out) by the master's log sink, read by
/// the UI.
#[async_trait]
pub trait Logs: Send + Sync + 'static {
    /// Stores log chunks in one transaction; a chunk already stored (same log and start) is
    /// kept as it was, so a worker's resend changes nothing.
    async fn write_logs(&self, master: &str, chunks: &[LogChunk]) -> Result<(), StorageError>;
    /// How much of a log is stored; `None` when nothing is.
    async fn log_extent(
        &self,
        master: &str,
        key: LogKey<'_>,
    ) -> Result<Option<LogExtent>, StorageError>;
    /// Up to `limit` chunks of a log that end after byte `from`, in order.
    async fn log_chunks(
        &self,
        master: &str,
        key: LogKey<'_>,
        from: i64,
        limit: u32,
    ) -> Result<Vec<LogChunk>, StorageError>;
    /// Deletes up to `limit` log chunks stored before `created_before` (retention). Returns
    /// how many.
    async fn delete_old_logs(
        &self,
        master: &str,
        created_before: i64,
        limit: u32,
    ) -> Result<u64, StorageError>;
}

/// Deleting old archived instances (`retention_days`, `util cleanup`).
#[async_trait]
pub trait Retention: Send + Sync + 'static {
    /// Deletes archived tokens whose name starts with `prefix` (`util cleanup`), and the
    /// summaries of those instances. Returns how many tokens.
    async fn delete_archived(&self, master: &str, prefix: &str) -> Result<u64, StorageError>;
    /// Up to `limit` archived groups (instances, as `group` cuts a name) whose every token
    /// was archived before `archived_before`, oldest first (`retention_days`).
    async fn expired_archives(
        &self,
        master: &str,
        archived_before: i64,
        limit: u32,
        group: GroupOf,
    ) -> Result<Vec<String>, StorageError>;
}

/// What `pinball db` needs: copies between databases, the schema version, sizes.
#[async_trait]
pub trait Admin: Send + Sync + 'static {
    /// `sqlite`, `mysql` or `postgres`, for what `pinball db` prints.
    fn backend(&self) -> &'static str;
    /// Brings the schema to this build's (the migrations), before a copy reads or writes.
    async fn upgrade_schema(&self) -> Result<(), StorageError>;
    /// Every master with its creation time (`db copy`).
    async fn copy_masters(&self) -> Result<Vec<(String, String)>, StorageError>;
    /// Up to `limit` rows of one master in a table, in key order, after the key `after`.
    async fn copy_page(
        &self,
        table: &copy::TableSpec,
        master: &str,
        after: Option<&[copy::Value]>,
        limit: u32,
    ) -> Result<Vec<copy::Row>, StorageError>;
    /// Inserts copied rows in one transaction; a row whose key is there already is skipped.
    /// A surrogate id is not copied: the target assigns its own.
    async fn copy_insert(
        &self,
        table: &copy::TableSpec,
        rows: &[copy::Row],
    ) -> Result<(), StorageError>;
    /// The greatest key of a master's rows in a table (where an interrupted copy resumes).
    async fn copy_last_key(
        &self,
        table: &copy::TableSpec,
        master: &str,
    ) -> Result<Option<Vec<copy::Value>>, StorageError>;
    /// The key of a master's row at `offset` in key order.
    async fn copy_key_at(
        &self,
        table: &copy::TableSpec,
        master: &str,
        offset: u64,
    ) -> Result<Option<Vec<copy::Value>>, StorageError>;
    /// A master's rows in a table.
    async fn copy_count(&self, table: &copy::TableSpec, master: &str) -> Result<u64, StorageError>;
    /// The schema version the migrations recorded (`None`: never migrated).
    async fn schema_version(&self) -> Result<Option<i64>, StorageError>;
    /// The database's size on disk, where it can tell.
    async fn size_bytes(&self) -> Result<Option<u64>, StorageError>;
}

/// Every port at once: what one database (`SqlStore`) implements, and what a process that
/// opens the database hands out, each consumer taking only the port it needs.
pub trait Storage: TokenStore + Archive + Logs + Retention + Admin {}

impl<T: TokenStore + Archive + Logs + Retention + Admin + ?Sized> Storage for T {}

/// A log chunk's bytes as stored: deflate, fast.
pub fn compress_log(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(bytes.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    z.write_all(bytes).expect("writing to memory");
    z.finish().expect("writing to memory")
}

/// A stored chunk's bytes, at most `raw_len` of them.
pub fn decompress_log(data: &[u8], raw_len: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::with_capacity(raw_len);
    flate2::read::DeflateDecoder::new(data)
        .take(raw_len as u64)
        .read_to_end(&mut out)?;
    Ok(out)
}

/// The file a `sqlite://` URL names, if it is one.
pub fn sqlite_path(url: &str) -> Option<&str> {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
}

/// Opens the backend the URL names: `sqlite://file`, `sqlite:///abs/file`, `mysql://...`,
/// `postgres://...`. Nothing is connected yet; call [`Storage::migrate`] (with retries) before
/// use.
pub fn open(url: &str) -> Result<Box<dyn Storage>, StorageError> {
    if let Some(path) = sqlite_path(url) {
        Ok(Box::new(SqliteStorage::open(path)?))
    } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
        Ok(Box::new(MysqlStorage::open(url)?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Box::new(PostgresStorage::open(url)?))
    } else {
        Err(StorageError::BadUrl {
            url: redact_url(url),
            reason: "expected sqlite://FILE, mysql://USER:PASS@HOST:PORT/DB or \
                     postgres://USER:PASS@HOST:PORT/DB"
                .into(),
        })
    }
}

/// The URL with its password replaced, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The exclusive upper bound of names starting with `prefix`: every name character sorts
/// below 0x7F, so `prefix + "\x7f"` bounds the range.
fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{7f}")
}

fn unix_now() -> i64 {
    crate::clock::now()
}

fn utc_now_text() -> String {
    crate::clock::utc(unix_now())
}

/// Splits rows into chunks of at most `max_rows` rows and about `max_bytes` of data (a larger
/// row goes alone), so one statement stays below the server's packet and variable limits.
fn chunks<'a, 'b>(
    rows: &'b [TokenRef<'a>],
    max_rows: usize,
    max_bytes: usize,
) -> Vec<&'b [TokenRef<'a>]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, row) in rows.iter().enumerate() {
        let size =
            row.name.len() + row.data.map_or(0, str::len) + row.owner.map_or(0, str::len) + 64;
        if i > start && (i - start >= max_rows || bytes + size > max_bytes) {
            out.push(&rows[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < rows.len() {
        out.push(&rows[start..]);
    }
    out
}

#[cfg(test)]
mod tests;
