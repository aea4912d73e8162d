//! What went wrong with the database, in words an operator can act on. The database's own
//! message goes to the log (it can name hosts, files and tables); callers and health checks
//! see one of these causes.

use std::fmt;

/// Why a database call failed, as far as the error says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// No space left for the database (or its table) on disk.
    DiskFull,
    /// The database (file or server) refuses writes.
    ReadOnly,
    /// Another writer holds a lock, or the server gave up on a lock wait or a deadlock.
    Busy,
    /// No connection could be made (refused, reset, host unreachable, TLS, protocol).
    Unreachable,
    /// No connection could be had in time (sqlx retries a refused connection until then), or
    /// the database did not answer in time.
    Timeout,
    /// The database answered with an error of another kind.
    Refused,
}

impl Cause {
    /// What a caller is told.
    pub fn says(self) -> &'static str {
        match self {
            Cause::DiskFull => "the disk is full",
            Cause::ReadOnly => "the database is read-only",
            Cause::Busy => "the database is locked by another writer",
            Cause::Unreachable => "the database is unreachable",
            Cause::Timeout => "the database does not answer",
            Cause::Refused => "the database refused the change",
        }
    }

    /// Whether the connection itself failed (so a COMMIT sent on it has an unknown outcome).
    pub fn is_connection(self) -> bool {
        matches!(self, Cause::Unreachable | Cause::Timeout)
    }

    /// Classifies a sqlx error.
    pub fn of(e: &sqlx::Error) -> Cause {
        use sqlx::Error as E;
        match e {
            E::Database(db) => {
                let dialect = match db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                    Some(_) => Codes::Sqlite,
                    None => Codes::SqlState,
                };
                Cause::of_database(dialect, db.code().as_deref(), db.message())
            }
            E::PoolTimedOut => Cause::Timeout,
            E::Io(io) if io.raw_os_error() == Some(28) => Cause::DiskFull,
            E::Io(_) | E::Tls(_) | E::Protocol(_) | E::PoolClosed | E::WorkerCrashed => {
                Cause::Unreachable
            }
            _ => Cause::Refused,
        }
    }

    /// Classifies a database's error by its code (SQLite's result code, or a server's
    /// SQLSTATE: each read as its own kind, never one as the other) and message.
    fn of_database(codes: Codes, code: Option<&str>, message: &str) -> Cause {
        let m = message.to_ascii_lowercase();
        // SQLite result codes: the primary code is the low byte of the extended one.
        let sqlite = code
            .filter(|_| codes == Codes::Sqlite)
            .and_then(|c| c.parse::<u32>().ok())
            .map(|c| c & 0xff);
        // SQLSTATE classes: 08 connection exceptions, 40 transaction rollbacks (deadlocks,
        // serialization failures), 25006 a read-only transaction (a PostgreSQL standby), 53100
        // a full disk; PostgreSQL's 55P03 a lock not had within lock_timeout, 57P01-57P03 a
        // server shutting down, crashed or starting, 53300 no connection slot left, 57014 a
        // statement cancelled (statement_timeout).
        let state = code.filter(|_| codes == Codes::SqlState).unwrap_or("");
        if state.starts_with("08") || state.starts_with("57P") || state == "53300" {
            return Cause::Unreachable;
        }
        if state.starts_with("40") || state == "55P03" {
            return Cause::Busy;
        }
        if state == "57014" {
            return Cause::Timeout;
        }
        if state == "25006" {
            return Cause::ReadOnly;
        }
        if state == "53100" {
            return Cause::DiskFull;
        }
        if sqlite == Some(13)
            || m.contains("disk is full")
            || m.contains("disk full")
            || m.contains("no space left")
            || (m.contains("table") && m.contains("is full"))
        {
            Cause::DiskFull
        } else if sqlite == Some(8) || m.contains("read-only") || m.contains("readonly") {
            Cause::ReadOnly
        } else if matches!(sqlite, Some(5 | 6))
            || m.contains("database is locked")
            || m.contains("lock wait timeout")
            || m.contains("deadlock")
        {
            Cause::Busy
        } else if sqlite == Some(10) && m.contains("space") {
            Cause::DiskFull
        } else if m.contains("server shutdown")
            || m.contains("connection was killed")
            || m.contains("gone away")
            || m.contains("lost connection")
        {
            Cause::Unreachable
        } else {
            Cause::Refused
        }
    }
}

