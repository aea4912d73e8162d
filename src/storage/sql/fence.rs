//! The fence: a commit of a master that lost its lease changes nothing (issue 30).

use super::*;

/// Commits `tx` after the fence, its last statement: the master's row changes only while it
/// carries this master's epoch, and its lock keeps a takeover out until the commit (a takeover
/// first writes the new epoch there, so a commit after it, or one that waited for it, changes
/// nothing). Without an epoch (a master that takes no lease) the row changes unchecked.
pub(super) async fn fence_and_commit<DB: Dialect>(
    mut tx: WriteTx<DB>,
    pool: &Pool<DB>,
    master: &str,
    batch: &CommitBatch<'_>,
) -> Result<(), StorageError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
{
    let Some(epoch) = batch.epoch else {
        sqlx::query(DB::sql(q::FLOOR))
            .bind(batch.version_floor)
            .bind(master)
            .execute(tx.conn())
            .await?;
        return tx.commit().await;
    };
    let done = sqlx::query(DB::sql(q::FLOOR_FENCED))
        .bind(batch.version_floor)
        .bind(master)
        .bind(epoch)
        .execute(tx.conn())
        .await?;
    if DB::rows_affected(&done) != 1 {
        // Dropping the transaction rolls every statement of it back.
        drop(tx);
        let now = sqlx::query(DB::sql(q::LEASE_EPOCH))
            .bind(master)
            .fetch_optional(pool)
            .await?
            .map(|r| r.try_get::<i64, _>(0))
            .transpose()?;
        return Err(deposed(master, epoch, now));
    }
    tx.commit().await
}

/// Why a commit of master `master` at `epoch` was refused: the lease is at epoch `now`.
fn deposed(master: &str, epoch: i64, now: Option<i64>) -> StorageError {
    StorageError::Deposed(format!(
        "another master took over master {master} (its lease is at epoch {}, this master's is {epoch}); this master commits nothing more",
        now.map_or_else(|| "none".to_owned(), |e| e.to_string())
    ))
}
