//! The SQLite backend: one file, WAL, `synchronous=FULL` (a commit survives power loss).
//! Writes take `BEGIN IMMEDIATE` so a batch never has to upgrade a read lock.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, QueryBuilder, Row, Sqlite};

use super::migrate::{Migration, SQLITE};
use super::*;

/// Rows per multi-row statement (7 bound values each, far below SQLite's variable limit).
const ROWS_PER_STATEMENT: usize = 500;

pub struct SqliteStorage {
    pool: SqlitePool,
}

impl SqliteStorage {
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
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            // Recovery reads every row once: a deep row channel means fewer thread hand-offs,
            // memory-mapped reads avoid a read() per page, a larger cache keeps the index warm.
            .row_buffer_size(4096)
            .pragma("mmap_size", "268435456")
            .pragma("cache_size", "-65536")
            .disable_statement_logging();
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options);
        Ok(SqliteStorage { pool })
    }
}

/// Decodes `name, version, owner, expiration_time, priority, data`, by position (a lookup by
/// column name costs a hash per column per row, which shows at a million rows).
fn token_from_row(row: &SqliteRow) -> Result<Token, sqlx::Error> {
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
    b: &mut sqlx::query_builder::Separated<'_, Sqlite, &str>,
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

async fn apply_migration(pool: &SqlitePool, m: &Migration) -> Result<(), StorageError> {
    let fail = |e: sqlx::Error| StorageError::Migration {
        version: m.version,
        reason: e.to_string(),
    };
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(fail)?;
    let done: Option<i64> =
        sqlx::query_scalar("SELECT version FROM pinball_migrations WHERE version = ?")
            .bind(m.version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(fail)?;
    if done.is_some() {
        return Ok(());
    }
    for stmt in m.statements() {
        sqlx::query(sqlx::AssertSqlSafe(stmt))
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
    }
    sqlx::query(
        "INSERT INTO pinball_migrations (version, description, applied_at) VALUES (?, ?, ?)",
    )
    .bind(m.version)
    .bind(m.description)
    .bind(unix_now())
    .execute(&mut *tx)
    .await
    .map_err(fail)?;
    tx.commit().await.map_err(fail)?;
    tracing::info!(
        version = m.version,
        description = m.description,
        "applied sqlite migration"
    );
    Ok(())
}

impl SqliteStorage {
    /// Reads a master's active rows as disjoint rowid ranges on parallel connections. sqlx hands
    /// each row from its SQLite thread to the caller, about 3 µs a row; one thread per range
    /// shares that cost out. Plain table scans, because walking the (master, name) index costs a
    /// table lookup per row, four times slower at a million rows; the master sorts in memory.
    async fn read_rowid_ranges(
        &self,
        master: &str,
        low: i64,
        high: i64,
    ) -> Result<Vec<Token>, StorageError> {
        const PARTS: i64 = 4;
        let step = (high - low) / PARTS + 1;
        let reads = (0..PARTS).map(|p| async move {
            let mut rows = sqlx::query(
                "SELECT name, version, owner, expiration_time, priority, data FROM active_tokens NOT INDEXED \
                 WHERE rowid >= ? AND rowid < ? AND master = ?",
            )
            .bind(low + p * step)
            .bind(low + (p + 1) * step)
            .bind(master)
            .fetch(&self.pool);
            let mut tokens = Vec::new();
            while let Some(row) = rows.try_next().await? {
                tokens.push(token_from_row(&row)?);
            }
            Ok::<_, StorageError>(tokens)
        });
        let parts = futures_util::future::try_join_all(reads).await?;
        Ok(parts.into_iter().flatten().collect())
    }
}

#[async_trait]
impl Storage for SqliteStorage {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<(), StorageError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS pinball_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        for m in SQLITE {
            apply_migration(&self.pool, m).await?;
        }
        Ok(())
    }

    async fn load_active(&self, master: &str) -> Result<Loaded, StorageError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("INSERT INTO masters (master, version_floor, created_at) VALUES (?, 0, ?) ON CONFLICT (master) DO NOTHING")
            .bind(master)
            .bind(utc_now_text())
            .execute(&mut *tx)
            .await?;
        let (version_floor, created_at): (i64, String) =
            sqlx::query_as("SELECT version_floor, created_at FROM masters WHERE master = ?")
                .bind(master)
                .fetch_one(&mut *tx)
                .await?;
        let (low, high): (Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT MIN(rowid), MAX(rowid) FROM active_tokens")
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        let tokens = match (low, high) {
            (Some(low), Some(high)) => self.read_rowid_ranges(master, low, high).await?,
            _ => Vec::new(),
        };
        Ok(Loaded {
            tokens,
            version_floor,
            created_at,
        })
    }

    async fn commit(&self, master: &str, batch: &CommitBatch<'_>) -> Result<(), StorageError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for part in chunks(&batch.archived, ROWS_PER_STATEMENT, usize::MAX) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT OR REPLACE INTO archived_tokens (master, name, version, owner, expiration_time, priority, data, archived_at) ",
            );
            let now = unix_now();
            q.push_values(part, |mut b, t| {
                push_row(&mut b, master, t);
                b.push_bind(now);
            });
            q.build().execute(&mut *tx).await?;
        }
        for part in archive_prefixes(&batch.archived).chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO archive_queue (master, prefix) ");
            q.push_values(part, |mut b, prefix| {
                b.push_bind(master.to_owned()).push_bind(prefix.to_string());
            });
            q.build().execute(&mut *tx).await?;
        }
        for part in batch.deletes.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new("DELETE FROM active_tokens WHERE master = ");
            q.push_bind(master.to_owned()).push(" AND name IN (");
            let mut names = q.separated(", ");
            for name in part {
                names.push_bind(name.to_string());
            }
            q.push(")");
            q.build().execute(&mut *tx).await?;
        }
        for part in chunks(&batch.upserts, ROWS_PER_STATEMENT, usize::MAX) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO active_tokens (master, name, version, owner, expiration_time, priority, data) ",
            );
            q.push_values(part, |mut b, t| push_row(&mut b, master, t));
            q.push(
                " ON CONFLICT (master, name) DO UPDATE SET version = excluded.version, owner = excluded.owner, \
                 expiration_time = excluded.expiration_time, priority = excluded.priority, data = excluded.data",
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for part in summaries.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
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
                " ON CONFLICT (master, prefix) DO UPDATE SET status = excluded.status, start_time = excluded.start_time, \
                 end_time = excluded.end_time, sort_time = excluded.sort_time, data = excluded.data",
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
