//! The [`Storage`] implementation, written once over sqlx's `Database` for every SQL backend.
//! A [`Dialect`] says what differs: how a write transaction begins, the upsert clauses, the
//! statement size bound, the migrations, and how a master's rows are loaded fastest. The
//! bounds below are what runtime-checked queries over a generic database need; they hold for
//! SQLite and MySQL alike.

use std::future::Future;

use async_trait::async_trait;
use sqlx::migrate::{Migrate, Migrator};
use sqlx::pool::PoolConnection;
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, QueryBuilder, Row, Type,
};

use super::*;

/// What one SQL backend does its own way.
pub trait Dialect: Database + Sized {
    /// `sqlite` or `mysql`.
    const KIND: &'static str;
    /// Starts a write transaction.
    const BEGIN: &'static str;
    /// The archive insert, up to `VALUES`.
    const INSERT_ARCHIVED: &'static str;
    /// What follows the archive insert's values (a repeated archive keeps the newer time).
    const ARCHIVED_CONFLICT: &'static str;
    /// What follows the active-token insert's values: the upsert.
    const ACTIVE_CONFLICT: &'static str;
    /// What follows the summary insert's values: the upsert.
    const SUMMARY_CONFLICT: &'static str;
    /// Inserts a master's row unless it exists (binds: master, created_at).
    const INSERT_MASTER: &'static str;
    /// The log-chunk insert that keeps a chunk already stored, up to the column list.
    const INSERT_LOG: &'static str;
    /// Deletes up to `limit` chunks older than a time (binds: master, created_before, limit).
    const DELETE_OLD_LOGS: &'static str;
    /// Data bytes per multi-row statement (below the server's packet limit); one larger row
    /// is sent alone.
    const BYTES_PER_STATEMENT: usize;
    /// The database's size in bytes (one row, one integer column).
    const SIZE_BYTES: &'static str;
    /// The database's clock, in milliseconds since the epoch (an integer expression).
    const NOW_MS: &'static str;
    /// What follows a `SELECT` that locks the rows it reads until the transaction ends
    /// (empty where the write transaction locks the whole database).
    const LOCK_ROWS: &'static str;
    /// Inserts a master's lease row unless it exists (binds: master).
    const INSERT_LEASE: &'static str;

    /// What follows a copy insert's values so a row whose key exists is skipped (`column`
    /// is the key's first).
    fn skip_duplicates(column: &str) -> String;

    fn migrator() -> Migrator;

    /// How many rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// Every active token of `master`, in no particular order.
    fn load_rows(
        pool: &Pool<Self>,
        master: &str,
    ) -> impl Future<Output = Result<Vec<Token>, StorageError>> + Send;

    /// Checks run after the migrations (MySQL warns about a small packet limit).
    fn after_migrate(pool: &Pool<Self>) -> impl Future<Output = Result<(), StorageError>> + Send;
}

/// Rows per multi-row statement (7 bound values each, far below every variable limit).
const ROWS_PER_STATEMENT: usize = 500;

