//! Job logs, for the worker that writes them and the UI that reads them alike. A log lives at
//! `<logs>/<workflow>/<instance>/<job>.<start>[.<n>].<kind>` (an attempt that starts in the same
//! second as an earlier one gets its execution number too, so logs never mix). The pinlog holds
//! Pinball's own notes about an execution.
//!
//! Whatever a token's data says, nothing outside the log directory is opened: a recorded path
//! only tells which instance ran the execution and its file's stem, both checked against the
//! names they must have ([`locate`]); directories are created 0700 and files 0600, symbolic
//! links are not followed, and only regular files are read.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::token::name::{InstanceId, JobName, WorkflowName, is_word};
use crate::workflow::job::ExecutionRecord;

/// The kinds of log an execution may have.
pub const KINDS: [&str; 3] = ["stdout", "stderr", "pinlog"];

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{kind} is not a kind of log; use stdout, stderr or pinlog")]
    Kind { kind: String },
    #[error(
        "the recorded {kind} log of {job} is not a log of workflow {workflow} in the log directory"
    )]
    Outside {
        workflow: WorkflowName,
        job: JobName,
        kind: String,
    },
    #[error("the log directory {}: {why}", dir.display())]
    Unsafe { dir: PathBuf, why: String },
    #[error("the log directory {}: {source}", dir.display())]
    Io { dir: PathBuf, source: io::Error },
}

/// The log folder of one instance.
pub fn instance_dir(root: &Path, w: &WorkflowName, i: &InstanceId) -> PathBuf {
    root.join(w.as_str()).join(i.as_str())
}

/// Whether `file` is the name of a `kind` log of `job`: `<job>.<digits>[.<digits>].<kind>`.
fn is_log_name(file: &str, job: &JobName, kind: &str) -> bool {
    let Some(middle) = file
        .strip_prefix(job.as_str())
        .and_then(|r| r.strip_prefix('.'))
        .and_then(|r| r.strip_suffix(kind))
        .and_then(|r| r.strip_suffix('.'))
    else {
        return false;
    };
    let mut parts = middle.split('.');
    let digits = |p: &str| !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit());
    parts.next().is_some_and(digits) && parts.next().is_none_or(digits) && parts.next().is_none()
}

/// Where the `kind` log an execution record names really is, inside `root`: the recorded
/// path's last three parts must be the workflow `w`, an instance id, and a log name of `job`.
pub fn locate(
    root: &Path,
    w: &WorkflowName,
    job: &JobName,
    kind: &str,
    recorded: &str,
) -> Result<PathBuf, LogError> {
    if !KINDS.contains(&kind) {
        return Err(LogError::Kind { kind: kind.into() });
    }
    let outside = || LogError::Outside {
        workflow: w.clone(),
        job: job.clone(),
        kind: kind.into(),
    };
    let mut parts = recorded.rsplit('/');
    let (Some(file), Some(instance), Some(workflow)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(outside());
    };
    if workflow != w.as_str() || !is_word(instance) || !is_log_name(file, job, kind) {
        return Err(outside());
    }
    Ok(root.join(workflow).join(instance).join(file))
}

/// Names the stdout and stderr logs of execution `n` of `job` in `record.logs`.
pub fn assign(dir: &Path, job: &JobName, n: usize, record: &mut ExecutionRecord) {
    let mut stem = format!("{job}.{}", record.start_time as i64);
    if dir.join(format!("{stem}.stdout")).exists() {
        stem = format!("{stem}.{n}");
    }
    for kind in ["stdout", "stderr"] {
        record.logs.insert(
            kind.into(),
            dir.join(format!("{stem}.{kind}")).display().to_string(),
        );
    }
}

/// Creates `dir` and its missing parents, private to this user (below a held log directory,
/// through its handle: `logroot`).
pub fn create_dir(dir: &Path) -> io::Result<()> {
    if let Some(done) = super::logroot::create_dir(dir) {
        return done;
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Refuses a log directory below a folder another user could swap it out of: every folder
/// above it must belong to root or to this user, and be writable by no one else unless it is
/// sticky (as /tmp is: others cannot rename what is ours there).
fn check_ancestors(root: &Path, me: u32) -> Result<(), LogError> {
    let unsafe_ = |why: String| LogError::Unsafe {
        dir: root.to_path_buf(),
        why,
    };
    let absolute = std::fs::canonicalize(root).map_err(|source| LogError::Io {
        dir: root.to_path_buf(),
        source,
    })?;
    for dir in absolute.ancestors().skip(1) {
        let meta = std::fs::metadata(dir).map_err(|source| LogError::Io {
            dir: dir.to_path_buf(),
            source,
        })?;
        let mode = meta.permissions().mode();
        if meta.uid() != 0 && meta.uid() != me {
            return Err(unsafe_(format!(
                "lies in {}, which belongs to user {}: that user could put another folder in its place; choose a directory whose parents belong to root or to this user",
                dir.display(),
                meta.uid()
            )));
        }
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Err(unsafe_(format!(
                "lies in {}, which other users may write (mode {:o}): they could put another folder in its place; choose another local_logs_dir_prefix",
                dir.display(),
                mode & 0o7777
            )));
        }
    }
    Ok(())
}

/// Makes sure the log directory exists and is this user's alone: a real directory (not a
/// symbolic link) owned by this user that no other user may write, so nobody can plant a link
/// that sends a log elsewhere.
pub fn prepare_root(root: &Path) -> Result<(), LogError> {
    let io = |source| LogError::Io {
        dir: root.to_path_buf(),
        source,
    };
    let unsafe_ = |why: String| LogError::Unsafe {
        dir: root.to_path_buf(),
        why,
    };
    create_dir(root).map_err(io)?;
    let meta = std::fs::symlink_metadata(root).map_err(io)?;
    if meta.file_type().is_symlink() {
        return Err(unsafe_(
            "is a symbolic link; give the real directory".into(),
        ));
    }
    if !meta.is_dir() {
        return Err(unsafe_("is not a directory".into()));
    }
    // SAFETY: geteuid only reads the process's effective user id.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(unsafe_(format!(
            "belongs to user {}, not to this user ({me}); give a directory of this user's",
            meta.uid()
        )));
    }
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(unsafe_(format!(
            "may be written by other users (mode {:o}); run `chmod go-w` on it or choose another local_logs_dir_prefix",
            mode & 0o7777
        )));
    }
    check_ancestors(root, me)?;
    // From here on, logs are written through this handle, whatever happens to the path.
    super::logroot::hold(root).map_err(io)
}

