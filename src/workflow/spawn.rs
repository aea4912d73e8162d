//! Starting a job's shell the way `posix_spawn` does, plus what it cannot do: the child is
//! made with `clone(CLONE_VM | CLONE_VFORK)` (no copy of the worker's page tables, the worker's
//! thread paused until the child execs), and before `execve` it asks for SIGKILL when the
//! worker dies (`PR_SET_PDEATHSIG`), takes a process group of its own and, for `job_user`,
//! that user's groups and ids. The exec of a helper (util-linux's `setpriv`) that did this
//! before cost every job a second exec: about 1.7 ms of a chain's 5 ms per job here.
//!
//! Kept here rather than taken from a crate: std's and tokio's `Command` fork() as soon as a
//! `pre_exec` hook is set (66 % of a 500-job fan-out's time went to copying page tables when
//! they did), and no maintained crate spawns with a parent-death signal without forking.
//!
//! The child runs on its own small stack, in the worker's memory, until its `execve`: it
//! allocates nothing and calls only async-signal-safe system calls on data prepared here.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

/// What to start: `/bin/sh -c <script>` with exactly `env`, as `user` (uid, gid, groups)
/// when set, with stdin piped (`stdin_piped`) or on /dev/null.
pub struct SpawnSpec<'a> {
    pub script: &'a str,
    pub env: Vec<(&'a OsStr, &'a OsStr)>,
    pub user: Option<(u32, u32, Vec<libc::gid_t>)>,
    pub stdin_piped: bool,
}

/// A started job shell: its pid (and process group), its pipes, and its exit.
pub struct JobChild {
    pid: libc::pid_t,
    pidfd: AsyncFd<OwnedFd>,
    status: Option<ExitStatus>,
    pub stdin: Option<pipe::Sender>,
    pub stdout: Option<pipe::Receiver>,
    pub stderr: Option<pipe::Receiver>,
}

/// Everything the child reads, prepared before it exists.
struct Plan {
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    /// uid, gid and the supplementary groups.
    user: Option<(libc::uid_t, libc::gid_t, *const libc::gid_t, usize)>,
    /// Where the child writes the errno of the step that failed (close-on-exec).
    report: RawFd,
    parent: libc::pid_t,
}

