//! The log directory, held open. A worker opens its log directory once, at start
//! ([`hold`]), and creates and opens every folder and file below it relative to that handle,
//! one path component at a time, never following a symbolic link (`openat`, `mkdirat` with
//! `O_NOFOLLOW`). Whoever renames the directory or puts a link in its place afterwards changes
//! nothing: the logs still go where the worker checked they may go. Used by `logs`.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The log directories this process holds open.
static HELD: Mutex<Vec<(PathBuf, Arc<OwnedFd>)>> = Mutex::new(Vec::new());

fn c_name(part: &std::ffi::OsStr) -> io::Result<CString> {
    CString::new(part.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in a log path"))
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Opens `name` in `dir` (the current directory when `None`) with `flags`.
fn open_at(
    dir: Option<&OwnedFd>,
    name: &CString,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    let at = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `name` is a NUL-terminated string; the descriptor returned is new and ours.
    let fd = check(unsafe {
        libc::openat(
            at,
            name.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Holds `root` open as this process's log directory (see the module's header).
pub fn hold(root: &Path) -> io::Result<()> {
    let name = c_name(root.as_os_str())?;
    let fd = Arc::new(open_at(None, &name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?);
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    held.retain(|(p, _)| p != root);
    held.push((root.to_path_buf(), fd));
    Ok(())
}

/// The held directory `path` lies in, and the components below it.
fn below(path: &Path) -> Option<(Arc<OwnedFd>, Vec<CString>)> {
    let held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    let (root, fd) = held
        .iter()
        .filter(|(r, _)| path.starts_with(r))
        .max_by_key(|(r, _)| r.as_os_str().len())?;
    let parts = path
        .strip_prefix(root)
        .ok()?
        .components()
        .map(|c| match c {
            Component::Normal(p) => c_name(p).ok(),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((fd.clone(), parts))
}

/// Walks `parts` from `root` as folders, creating the missing ones (0700) when `create`.
fn walk(root: &OwnedFd, parts: &[CString], create: bool) -> io::Result<Option<OwnedFd>> {
    let mut dir: Option<OwnedFd> = None;
    for part in parts {
        let at = dir.as_ref().unwrap_or(root);
        if create {
            // SAFETY: `part` is NUL-terminated; mkdirat only creates a folder in `at`.
            let rc = unsafe { libc::mkdirat(at.as_raw_fd(), part.as_ptr(), 0o700) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::AlreadyExists {
                    return Err(e);
                }
            }
        }
        dir = Some(open_at(
            Some(at),
            part,
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )?);
    }
    Ok(dir)
}

/// Creates `dir` below a held log directory, a folder at a time; `None` when `dir` is not
/// below one (the caller falls back to a plain creation).
pub fn create_dir(dir: &Path) -> Option<io::Result<()>> {
    let (root, parts) = below(dir)?;
    Some(walk(&root, &parts, true).map(|_| ()))
}

/// Opens `path` (below a held log directory) with `flags`, creating its file 0600 when they
/// say so; `None` when `path` is not below one.
pub fn open(path: &Path, flags: libc::c_int) -> Option<io::Result<File>> {
    let (root, parts) = below(path)?;
    let (file, folders) = parts.split_last()?;
    Some((|| {
        let dir = walk(&root, folders, false)?;
        let fd = open_at(Some(dir.as_ref().unwrap_or(&root)), file, flags, 0o600)?;
        Ok(File::from(fd))
    })())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_held_directory_keeps_its_logs_when_a_link_takes_its_place() {
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("logs");
        std::fs::create_dir(&root).unwrap();
        hold(&root).unwrap();
        create_dir(&root.join("w/1")).unwrap().unwrap();
        // The directory is moved away and a link to somewhere else put in its place.
        let elsewhere = top.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::rename(&root, top.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &root).unwrap();
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND;
        let mut f = open(&root.join("w/1/j.1.stdout"), flags).unwrap().unwrap();
        f.write_all(b"hello").unwrap();
        assert!(
            !elsewhere.join("w").exists(),
            "nothing went through the link"
        );
        let kept = std::fs::read(top.path().join("moved/w/1/j.1.stdout")).unwrap();
        assert_eq!(kept, b"hello");
        // A link inside the directory is not followed either.
        std::os::unix::fs::symlink(&elsewhere, top.path().join("moved/w/2")).unwrap();
        assert!(open(&root.join("w/2/j.1.stdout"), flags).unwrap().is_err());
        assert!(open(Path::new("/not/held/x"), flags).is_none());
    }
}