/// How a database's error codes read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codes {
    /// SQLite's numeric result codes.
    Sqlite,
    /// Five-character SQLSTATEs (MySQL/MariaDB, PostgreSQL).
    SqlState,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.says())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_errors_are_named_by_what_an_operator_can_do() {
        use Codes::{SqlState, Sqlite};
        let table = [
            (
                Sqlite,
                Some("13"),
                "database or disk is full",
                Cause::DiskFull,
            ),
            (
                SqlState,
                Some("HY000"),
                "The table 'active_tokens' is full",
                Cause::DiskFull,
            ),
            (
                Sqlite,
                Some("8"),
                "attempt to write a readonly database",
                Cause::ReadOnly,
            ),
            (Sqlite, Some("5"), "database is locked", Cause::Busy),
            (Sqlite, Some("517"), "database is locked", Cause::Busy),
            (
                SqlState,
                Some("40001"),
                "Deadlock found when trying to get lock",
                Cause::Busy,
            ),
            (
                SqlState,
                Some("08S01"),
                "Server shutdown in progress",
                Cause::Unreachable,
            ),
            (SqlState, Some("23000"), "Duplicate entry", Cause::Refused),
            // A SQLSTATE is not a SQLite code: 21000 (its low byte is 8, SQLite's READONLY)
            // is a cardinality violation.
            (
                SqlState,
                Some("21000"),
                "Subquery returns more than 1 row",
                Cause::Refused,
            ),
            (
                SqlState,
                Some("25006"),
                "cannot execute in a read-only transaction",
                Cause::ReadOnly,
            ),
        ];
        for (codes, code, message, want) in table {
            assert_eq!(Cause::of_database(codes, code, message), want, "{message}");
        }
    }

    #[test]
    fn postgresql_errors_get_the_same_causes() {
        use Codes::SqlState;
        let table = [
            (
                SqlState,
                Some("53100"),
                "could not extend file \"base/16384/16385\": No space left on device",
                Cause::DiskFull,
            ),
            (
                SqlState,
                Some("25006"),
                "cannot execute INSERT in a read-only transaction",
                Cause::ReadOnly,
            ),
            (SqlState, Some("40P01"), "deadlock detected", Cause::Busy),
            (
                SqlState,
                Some("40001"),
                "could not serialize access due to concurrent update",
                Cause::Busy,
            ),
            (
                SqlState,
                Some("55P03"),
                "canceling statement due to lock timeout",
                Cause::Busy,
            ),
            (
                SqlState,
                Some("57P01"),
                "terminating connection due to administrator command",
                Cause::Unreachable,
            ),
            (
                SqlState,
                Some("57P03"),
                "the database system is starting up",
                Cause::Unreachable,
            ),
            (
                SqlState,
                Some("53300"),
                "sorry, too many clients already",
                Cause::Unreachable,
            ),
            (
                SqlState,
                Some("57014"),
                "canceling statement due to statement timeout",
                Cause::Timeout,
            ),
            (
                SqlState,
                Some("23505"),
                "duplicate key value violates unique constraint",
                Cause::Refused,
            ),
        ];
        for (codes, code, message, want) in table {
            assert_eq!(Cause::of_database(codes, code, message), want, "{message}");
        }
    }

    #[test]
    fn connection_failures_are_unreachable_and_pool_waits_are_timeouts() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(Cause::of(&sqlx::Error::Io(refused)), Cause::Unreachable);
        assert_eq!(Cause::of(&sqlx::Error::PoolTimedOut), Cause::Timeout);
        let full = std::io::Error::from_raw_os_error(28);
        assert_eq!(Cause::of(&sqlx::Error::Io(full)), Cause::DiskFull);
        assert!(Cause::Timeout.is_connection() && !Cause::DiskFull.is_connection());
    }
}