/// Statements both dialects share.
mod q {
    pub const INSERT_AUDIT: &str = "INSERT INTO audit_log (master, at, actor, via, command, \
        workflow, instance, jobs, ok, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    pub const AUDIT_PAGE: &str = "SELECT id, at, actor, via, command, workflow, instance, jobs, \
        ok, result FROM audit_log WHERE master = ? AND id < ? ORDER BY id DESC LIMIT ?";
    pub const READ_ACTIVE: &str = "SELECT name, version, owner, expiration_time, priority, data \
         FROM active_tokens WHERE master = ? AND name >= ? AND name < ? ORDER BY name";
    pub const READ_ARCHIVED: &str = "SELECT name, version, owner, expiration_time, priority, \
         data FROM archived_tokens WHERE master = ? AND name >= ? AND name < ? ORDER BY name, version";
    pub const NAMES_ACTIVE: &str = "SELECT name FROM active_tokens WHERE master = ? AND name >= ? \
         AND name < ? ORDER BY name";
    pub const NAMES_ARCHIVED: &str = "SELECT DISTINCT name FROM archived_tokens WHERE master = ? \
         AND name >= ? AND name < ? ORDER BY name";
    pub const COUNT_ACTIVE: &str = "SELECT COUNT(*) FROM active_tokens WHERE master = ?";
    pub const COUNT_ARCHIVED: &str = "SELECT COUNT(*) FROM archived_tokens WHERE master = ?";
    pub const MASTER: &str = "SELECT version_floor, created_at FROM masters WHERE master = ?";
    pub const FLOOR: &str = "UPDATE masters SET version_floor = ? WHERE master = ?";
    /// The names archived longest ago (the age index), for retention.
    pub const OLDEST_ARCHIVED: &str = "SELECT name FROM archived_tokens WHERE master = ? \
         AND archived_at < ? ORDER BY archived_at LIMIT ?";
    /// When an instance was last archived (its key range).
    pub const LAST_ARCHIVED: &str = "SELECT MAX(archived_at) FROM archived_tokens WHERE master = ? \
         AND name >= ? AND name < ?";
    pub const DELETE_ARCHIVED: &str =
        "DELETE FROM archived_tokens WHERE master = ? AND name >= ? AND name < ?";
    /// The distinct workflows with summaries, by skipping through the index (a recursive
    /// query: one index seek per workflow instead of a scan of every summary).
    pub const SUMMARY_WORKFLOWS: &str = "WITH RECURSIVE w(name) AS ( \
         SELECT MIN(workflow) FROM instance_summaries WHERE master = ? \
         UNION ALL SELECT (SELECT MIN(workflow) FROM instance_summaries \
         WHERE master = ? AND workflow > w.name) FROM w WHERE w.name IS NOT NULL) \
         SELECT name FROM w WHERE name IS NOT NULL";
    pub const LATEST_SUMMARY: &str = "SELECT prefix, workflow, instance, status, start_time, \
         end_time, sort_time, data FROM instance_summaries WHERE master = ? AND workflow = ? \
         ORDER BY sort_time DESC, instance DESC LIMIT 1";
    pub const SUMMARY_PAGE: &str = "SELECT prefix, workflow, instance, status, start_time, \
         end_time, sort_time, data FROM instance_summaries WHERE master = ? AND workflow = ? \
         ORDER BY instance DESC LIMIT ? OFFSET ?";
    pub const SUMMARY_COUNT: &str =
        "SELECT COUNT(*) FROM instance_summaries WHERE master = ? AND workflow = ?";
    pub const ARCHIVE_QUEUE: &str =
        "SELECT seq, prefix FROM archive_queue WHERE master = ? ORDER BY seq LIMIT ?";
    pub const LOG_EXTENT: &str = "SELECT MAX(start_byte + raw_len), MAX(truncated_at), MAX(host) \
         FROM job_logs WHERE master = ? AND name = ? AND execution = ? AND kind = ?";
    pub const LOG_CHUNKS: &str = "SELECT start_byte, raw_len, data, host, truncated_at, created_at \
         FROM job_logs WHERE master = ? AND name = ? AND execution = ? AND kind = ? \
         AND start_byte + raw_len > ? ORDER BY start_byte LIMIT ?";
    pub const DELETE_LOGS_UNDER: &str =
        "DELETE FROM job_logs WHERE master = ? AND name >= ? AND name < ?";
    pub const DROP_QUEUE: &str = "DELETE FROM archive_queue WHERE master = ? AND seq <= ?";
    pub const DELETE_SUMMARY: &str =
        "DELETE FROM instance_summaries WHERE master = ? AND prefix = ?";
    pub const LEASE_EPOCH: &str = "SELECT epoch FROM master_lease WHERE master = ?";
    pub const INSERT_REQUEST: &str = "INSERT INTO request_outcomes (master, request_key, \
         body_hash, answer, created_at) VALUES (?, ?, ?, ?, ?)";
    pub const FORGET_REQUESTS: &str =
        "DELETE FROM request_outcomes WHERE master = ? AND created_at < ?";
    pub const REQUESTS_SINCE: &str = "SELECT request_key, body_hash, answer, created_at FROM \
         request_outcomes WHERE master = ? AND created_at >= ? ORDER BY created_at";
    pub const RELEASE_LEASE: &str =
        "UPDATE master_lease SET expires_ms = 0 WHERE master = ? AND epoch = ?";
    pub const DELETE_SUMMARIES_UNDER: &str =
        "DELETE FROM instance_summaries WHERE master = ? AND prefix >= ? AND prefix < ?";
}

/// A database of one dialect, behind a pool.
pub struct SqlStore<DB: Database> {
    pub(super) pool: Pool<DB>,
    /// One connection for the master's lease renewals, so a renewal never waits behind the
    /// pool's writers (the same pool where writes lock the whole file).
    pub(super) lease_pool: Pool<DB>,
}

/// One write transaction on a pooled connection of its own. The connection goes back to the
/// pool only after a COMMIT that succeeded; after any error, or when the future running the
/// transaction is dropped midway, it is closed (which rolls the transaction back) so a
/// connection in an unknown transaction state is never handed out again. Sharing one after a
/// failed rollback is what left a master failing every write with "begin_with at non-zero
/// transaction depth" after a full disk.
struct WriteTx<DB: Database> {
    conn: PoolConnection<DB>,
    committed: bool,
}

