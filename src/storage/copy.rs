//! `pinball db copy` and `pinball db check`: every table of one database copied into another
//! (SQLite to MariaDB, or back), a page at a time in key order, each page one transaction on
//! the target. An interrupted copy resumes after the last key the target holds (rows already
//! there are skipped, never duplicated), and the copy ends by comparing every table's count.

use super::{Admin, StorageError};

/// A column's type, as every dialect stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    /// A truth value (`BOOLEAN`: an integer in SQLite and MySQL, its own type in PostgreSQL).
    Bool,
    Real,
    Text,
    Blob,
}

/// One value of a copied row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Bool(bool),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    /// Bytes it carries, for sizing statements.
    pub fn size(&self) -> usize {
        match self {
            Value::Text(s) => s.len(),
            Value::Blob(b) => b.len(),
            _ => 8,
        }
    }
}

pub type Row = Vec<Value>;

/// A table as the copy sees it: its columns (the key's first, in key order) and its key.
/// Every table has a `master` column; a master's rows are copied in the order of the rest of
/// the key.
#[derive(Debug)]
pub struct TableSpec {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Kind)],
    /// How many of the first columns make the primary key.
    pub key_len: usize,
    /// The key is an id the database assigns (`audit_log.id`, `archive_queue.seq`): it is
    /// not copied (the target may hold other masters' rows), and the rows keep their order.
    pub surrogate: bool,
    /// Rows a page reads (fewer for tables of large rows).
    pub page: u32,
}

impl TableSpec {
    /// The key's columns that order a master's rows (all but `master`).
    pub fn order(&self) -> impl Iterator<Item = (usize, &'static str, Kind)> + '_ {
        self.columns[..self.key_len]
            .iter()
            .enumerate()
            .filter(|(_, c)| c.0 != "master")
            .map(|(i, c)| (i, c.0, c.1))
    }

    /// Those columns' values in `row`.
    pub fn key(&self, row: &Row) -> Vec<Value> {
        self.order().map(|(i, _, _)| row[i].clone()).collect()
    }
}

use Kind::*;

/// Every table of the schema, in the order they are copied.
pub const TABLES: &[TableSpec] = &[
    TableSpec {
        name: "masters",
        columns: &[
            ("master", Text),
            ("version_floor", Int),
            ("created_at", Text),
        ],
        key_len: 1,
        surrogate: false,
        page: 500,
    },
    TableSpec {
        name: "active_tokens",
        columns: &[
            ("master", Text),
            ("name", Text),
            ("version", Int),
            ("owner", Text),
            ("expiration_time", Int),
            ("priority", Real),
            ("data", Text),
        ],
        key_len: 2,
        surrogate: false,
        page: 500,
    },
    TableSpec {
        name: "archived_tokens",
        columns: &[
            ("master", Text),
            ("name", Text),
            ("version", Int),
            ("owner", Text),
            ("expiration_time", Int),
            ("priority", Real),
            ("data", Text),
            ("archived_at", Int),
        ],
        key_len: 3,
        surrogate: false,
        page: 500,
    },
    TableSpec {
        name: "instance_summaries",
        columns: &[
            ("master", Text),
            ("prefix", Text),
            ("workflow", Text),
            ("instance", Text),
            ("status", Text),
            ("start_time", Real),
            ("end_time", Real),
            ("sort_time", Real),
            ("data", Text),
        ],
        key_len: 2,
        surrogate: false,
        page: 500,
    },
    TableSpec {
        name: "archive_queue",
        columns: &[("seq", Int), ("master", Text), ("prefix", Text)],
        key_len: 1,
        surrogate: true,
        page: 1000,
    },
    TableSpec {
        name: "audit_log",
        columns: &[
            ("id", Int),
            ("master", Text),
            ("at", Real),
            ("actor", Text),
            ("via", Text),
            ("command", Text),
            ("workflow", Text),
            ("instance", Text),
            ("jobs", Text),
            ("ok", Bool),
            ("result", Text),
        ],
        key_len: 1,
        surrogate: true,
        page: 1000,
    },
    TableSpec {
        name: "job_logs",
        columns: &[
            ("master", Text),
            ("name", Text),
            ("execution", Int),
            ("kind", Text),
            ("start_byte", Int),
            ("raw_len", Int),
            ("data", Blob),
            ("host", Text),
            ("truncated_at", Int),
            ("created_at", Int),
        ],
        key_len: 5,
        surrogate: false,
        page: 64,
    },
];

/// What `db copy` reports as it goes.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    /// A master's table starts: its rows in the source, and how many the target already holds.
    Table {
        master: &'a str,
        spec: &'a TableSpec,
        total: u64,
        already: u64,
    },
    /// Rows of the current table the target holds so far.
    Copied { spec: &'a TableSpec, rows: u64 },
}

/// One master's table at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub master: String,
    pub table: &'static str,
    /// Rows the target held before this run (a resumed copy).
    pub resumed_after: u64,
    pub copied: u64,
    pub total: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Refused(String),
}

