//! The jobs' processes die with their worker. Each job runs in a process group of its own,
//! and its shell dies with the worker (`PR_SET_PDEATHSIG`, see `spawn`), but what the shell started would
//! run on, beside the worker that runs the job again. So a `-m workers` process starts one
//! helper, `pinball reap-jobs`, and tells it on a pipe the group of every job it starts and
//! ends. When the worker dies, however it dies, the kernel closes the pipe, and the helper kills
//! every group it was told of (SIGKILL) and exits. It costs one process per workers process and
//! a line per job. Started by `modes` (through `WorkerSettings::try_from_config`); the line
//! protocol is `+PGID` and `-PGID`.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};

/// The worker's end: the helper process and the pipe to it.
#[derive(Debug)]
pub struct Reaper {
    pipe: Mutex<ChildStdin>,
    _child: Child,
}

impl Reaper {
    /// Starts `program reap-jobs` (this very binary).
    pub fn start(program: &std::path::Path) -> std::io::Result<Reaper> {
        let mut child = Command::new(program)
            .arg("reap-jobs")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        let pipe = child.stdin.take().expect("piped");
        Ok(Reaper {
            pipe: Mutex::new(pipe),
            _child: child,
        })
    }

    fn say(&self, line: String) {
        let mut pipe = self.pipe.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = pipe.write_all(line.as_bytes()) {
            tracing::error!(error = %e, "cannot tell the job reaper about a job; its processes may outlive this worker");
        }
    }

    /// A job's group started: the reaper holds it until the answer is dropped (the group
    /// ended), so no early return leaves a stale group, whose number may be reused, behind.
    pub fn watch(self: &Arc<Self>, pgid: u32) -> Watched {
        self.say(format!("+{pgid}\n"));
        Watched {
            reaper: self.clone(),
            pgid,
        }
    }
}

/// A job's group the reaper kills if the worker dies; dropping it tells the reaper to forget it.
#[derive(Debug)]
pub struct Watched {
    reaper: Arc<Reaper>,
    pgid: u32,
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.reaper.say(format!("-{}\n", self.pgid));
    }
}

/// `pinball reap-jobs`: reads the groups from stdin until it closes, then kills those still
/// there. Returns how many it killed.
pub fn serve(input: impl BufRead) -> usize {
    let mut groups: BTreeSet<i32> = BTreeSet::new();
    for line in input.lines() {
        let Ok(line) = line else { break };
        let (sign, pgid) = line.split_at(line.len().min(1));
        let Ok(pgid) = pgid.trim().parse::<i32>() else {
            continue;
        };
        if pgid <= 1 {
            continue;
        }
        match sign {
            "+" => {
                groups.insert(pgid);
            }
            "-" => {
                groups.remove(&pgid);
            }
            _ => {}
        }
    }
    for pgid in &groups {
        // SAFETY: killpg only sends a signal; a group that is gone answers ESRCH.
        unsafe {
            libc::killpg(*pgid, libc::SIGKILL);
        }
    }
    groups.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_groups_still_running_when_the_pipe_closes_are_killed() {
        use std::os::unix::process::CommandExt;
        // A group of our own making: a shell in its own group running a long sleep.
        let mut job = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 300"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = job.id();
        let ended = 424242;
        let input = format!("+{pgid}\n+{ended}\n-{ended}\nnoise\n");
        assert_eq!(serve(input.as_bytes()), 1, "one group was still there");
        let status = job.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}
