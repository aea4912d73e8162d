//! A PostgreSQL server of a test's own (its own data directory and port), so the test can stop
//! it, kill it and start it again without touching the server other tests share. Needs root
//! (the server runs as `postgres`) and Debian's server binaries (`/usr/lib/postgresql/N/bin`);
//! `None`, with a visible message, where either is missing.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::free_port;

pub struct OwnPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    child: Option<tokio::process::Child>,
    user: (u32, u32),
}

/// The newest installed server's binaries.
fn binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("postgres").exists()).then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The `postgres` user's ids.
fn postgres_user() -> Option<(u32, u32)> {
    let name = std::ffi::CString::new("postgres").unwrap();
    // SAFETY: getpwnam reads the user database; the record is copied out at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    // SAFETY: a non-null record is valid until the next getpw* call, which this thread makes
    // only after the copy.
    (!pw.is_null()).then(|| unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

impl OwnPostgres {
    /// Creates a cluster and starts its server on a free port, with a database `pinball`.
    /// `None` (and a SKIPPED line naming the test) where this machine cannot.
    pub async fn start(test: &str) -> Option<OwnPostgres> {
        // SAFETY: geteuid only reads the process's user id.
        if unsafe { libc::geteuid() } != 0 {
            crate::helpers::skipped(&format!("({test}): an own PostgreSQL server needs root"));
            return None;
        }
        let (Some(bin), Some(user)) = (binaries(), postgres_user()) else {
            crate::helpers::skipped(&format!(
                "({test}): no /usr/lib/postgresql/N/bin/postgres or no postgres user"
            ));
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("pinball-postgres-")
            .tempdir()
            .unwrap();
        std::os::unix::fs::chown(dir.path(), Some(user.0), Some(user.1)).unwrap();
        let out = tokio::process::Command::new(bin.join("initdb"))
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ])
            .arg("-D")
            .arg(dir.path().join("data"))
            .uid(user.0)
            .gid(user.1)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut db = OwnPostgres {
            dir,
            bin,
            port: free_port(),
            child: None,
            user,
        };
        db.up().await;
        let mut c = db.connect("postgres").await.unwrap();
        sqlx::raw_sql("CREATE DATABASE pinball")
            .execute(&mut c)
            .await
            .unwrap();
        Some(db)
    }

    /// `postgres://postgres@127.0.0.1:PORT/pinball`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/pinball", self.port)
    }

    async fn connect(&self, database: &str) -> Result<sqlx::PgConnection, sqlx::Error> {
        use sqlx::Connection;
        let url = format!("postgres://postgres@127.0.0.1:{}/{database}", self.port);
        sqlx::PgConnection::connect(&url).await
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts the server (again) on the same data and port, and waits until it takes
    /// connections (after recovery, when it was killed).
    pub async fn up(&mut self) {
        assert!(self.child.is_none(), "the server already runs");
        let log = std::fs::File::create(self.path("server.log")).unwrap();
        let child = tokio::process::Command::new(self.bin.join("postgres"))
            .arg("-D")
            .arg(self.path("data"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "shared_buffers=32MB", "-c", "max_connections=50"])
            .uid(self.user.0)
            .gid(self.user.1)
            // Its own process group: a kill takes the server and all its backends at once,
            // as a crash of its machine would.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        while self.connect("postgres").await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "PostgreSQL did not start: {}",
                std::fs::read_to_string(self.path("server.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server cleanly (SIGINT: a fast shutdown, which ends open sessions) and waits
    /// until it has exited.
    pub async fn stop(&mut self) {
        self.end(libc::SIGINT, false).await;
    }

    /// Kills the server and every backend (SIGKILL): it recovers from its WAL at the next
    /// start.
    pub async fn kill(&mut self) {
        self.end(libc::SIGKILL, true).await;
    }

    async fn end(&mut self, signal: i32, group: bool) {
        let mut child = self.child.take().expect("the server runs");
        if let Some(pid) = child.id() {
            let pid = pid as libc::pid_t;
            // SAFETY: kill only sends a signal to the server we started (or its group).
            unsafe { libc::kill(if group { -pid } else { pid }, signal) };
        }
        tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("PostgreSQL ends within a minute")
            .unwrap();
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        if let Some(pid) = self.child.as_ref().and_then(|c| c.id()) {
            // SAFETY: the group of the server this helper started.
            unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
        }
    }
}
