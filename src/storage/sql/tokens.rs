//! `TokenStore` for every SQL backend.

use super::*;
use fence::fence_and_commit;

#[async_trait]
impl<DB> TokenStore for SqlStore<DB>
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
    fn kind(&self) -> &'static str {
        DB::KIND
    }

    async fn migrate(&self) -> Result<(), StorageError> {
        let legacy: Option<i64> = match sqlx::query(DB::sql(super::migrate::LEGACY_VERSION))
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
        sqlx::query(DB::sql(DB::INSERT_MASTER))
            .bind(master)
            .bind(utc_now_text())
            .execute(tx.conn())
            .await?;
        let row = sqlx::query(DB::sql(q::MASTER))
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
        let (mut tx, mut s) = Script::<DB>::begin(&self.pool).await?;
        write_requests::<DB>(&mut s, tx.conn(), master, batch).await?;
        let now = batch.archived_at.unwrap_or_else(unix_now);
        for part in chunks(&batch.archived, ROWS_PER_STATEMENT, DB::BYTES_PER_STATEMENT) {
            let q = s.statement(DB::INSERT_ARCHIVED);
            q.push_values(part, |mut b, t| {
                push_token(&mut b, master, t);
                b.push_bind(now);
            });
            q.push(DB::ARCHIVED_CONFLICT);
            s.end(tx.conn()).await?;
        }
        for part in batch.archive_groups.chunks(ROWS_PER_STATEMENT) {
            let q = s.statement("INSERT INTO archive_queue (master, prefix) ");
            q.push_values(part, |mut b, prefix| {
                b.push_bind(master.to_owned()).push_bind(prefix.to_string());
            });
            s.end(tx.conn()).await?;
        }
        for part in batch.deletes.chunks(ROWS_PER_STATEMENT) {
            let q = s.statement("DELETE FROM active_tokens WHERE master = ");
            q.push_bind(master.to_owned()).push(" AND name IN (");
            let mut names = q.separated(", ");
            for name in part {
                names.push_bind(name.to_string());
            }
            q.push(")");
            s.end(tx.conn()).await?;
        }
        for part in chunks(&batch.upserts, ROWS_PER_STATEMENT, DB::BYTES_PER_STATEMENT) {
            let q = s.statement(
                "INSERT INTO active_tokens (master, name, version, owner, expiration_time, priority, data) ",
            );
            q.push_values(part, |mut b, t| push_token(&mut b, master, t));
            q.push(DB::ACTIVE_CONFLICT);
            s.end(tx.conn()).await?;
        }
        for part in batch.audits.chunks(ROWS_PER_STATEMENT) {
            let q = s.statement(q::INSERT_AUDITS);
            q.push_values(part, |mut b, a| {
                b.push_bind(master.to_owned())
                    .push_bind(a.at)
                    .push_bind(a.action.actor.clone())
                    .push_bind(a.via.clone())
                    .push_bind(a.action.command.clone())
                    .push_bind(a.action.workflow.clone())
                    .push_bind(a.action.instance.clone())
                    .push_bind(a.action.jobs.join(","))
                    .push_bind(a.action.ok)
                    .push_bind(a.action.result.clone());
            });
            s.end(tx.conn()).await?;
        }
        super::logs::insert_tails::<DB>(&mut s, tx.conn(), master, &batch.logs).await?;
        fence_and_commit::<DB>(tx, s, &self.pool, master, batch).await
    }

    async fn take_lease(
        &self,
        master: &str,
        claim: &LeaseClaim<'_>,
    ) -> Result<LeaseOutcome, StorageError> {
        let mut tx = WriteTx::<DB>::begin(&self.pool).await?;
        sqlx::query(DB::sql(DB::INSERT_LEASE))
            .bind(master)
            .execute(tx.conn())
            .await?;
        let sql = format!("{}{}", lease_read::<DB>(), DB::LOCK_ROWS);
        let row = sqlx::query(DB::sql_built(sql))
            .bind(master)
            .fetch_one(tx.conn())
            .await?;
        let held = holder_from_row(&row)?;
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
        sqlx::query(DB::sql_built(sql))
            .bind(claim.holder)
            .bind(claim.address)
            .bind(claim.lease_ms)
            .bind(master)
            .execute(tx.conn())
            .await?;
        // The fence (migration 0008): the new epoch on the master's row, which every commit of
        // the old one updates last, only where its own epoch is still there. Written after the
        // lease row (a renewal locks only that one, a commit only this one: no lock cycle),
        // and updated before any insert: an insert that finds the row takes a shared lock,
        // and raising it to write while a commit waits for the row is a deadlock on InnoDB.
        let epoch = held.epoch + 1;
        for _ in 0..2 {
            let done = sqlx::query(DB::sql(q::MASTER_EPOCH))
                .bind(epoch)
                .bind(master)
                .execute(tx.conn())
                .await?;
            if DB::rows_affected(&done) == 1 {
                break;
            }
            sqlx::query(DB::sql(DB::INSERT_MASTER))
                .bind(master)
                .bind(utc_now_text())
                .execute(tx.conn())
                .await?;
        }
        tx.commit().await?;
        Ok(LeaseOutcome::Taken { epoch })
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
        let done = sqlx::query(DB::sql_built(sql))
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
        let row = sqlx::query(DB::sql(q::LEASE_EPOCH))
            .bind(master)
            .fetch_optional(&self.lease_pool)
            .await?;
        Ok(row.map(|r| r.try_get::<i64, _>(0)).transpose()? == Some(epoch))
    }

    async fn lease_holder(&self, master: &str) -> Result<Option<LeaseHolder>, StorageError> {
        let row = sqlx::query(DB::sql_built(lease_read::<DB>()))
            .bind(master)
            .fetch_optional(&self.lease_pool)
            .await?;
        Ok(row.map(|r| holder_from_row(&r)).transpose()?)
    }

    async fn note_standby(
        &self,
        master: &str,
        address: &str,
        holder: &str,
        leading: bool,
    ) -> Result<(), StorageError> {
        if leading {
            sqlx::query(DB::sql(q::FORGET_STANDBY))
                .bind(master)
                .bind(address)
                .execute(&self.lease_pool)
                .await?;
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO master_standbys (master, address, holder, seen_ms) VALUES (?, ?, ?, {}){}",
            DB::NOW_MS,
            DB::STANDBY_CONFLICT
        );
        sqlx::query(DB::sql_built(sql))
            .bind(master)
            .bind(address)
            .bind(holder)
            .execute(&self.lease_pool)
            .await?;
        Ok(())
    }

    async fn standbys(&self, master: &str, within_ms: i64) -> Result<Vec<String>, StorageError> {
        let sql = format!(
            "SELECT address FROM master_standbys WHERE master = ? AND seen_ms > {} - ? ORDER BY address",
            DB::NOW_MS
        );
        let rows = sqlx::query(DB::sql_built(sql))
            .bind(master)
            .bind(within_ms)
            .fetch_all(&self.lease_pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    async fn release_lease(&self, master: &str, epoch: i64) -> Result<(), StorageError> {
        sqlx::query(DB::sql(q::RELEASE_LEASE))
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
        let rows = sqlx::query(DB::sql(q::REQUESTS_SINCE))
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

    async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query(DB::sql("SELECT 1")).execute(&self.pool).await?;
        Ok(())
    }
}

/// Request outcomes per insert statement: an answer is small (versions, names), so a
/// statement stays far below every server's packet limit.
const OUTCOMES_PER_STATEMENT: usize = 100;

/// The outcomes of the keyed requests a batch answers, and the forgetting of old ones.
async fn write_requests<DB: Dialect>(
    s: &mut Script<DB>,
    conn: &mut DB::Connection,
    master: &str,
    batch: &CommitBatch<'_>,
) -> Result<(), StorageError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    // One statement for a batch's outcomes, not one each: a batch of a fan-out answers many.
    for part in batch.requests.chunks(OUTCOMES_PER_STATEMENT) {
        let q = s.statement(q::INSERT_REQUESTS);
        q.push_values(part, |mut b, r| {
            b.push_bind(master.to_owned())
                .push_bind(r.key.clone())
                .push_bind(r.body_hash.clone())
                .push_bind(r.answer.clone())
                .push_bind(r.created_at);
        });
        s.end(conn).await?;
    }
    if let Some(before) = batch.forget_requests_before {
        let q = s.statement("DELETE FROM request_outcomes WHERE master = ");
        q.push_bind(master.to_owned())
            .push(" AND created_at < ")
            .push_bind(before);
        s.end(conn).await?;
    }
    Ok(())
}

/// Reads a master's lease row, its expiry as the time left by the database's clock (binds:
/// master).
fn lease_read<DB: Dialect>() -> String {
    format!(
        "SELECT epoch, holder, address, since_ms, expires_ms - {} FROM master_lease WHERE master = ?",
        DB::NOW_MS
    )
}

fn holder_from_row<R: Row>(row: &R) -> Result<LeaseHolder, sqlx::Error>
where
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(LeaseHolder {
        epoch: row.try_get(0)?,
        holder: row.try_get(1)?,
        address: row.try_get(2)?,
        since_ms: row.try_get(3)?,
        expires_in_ms: row.try_get(4)?,
    })
}
