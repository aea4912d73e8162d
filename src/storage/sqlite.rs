//! The SQLite dialect: one file, WAL, `synchronous=FULL` (a commit survives power loss). Writes
//! take `BEGIN IMMEDIATE` so a batch never has to upgrade a read lock; a master's rows load as
//! parallel rowid-range table scans.

use std::path::Path;
use std::time::Duration;

use futures_util::TryStreamExt;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteQueryResult, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row};

use super::sql::{Dialect, SqlStore, token_from_row};
use super::{StorageError, Token};

pub type SqliteStorage = SqlStore<Sqlite>;

impl SqlStore<Sqlite> {
    /// Prepares a pool on `path` (created if missing). Connects lazily.
    pub fn open(path: &str) -> Result<Self, StorageError> {
        if path.is_empty() {
            return Err(StorageError::BadUrl {
                url: format!("sqlite://{path}"),
                reason: "no file name".into(),
            });
        }
        if let Some(dir) = Path::new(path).parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            return Err(StorageError::BadUrl {
                url: format!("sqlite://{path}"),
                reason: format!("directory {} does not exist", dir.display()),
            });
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(false)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            // Recovery reads every row once: a deep row channel means fewer thread hand-offs,
            // memory-mapped reads avoid a read() per page, a larger cache keeps the index warm.
            .row_buffer_size(4096)
            .pragma("mmap_size", "268435456")
            .pragma("cache_size", "-65536")
            .disable_statement_logging();
        create_private(path).map_err(|e| StorageError::BadUrl {
            url: format!("sqlite://{path}"),
            reason: format!("cannot create the database file: {e}"),
        })?;
        // A connection to a file of this host does not break while idle: no ping before each
        // use (a round trip to sqlx's connection thread on every commit and read).
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options);
        // A write locks the whole file: a renewal waits for the lock whatever its connection.
        Ok(SqlStore {
            lease_pool: pool.clone(),
            pool,
        })
    }
}

impl Dialect for Sqlite {
    const KIND: &'static str = "sqlite";
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    const SCRIPTS: bool = true;
    const INSERT_ARCHIVED: &'static str = "INSERT OR REPLACE INTO archived_tokens (master, name, version, owner, expiration_time, priority, data, archived_at) ";
    const ARCHIVED_CONFLICT: &'static str = "";
    const ACTIVE_CONFLICT: &'static str = " ON CONFLICT (master, name) DO UPDATE SET version = excluded.version, owner = excluded.owner, \
         expiration_time = excluded.expiration_time, priority = excluded.priority, data = excluded.data";
    const SUMMARY_CONFLICT: &'static str = " ON CONFLICT (master, prefix) DO UPDATE SET status = excluded.status, start_time = excluded.start_time, \
         end_time = excluded.end_time, sort_time = excluded.sort_time, data = excluded.data";
    const INSERT_MASTER: &'static str = "INSERT INTO masters (master, version_floor, created_at) VALUES (?, 0, ?) ON CONFLICT (master) DO NOTHING";
    const BYTES_PER_STATEMENT: usize = usize::MAX;
    const SIZE_BYTES: &'static str =
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()";

    const NOW_MS: &'static str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";
    const LOCK_ROWS: &'static str = "";
    const INSERT_LEASE: &'static str = "INSERT OR IGNORE INTO master_lease (master, epoch, \
         holder, address, since_ms, expires_ms) VALUES (?, 0, '', '', 0, 0)";

    fn skip_duplicates(_column: &str) -> String {
        " ON CONFLICT DO NOTHING".into()
    }
    const INSERT_LOG: &'static str = "INSERT OR IGNORE INTO job_logs ";
    const DELETE_OLD_LOGS: &'static str = "DELETE FROM job_logs WHERE (master, name, execution, kind, start_byte) IN \
         (SELECT master, name, execution, kind, start_byte FROM job_logs WHERE master = ? AND created_at < ? LIMIT ?)";

    fn migrator() -> Migrator {
        super::migrate::sqlite()
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    /// Disjoint rowid ranges on parallel connections. sqlx hands each row from its SQLite
    /// thread to the caller, about 3 µs a row; one thread per range shares that cost out.
    /// Plain table scans, because walking the (master, name) index costs a table lookup per
    /// row, four times slower at a million rows; the master sorts in memory.
    async fn load_rows(pool: &SqlitePool, master: &str) -> Result<Vec<Token>, StorageError> {
        const PARTS: i64 = 4;
        let bounds = sqlx::query("SELECT MIN(rowid), MAX(rowid) FROM active_tokens")
            .fetch_one(pool)
            .await?;
        let (Some(low), Some(high)): (Option<i64>, Option<i64>) =
            (bounds.try_get(0)?, bounds.try_get(1)?)
        else {
            return Ok(Vec::new());
        };
        let step = (high - low) / PARTS + 1;
        let reads = (0..PARTS).map(|p| async move {
            let mut rows = sqlx::query(
                "SELECT name, version, owner, expiration_time, priority, data FROM active_tokens NOT INDEXED \
                 WHERE rowid >= ? AND rowid < ? AND master = ?",
            )
            .bind(low + p * step)
            .bind(low + (p + 1) * step)
            .bind(master)
            .fetch(pool);
            let mut tokens = Vec::new();
            while let Some(row) = rows.try_next().await? {
                tokens.push(token_from_row(&row)?);
            }
            Ok::<_, StorageError>(tokens)
        });
        let parts = futures_util::future::try_join_all(reads).await?;
        Ok(parts.into_iter().flatten().collect())
    }

    async fn after_migrate(_: &SqlitePool) -> Result<(), StorageError> {
        Ok(())
    }
}

/// Creates the database file, readable and writable by this user only, when it does not exist
/// yet (SQLite gives its journal files the same mode). An existing file is left as it is.
fn create_private(path: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if path == ":memory:" || path.starts_with("file:") {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}
