//! Ends a stopping worker could not commit: a worker told to stop (SIGTERM) while the master
//! is away does not wait for it beyond `worker_shutdown_grace_sec`. How each run it ended
//! came out is written here, beside the job logs (`<logs>/.pending-ends/`, private to the
//! worker's user), and the next `-m workers` process on this host with the same logs
//! directory commits it when the master answers, before it claims anything: a job that ran is
//! recorded, not run again. The end names the job token's version it ran under, so it lands
//! only if nobody took the job since.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::run::RunEnd;
use crate::token::Token;
use crate::workflow::instance::JobToken;
use crate::workflow::job::Job;

/// The most pending ends read back at once, and the largest one.
const MAX_FILES: usize = 10_000;
const MAX_BYTES: u64 = 64 << 20;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Finished,
    Aborted,
    HandedBack,
}

#[derive(Serialize, Deserialize)]
struct Pending {
    token: Token,
    kind: Kind,
    job: Job,
}

fn dir(logs: &Path) -> PathBuf {
    logs.join(".pending-ends")
}

/// Writes `end` of the run of `jt` for the next worker process to commit; the file it wrote.
pub fn save(logs: &Path, jt: &JobToken, end: &RunEnd) -> std::io::Result<Option<PathBuf>> {
    let (kind, job) = match end {
        RunEnd::Finished(j) => (Kind::Finished, j),
        RunEnd::Aborted(j) => (Kind::Aborted, j),
        RunEnd::HandedBack(j) => (Kind::HandedBack, j),
        RunEnd::LostLease => return Ok(None),
    };
    let dir = dir(logs);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let pending = Pending {
        token: jt.token.clone(),
        kind,
        job: job.clone(),
    };
    let body = serde_json::to_vec(&pending).map_err(std::io::Error::other)?;
    let name = crate::token::hex(&Sha256::digest(jt.token.name.as_bytes())[..16]);
    let path = dir.join(format!("{name}.json"));
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    file.write_all(&body)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(Some(path))
}

/// The ends waiting in `logs`, oldest first, with their files. A directory or file that is
/// not this user's own, or not private, is not trusted (a job could otherwise forge an end).
pub fn pending(logs: &Path) -> Vec<(PathBuf, JobToken, RunEnd)> {
    let dir = dir(logs);
    // SAFETY: geteuid only reads this process's user id.
    let uid = unsafe { libc::geteuid() };
    let Ok(meta) = std::fs::symlink_metadata(&dir) else {
        return Vec::new();
    };
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        tracing::error!(dir = %dir.display(), "the pending ends' directory is not this user's private directory; it is ignored");
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| {
            let m = e.path().symlink_metadata().ok()?;
            let own = m.is_file() && m.uid() == uid && m.permissions().mode() & 0o077 == 0;
            (own && m.len() <= MAX_BYTES)
                .then(|| m.modified().ok().map(|t| (t, e.path())))
                .flatten()
        })
        .take(MAX_FILES)
        .collect();
    found.sort();
    found
        .into_iter()
        .filter_map(|(_, path)| {
            let read = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Pending>(&b).map_err(|e| e.to_string()))
                .and_then(|p| {
                    let jt = JobToken::parse(p.token).map_err(|e| e.to_string())?;
                    let end = match p.kind {
                        Kind::Finished => RunEnd::Finished(p.job),
                        Kind::Aborted => RunEnd::Aborted(p.job),
                        Kind::HandedBack => RunEnd::HandedBack(p.job),
                    };
                    Ok((jt, end))
                });
            match read {
                Ok((jt, end)) => Some((path, jt, end)),
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "an unreadable pending end is left where it is");
                    None
                }
            }
        })
        .collect()
}
