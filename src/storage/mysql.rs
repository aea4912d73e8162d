//! The MySQL/MariaDB dialect (InnoDB, utf8mb4), the production store as in the original.
//! Multi-row statements are bounded in bytes to stay below the server's `max_allowed_packet`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlQueryResult};
use sqlx::{ConnectOptions, Row};

use super::sql::{Dialect, SqlStore};
use super::{StorageError, Token, redact_url};

pub type MysqlStorage = SqlStore<MySql>;

/// Below this `max_allowed_packet`, a large token (long job history) cannot be written.
const RECOMMENDED_PACKET: i64 = 64 << 20;

impl SqlStore<MySql> {
    pub fn open(url: &str) -> Result<Self, StorageError> {
        let url = url.replacen("mariadb://", "mysql://", 1);
        let options = MySqlConnectOptions::from_str(&url)
            .map_err(|e| StorageError::BadUrl {
                url: redact_url(&url),
                reason: e.to_string(),
            })?
            .charset("utf8mb4")
            .disable_statement_logging();
        let pool = MySqlPoolOptions::new()
            .max_connections(8)
            // A server that is down or unreachable shows within this, not after minutes of
            // TCP retries: writes fail fast and pages answer 503 within two seconds.
            .acquire_timeout(Duration::from_millis(1500))
            .connect_lazy_with(options.clone());
        let lease_pool = MySqlPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_millis(1500))
            .connect_lazy_with(options);
        Ok(SqlStore { pool, lease_pool })
    }
}

impl Dialect for MySql {
    const KIND: &'static str = "mysql";
    const BEGIN: &'static str = "BEGIN";
    const INSERT_ARCHIVED: &'static str = "INSERT INTO archived_tokens (master, name, version, owner, expiration_time, priority, data, archived_at) ";
    const ARCHIVED_CONFLICT: &'static str =
        " ON DUPLICATE KEY UPDATE archived_at = VALUES(archived_at)";
    const ACTIVE_CONFLICT: &'static str = " ON DUPLICATE KEY UPDATE version = VALUES(version), owner = VALUES(owner), \
         expiration_time = VALUES(expiration_time), priority = VALUES(priority), data = VALUES(data)";
    const SUMMARY_CONFLICT: &'static str = " ON DUPLICATE KEY UPDATE status = VALUES(status), start_time = VALUES(start_time), \
         end_time = VALUES(end_time), sort_time = VALUES(sort_time), data = VALUES(data)";
    const INSERT_MASTER: &'static str =
        "INSERT IGNORE INTO masters (master, version_floor, created_at) VALUES (?, 0, ?)";
    const BYTES_PER_STATEMENT: usize = 4 << 20;
    const SIZE_BYTES: &'static str = "SELECT CAST(SUM(data_length + index_length) AS SIGNED) \
         FROM information_schema.tables WHERE table_schema = DATABASE()";

    const NOW_MS: &'static str = "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)";
    const LOCK_ROWS: &'static str = " FOR UPDATE";
    const INSERT_LEASE: &'static str = "INSERT IGNORE INTO master_lease (master, epoch, holder, \
         address, since_ms, expires_ms) VALUES (?, 0, '', '', 0, 0)";

    const STANDBY_CONFLICT: &'static str =
        " ON DUPLICATE KEY UPDATE holder = VALUES(holder), seen_ms = VALUES(seen_ms)";

    fn skip_duplicates(column: &str) -> String {
        format!(" ON DUPLICATE KEY UPDATE {column} = {column}")
    }
    const INSERT_LOG: &'static str = "INSERT IGNORE INTO job_logs ";
    const DELETE_OLD_LOGS: &'static str =
        "DELETE FROM job_logs WHERE master = ? AND created_at < ? ORDER BY created_at LIMIT ?";

    fn migrator() -> Migrator {
        super::migrate::mysql()
    }

    fn rows_affected(result: &MySqlQueryResult) -> u64 {
        result.rows_affected()
    }

    async fn load_rows(pool: &MySqlPool, master: &str) -> Result<Vec<Token>, StorageError> {
        super::sql::load_in_one_read(pool, master).await
    }

    async fn after_migrate(pool: &MySqlPool) -> Result<(), StorageError> {
        let packet: i64 = sqlx::query("SELECT CAST(@@max_allowed_packet AS SIGNED)")
            .fetch_one(pool)
            .await?
            .try_get(0)?;
        if packet < RECOMMENDED_PACKET {
            tracing::warn!(
                max_allowed_packet = packet,
                recommended = RECOMMENDED_PACKET,
                "the MySQL server's max_allowed_packet is small: tokens larger than it cannot be stored; \
                 set max_allowed_packet=64M (or more) in the server's configuration"
            );
        }
        Ok(())
    }
}
