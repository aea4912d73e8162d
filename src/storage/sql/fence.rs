//! The fence: a commit of a master that lost its lease changes nothing (issue 30).

use super::*;

/// Commits `tx` after the fence, its script's last statement: the master's row changes only
/// while it carries this master's epoch, and its lock keeps a takeover out until the commit (a
/// takeover first writes the new epoch there, so a commit after it, or one that waited for it,
/// changes nothing). Without an epoch (a master that takes no lease) the row changes unchecked.
pub(super) async fn fence_and_commit<DB: Dialect>(
    mut tx: WriteTx<DB>,
    mut s: Script<DB>,
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
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
{
    let q = s.statement("UPDATE masters SET version_floor = ");
    q.push_bind(batch.version_floor)
        .push(" WHERE master = ")
        .push_bind(master.to_owned());
    if let Some(epoch) = batch.epoch {
        q.push(" AND epoch = ").push_bind(epoch);
    }
    let changed = s.run_update(tx.conn()).await?;
    if let Some(epoch) = batch.epoch.filter(|_| changed != 1) {
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
