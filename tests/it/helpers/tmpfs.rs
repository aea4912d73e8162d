//! A tiny tmpfs a test can fill and then grow (`mount -o remount,size=`), to make a disk full
//! for real. Needs root; `None`, with a visible message, where mounts are not permitted.

use std::path::{Path, PathBuf};

pub struct Tmpfs {
    _parent: Option<tempfile::TempDir>,
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`2m`) on a fresh folder.
    pub fn mount(test: &str, size: &str) -> Option<Tmpfs> {
        let parent = tempfile::tempdir().unwrap();
        let path = parent.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let mut fs = Tmpfs::mount_on(test, &path, size)?;
        fs._parent = Some(parent);
        Some(fs)
    }

    /// Mounts a tmpfs of `size` on the folder `path`, hiding what it holds until unmounted.
    pub fn mount_on(test: &str, path: &Path, size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid only reads the process's user id.
        if unsafe { libc::geteuid() } != 0 {
            crate::helpers::skipped(&format!("({test}): mounting a tmpfs needs root"));
            return None;
        }
        let path = path.to_path_buf();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&path)
            .output()
            .unwrap();
        if !out.status.success() {
            crate::helpers::skipped(&format!(
                "({test}): mounts are not permitted here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            return None;
        }
        Some(Tmpfs {
            _parent: None,
            path,
        })
    }

    /// Gives the file system a new size (`64m`), keeping its files.
    pub fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(status.success(), "remount {}", self.path.display());
    }

    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }

    /// Fills the file system with one file until no byte more fits.
    pub fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.join("filler")).unwrap();
        let block = vec![0u8; 64 * 1024];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", self.path.display()),
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a process of the test may still hold a file open.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}