/// Opens a log for appending, creating it 0600; a symbolic link in its place is refused.
pub fn open_append(path: &Path) -> io::Result<File> {
    if let Some(opened) =
        super::logroot::open(path, libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND)
    {
        return opened;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Opens a log for reading: not through a symbolic link (the instance's and the workflow's
/// folders included), never blocking on a pipe or a device, and only a regular file. Returns
/// the file and its size at opening.
pub fn open_read(root: &Path, path: &Path) -> io::Result<(File, u64)> {
    let refused = |what: &str| io::Error::new(io::ErrorKind::PermissionDenied, what.to_owned());
    if let Some(opened) = super::logroot::open(path, libc::O_RDONLY | libc::O_NONBLOCK) {
        let file = opened?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(refused("the log is not a regular file"));
        }
        return Ok((file, meta.len()));
    }
    let mut dir = path.parent();
    while let Some(d) = dir.filter(|d| d.starts_with(root) && *d != root) {
        if std::fs::symlink_metadata(d)?.file_type().is_symlink() {
            return Err(refused("a folder of the log is a symbolic link"));
        }
        dir = d.parent();
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refused("the log is not a regular file"));
    }
    Ok((file, meta.len()))
}

/// Appends a line to the execution's pinlog, naming it in `record.logs` if it is new.
pub fn pinlog(dir: &Path, job: &JobName, record: &mut ExecutionRecord, message: &str) {
    let path = record
        .logs
        .entry("pinlog".into())
        .or_insert_with(|| {
            dir.join(format!("{job}.{}.pinlog", record.start_time as i64))
                .display()
                .to_string()
        })
        .clone();
    let written = create_dir(dir).and_then(|()| {
        use std::io::Write;
        open_append(Path::new(&path))?.write_all(format!("{message}\n").as_bytes())
    });
    if let Err(e) = written {
        tracing::warn!(path, error = %e, "cannot write the pinlog");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> WorkflowName {
        WorkflowName::parse(s).unwrap()
    }
    fn j(s: &str) -> JobName {
        JobName::parse(s).unwrap()
    }

    #[test]
    fn a_recorded_path_only_names_an_instance_and_a_stem() {
        let root = Path::new("/logs");
        let at = |recorded: &str| locate(root, &w("wf"), &j("a"), "stdout", recorded);
        assert_eq!(
            at("/elsewhere/wf/123/a.1700000000.stdout").unwrap(),
            Path::new("/logs/wf/123/a.1700000000.stdout"),
            "the log directory is this process's, whatever the recorded prefix"
        );
        assert_eq!(
            at("wf/9/a.1700000000.2.stdout").unwrap(),
            Path::new("/logs/wf/9/a.1700000000.2.stdout")
        );
        for bad in [
            "/etc/shadow",
            "/etc/passwd",
            "/dev/zero",
            "/logs/other/1/a.1.stdout",
            "/logs/wf/../1/a.1.stdout",
            "/logs/wf/1/b.1.stdout",
            "/logs/wf/1/a.1.stderr",
            "/logs/wf/1/a.x.stdout",
            "/logs/wf/1/a.1.2.3.stdout",
            "a.1.stdout",
            "",
        ] {
            assert!(at(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            locate(root, &w("wf"), &j("a"), "../x", "wf/1/a.1.../x"),
            Err(LogError::Kind { .. })
        ));
    }

    #[test]
    fn the_log_directory_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("logs");
        prepare_root(&root).unwrap();
        let mode = std::fs::metadata(&root).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let err = prepare_root(&root).unwrap_err().to_string();
        assert!(err.contains("other users"), "{err}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("logs"), &link).unwrap();
        let err = prepare_root(&link).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
    }

    #[test]
    fn logs_are_private_and_links_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.1.stdout");
        open_append(&log).unwrap();
        let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let target = dir.path().join("target");
        std::fs::write(&target, "secret").unwrap();
        let planted = dir.path().join("a.2.stdout");
        std::os::unix::fs::symlink(&target, &planted).unwrap();
        assert!(
            open_append(&planted).is_err(),
            "a planted link is not written through"
        );
        assert!(open_read(dir.path(), &planted).is_err(), "nor read through");
        assert!(
            open_read(Path::new("/"), Path::new("/dev/zero")).is_err(),
            "a device is not a log"
        );
    }
}
