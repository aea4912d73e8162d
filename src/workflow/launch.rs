//! Who a worker's commands run as (`job_user`) and the environment they start from, and the
//! reaper that ends their groups if the worker dies.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Why the workers cannot launch jobs as configured.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("job_user `{0}` is not a user of this machine")]
    NoUser(String),
    #[error("job_user `{0}` needs the workers to run as root (they switch to it for each job)")]
    NotRoot(String),
    #[error("cannot find this program to start the job reaper: {0}")]
    NoProgram(std::io::Error),
    #[error("cannot start the job reaper ({0}): {1}")]
    Reaper(String, std::io::Error),
    /// A setting the workers need is unusable (a webhook's `ca_file`, say).
    #[error("{0}")]
    Settings(String),
}

/// Who every command of a worker process runs as, and the environment it starts from.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The environment before the job's own variables: `Config::child_env` (none of
    /// Pinball's secrets).
    pub base_env: Vec<(OsString, OsString)>,
    /// `job_user`: the OS user commands run as (none: the worker's own).
    pub user: Option<JobUser>,
    /// `job_linger_sec`: how long what a job left running may outlive its shell.
    pub linger: Duration,
    /// Kills the jobs' groups if this worker dies (`reaper`); none in tests.
    pub reaper: Option<Arc<super::reaper::Reaper>>,
}

impl Default for Launch {
    fn default() -> Self {
        Launch::plain(&crate::config::Config::default())
    }
}

impl Launch {
    /// `c`'s cleaned environment and linger; jobs run as the worker's own user, with no
    /// reaper (what tests and in-process workers use).
    pub fn plain(c: &crate::config::Config) -> Launch {
        Launch {
            base_env: c.child_env(),
            user: None,
            linger: Duration::from_secs(c.job_linger_sec),
            reaper: None,
        }
    }

    /// This launch as a `-m workers` process runs it: `job_user` looked up (it must exist,
    /// and switching to it needs root), and the reaper started.
    pub fn for_workers(self, c: &crate::config::Config) -> Result<Launch, LaunchError> {
        let user = match c.job_user.as_deref() {
            None => None,
            Some(name) => {
                let user = JobUser::resolve(name)?;
                // SAFETY: geteuid has no preconditions.
                if unsafe { libc::geteuid() } != 0 {
                    return Err(LaunchError::NotRoot(name.to_owned()));
                }
                Some(user)
            }
        };
        let mut base_env = self.base_env;
        if let Some(u) = &user {
            base_env.retain(|(k, _)| !matches!(k.to_str(), Some("HOME" | "USER" | "LOGNAME")));
            base_env.extend([
                ("HOME".into(), u.home.clone().into()),
                ("USER".into(), u.name.clone().into()),
                ("LOGNAME".into(), u.name.clone().into()),
            ]);
        }
        let program = std::env::current_exe().map_err(LaunchError::NoProgram)?;
        let reaper = super::reaper::Reaper::start(&program)
            .map_err(|e| LaunchError::Reaper(program.display().to_string(), e))?;
        Ok(Launch {
            base_env,
            user,
            reaper: Some(Arc::new(reaper)),
            ..self
        })
    }
}

/// An OS user, as the password database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    /// Its supplementary groups (`initgroups`' list), its own group among them.
    pub groups: Vec<libc::gid_t>,
}

impl JobUser {
    /// Looks `name` up in the password database.
    pub fn resolve(name: &str) -> Result<JobUser, LaunchError> {
        let missing = || LaunchError::NoUser(name.to_owned());
        let c_name = std::ffi::CString::new(name).map_err(|_| missing())?;
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        // SAFETY: getpwnam_r writes into `pwd` and `buf` (whose length it is given) only, and
        // `result` points at `pwd` or is null; the strings it sets live in `buf`, read before
        // `buf` is dropped.
        unsafe {
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut result: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwnam_r(
                c_name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            );
            if rc != 0 || result.is_null() {
                return Err(missing());
            }
            let home = std::ffi::CStr::from_ptr(pwd.pw_dir).to_string_lossy();
            Ok(JobUser {
                name: name.to_owned(),
                uid: pwd.pw_uid,
                gid: pwd.pw_gid,
                home: PathBuf::from(home.as_ref()),
                groups: groups_of(&c_name, pwd.pw_gid),
            })
        }
    }
}

/// The groups `user` (with primary group `gid`) is a member of, as `initgroups` sets them.
fn groups_of(user: &std::ffi::CStr, gid: libc::gid_t) -> Vec<libc::gid_t> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut n = groups.len() as libc::c_int;
        // SAFETY: getgrouplist writes at most `n` ids into `groups` and the count into `n`.
        let rc = unsafe { libc::getgrouplist(user.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            groups.truncate(n.max(0) as usize);
            return groups;
        }
        if groups.len() >= 65536 {
            return vec![gid];
        }
        groups.resize((n as usize).max(groups.len() * 2), 0);
    }
}
