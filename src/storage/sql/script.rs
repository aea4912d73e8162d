//! The statements of one commit, sent together where the database takes them so.
//!
//! SQLite runs each call on its connection's own thread, so a statement sent alone costs a
//! hand-off to that thread and back (0.05-0.1 ms on the benchmark's machine, more than most of
//! the statements themselves): there a commit's statements, its `BEGIN` and its fence go as
//! one script (SQLite binds `?` across a script's statements in order), then its `COMMIT`.
//! The servers take one statement per prepared call, so there each runs as it is written.

use super::*;

pub(super) struct Script<DB: Database> {
    /// The statements gathered (SQLite), or the one being written (the servers).
    q: Option<QueryBuilder<DB>>,
    together: bool,
}

impl<DB: Dialect> Script<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    /// A write transaction's script on a connection of its own; its first statement begins
    /// the transaction.
    pub(super) async fn begin(pool: &Pool<DB>) -> Result<(WriteTx<DB>, Self), sqlx::Error> {
        let mut script = Script {
            q: None,
            together: DB::SCRIPTS,
        };
        let mut tx = WriteTx::open(pool).await?;
        script.statement(DB::BEGIN);
        script.end(tx.conn()).await?;
        Ok((tx, script))
    }

    /// Starts the next statement with `sql`; the caller writes the rest of it on the builder.
    pub(super) fn statement(&mut self, sql: &str) -> &mut QueryBuilder<DB> {
        let first = self.q.is_none();
        let q = self.q.get_or_insert_with(|| QueryBuilder::new(""));
        if !first {
            q.push("; ");
        }
        q.push(sql);
        q
    }

    /// The statement is written: a server runs it now, SQLite's waits for the rest.
    pub(super) async fn end(&mut self, conn: &mut DB::Connection) -> Result<(), sqlx::Error> {
        if self.together {
            return Ok(());
        }
        if let Some(mut q) = self.q.take() {
            q.build().execute(conn).await?;
        }
        Ok(())
    }

    /// Runs what is gathered, whose last statement is an `UPDATE`: how many rows that
    /// statement changed.
    pub(super) async fn run_update(&mut self, conn: &mut DB::Connection) -> Result<u64, sqlx::Error>
    where
        usize: ColumnIndex<DB::Row>,
    {
        let Some(mut q) = self.q.take() else {
            return Ok(0);
        };
        if !self.together {
            return Ok(DB::rows_affected(&q.build().execute(conn).await?));
        }
        // A script's count of changes adds up every statement's: the update says its own with
        // a row each (the statements before it return none).
        q.push(" RETURNING 1");
        Ok(q.build().fetch_all(conn).await?.len() as u64)
    }
}
