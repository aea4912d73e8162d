//! The [`Storage`] implementation, written once over sqlx's `Database` for every SQL backend.
//! A [`Dialect`] says what differs: how a write transaction begins, the upsert clauses, the
//! statement size bound, the migrations, and how a master's rows are loaded fastest. The
//! bounds below are what runtime-checked queries over a generic database need; they hold for
//! SQLite and MySQL alike.

use std::future::Future;

use async_trait::async_trait;
use sqlx::migrate::{Migrate, Migrator};
use sqlx::{
    AssertSqlSafe, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool,
    QueryBuilder, Row, SqlSafeStr, SqlStr, Type,
};

use super::*;

/// What one SQL backend does its own way.
pub trait Dialect: Database + Sized {
    /// `sqlite`, `mysql` or `postgres`.
    const KIND: &'static str;
    /// Starts a write transaction.
    const BEGIN: &'static str;
    /// A commit's statements go in one call, as a script (see [`Script`]).
    const SCRIPTS: bool = false;
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
    /// What follows that insert's values (where the insert itself does not say to skip).
    const LOG_CONFLICT: &'static str = "";
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
    /// What follows a standby's note's values: the upsert of its holder and time.
    const STANDBY_CONFLICT: &'static str = " ON CONFLICT (master, address) DO UPDATE SET \
         holder = excluded.holder, seen_ms = excluded.seen_ms";

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

    /// A statement as this database takes it. Statements here are written with `?`
    /// placeholders; PostgreSQL numbers them (`$1`, `$2` ...).
    fn sql(sql: &'static str) -> SqlStr {
        sql.into_sql_str()
    }

    /// [`Dialect::sql`] for a statement built at run time (its table and column names come
    /// from [`copy::TABLES`], never from input).
    fn sql_built(sql: String) -> SqlStr {
        AssertSqlSafe(sql).into_sql_str()
    }
}

/// `sql` with each `?` outside a quoted string replaced by `$1`, `$2` ... in order.
pub(super) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let (mut n, mut quoted) = (0, false);
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

/// Rows per multi-row statement (7 bound values each, far below every variable limit).
const ROWS_PER_STATEMENT: usize = 500;

/// Statements both dialects share.
mod q;

mod tx;
use tx::WriteTx;
mod script;
use script::Script;

/// A database of one dialect, behind a pool.
pub struct SqlStore<DB: Database> {
    pub(super) pool: Pool<DB>,
    /// One connection for the master's lease renewals, so a renewal never waits behind the
    /// pool's writers (the same pool where writes lock the whole file).
    pub(super) lease_pool: Pool<DB>,
}

/// Every active token of `master` in one read, in no particular order: the server decodes the
/// rows while the master builds its map (MySQL's and PostgreSQL's `load_rows`).
pub(super) async fn load_in_one_read<DB: Dialect>(
    pool: &Pool<DB>,
    master: &str,
) -> Result<Vec<Token>, StorageError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> f64: Decode<'r, DB> + Type<DB>,
{
    let mut conn = pool.acquire().await?;
    let rows = sqlx::query(DB::sql(
        "SELECT name, version, owner, expiration_time, priority, data FROM active_tokens WHERE master = ?",
    ))
    .bind(master)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(token_from_row)
        .collect::<Result<Vec<_>, _>>()?)
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
async fn range_rows<DB: Dialect>(
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
    sqlx::query(DB::sql(sql))
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
    for<'q> Option<bool>: Decode<'q, DB> + Type<DB>,
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
        let row = sqlx::query(DB::sql_built(sql))
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
    for<'r> Option<bool>: Decode<'r, R::Database> + Type<R::Database>,
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
                Kind::Bool => row.try_get::<Option<bool>, _>(i)?.map(Value::Bool),
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
            (Value::Bool(v), _) => $target.push_bind(Some(*v)),
            (Value::Real(v), _) => $target.push_bind(Some(*v)),
            (Value::Text(v), _) => $target.push_bind(Some(v.clone())),
            (Value::Blob(v), _) => $target.push_bind(Some(v.clone())),
            (Value::Null, Kind::Int) => $target.push_bind(None::<i64>),
            (Value::Null, Kind::Bool) => $target.push_bind(None::<bool>),
            (Value::Null, Kind::Real) => $target.push_bind(None::<f64>),
            (Value::Null, Kind::Text) => $target.push_bind(None::<String>),
            (Value::Null, Kind::Blob) => $target.push_bind(None::<Vec<u8>>),
        };
    }};
}

// The ports, one file each.
mod admin;
mod archive;
mod fence;
mod logs;
mod retention;
mod tokens;