impl<DB: Dialect> WriteTx<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    async fn begin(pool: &Pool<DB>) -> Result<Self, sqlx::Error> {
        let conn = pool.acquire().await?;
        let mut tx = WriteTx {
            conn,
            committed: false,
        };
        sqlx::query(DB::BEGIN).execute(tx.conn()).await?;
        Ok(tx)
    }

    fn conn(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }

    /// Commits. A failure on a broken connection leaves the outcome unknown; an error the
    /// database answered with means nothing was committed.
    async fn commit(mut self) -> Result<(), StorageError> {
        match sqlx::query("COMMIT").execute(self.conn()).await {
            Ok(_) => {
                self.committed = true;
                Ok(())
            }
            Err(e) => {
                let cause = Cause::of(&e);
                Err(if cause.is_connection() {
                    StorageError::CommitUnknown {
                        cause,
                        detail: e.to_string(),
                    }
                } else {
                    StorageError::unavailable(cause, e.to_string())
                })
            }
        }
    }
}

impl<DB: Database> Drop for WriteTx<DB> {
    fn drop(&mut self) {
        if !self.committed {
            self.conn.close_on_drop();
        }
    }
}

/// Decodes `name, version, owner, expiration_time, priority, data`, by position (a lookup by
/// column name costs a hash per column per row, which shows at a million rows).
pub(super) fn token_from_row<R: Row>(row: &R) -> Result<Token, sqlx::Error>
where
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(Token {
        name: row.try_get(0)?,
        version: Some(row.try_get(1)?),
        owner: row.try_get(2)?,
        expiration_time: row.try_get(3)?,
        priority: row.try_get(4)?,
        data: row.try_get(5)?,
    })
}

fn summary_from_row<R: Row>(row: &R) -> Result<InstanceSummary, sqlx::Error>
where
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(InstanceSummary {
        prefix: row.try_get(0)?,
        workflow: row.try_get(1)?,
        instance: row.try_get(2)?,
        status: row.try_get(3)?,
        start_time: row.try_get(4)?,
        end_time: row.try_get(5)?,
        sort_time: row.try_get(6)?,
        data: row.try_get(7)?,
    })
}

/// The rows of a `master = ? AND name >= ? AND name < ?` statement over a prefix's range.
async fn range_rows<DB: Database>(
    pool: &Pool<DB>,
    sql: &'static str,
    master: &str,
    prefix: &str,
) -> Result<Vec<DB::Row>, sqlx::Error>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
{
    let end = prefix_end(prefix);
    sqlx::query(sql)
        .bind(master)
        .bind(prefix)
        .bind(end.as_str())
        .fetch_all(pool)
        .await
}

fn push_token<DB: Database>(
    b: &mut sqlx::query_builder::Separated<'_, DB, &'static str>,
    master: &str,
    t: &TokenRef<'_>,
) where
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> Option<String>: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
    for<'a> f64: Encode<'a, DB> + Type<DB>,
{
    b.push_bind(master.to_owned())
        .push_bind(t.name.to_owned())
        .push_bind(t.version)
        .push_bind(t.owner.map(str::to_owned))
        .push_bind(t.expiration_time)
        .push_bind(t.priority)
        .push_bind(t.data.map(str::to_owned));
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Decode<'q, DB> + Type<DB>,
    for<'q> Option<f64>: Decode<'q, DB> + Type<DB>,
    for<'q> Option<Vec<u8>>: Decode<'q, DB> + Type<DB>,
{
    /// The key of a master's row `offset` rows into the table in key order (`DESC`: from
    /// the end).
    async fn key_where(
        &self,
        table: &copy::TableSpec,
        master: &str,
        direction: &str,
        offset: u64,
    ) -> Result<Option<Vec<copy::Value>>, StorageError> {
        let sql = format!(
            "SELECT {} FROM {} WHERE master = ? ORDER BY {} LIMIT 1 OFFSET ?",
            column_list(table, false),
            table.name,
            order_list(table, direction)
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(master.to_owned())
            .bind(offset as i64)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(table.key(&read_values(&r, table)?)),
            None => None,
        })
    }
}

