//! A write transaction on a pooled connection of its own.

use sqlx::pool::PoolConnection;
use sqlx::{
    AssertSqlSafe, ColumnIndex, Database, Decode, Executor, IntoArguments, Pool, Row, Type,
};

use super::Dialect;
use crate::storage::{Cause, StorageError};

/// One write transaction on a pooled connection of its own. The connection goes back to the
/// pool only after a COMMIT that succeeded; after any error, or when the future running the
/// transaction is dropped midway, it is closed (which rolls the transaction back) so a
/// connection in an unknown transaction state is never handed out again. Sharing one after a
/// failed rollback is what left a master failing every write with "begin_with at non-zero
/// transaction depth" after a full disk.
pub(super) struct WriteTx<DB: Database> {
    conn: PoolConnection<DB>,
    committed: bool,
}

impl<DB: Dialect> WriteTx<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    pub(super) async fn begin(pool: &Pool<DB>) -> Result<Self, sqlx::Error> {
        let conn = pool.acquire().await?;
        let mut tx = WriteTx {
            conn,
            committed: false,
        };
        sqlx::query(DB::sql(DB::BEGIN)).execute(tx.conn()).await?;
        Ok(tx)
    }

    /// Begins a write transaction and reads master `master`'s lease epoch locked until it ends,
    /// in one round trip (both statements in one message), so a fenced commit costs no more
    /// round trips than an unfenced one. `None` when the name is not a plain word (it goes in
    /// as a literal): the caller then begins and reads in two steps.
    pub(super) async fn begin_fenced(
        pool: &Pool<DB>,
        master: &str,
    ) -> Result<Option<(Self, Option<i64>)>, sqlx::Error>
    where
        usize: ColumnIndex<DB::Row>,
        for<'q> i64: Decode<'q, DB> + Type<DB>,
    {
        if master.is_empty()
            || !master
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Ok(None);
        }
        let conn = pool.acquire().await?;
        let mut tx = WriteTx {
            conn,
            committed: false,
        };
        let sql = format!("{}; {}", DB::BEGIN, DB::fence(master));
        let rows = sqlx::raw_sql(AssertSqlSafe(sql))
            .fetch_all(tx.conn())
            .await?;
        let epoch = rows.first().map(|r| r.try_get(0)).transpose()?;
        Ok(Some((tx, epoch)))
    }

    pub(super) fn conn(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }

    /// Commits. A failure on a broken connection leaves the outcome unknown; an error the
    /// database answered with means nothing was committed.
    pub(super) async fn commit(mut self) -> Result<(), StorageError> {
        match sqlx::query(DB::sql("COMMIT")).execute(self.conn()).await {
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
