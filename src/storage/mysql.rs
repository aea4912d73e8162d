//! The MySQL/MariaDB backend (InnoDB, utf8mb4), the production store as in the original.
//! Multi-row statements are bounded in bytes to stay below the server's `max_allowed_packet`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::{ConnectOptions, QueryBuilder, Row};

use super::migrate::{MYSQL, Migration};
use super::*;

const ROWS_PER_STATEMENT: usize = 500;
/// Data bytes per multi-row statement; one larger row is sent alone.
const BYTES_PER_STATEMENT: usize = 4 << 20;
/// Below this `max_allowed_packet`, a large token (long job history) cannot be written.
const RECOMMENDED_PACKET: i64 = 64 << 20;

pub struct MysqlStorage {
    pool: MySqlPool,
}

impl MysqlStorage {
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
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options);
        Ok(MysqlStorage { pool })
    }
}

/// Decodes `name, version, owner, expiration_time, priority, data`, by position.
fn token_from_row(row: &MySqlRow) -> Result<Token, sqlx::Error> {
    Ok(Token {
        name: row.try_get(0)?,
        version: Some(row.try_get(1)?),
        owner: row.try_get(2)?,
        expiration_time: row.try_get(3)?,
        priority: row.try_get(4)?,
        data: row.try_get(5)?,
    })
}

fn push_row(
    b: &mut sqlx::query_builder::Separated<'_, MySql, &str>,
    master: &str,
    t: &TokenRef<'_>,
) {
    b.push_bind(master.to_owned())
        .push_bind(t.name.to_owned())
        .push_bind(t.version)
        .push_bind(t.owner.map(str::to_owned))
        .push_bind(t.expiration_time)
        .push_bind(t.priority)
        .push_bind(t.data.map(str::to_owned));
}

async fn apply_migration(pool: &MySqlPool, m: &Migration) -> Result<(), StorageError> {
    let fail = |e: sqlx::Error| StorageError::Migration {
        version: m.version,
        reason: e.to_string(),
    };
    let done: Option<i64> =
        sqlx::query_scalar("SELECT version FROM pinball_migrations WHERE version = ?")
            .bind(m.version)
            .fetch_optional(pool)
            .await
            .map_err(fail)?;
    if done.is_some() {
        return Ok(());
    }
    // MySQL DDL is not transactional; every statement is `IF NOT EXISTS`, so a rerun is safe.
    for stmt in m.statements() {
        sqlx::query(sqlx::AssertSqlSafe(stmt))
            .execute(pool)
            .await
            .map_err(fail)?;
    }
    sqlx::query(
        "INSERT IGNORE INTO pinball_migrations (version, description, applied_at) VALUES (?, ?, ?)",
    )
    .bind(m.version)
    .bind(m.description)
    .bind(unix_now())
    .execute(pool)
    .await
    .map_err(fail)?;
    tracing::info!(
        version = m.version,
        description = m.description,
        "applied mysql migration"
    );
    Ok(())
}

