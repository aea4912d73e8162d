//! `Admin` for every SQL backend.

use super::*;

#[async_trait]
impl<DB> Admin for SqlStore<DB>
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
    fn backend(&self) -> &'static str {
        TokenStore::kind(self)
    }

    async fn upgrade_schema(&self) -> Result<(), StorageError> {
        TokenStore::migrate(self).await
    }

    async fn copy_masters(&self) -> Result<Vec<(String, String)>, StorageError> {
        let rows = sqlx::query(DB::sql(
            "SELECT master, created_at FROM masters ORDER BY master",
        ))
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
        let row = sqlx::query(DB::sql_built(sql))
            .bind(master)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>(0)? as u64)
    }

    async fn schema_version(&self) -> Result<Option<i64>, StorageError> {
        match sqlx::query(DB::sql(
            "SELECT MAX(version) FROM _sqlx_migrations WHERE success",
        ))
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
        let row = sqlx::query(DB::sql(DB::SIZE_BYTES))
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?.map(|b| b.max(0) as u64))
    }
}
