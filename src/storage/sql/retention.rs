//! `Retention` for every SQL backend.

use super::*;

#[async_trait]
impl<DB> Retention for SqlStore<DB>
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
    async fn delete_archived(&self, master: &str, prefix: &str) -> Result<u64, StorageError> {
        let end = prefix_end(prefix);
        let mut tx = WriteTx::<DB>::begin(&self.pool).await?;
        let done = sqlx::query(DB::sql(q::DELETE_ARCHIVED))
            .bind(master)
            .bind(prefix)
            .bind(end.as_str())
            .execute(tx.conn())
            .await?;
        sqlx::query(DB::sql(q::DELETE_SUMMARIES_UNDER))
            .bind(master)
            .bind(prefix)
            .bind(end.as_str())
            .execute(tx.conn())
            .await?;
        sqlx::query(DB::sql(q::DELETE_LOGS_UNDER))
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
        group: GroupOf,
    ) -> Result<Vec<String>, StorageError> {
        // The oldest rows name the oldest instances; an instance also archived later (part of
        // it, again) is kept until its last archiving is old enough.
        let rows = sqlx::query(DB::sql(q::OLDEST_ARCHIVED))
            .bind(master)
            .bind(archived_before)
            .bind(i64::from(limit) * 16)
            .fetch_all(&self.pool)
            .await?;
        let mut prefixes: Vec<String> = Vec::new();
        for row in &rows {
            let name: String = row.try_get(0)?;
            let prefix = group(&name);
            if prefixes.iter().any(|p| p == prefix) {
                continue;
            }
            let last: Option<i64> = sqlx::query(DB::sql(q::LAST_ARCHIVED))
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
}