/// Copies every master of `from` into `to` (migrated first), resuming where an earlier run
/// stopped, and verifies each table's count per master. The source must not be written
/// meanwhile (stop its master first). The target may hold other masters; it may not hold a
/// master of the same name that is not a copy of this one.
pub async fn copy(
    from: &dyn Admin,
    to: &dyn Admin,
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> Result<Vec<Copied>, CopyError> {
    from.upgrade_schema().await?;
    to.upgrade_schema().await?;
    let ours = from.copy_masters().await?;
    let theirs = to.copy_masters().await?;
    for (master, created) in &ours {
        if let Some((_, other)) = theirs.iter().find(|(m, _)| m == master)
            && other != created
        {
            return Err(CopyError::Refused(format!(
                "the target already holds a master `{master}` of its own (created {other}; the source's was created {created}): copy into a database without it"
            )));
        }
    }
    let mut report = Vec::new();
    for (master, _) in &ours {
        for spec in TABLES {
            report.push(copy_table(from, to, master, spec, progress).await?);
        }
    }
    Ok(report)
}

async fn copy_table(
    from: &dyn Admin,
    to: &dyn Admin,
    master: &str,
    spec: &TableSpec,
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> Result<Copied, CopyError> {
    let total = from.copy_count(spec, master).await?;
    let already = to.copy_count(spec, master).await?;
    progress(Progress::Table {
        master,
        spec,
        total,
        already,
    });
    // Each page commits whole and in order, so the target holds the first rows: continue
    // after its last key, or (ids the target assigns) after as many rows of the source.
    let mut after = match (already, spec.surrogate) {
        (0, _) => None,
        (n, true) => from.copy_key_at(spec, master, n - 1).await?,
        (_, false) => to.copy_last_key(spec, master).await?,
    };
    let mut copied = 0;
    loop {
        let rows = from
            .copy_page(spec, master, after.as_deref(), spec.page)
            .await?;
        let Some(last) = rows.last() else { break };
        after = Some(spec.key(last));
        to.copy_insert(spec, &rows).await?;
        copied += rows.len() as u64;
        progress(Progress::Copied {
            spec,
            rows: already + copied,
        });
    }
    let (source, target) = (
        from.copy_count(spec, master).await?,
        to.copy_count(spec, master).await?,
    );
    if source != target {
        return Err(CopyError::Refused(format!(
            "table {} of master `{master}`: {source} rows in the source but {target} in the target after the copy; was either written meanwhile? Stop the master and run the copy again",
            spec.name
        )));
    }
    Ok(Copied {
        master: master.to_owned(),
        table: spec.name,
        resumed_after: already,
        copied,
        total: target,
    })
}

/// What `db check` finds.
#[derive(Debug, Clone)]
pub struct Check {
    pub kind: &'static str,
    /// The schema version the database records.
    pub schema_version: Option<i64>,
    pub tables: Vec<(&'static str, u64)>,
    /// Bytes on disk, where the database can tell.
    pub bytes: Option<u64>,
}

/// Reads the schema version, every table with all its columns, their row counts and size.
/// Refuses a database that is behind or ahead of this binary, or misses a table or column.
pub async fn check(store: &dyn Admin) -> Result<Check, CopyError> {
    let latest = super::migrate::latest_version();
    let version = store.schema_version().await?;
    match version {
        Some(v) if v == latest => {}
        Some(v) if v > latest => {
            return Err(CopyError::Refused(format!(
                "the schema is at version {v}, newer than this pinball knows ({latest}): use a newer pinball"
            )));
        }
        other => {
            return Err(CopyError::Refused(format!(
                "the schema is at version {}, this pinball needs {latest}: start a master on it (or run `db copy` into it), which migrates it",
                other.map_or("none".to_owned(), |v| v.to_string())
            )));
        }
    }
    let masters: Vec<String> = store
        .copy_masters()
        .await?
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    let mut tables = Vec::new();
    for spec in TABLES {
        // Reading every column proves the table and its columns are there, masters or not.
        let probe = masters.first().map_or("", String::as_str);
        store.copy_page(spec, probe, None, 1).await.map_err(|e| {
            CopyError::Refused(format!(
                "table {} is missing or lacks a column: {e}",
                spec.name
            ))
        })?;
        let mut rows = 0;
        for master in &masters {
            rows += store.copy_count(spec, master).await?;
        }
        tables.push((spec.name, rows));
    }
    Ok(Check {
        kind: store.backend(),
        schema_version: version,
        tables,
        bytes: store.size_bytes().await?,
    })
}
