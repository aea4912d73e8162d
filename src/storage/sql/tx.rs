//! A write transaction on a pooled connection of its own.

use sqlx::pool::PoolConnection;
use sqlx::{Database, Executor, IntoArguments, Pool};

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
        let mut tx = Self::open(pool).await?;
        sqlx::query(DB::sql(DB::BEGIN)).execute(tx.conn()).await?;
        Ok(tx)
    }

    /// A connection whose transaction the caller begins (in a [`super::script::Script`]).
    pub(super) async fn open(pool: &Pool<DB>) -> Result<Self, sqlx::Error> {
        Ok(WriteTx {
            conn: pool.acquire().await?,
            committed: false,
        })
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
