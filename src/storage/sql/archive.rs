//! `Archive` for every SQL backend.

use super::*;

#[async_trait]
impl<DB> Archive for SqlStore<DB>
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
        let row = sqlx::query(DB::sql(sql))
            .bind(master)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>(0)? as u64)
    }

    async fn archive_queue(
        &self,
        master: &str,
        limit: u32,
    ) -> Result<Vec<(i64, String)>, StorageError> {
        let rows = sqlx::query(DB::sql(q::ARCHIVE_QUEUE))
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
            sqlx::query(DB::sql(q::DELETE_SUMMARY))
                .bind(master)
                .bind(prefix.as_str())
                .execute(tx.conn())
                .await?;
        }
        sqlx::query(DB::sql(q::DROP_QUEUE))
            .bind(master)
            .bind(done_seq)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn latest_summaries(
        &self,
        master: &str,
        per_workflow: u32,
    ) -> Result<Vec<InstanceSummary>, StorageError> {
        let workflows = sqlx::query(DB::sql(q::SUMMARY_WORKFLOWS))
            .bind(master)
            .bind(master)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(workflows.len());
        for w in workflows {
            let w: String = w.try_get(0)?;
            let rows = sqlx::query(DB::sql(q::LATEST_SUMMARY))
                .bind(master)
                .bind(w.as_str())
                .bind(i64::from(per_workflow))
                .fetch_all(&self.pool)
                .await?;
            for row in rows {
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
        let rows = sqlx::query(DB::sql(q::SUMMARY_PAGE))
            .bind(master)
            .bind(workflow)
            .bind(i64::from(limit))
            .bind(offset as i64)
            .fetch_all(&self.pool)
            .await?;
        let total = sqlx::query(DB::sql(q::SUMMARY_COUNT))
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

    async fn audit_log(
        &self,
        master: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StorageError> {
        let rows = sqlx::query(DB::sql(q::AUDIT_PAGE))
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
}