#[async_trait]
impl Storage for MysqlStorage {
    fn kind(&self) -> &'static str {
        "mysql"
    }

    async fn migrate(&self) -> Result<(), StorageError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS pinball_migrations (version BIGINT PRIMARY KEY, description VARCHAR(200) NOT NULL, \
             applied_at BIGINT NOT NULL) ENGINE=InnoDB",
        )
        .execute(&self.pool)
        .await?;
        for m in MYSQL {
            apply_migration(&self.pool, m).await?;
        }
        let packet: i64 = sqlx::query_scalar("SELECT CAST(@@max_allowed_packet AS SIGNED)")
            .fetch_one(&self.pool)
            .await?;
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

    async fn load_active(&self, master: &str) -> Result<Loaded, StorageError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT IGNORE INTO masters (master, version_floor, created_at) VALUES (?, 0, ?)",
        )
        .bind(master)
        .bind(utc_now_text())
        .execute(&mut *tx)
        .await?;
        let (version_floor, created_at): (i64, String) =
            sqlx::query_as("SELECT version_floor, created_at FROM masters WHERE master = ?")
                .bind(master)
                .fetch_one(&mut *tx)
                .await?;
        let rows = sqlx::query(
            "SELECT name, version, owner, expiration_time, priority, data FROM active_tokens WHERE master = ? ORDER BY name",
        )
        .bind(master)
        .fetch_all(&mut *tx)
        .await?;
        let tokens = rows
            .iter()
            .map(token_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().await?;
        Ok(Loaded {
            tokens,
            version_floor,
            created_at,
        })
    }

    async fn commit(&self, master: &str, batch: &CommitBatch<'_>) -> Result<(), StorageError> {
        let mut tx = self.pool.begin().await?;
        for part in chunks(&batch.archived, ROWS_PER_STATEMENT, BYTES_PER_STATEMENT) {
            let mut q = QueryBuilder::<MySql>::new(
                "INSERT INTO archived_tokens (master, name, version, owner, expiration_time, priority, data, archived_at) ",
            );
            let now = unix_now();
            q.push_values(part, |mut b, t| {
                push_row(&mut b, master, t);
                b.push_bind(now);
            });
            q.push(" ON DUPLICATE KEY UPDATE archived_at = VALUES(archived_at)");
            q.build().execute(&mut *tx).await?;
        }
        for part in archive_prefixes(&batch.archived).chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<MySql>::new("INSERT INTO archive_queue (master, prefix) ");
            q.push_values(part, |mut b, prefix| {
                b.push_bind(master.to_owned()).push_bind(prefix.to_string());
            });
            q.build().execute(&mut *tx).await?;
        }
        for part in batch.deletes.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<MySql>::new("DELETE FROM active_tokens WHERE master = ");
            q.push_bind(master.to_owned()).push(" AND name IN (");
            let mut names = q.separated(", ");
            for name in part {
                names.push_bind(name.to_string());
            }
            q.push(")");
            q.build().execute(&mut *tx).await?;
        }
        for part in chunks(&batch.upserts, ROWS_PER_STATEMENT, BYTES_PER_STATEMENT) {
            let mut q = QueryBuilder::<MySql>::new(
                "INSERT INTO active_tokens (master, name, version, owner, expiration_time, priority, data) ",
            );
            q.push_values(part, |mut b, t| push_row(&mut b, master, t));
            q.push(
                " ON DUPLICATE KEY UPDATE version = VALUES(version), owner = VALUES(owner), \
                 expiration_time = VALUES(expiration_time), priority = VALUES(priority), data = VALUES(data)",
            );
            q.build().execute(&mut *tx).await?;
        }
        sqlx::query("UPDATE masters SET version_floor = ? WHERE master = ?")
            .bind(batch.version_floor)
            .bind(master)
            .execute(&mut *tx)
            .await?;
        tx.commit()
            .await
            .map_err(|e| StorageError::CommitUnknown(e.to_string()))
    }

    async fn read(
        &self,
        master: &str,
        table: Table,
        prefix: &str,
    ) -> Result<Vec<Token>, StorageError> {
        let sql = match table {
            Table::Active => {
                "SELECT name, version, owner, expiration_time, priority, data FROM active_tokens \
                 WHERE master = ? AND name >= ? AND name < ? ORDER BY name"
            }
            Table::Archived => {
                "SELECT name, version, owner, expiration_time, priority, data FROM archived_tokens \
                 WHERE master = ? AND name >= ? AND name < ? ORDER BY name, version"
            }
        };
        let rows = sqlx::query(sql)
            .bind(master)
            .bind(prefix)
            .bind(prefix_end(prefix))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(token_from_row)
            .collect::<Result<Vec<_>, _>>()?)
    }

    async fn count(&self, master: &str, table: Table) -> Result<u64, StorageError> {
        let sql = match table {
            Table::Active => "SELECT COUNT(*) FROM active_tokens WHERE master = ?",
            Table::Archived => "SELECT COUNT(*) FROM archived_tokens WHERE master = ?",
        };
        let n: i64 = sqlx::query_scalar(sql)
            .bind(master)
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    async fn names(
        &self,
        master: &str,
        table: Table,
        prefix: &str,
    ) -> Result<Vec<String>, StorageError> {
        let sql = match table {
            Table::Active => {
                "SELECT name FROM active_tokens WHERE master = ? AND name >= ? AND name < ? ORDER BY name"
            }
            Table::Archived => {
                "SELECT DISTINCT name FROM archived_tokens WHERE master = ? AND name >= ? AND name < ? ORDER BY name"
            }
        };
        Ok(sqlx::query_scalar(sql)
            .bind(master)
            .bind(prefix)
            .bind(prefix_end(prefix))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn delete_archived(&self, master: &str, prefix: &str) -> Result<u64, StorageError> {
        let mut tx = self.pool.begin().await?;
        let done =
            sqlx::query("DELETE FROM archived_tokens WHERE master = ? AND name >= ? AND name < ?")
                .bind(master)
                .bind(prefix)
                .bind(prefix_end(prefix))
                .execute(&mut *tx)
                .await?;
        sqlx::query(sql::DELETE_SUMMARIES_UNDER)
            .bind(master)
            .bind(prefix)
            .bind(prefix_end(prefix))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn archive_queue(
        &self,
        master: &str,
        limit: u32,
    ) -> Result<Vec<(i64, String)>, StorageError> {
        Ok(sqlx::query_as(sql::ARCHIVE_QUEUE)
            .bind(master)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn write_summaries(
        &self,
        master: &str,
        summaries: &[InstanceSummary],
        removed: &[String],
        done_seq: i64,
    ) -> Result<(), StorageError> {
        let mut tx = self.pool.begin().await?;
        for part in summaries.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<MySql>::new(
                "INSERT INTO instance_summaries (master, prefix, workflow, instance, status, start_time, end_time, sort_time, data) ",
            );
            q.push_values(part, |mut b, s| {
                b.push_bind(master.to_owned())
                    .push_bind(s.prefix.clone())
                    .push_bind(s.workflow.clone())
                    .push_bind(s.instance.clone())
                    .push_bind(s.status.clone())
                    .push_bind(s.start_time)
                    .push_bind(s.end_time)
                    .push_bind(s.sort_time)
                    .push_bind(s.data.clone());
            });
            q.push(
                " ON DUPLICATE KEY UPDATE status = VALUES(status), start_time = VALUES(start_time), \
                 end_time = VALUES(end_time), sort_time = VALUES(sort_time), data = VALUES(data)",
            );
            q.build().execute(&mut *tx).await?;
        }
        for prefix in removed {
            sqlx::query(sql::DELETE_SUMMARY)
                .bind(master)
                .bind(prefix)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(sql::DROP_QUEUE)
            .bind(master)
            .bind(done_seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn latest_summaries(&self, master: &str) -> Result<Vec<InstanceSummary>, StorageError> {
        let workflows: Vec<String> = sqlx::query_scalar(sql::SUMMARY_WORKFLOWS)
            .bind(master)
            .bind(master)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(workflows.len());
        for w in workflows {
            let row = sqlx::query(sql::LATEST_SUMMARY)
                .bind(master)
                .bind(&w)
                .fetch_optional(&self.pool)
                .await?;
            if let Some(row) = row {
                out.push(summary_from_row(&row)?);
            }
        }
        Ok(out)
    }

    async fn summaries(
        &self,
        master: &str,
        workflow: &str,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<InstanceSummary>, u64), StorageError> {
        let rows = sqlx::query(sql::SUMMARY_PAGE)
            .bind(master)
            .bind(workflow)
            .bind(limit)
            .bind(offset as i64)
            .fetch_all(&self.pool)
            .await?;
        let total: i64 = sqlx::query_scalar(sql::SUMMARY_COUNT)
            .bind(master)
            .bind(workflow)
            .fetch_one(&self.pool)
            .await?;
        Ok((
            rows.iter()
                .map(summary_from_row)
                .collect::<Result<_, _>>()?,
            total as u64,
        ))
    }

    async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
