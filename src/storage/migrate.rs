//! Schema migrations, per backend, with sqlx's migrator: the numbered SQL files under
//! `migrations/<backend>/` are embedded at build time and applied once, in order, each in its
//! own transaction where the database allows (MySQL commits DDL implicitly; sqlx then marks a
//! half-applied migration dirty rather than run it twice), checksummed (an edited migration
//! is refused) and under the database's migration lock. Built with `Migrator::with_migrations`
//! rather than `sqlx::migrate!`, which needs the `macros` feature: that would compile both
//! database drivers a second time for the build host.

use std::borrow::Cow;
use std::time::Duration;

use sqlx::migrate::{Migrate, MigrateError, Migration, MigrationType, Migrator};
use sqlx::{Database, Pool, SqlSafeStr};

use super::StorageError;

fn migration(version: i64, description: &'static str, sql: &'static str) -> Migration {
    Migration::new(
        version,
        Cow::Borrowed(description),
        MigrationType::Simple,
        sql.into_sql_str(),
        false,
    )
}

/// The numbered migrations of one backend's folder, the same numbers and descriptions for all.
macro_rules! migrations {
    ($dir:literal) => {
        Migrator::with_migrations(vec![
            migration(
                1,
                "tokens",
                include_str!(concat!("../../migrations/", $dir, "/0001_tokens.sql")),
            ),
            migration(
                2,
                "instance summaries",
                include_str!(concat!(
                    "../../migrations/",
                    $dir,
                    "/0002_instance_summaries.sql"
                )),
            ),
            migration(
                3,
                "audit log",
                include_str!(concat!("../../migrations/", $dir, "/0003_audit_log.sql")),
            ),
            migration(
                4,
                "job logs",
                include_str!(concat!("../../migrations/", $dir, "/0004_job_logs.sql")),
            ),
            migration(
                5,
                "archive age",
                include_str!(concat!("../../migrations/", $dir, "/0005_archive_age.sql")),
            ),
            migration(
                6,
                "master lease and request outcomes",
                include_str!(concat!(
                    "../../migrations/",
                    $dir,
                    "/0006_lease_and_requests.sql"
                )),
            ),
            migration(
                7,
                "master standbys",
                include_str!(concat!(
                    "../../migrations/",
                    $dir,
                    "/0007_master_standbys.sql"
                )),
            ),
            migration(
                8,
                "master epoch in masters",
                include_str!(concat!(
                    "../../migrations/",
                    $dir,
                    "/0008_masters_epoch.sql"
                )),
            ),
        ])
    };
}

pub fn sqlite() -> Migrator {
    migrations!("sqlite")
}

pub fn mysql() -> Migrator {
    migrations!("mysql")
}

pub fn postgres() -> Migrator {
    migrations!("postgres")
}

/// The schema version this binary migrates to: its last migration's number (the same for
/// every backend).
pub fn latest_version() -> i64 {
    sqlite().iter().map(|m| m.version).max().unwrap_or(0)
}

/// The highest version the runner of earlier versions recorded (its table does not exist on a
/// database it never migrated; its migrations are the same files).
pub const LEGACY_VERSION: &str = "SELECT MAX(version) FROM pinball_migrations";

/// Applies what is missing. A database migrated by an earlier Pinball (`legacy`: the highest
/// version its own runner recorded) has those versions marked applied first, without running
/// them again. Another process migrating the same database at the same moment can make one
/// attempt fail (SQLite has no migration lock); the next attempt then finds the work done.
pub async fn run<DB: Database>(
    migrator: &Migrator,
    pool: &Pool<DB>,
    legacy: Option<i64>,
) -> Result<(), StorageError>
where
    DB::Connection: Migrate,
{
    let mut attempt = 1;
    loop {
        let result = async {
            let mut conn = pool.acquire().await?;
            if let Some(done) = legacy {
                adopt_legacy(migrator, &mut *conn, done).await?;
            }
            migrator.run_direct(None, &mut *conn, false).await
        }
        .await;
        match result {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 3 && !matches!(e, MigrateError::VersionMismatch(_)) => {
                tracing::warn!(error = %e, attempt, "database migration failed; trying again");
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(StorageError::Migration(e.to_string())),
        }
    }
}

/// Marks versions up to `done` as applied, once: only while the migrator's table is empty.
async fn adopt_legacy<C: Migrate>(
    migrator: &Migrator,
    conn: &mut C,
    done: i64,
) -> Result<(), MigrateError> {
    conn.ensure_migrations_table(&migrator.table_name).await?;
    if !conn
        .list_applied_migrations(&migrator.table_name)
        .await?
        .is_empty()
    {
        return Ok(());
    }
    tracing::info!(
        version = done,
        "adopting the schema version recorded by an earlier Pinball"
    );
    migrator.run_direct(Some(done), conn, true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_backend_has_the_same_numbered_migrations() {
        let versions = |m: &Migrator| -> Vec<(i64, String)> {
            m.iter()
                .map(|m| (m.version, m.description.to_string()))
                .collect()
        };
        assert_eq!(versions(&sqlite()), versions(&mysql()));
        assert_eq!(versions(&sqlite()), versions(&postgres()));
        for backend in ["sqlite", "mysql", "postgres"] {
            let dir = format!("{}/migrations/{backend}", env!("CARGO_MANIFEST_DIR"));
            let files = std::fs::read_dir(dir).unwrap().count();
            assert_eq!(
                versions(&sqlite()).len(),
                files,
                "every {backend} migration file is embedded"
            );
        }
    }
}
