//! One master per SQLite file and master name: a master takes an exclusive lock (`flock`) on
//! `<file>.<master>.master-lock` before it loads anything, and holds it while it runs; a
//! second master on the same file and name finds it taken and stops with the first one's
//! address. Two masters writing one database would lose acknowledged writes (each keeps its
//! own versions in memory). The lock ends with its process, however it ends. Called by
//! `modes` when it starts a master. On every database the master also takes the lease row
//! of its name (`master::lease`), whose epoch each commit checks; on SQLite this lock is what
//! says the row may be taken at once.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

/// Why the lock of a master's SQLite file cannot be held.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error("cannot open the master's lock {lock}: {source}")]
    Open {
        lock: String,
        source: std::io::Error,
    },
    #[error("cannot lock {lock}: {source}")]
    Lock {
        lock: String,
        source: std::io::Error,
    },
    #[error(
        "master {master} is already served by {who} from this SQLite file; stop that master first (two masters on one database would lose acknowledged writes)"
    )]
    Held { master: String, who: String },
}

/// The held lock; dropping it lets another master take the file.
#[derive(Debug)]
pub struct Hold {
    _file: File,
}

/// Takes the lock of master `master` on the SQLite file `url` names, recording `serving`
/// (the address it answers on) for whoever finds it taken; `Ok(None)` for other databases.
pub fn hold(url: &str, master: &str, serving: &str) -> Result<Option<Hold>, HoldError> {
    let Some(path) = super::sqlite_path(url) else {
        return Ok(None);
    };
    let lock = format!("{path}.{master}.master-lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock)
        .map_err(|source| HoldError::Open {
            lock: lock.clone(),
            source,
        })?;
    // SAFETY: flock only takes or tests a lock on this open file.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::WouldBlock {
            return Err(HoldError::Lock { lock, source: e });
        }
        let mut who = String::new();
        let _ = file.read_to_string(&mut who);
        let who = who.trim();
        return Err(HoldError::Held {
            master: master.to_owned(),
            who: if who.is_empty() {
                "another process".to_owned()
            } else {
                who.to_owned()
            },
        });
    }
    let since = crate::clock::utc(crate::clock::now());
    let record = format!("{serving} (pid {}, since {since})\n", std::process::id());
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(record.as_bytes()));
    if let Err(e) = written {
        tracing::warn!(lock, error = %e, "cannot record this master in its lock file");
    }
    Ok(Some(Hold { _file: file }))
}