#[async_trait]
impl<DB> Storage for SqlStore<DB>
where
    DB: Dialect,
    DB::Connection: Migrate,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> f64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<f64>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<Vec<u8>>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
{
    async fn copy_masters(&self) -> Result<Vec<(String, String)>, StorageError> {
        let rows = sqlx::query("SELECT master, created_at FROM masters ORDER BY master")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    async fn copy_page(
        &self,
        table: &copy::TableSpec,
        master: &str,
        after: Option<&[copy::Value]>,
        limit: u32,
    ) -> Result<Vec<copy::Row>, StorageError> {
        let order: Vec<_> = table.order().collect();
        if order.is_empty() && after.is_some() {
            return Ok(Vec::new()); // one row a master, and it was read
        }
        let mut q = QueryBuilder::<DB>::new(format!(
            "SELECT {} FROM {} WHERE master = ",
            column_list(table, false),
            table.name
        ));
        q.push_bind(master.to_owned());
        if let Some(after) = after {
            // Keyset order, spelled out: (k1 > a) OR (k1 = a AND k2 > b) OR ...
            q.push(" AND (");
            for (i, (_, column, kind)) in order.iter().enumerate() {
                if i > 0 {
                    q.push(" OR ");
                }
                q.push("(");
                for (j, (_, earlier, kind)) in order.iter().enumerate().take(i) {
                    q.push(format!("{earlier} = "));
                    bind_copied!(q, &after[j], *kind);
                    q.push(" AND ");
                }
                q.push(format!("{column} > "));
                bind_copied!(q, &after[i], *kind);
                q.push(")");
            }
            q.push(")");
        }
        q.push(format!(" ORDER BY {} LIMIT ", order_list(table, "")));
        q.push_bind(i64::from(limit));
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| read_values(r, table).map_err(StorageError::from))
            .collect()
    }

    async fn copy_insert(
        &self,
        table: &copy::TableSpec,
        rows: &[copy::Row],
    ) -> Result<(), StorageError> {
        let skip = usize::from(table.surrogate);
        let mut tx = WriteTx::<DB>::begin(&self.pool).await?;
        let head = format!(
            "INSERT INTO {} ({}) ",
            table.name,
            column_list(table, table.surrogate)
        );
        let tail = if table.surrogate {
            String::new()
        } else {
            DB::skip_duplicates(table.columns[0].0)
        };
        let mut start = 0;
        while start < rows.len() {
            // Statements below the server's packet limit; a larger row goes alone.
            let mut end = start;
            let mut bytes = 0;
            while end < rows.len() && end - start < ROWS_PER_STATEMENT {
                let size: usize = rows[end].iter().map(copy::Value::size).sum();
                if end > start && bytes + size > DB::BYTES_PER_STATEMENT.min(4 << 20) {
                    break;
                }
                bytes += size;
                end += 1;
            }
            let mut q = QueryBuilder::<DB>::new(&head);
            q.push_values(&rows[start..end], |mut b, row| {
                for (value, (_, kind)) in row.iter().zip(table.columns).skip(skip) {
                    bind_copied!(b, value, *kind);
                }
            });
            q.push(&tail);
            q.build().execute(tx.conn()).await?;
            start = end;
        }
        tx.commit().await
    }

    async fn copy_last_key(
        &self,
        table: &copy::TableSpec,
        master: &str,
    ) -> Result<Option<Vec<copy::Value>>, StorageError> {
        self.key_where(table, master, " DESC", 0).await
    }

    async fn copy_key_at(
        &self,
        table: &copy::TableSpec,
        master: &str,
        offset: u64,
    ) -> Result<Option<Vec<copy::Value>>, StorageError> {
        self.key_where(table, master, "", offset).await
    }

    async fn copy_count(&self, table: &copy::TableSpec, master: &str) -> Result<u64, StorageError> {
        let sql = format!("SELECT COUNT(*) FROM {} WHERE master = ?", table.name);
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(master)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>(0)? as u64)
    }

    async fn schema_version(&self) -> Result<Option<i64>, StorageError> {
        match sqlx::query("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.pool)
            .await
        {
            Ok(row) => Ok(row.try_get(0)?),
            // No such table: never migrated. Anything else (unreachable) is an error.
            Err(sqlx::Error::Database(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn size_bytes(&self) -> Result<Option<u64>, StorageError> {
        let row = sqlx::query(DB::SIZE_BYTES).fetch_one(&self.pool).await?;
        Ok(row.try_get::<Option<i64>, _>(0)?.map(|b| b.max(0) as u64))
    }

    fn kind(&self) -> &'static str {
        DB::KIND
    }

    async fn migrate(&self) -> Result<(), StorageError> {
        let legacy: Option<i64> = match sqlx::query(super::migrate::LEGACY_VERSION)
            .fetch_one(&self.pool)
            .await
        {
            Ok(row) => row.try_get(0)?,
            Err(_) => None, // no legacy table: nothing to adopt
        };
        super::migrate::run(&DB::migrator(), &self.pool, legacy).await?;
        DB::after_migrate(&self.pool).await
    }

    async fn load_active(&self, master: &str) -> Result<Loaded, StorageError> {
        let mut tx = WriteTx::<DB>::begin(&self.pool).await?;
        sqlx::query(DB::INSERT_MASTER)
            .bind(master)
            .bind(utc_now_text())
            .execute(tx.conn())
            .await?;
        let row = sqlx::query(q::MASTER)
            .bind(master)
            .fetch_one(tx.conn())
            .await?;
        let (version_floor, created_at): (i64, String) = (row.try_get(0)?, row.try_get(1)?);
        tx.commit().await?;
        Ok(Loaded {
            tokens: DB::load_rows(&self.pool, master).await?,
            version_floor,
            created_at,
        })
    }

    async fn commit(&self, master: &str, batch: &CommitBatch<'_>) -> Result<(), StorageError> {
        let mut tx = WriteTx::<DB>::begin(&self.pool).await?;
        if let Some(epoch) = batch.epoch {
            // First, and locked until the commit: a master taking the lease over waits for
            // this transaction, and this one fails once it has.
            let sql = format!("{}{}", q::LEASE_EPOCH, DB::LOCK_ROWS);
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(master)
                .fetch_optional(tx.conn())
                .await?;
            let now: Option<i64> = row.map(|r| r.try_get(0)).transpose()?;
            if now != Some(epoch) {
                return Err(StorageError::Deposed(format!(
                    "another master took over master {master} (its lease is at epoch {}, this master's is {epoch}); this master commits nothing more",
                    now.map_or_else(|| "none".to_owned(), |e| e.to_string())
                )));
            }
        }
        for r in &batch.requests {
            sqlx::query(q::INSERT_REQUEST)
                .bind(master)
                .bind(r.key.as_str())
                .bind(r.body_hash.as_str())
                .bind(r.answer.as_str())
                .bind(r.created_at)
                .execute(tx.conn())
                .await?;
        }
        if let Some(before) = batch.forget_requests_before {
            sqlx::query(q::FORGET_REQUESTS)
                .bind(master)
                .bind(before)
                .execute(tx.conn())
                .await?;
        }
        let now = batch.archived_at.unwrap_or_else(unix_now);
        for part in chunks(&batch.archived, ROWS_PER_STATEMENT, DB::BYTES_PER_STATEMENT) {
            let mut q = QueryBuilder::<DB>::new(DB::INSERT_ARCHIVED);
            q.push_values(part, |mut b, t| {
                push_token(&mut b, master, t);
                b.push_bind(now);
            });
            q.push(DB::ARCHIVED_CONFLICT);
            q.build().execute(tx.conn()).await?;
        }
        for part in archive_prefixes(&batch.archived).chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<DB>::new("INSERT INTO archive_queue (master, prefix) ");
            q.push_values(part, |mut b, prefix| {
                b.push_bind(master.to_owned()).push_bind(prefix.to_string());
            });
            q.build().execute(tx.conn()).await?;
        }
        for part in batch.deletes.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<DB>::new("DELETE FROM active_tokens WHERE master = ");
            q.push_bind(master.to_owned()).push(" AND name IN (");
            let mut names = q.separated(", ");
            for name in part {
                names.push_bind(name.to_string());
            }
            q.push(")");
            q.build().execute(tx.conn()).await?;
        }
        for part in chunks(&batch.upserts, ROWS_PER_STATEMENT, DB::BYTES_PER_STATEMENT) {
            let mut q = QueryBuilder::<DB>::new(
                "INSERT INTO active_tokens (master, name, version, owner, expiration_time, priority, data) ",
            );
            q.push_values(part, |mut b, t| push_token(&mut b, master, t));
            q.push(DB::ACTIVE_CONFLICT);
            q.build().execute(tx.conn()).await?;
        }
        for a in &batch.audits {
            sqlx::query(q::INSERT_AUDIT)
                .bind(master)
                .bind(a.at)
                .bind(a.action.actor.as_str())
                .bind(a.via.as_str())
                .bind(a.action.command.as_str())
                .bind(a.action.workflow.clone())
                .bind(a.action.instance.clone())
                .bind(a.action.jobs.join(","))
                .bind(a.action.ok)
                .bind(a.action.result.as_str())
                .execute(tx.conn())
                .await?;
        }
        sqlx::query(q::FLOOR)
            .bind(batch.version_floor)
            .bind(master)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    async fn take_lease(
        &self,
        master: &str,
        claim: &LeaseClaim<'_>,
    ) -> Result<LeaseOutcome, StorageError> {
        let mut tx = WriteTx::<DB>::begin(&self.pool).await?;
        sqlx::query(DB::INSERT_LEASE)
            .bind(master)
            .execute(tx.conn())
            .await?;
        let sql = format!(
            "SELECT epoch, holder, address, since_ms, expires_ms - {} FROM master_lease \
             WHERE master = ?{}",
            DB::NOW_MS,
            DB::LOCK_ROWS
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(master)
            .fetch_one(tx.conn())
            .await?;
        let held = LeaseHolder {
            epoch: row.try_get(0)?,
            holder: row.try_get(1)?,
            address: row.try_get(2)?,
            since_ms: row.try_get(3)?,
            expires_in_ms: row.try_get(4)?,
        };
        let free = held.expires_in_ms <= 0
            || match claim.take {
                Take::IfExpired => false,
                Take::OrReplace(epoch) => epoch == held.epoch,
                Take::Always => true,
            };
        if !free {
            return Ok(LeaseOutcome::Held(held));
        }
        let sql = format!(
            "UPDATE master_lease SET epoch = epoch + 1, holder = ?, address = ?, since_ms = {now}, \
             expires_ms = {now} + ? WHERE master = ?",
            now = DB::NOW_MS
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(claim.holder)
            .bind(claim.address)
            .bind(claim.lease_ms)
            .bind(master)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(LeaseOutcome::Taken {
            epoch: held.epoch + 1,
        })
    }

    async fn renew_lease(
        &self,
        master: &str,
        epoch: i64,
        lease_ms: i64,
    ) -> Result<bool, StorageError> {
        let sql = format!(
            "UPDATE master_lease SET expires_ms = {} + ? WHERE master = ? AND epoch = ?",
            DB::NOW_MS
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(lease_ms)
            .bind(master)
            .bind(epoch)
            .execute(&self.lease_pool)
            .await?;
        if DB::rows_affected(&done) == 1 {
            return Ok(true);
        }
        // MySQL counts changed rows: an expiry renewed within the same millisecond changed
        // nothing. Whether the lease is still ours is the epoch's to say.
        let row = sqlx::query(q::LEASE_EPOCH)
            .bind(master)
            .fetch_optional(&self.lease_pool)
            .await?;
        Ok(row.map(|r| r.try_get::<i64, _>(0)).transpose()? == Some(epoch))
    }

    async fn release_lease(&self, master: &str, epoch: i64) -> Result<(), StorageError> {
        sqlx::query(q::RELEASE_LEASE)
            .bind(master)
            .bind(epoch)
            .execute(&self.lease_pool)
            .await?;
        Ok(())
    }

    async fn request_outcomes(
        &self,
        master: &str,
        since: i64,
    ) -> Result<Vec<RequestOutcome>, StorageError> {
        let rows = sqlx::query(q::REQUESTS_SINCE)
            .bind(master)
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(RequestOutcome {
                    key: r.try_get(0)?,
                    body_hash: r.try_get(1)?,
                    answer: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?)
    }

    async fn read(
        &self,
        master: &str,
        table: Table,
        prefix: &str,
    ) -> Result<Vec<Token>, StorageError> {
        let sql = table.pick(q::READ_ACTIVE, q::READ_ARCHIVED);
        let rows = range_rows(&self.pool, sql, master, prefix).await?;
        Ok(rows
            .iter()
            .map(token_from_row)
            .collect::<Result<Vec<_>, _>>()?)
    }

    async fn names(
        &self,
        master: &str,
        table: Table,
        prefix: &str,
    ) -> Result<Vec<String>, StorageError> {
        let sql = table.pick(q::NAMES_ACTIVE, q::NAMES_ARCHIVED);
        let rows = range_rows(&self.pool, sql, master, prefix).await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    async fn count(&self, master: &str, table: Table) -> Result<u64, StorageError> {
        let sql = table.pick(q::COUNT_ACTIVE, q::COUNT_ARCHIVED);
        let row = sqlx::query(sql).bind(master).fetch_one(&self.pool).await?;
        Ok(row.try_get::<i64, _>(0)? as u64)
    }

    async fn delete_archived(&self, master: &str, prefix: &str) -> Result<u64, StorageError> {
        let end = prefix_end(prefix);
        let mut tx = WriteTx::<DB>::begin(&self.pool).await?;
        let done = sqlx::query(q::DELETE_ARCHIVED)
            .bind(master)
            .bind(prefix)
            .bind(end.as_str())
            .execute(tx.conn())
            .await?;
        sqlx::query(q::DELETE_SUMMARIES_UNDER)
            .bind(master)
            .bind(prefix)
            .bind(end.as_str())
            .execute(tx.conn())
            .await?;
        sqlx::query(q::DELETE_LOGS_UNDER)
            .bind(master)
            .bind(prefix)
            .bind(end.as_str())
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(DB::rows_affected(&done))
    }

    async fn expired_archives(
        &self,
        master: &str,
        archived_before: i64,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        // The oldest rows name the oldest instances; an instance also archived later (part of
        // it, again) is kept until its last archiving is old enough.
        let rows = sqlx::query(q::OLDEST_ARCHIVED)
            .bind(master)
            .bind(archived_before)
            .bind(i64::from(limit) * 16)
            .fetch_all(&self.pool)
            .await?;
        let mut prefixes: Vec<String> = Vec::new();
        for row in &rows {
            let name: String = row.try_get(0)?;
            let prefix = crate::token::name::archive_prefix(&name);
            if prefixes.iter().any(|p| p == prefix) {
                continue;
            }
            let last: Option<i64> = sqlx::query(q::LAST_ARCHIVED)
                .bind(master)
                .bind(prefix)
                .bind(prefix_end(prefix).as_str())
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?;
            if last.is_some_and(|t| t < archived_before) {
                prefixes.push(prefix.to_owned());
                if prefixes.len() >= limit as usize {
                    break;
                }
            }
        }
        Ok(prefixes)
    }

    async fn archive_queue(
        &self,
        master: &str,
        limit: u32,
    ) -> Result<Vec<(i64, String)>, StorageError> {
        let rows = sqlx::query(q::ARCHIVE_QUEUE)
            .bind(master)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    async fn write_summaries(
        &self,
        master: &str,
        summaries: &[InstanceSummary],
        removed: &[String],
        done_seq: i64,
    ) -> Result<(), StorageError> {
        let mut tx = WriteTx::<DB>::begin(&self.pool).await?;
        for part in summaries.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<DB>::new(
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
            q.push(DB::SUMMARY_CONFLICT);
            q.build().execute(tx.conn()).await?;
        }
        for prefix in removed {
            sqlx::query(q::DELETE_SUMMARY)
                .bind(master)
                .bind(prefix.as_str())
                .execute(tx.conn())
                .await?;
        }
        sqlx::query(q::DROP_QUEUE)
            .bind(master)
            .bind(done_seq)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn latest_summaries(&self, master: &str) -> Result<Vec<InstanceSummary>, StorageError> {
        let workflows = sqlx::query(q::SUMMARY_WORKFLOWS)
            .bind(master)
            .bind(master)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(workflows.len());
        for w in workflows {
            let w: String = w.try_get(0)?;
            let row = sqlx::query(q::LATEST_SUMMARY)
                .bind(master)
                .bind(w.as_str())
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
        let rows = sqlx::query(q::SUMMARY_PAGE)
            .bind(master)
            .bind(workflow)
            .bind(i64::from(limit))
            .bind(offset as i64)
            .fetch_all(&self.pool)
            .await?;
        let total = sqlx::query(q::SUMMARY_COUNT)
            .bind(master)
            .bind(workflow)
            .fetch_one(&self.pool)
            .await?;
        let total: i64 = total.try_get(0)?;
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

    async fn audit_log(
        &self,
        master: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StorageError> {
        let rows = sqlx::query(q::AUDIT_PAGE)
            .bind(master)
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        let entry = |row: &DB::Row| -> Result<AuditEntry, sqlx::Error> {
            let jobs: String = row.try_get(7)?;
            Ok(AuditEntry {
                id: row.try_get(0)?,
                at: row.try_get(1)?,
                via: row.try_get(3)?,
                action: crate::token::AuditRequest {
                    actor: row.try_get(2)?,
                    command: row.try_get(4)?,
                    workflow: row.try_get(5)?,
                    instance: row.try_get(6)?,
                    jobs: jobs
                        .split(',')
                        .filter(|j| !j.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    ok: row.try_get(8)?,
                    result: row.try_get(9)?,
                },
            })
        };
        Ok(rows.iter().map(entry).collect::<Result<Vec<_>, _>>()?)
    }

    async fn write_logs(&self, master: &str, chunks: &[LogChunk]) -> Result<(), StorageError> {
        if chunks.is_empty() {
            return Ok(());
        }
        let mut tx = WriteTx::<DB>::begin(&self.pool).await?;
        // A chunk is at most a few hundred KiB: a handful per statement stays below the
        // server's packet limit.
        let mut start = 0;
        while start < chunks.len() {
            let mut bytes = 0;
            let mut end = start;
            while end < chunks.len()
                && (end == start
                    || bytes + chunks[end].data.len() < DB::BYTES_PER_STATEMENT.min(2 << 20))
            {
                bytes += chunks[end].data.len();
                end += 1;
            }
            let mut q = QueryBuilder::<DB>::new(DB::INSERT_LOG);
            q.push("(master, name, execution, kind, start_byte, raw_len, data, host, truncated_at, created_at) ");
            q.push_values(&chunks[start..end], |mut b, c| {
                b.push_bind(master.to_owned())
                    .push_bind(c.name.clone())
                    .push_bind(c.execution)
                    .push_bind(c.kind.clone())
                    .push_bind(c.start)
                    .push_bind(c.raw_len)
                    .push_bind(c.data.clone())
                    .push_bind(c.host.clone())
                    .push_bind(c.truncated_at)
                    .push_bind(c.created_at);
            });
            q.build().execute(tx.conn()).await?;
            start = end;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn log_extent(
        &self,
        master: &str,
        key: LogKey<'_>,
    ) -> Result<Option<LogExtent>, StorageError> {
        let row = sqlx::query(q::LOG_EXTENT)
            .bind(master)
            .bind(key.name)
            .bind(key.execution)
            .bind(key.kind)
            .fetch_one(&self.pool)
            .await?;
        let size: Option<i64> = row.try_get(0)?;
        Ok(match size {
            None => None,
            Some(size) => Some(LogExtent {
                size,
                truncated_at: row.try_get(1)?,
                host: row.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
            }),
        })
    }

    async fn log_chunks(
        &self,
        master: &str,
        key: LogKey<'_>,
        from: i64,
        limit: u32,
    ) -> Result<Vec<LogChunk>, StorageError> {
        let rows = sqlx::query(q::LOG_CHUNKS)
            .bind(master)
            .bind(key.name)
            .bind(key.execution)
            .bind(key.kind)
            .bind(from)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(LogChunk {
                    name: key.name.to_owned(),
                    execution: key.execution,
                    kind: key.kind.to_owned(),
                    start: r.try_get(0)?,
                    raw_len: r.try_get(1)?,
                    data: r.try_get(2)?,
                    host: r.try_get(3)?,
                    truncated_at: r.try_get(4)?,
                    created_at: r.try_get(5)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?)
    }

    async fn delete_old_logs(
        &self,
        master: &str,
        created_before: i64,
        limit: u32,
    ) -> Result<u64, StorageError> {
        let mut tx = WriteTx::<DB>::begin(&self.pool).await?;
        let done = sqlx::query(DB::DELETE_OLD_LOGS)
            .bind(master)
            .bind(created_before)
            .bind(i64::from(limit))
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(DB::rows_affected(&done))
    }
}

/// A table's columns, comma-separated (names from [`copy::TABLES`], never from input),
/// without the first (a surrogate id) when `skip_id`.
fn column_list(table: &copy::TableSpec, skip_id: bool) -> String {
    table
        .columns
        .iter()
        .skip(usize::from(skip_id))
        .map(|c| c.0)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The ORDER BY list of a master's rows: the key without `master` (`master` alone when it is
/// the whole key), each with `direction`.
fn order_list(table: &copy::TableSpec, direction: &str) -> String {
    let order: Vec<String> = table
        .order()
        .map(|(_, c, _)| format!("{c}{direction}"))
        .collect();
    if order.is_empty() {
        format!("master{direction}")
    } else {
        order.join(", ")
    }
}

/// Reads a row's columns by their declared kinds.
fn read_values<R: Row>(row: &R, table: &copy::TableSpec) -> Result<copy::Row, sqlx::Error>
where
    usize: ColumnIndex<R>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<f64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<Vec<u8>>: Decode<'r, R::Database> + Type<R::Database>,
{
    use copy::{Kind, Value};
    table
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| {
            Ok(match kind {
                Kind::Int => row.try_get::<Option<i64>, _>(i)?.map(Value::Int),
                Kind::Real => row.try_get::<Option<f64>, _>(i)?.map(Value::Real),
                Kind::Text => row.try_get::<Option<String>, _>(i)?.map(Value::Text),
                Kind::Blob => row.try_get::<Option<Vec<u8>>, _>(i)?.map(Value::Blob),
            }
            .unwrap_or(Value::Null))
        })
        .collect()
}

/// Binds one copied value on `$target` (a query builder or one of its separated lists), a
/// NULL typed by the column's kind.
macro_rules! bind_copied {
    ($target:expr, $value:expr, $kind:expr) => {{
        use copy::{Kind, Value};
        match ($value, $kind) {
            (Value::Int(v), _) => $target.push_bind(Some(*v)),
            (Value::Real(v), _) => $target.push_bind(Some(*v)),
            (Value::Text(v), _) => $target.push_bind(Some(v.clone())),
            (Value::Blob(v), _) => $target.push_bind(Some(v.clone())),
            (Value::Null, Kind::Int) => $target.push_bind(None::<i64>),
            (Value::Null, Kind::Real) => $target.push_bind(None::<f64>),
            (Value::Null, Kind::Text) => $target.push_bind(None::<String>),
            (Value::Null, Kind::Blob) => $target.push_bind(None::<Vec<u8>>),
        };
    }};
}
use bind_copied;
