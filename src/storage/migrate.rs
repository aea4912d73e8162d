//! A small migration runner: each backend's numbered SQL files are embedded at build time and
//! applied once, in order, recorded in `pinball_migrations`. (`sqlx::migrate!` would need sqlx's
//! macros feature, which compiles both database drivers a second time for the build host.)

/// One migration: its number, a description, and its statements separated by `;` at line ends.
pub struct Migration {
    pub version: i64,
    pub description: &'static str,
    pub sql: &'static str,
}

pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        description: "tokens",
        sql: include_str!("../../migrations/sqlite/0001_tokens.sql"),
    },
    Migration {
        version: 2,
        description: "instance summaries",
        sql: include_str!("../../migrations/sqlite/0002_instance_summaries.sql"),
    },
];

pub const MYSQL: &[Migration] = &[
    Migration {
        version: 1,
        description: "tokens",
        sql: include_str!("../../migrations/mysql/0001_tokens.sql"),
    },
    Migration {
        version: 2,
        description: "instance summaries",
        sql: include_str!("../../migrations/mysql/0002_instance_summaries.sql"),
    },
];

impl Migration {
    /// The statements of the file, comments and blank lines dropped.
    pub fn statements(&self) -> Vec<String> {
        let without_comments: String = self
            .sql
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        without_comments
            .split(";\n")
            .map(|s| s.trim().trim_end_matches(';').trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_splits_into_its_statements() {
        let count = |ms: &[Migration]| -> Vec<(i64, usize)> {
            ms.iter()
                .map(|m| (m.version, m.statements().len()))
                .collect()
        };
        assert_eq!(count(SQLITE), [(1, 3), (2, 6)]);
        assert_eq!(count(MYSQL), [(1, 3), (2, 3)]);
        for m in SQLITE.iter().chain(MYSQL) {
            for stmt in m.statements() {
                assert!(
                    stmt.starts_with("CREATE ") || stmt.starts_with("INSERT INTO archive_queue"),
                    "migration {}: {stmt}",
                    m.version
                );
            }
        }
    }
}
