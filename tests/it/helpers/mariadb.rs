//! A MariaDB server of a test's own (its own data directory and port), so the test can stop it,
//! kill it and start it again without touching the server other tests share. Needs root (the
//! server runs as `mysql`) and the MariaDB server binaries; `None`, with a visible message,
//! where either is missing.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::free_port;

pub struct OwnMariaDb {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<tokio::process::Child>,
}

const INSTALL: &str = "/usr/bin/mariadb-install-db";
const SERVER: &str = "/usr/sbin/mariadbd";

impl OwnMariaDb {
    /// Creates a data directory and starts the server on a free port. `None` (and a SKIPPED
    /// line naming the test) where this machine cannot.
    pub async fn start(test: &str) -> Option<OwnMariaDb> {
        // SAFETY: geteuid only reads the process's user id.
        if unsafe { libc::geteuid() } != 0 {
            crate::helpers::skipped(&format!("({test}): an own MariaDB server needs root"));
            return None;
        }
        if !Path::new(INSTALL).exists() || !Path::new(SERVER).exists() {
            crate::helpers::skipped(&format!("({test}): {INSTALL} or {SERVER} is missing"));
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("pinball-mariadb-")
            .tempdir()
            .unwrap();
        chown_mysql(dir.path());
        let data = dir.path().join("data");
        let out = tokio::process::Command::new(INSTALL)
            .args(["--no-defaults", "--user=mysql", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display()))
            .arg("--auth-root-authentication-method=normal")
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{INSTALL}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut db = OwnMariaDb {
            dir,
            port: free_port(),
            child: None,
        };
        db.up().await;
        db.sql("CREATE DATABASE pinball").await;
        Some(db)
    }

    /// `mysql://root@127.0.0.1:PORT/pinball`.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/pinball", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the server (again) on the same data and port, and waits until it answers.
    pub async fn up(&mut self) {
        assert!(self.child.is_none(), "the server already runs");
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let child = tokio::process::Command::new(SERVER)
            .args([
                "--no-defaults",
                "--user=mysql",
                "--bind-address=127.0.0.1",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=32M",
                "--max-allowed-packet=256M",
            ])
            .arg(format!("--datadir={}", self.data().display()))
            .arg(format!("--port={}", self.port))
            .arg(format!(
                "--socket={}",
                self.dir.path().join("sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                self.dir.path().join("pid").display()
            ))
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "MariaDB did not start: {}",
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server cleanly (SIGTERM) and waits until it has exited.
    pub async fn stop(&mut self) {
        self.end(libc::SIGTERM).await;
    }

    /// Kills the server (SIGKILL): it recovers from its redo log at the next start.
    pub async fn kill(&mut self) {
        self.end(libc::SIGKILL).await;
    }

    async fn end(&mut self, signal: i32) {
        let mut child = self.child.take().expect("the server runs");
        if let Some(pid) = child.id() {
            // SAFETY: kill only sends a signal to the server we started.
            unsafe { libc::kill(pid as libc::pid_t, signal) };
        }
        tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("MariaDB ends within a minute")
            .unwrap();
    }

    /// Runs one statement as root.
    pub async fn sql(&self, statement: &'static str) {
        use sqlx::Connection;
        let url = format!("mysql://root@127.0.0.1:{}/", self.port);
        let mut c = sqlx::MySqlConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(statement).execute(&mut c).await.unwrap();
    }
}

fn chown_mysql(path: &Path) {
    let status = std::process::Command::new("chown")
        .args(["mysql:mysql"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "chown mysql {}", path.display());
}