const STACK: usize = 64 * 1024;

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A close-on-exec pipe: (read end, write end).
fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`, which this function then owns.
    unsafe {
        check(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC))?;
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

fn nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor this process owns.
    unsafe {
        let flags = check(libc::fcntl(fd.as_raw_fd(), libc::F_GETFL))?;
        check(libc::fcntl(
            fd.as_raw_fd(),
            libc::F_SETFL,
            flags | libc::O_NONBLOCK,
        ))?;
    }
    Ok(())
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::other("a NUL byte in a command or its environment"))
}

/// The child's end when a step failed: its errno to the parent, exit 127.
///
/// # Safety
/// Only in the child of [`spawn`], with `report` its report pipe.
unsafe fn fail(report: RawFd) -> ! {
    // SAFETY: the child's own errno, written to its own pipe; _exit ends it.
    unsafe {
        let errno = *libc::__errno_location();
        libc::write(report, (&errno as *const i32).cast(), 4);
        libc::_exit(127)
    }
}

/// The child, between `clone` and `execve`: only system calls, on `Plan`'s data.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points at the `Plan` of `spawn`, whose thread is paused (CLONE_VFORK)
    // until this child execs or exits, so everything it points at is alive and unchanged.
    unsafe {
        let p = &*(arg as *const Plan);
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
            fail(p.report);
        }
        // The worker died before the signal was asked for: it will not come.
        if libc::getppid() != p.parent {
            libc::_exit(127);
        }
        if libc::setpgid(0, 0) != 0 {
            fail(p.report);
        }
        for (from, to) in [(p.stdin, 0), (p.stdout, 1), (p.stderr, 2)] {
            if libc::dup2(from, to) < 0 {
                fail(p.report);
            }
        }
        if let Some((uid, gid, groups, n)) = p.user
            && (libc::setgroups(n, groups) != 0
                || libc::setresgid(gid, gid, gid) != 0
                || libc::setresuid(uid, uid, uid) != 0)
        {
            fail(p.report);
        }
        // The worker ignores SIGPIPE (Rust's runtime does); the job starts with the default,
        // and with no signal blocked.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::execve(p.path, p.argv, p.envp);
        fail(p.report)
    }
}

/// The C strings of `/bin/sh -c <script>` and its environment, and the null-ended pointer
/// arrays `execve` takes (pointing into them: both live as long as this).
struct Exec {
    _strings: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

impl Exec {
    fn new(spec: &SpawnSpec) -> io::Result<Exec> {
        let args = [b"/bin/sh".as_slice(), b"-c", spec.script.as_bytes()]
            .into_iter()
            .map(c_string)
            .collect::<io::Result<Vec<_>>>()?;
        let env = spec
            .env
            .iter()
            .map(|(k, v)| c_string(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
            .collect::<io::Result<Vec<_>>>()?;
        let nul_ended = |v: &[CString]| -> Vec<*const libc::c_char> {
            v.iter()
                .map(|a| a.as_ptr())
                .chain([std::ptr::null()])
                .collect()
        };
        let (argv, envp) = (nul_ended(&args), nul_ended(&env));
        Ok(Exec {
            _strings: args.into_iter().chain(env).collect(),
            argv,
            envp,
        })
    }
}

/// Starts `spec`'s shell; returns once it has exec'd (or says why it could not).
pub fn spawn(spec: &SpawnSpec) -> io::Result<JobChild> {
    let exec = Exec::new(spec)?;
    let (out_r, out_w) = pipe_pair()?;
    let (err_r, err_w) = pipe_pair()?;
    let (in_r, in_w) = match spec.stdin_piped {
        true => {
            let (r, w) = pipe_pair()?;
            (r, Some(w))
        }
        false => (OwnedFd::from(std::fs::File::open("/dev/null")?), None),
    };
    let (report_r, report_w) = pipe_pair()?;
    let plan = Plan {
        path: exec.argv[0],
        argv: exec.argv.as_ptr(),
        envp: exec.envp.as_ptr(),
        stdin: in_r.as_raw_fd(),
        stdout: out_w.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
        user: spec
            .user
            .as_ref()
            .map(|(uid, gid, groups)| (*uid, *gid, groups.as_ptr(), groups.len())),
        report: report_w.as_raw_fd(),
        // SAFETY: getpid has no preconditions.
        parent: unsafe { libc::getpid() },
    };
    let pid = clone_child(&plan)?;
    drop((report_w, out_w, err_w, in_r));
    let mut child = adopt(pid, report_r)?;
    let receiver = |fd: OwnedFd| -> io::Result<pipe::Receiver> {
        nonblocking(&fd)?;
        pipe::Receiver::from_owned_fd(fd)
    };
    if let Some(w) = in_w {
        nonblocking(&w)?;
        child.stdin = Some(pipe::Sender::from_owned_fd(w)?);
    }
    child.stdout = Some(receiver(out_r)?);
    child.stderr = Some(receiver(err_r)?);
    Ok(child)
}

/// Runs `child_main` with `plan` in a child sharing this memory; returns its pid once it has
/// exec'd or exited (this thread is paused meanwhile).
fn clone_child(plan: &Plan) -> io::Result<libc::pid_t> {
    let mut stack = vec![0u8; STACK];
    // SAFETY: the stack's top, aligned down to 16 bytes as every ABI here wants; the child
    // uses it only until it execs or exits, while `stack` lives (this thread is paused).
    let top = unsafe { stack.as_mut_ptr().add(STACK) as usize & !15 } as *mut libc::c_void;
    // Every signal blocked across the clone: no handler of the worker runs in the child.
    // SAFETY: sigfillset and pthread_sigmask on local sets; clone runs `child_main` with
    // `plan`, alive until it returns (CLONE_VFORK: after the child's execve or exit).
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut before: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut before);
        let pid = libc::clone(
            child_main,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (plan as *const Plan).cast_mut().cast(),
        );
        let errno = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut());
        if pid < 0 {
            return Err(errno);
        }
        Ok(pid)
    }
}

/// The child `pid` as a [`JobChild`] (without its pipes yet), or why it did not exec (read
/// from its report pipe; it is reaped then).
fn adopt(pid: libc::pid_t, report: OwnedFd) -> io::Result<JobChild> {
    let mut errno = [0u8; 4];
    let failed = match io::Read::read(&mut std::fs::File::from(report), &mut errno) {
        Ok(4) => Some(io::Error::from_raw_os_error(i32::from_ne_bytes(errno))),
        _ => None,
    };
    // SAFETY: pidfd_open on the pid of a child this process has not reaped.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if let Some(e) = failed.or_else(|| (pidfd < 0).then(io::Error::last_os_error)) {
        // SAFETY: kill of our own child, not reaped yet.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        reap_blocking(pid);
        return Err(e);
    }
    // SAFETY: pidfd_open returned a new descriptor, owned from here on.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    // SAFETY: an OwnedFd's descriptor stays open, and the same, until it is dropped with the
    // AsyncFd that owns it.
    let registered =
        unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) };
    let pidfd = match registered {
        Ok(fd) => fd,
        Err(e) => {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            reap_blocking(pid);
            return Err(e.into());
        }
    };
    Ok(JobChild {
        pid,
        pidfd,
        status: None,
        stdin: None,
        stdout: None,
        stderr: None,
    })
}

/// Waits for `pid` and reaps it, blocking (a child that failed before its exec, or one killed
/// on drop, ends at once).
fn reap_blocking(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waitpid on our own child.
    unsafe {
        while libc::waitpid(pid, &mut status, 0) < 0
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
    }
}

impl JobChild {
    /// The shell's pid, which is also its process group's id.
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// Waits for the shell to exit and reaps it.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.status {
                return Ok(status);
            }
            let mut ready = self.pidfd.readable().await?;
            let mut raw = 0;
            // SAFETY: waitpid on our own child, not waiting if it has not exited.
            let rc = unsafe { libc::waitpid(self.pid, &mut raw, libc::WNOHANG) };
            match rc {
                rc if rc == self.pid => self.status = Some(ExitStatus::from_raw(raw)),
                0 => ready.clear_ready(),
                _ => return Err(io::Error::last_os_error()),
            }
        }
    }
}

impl Drop for JobChild {
    /// A shell not waited for to its end is killed and reaped (off this thread), as tokio's
    /// `kill_on_drop` did.
    fn drop(&mut self) {
        if self.status.is_none() {
            let pid = self.pid;
            // SAFETY: kill of our own child, which has not been reaped (its pid is ours).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            std::thread::spawn(move || reap_blocking(pid));
        }
    }
}

#[cfg(test)]
#[path = "spawn_tests.rs"]
mod tests;
