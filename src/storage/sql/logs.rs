//! `Logs` for every SQL backend.

use super::*;

#[async_trait]
impl<DB> Logs for SqlStore<DB>
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
    for<'q> Option<bool>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
{
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
            q.push(LOG_COLUMNS);
            q.push_values(&chunks[start..end], |mut b, c| {
                push_chunk(&mut b, master, c)
            });
            q.push(DB::LOG_CONFLICT);
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
        let row = sqlx::query(DB::sql(q::LOG_EXTENT))
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
        let rows = sqlx::query(DB::sql(q::LOG_CHUNKS))
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
        let done = sqlx::query(DB::sql(DB::DELETE_OLD_LOGS))
            .bind(master)
            .bind(created_before)
            .bind(i64::from(limit))
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(DB::rows_affected(&done))
    }
}

/// Inserts the last chunks of runs' logs, each unless bytes from its start on are stored
/// already: the check a chunk sent alone has (a read before its insert) made in the insert
/// itself, so the commit of a run's end needs no read.
pub(super) async fn insert_tails<DB: Dialect>(
    s: &mut Script<DB>,
    conn: &mut DB::Connection,
    master: &str,
    chunks: &[&LogChunk],
) -> Result<(), StorageError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
{
    for c in chunks {
        let q = s.statement(DB::INSERT_LOG);
        q.push(LOG_COLUMNS).push("SELECT ");
        push_chunk(&mut q.separated(", "), master, c);
        q.push(
            " FROM (SELECT 1 AS one) AS one WHERE NOT EXISTS (SELECT 1 FROM job_logs WHERE master = ",
        )
        .push_bind(master.to_owned())
        .push(" AND name = ")
        .push_bind(c.name.clone())
        .push(" AND execution = ")
        .push_bind(c.execution)
        .push(" AND kind = ")
        .push_bind(c.kind.clone())
        .push(" AND start_byte + raw_len > ")
        .push_bind(c.start)
        .push(")")
        .push(DB::LOG_CONFLICT);
        s.end(conn).await?;
    }
    Ok(())
}

/// The columns a chunk's inserts name, in [`push_chunk`]'s order.
const LOG_COLUMNS: &str = "(master, name, execution, kind, start_byte, raw_len, data, host, \
     truncated_at, created_at) ";

/// A chunk's row, in the columns its inserts name ([`LOG_COLUMNS`]).
fn push_chunk<DB: Database>(
    b: &mut sqlx::query_builder::Separated<'_, DB, &'static str>,
    master: &str,
    c: &LogChunk,
) where
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
{
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
}
