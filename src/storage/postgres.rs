//! The PostgreSQL dialect: `$n` placeholders (the shared statements are numbered as they are
//! sent), `ON CONFLICT` upserts, byte-ordered keys (`COLLATE "C"`), `BYTEA` log chunks, and
//! `synchronous_commit = on` on every connection, so a commit Pinball acknowledges is on the
//! server's disk whatever the server's default.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgQueryResult, Postgres};
use sqlx::{AssertSqlSafe, ConnectOptions, Row, SqlSafeStr, SqlStr};

use super::sql::{Dialect, SqlStore, numbered};
use super::{StorageError, Token, redact_url};

pub type PostgresStorage = SqlStore<Postgres>;

impl SqlStore<Postgres> {
    pub fn open(url: &str) -> Result<Self, StorageError> {
        let url = url.replacen("postgresql://", "postgres://", 1);
        let options = PgConnectOptions::from_str(&url)
            .map_err(|e| StorageError::BadUrl {
                url: redact_url(&url),
                reason: e.to_string(),
            })?
            .application_name("pinball")
            // Durable whatever the server's default; a lock held too long shows as busy
            // rather than as a hang.
            .options([("synchronous_commit", "on"), ("lock_timeout", "10s")])
            .disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(8)
            // A server that is down or unreachable shows within this, not after minutes of
            // TCP retries: writes fail fast and pages answer 503 within two seconds.
            .acquire_timeout(Duration::from_millis(1500))
            .connect_lazy_with(options.clone());
        let lease_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_millis(1500))
            .connect_lazy_with(options);
        Ok(SqlStore { pool, lease_pool })
    }
}

impl Dialect for Postgres {
    const KIND: &'static str = "postgres";
    const BEGIN: &'static str = "BEGIN";
    const INSERT_ARCHIVED: &'static str = "INSERT INTO archived_tokens (master, name, version, owner, expiration_time, priority, data, archived_at) ";
    const ARCHIVED_CONFLICT: &'static str =
        " ON CONFLICT (master, name, version) DO UPDATE SET archived_at = excluded.archived_at";
    const ACTIVE_CONFLICT: &'static str = " ON CONFLICT (master, name) DO UPDATE SET version = excluded.version, owner = excluded.owner, \
         expiration_time = excluded.expiration_time, priority = excluded.priority, data = excluded.data";
    const SUMMARY_CONFLICT: &'static str = " ON CONFLICT (master, prefix) DO UPDATE SET status = excluded.status, start_time = excluded.start_time, \
         end_time = excluded.end_time, sort_time = excluded.sort_time, data = excluded.data";
    const INSERT_MASTER: &'static str = "INSERT INTO masters (master, version_floor, created_at) VALUES (?, 0, ?) ON CONFLICT (master) DO NOTHING";
    const INSERT_LOG: &'static str = "INSERT INTO job_logs ";
    const LOG_CONFLICT: &'static str = " ON CONFLICT DO NOTHING";
    const DELETE_OLD_LOGS: &'static str = "DELETE FROM job_logs WHERE (master, name, execution, kind, start_byte) IN \
         (SELECT master, name, execution, kind, start_byte FROM job_logs WHERE master = ? AND created_at < ? LIMIT ?)";
    // A statement's text and values travel in one message of at most 1 GiB; keep far below.
    const BYTES_PER_STATEMENT: usize = 16 << 20;
    const SIZE_BYTES: &'static str = "SELECT CAST(pg_database_size(current_database()) AS BIGINT)";
    const NOW_MS: &'static str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";
    const LOCK_ROWS: &'static str = " FOR UPDATE";
    const INSERT_LEASE: &'static str = "INSERT INTO master_lease (master, epoch, holder, address, \
         since_ms, expires_ms) VALUES (?, 0, '', '', 0, 0) ON CONFLICT (master) DO NOTHING";

    fn skip_duplicates(_column: &str) -> String {
        " ON CONFLICT DO NOTHING".into()
    }

    fn migrator() -> Migrator {
        super::migrate::postgres()
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    async fn load_rows(pool: &PgPool, master: &str) -> Result<Vec<Token>, StorageError> {
        super::sql::load_in_one_read(pool, master).await
    }

    async fn after_migrate(pool: &PgPool) -> Result<(), StorageError> {
        let fsync: String = sqlx::query("SHOW fsync")
            .fetch_one(pool)
            .await?
            .try_get(0)?;
        if fsync != "on" {
            tracing::warn!(
                fsync,
                "the PostgreSQL server runs with fsync off: a crash of its machine can lose \
                 commits Pinball acknowledged; set fsync = on in postgresql.conf"
            );
        }
        Ok(())
    }

    fn sql(sql: &'static str) -> SqlStr {
        AssertSqlSafe(numbered(sql)).into_sql_str()
    }

    fn sql_built(sql: String) -> SqlStr {
        AssertSqlSafe(numbered(&sql)).into_sql_str()
    }
}
