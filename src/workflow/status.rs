//! Statuses shown to users (CONTRACT §5, PINBALL_SPEC §8.3), derived from job tokens: a job's,
//! an instance's (live or archived), and a workflow's from its instances. Pure functions, the
//! one place these rules live: the UI, the scheduler (DELAY_UNTIL_SUCCESS) and the instance-end
//! email all use them.

use serde::Serialize;

use crate::token::name::{InstanceId, JobState};
use crate::workflow::instance::JobToken;

/// Spelled as the contract spells them (`NEVER_RUN`): users and scripts read these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[allow(non_camel_case_types)]
pub enum Status {
    RUNNING,
    SUCCESS,
    FAILURE,
    ABORTED,
    NEVER_RUN,
    PENDING,
    DISABLED,
    UNKNOWN,
    /// A run waiting in its workflow's queue for room (`util start --queue`): no job yet.
    QUEUED,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::RUNNING => "RUNNING",
            Status::SUCCESS => "SUCCESS",
            Status::FAILURE => "FAILURE",
            Status::ABORTED => "ABORTED",
            Status::NEVER_RUN => "NEVER_RUN",
            Status::PENDING => "PENDING",
            Status::DISABLED => "DISABLED",
            Status::UNKNOWN => "UNKNOWN",
            Status::QUEUED => "QUEUED",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::RUNNING,
            Status::SUCCESS,
            Status::FAILURE,
            Status::ABORTED,
            Status::NEVER_RUN,
            Status::PENDING,
            Status::DISABLED,
            Status::UNKNOWN,
            Status::QUEUED,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    /// The graph colour, as in the original.
    /// The status's fill, from the palette of [`Look`].
    pub fn colour(self) -> &'static str {
        Look::from(self).colour()
    }
}

/// How a job, an execution or an instance looks in the dashboard: a status, refined where the
/// status alone misleads (a job waiting for its retry, a condition between polls, a run killed
/// by an abort), each with its own colour, icon and words. The palette is Okabe and Ito's,
/// which colour-blind readers tell apart, with fills that differ in lightness too; dark text
/// on every fill meets WCAG AA (4.5:1). The read API's `status` stays CONTRACT §5's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[allow(non_camel_case_types)]
pub enum Look {
    NEVER_RUN,
    PENDING,
    WAITING_RETRY,
    POLLING,
    RUNNING,
    SUCCESS,
    FAILURE,
    KILLED,
    ABORTED,
    DISABLED,
    /// Skipped by an operator (`util skip`): counted as done, its downstream jobs ran.
    SKIPPED,
    UNKNOWN,
    /// A run waiting in the queue for room.
    QUEUED,
}

impl From<Status> for Look {
    fn from(s: Status) -> Look {
        match s {
            Status::RUNNING => Look::RUNNING,
            Status::SUCCESS => Look::SUCCESS,
            Status::FAILURE => Look::FAILURE,
            Status::ABORTED => Look::ABORTED,
            Status::NEVER_RUN => Look::NEVER_RUN,
            Status::PENDING => Look::PENDING,
            Status::DISABLED => Look::DISABLED,
            Status::UNKNOWN => Look::UNKNOWN,
            Status::QUEUED => Look::QUEUED,
        }
    }
}

impl Look {
    pub const ALL: [Look; 13] = [
        Look::NEVER_RUN,
        Look::PENDING,
        Look::WAITING_RETRY,
        Look::POLLING,
        Look::RUNNING,
        Look::SUCCESS,
        Look::FAILURE,
        Look::KILLED,
        Look::ABORTED,
        Look::DISABLED,
        Look::SKIPPED,
        Look::UNKNOWN,
        Look::QUEUED,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Look::NEVER_RUN => "NEVER_RUN",
            Look::PENDING => "PENDING",
            Look::WAITING_RETRY => "WAITING_RETRY",
            Look::POLLING => "POLLING",
            Look::RUNNING => "RUNNING",
            Look::SUCCESS => "SUCCESS",
            Look::FAILURE => "FAILURE",
            Look::KILLED => "KILLED",
            Look::ABORTED => "ABORTED",
            Look::DISABLED => "DISABLED",
            Look::SKIPPED => "SKIPPED",
            Look::UNKNOWN => "UNKNOWN",
            Look::QUEUED => "QUEUED",
        }
    }

    /// In words, for people.
    pub fn label(self) -> &'static str {
        match self {
            Look::NEVER_RUN => "never run",
            Look::PENDING => "pending",
            Look::WAITING_RETRY => "waiting to retry",
            Look::POLLING => "polling its condition",
            Look::RUNNING => "running",
            Look::SUCCESS => "success",
            Look::FAILURE => "failure",
            Look::KILLED => "killed",
            Look::ABORTED => "aborted",
            Look::DISABLED => "disabled",
            Look::SKIPPED => "skipped",
            Look::UNKNOWN => "unknown",
            Look::QUEUED => "queued",
        }
    }

    /// Shown beside the colour, so no state is told by colour alone.
    pub fn icon(self) -> &'static str {
        match self {
            Look::NEVER_RUN => "○",
            Look::PENDING => "◔",
            Look::WAITING_RETRY => "↻",
            Look::POLLING => "◎",
            Look::RUNNING => "▶",
            Look::SUCCESS => "✓",
            Look::FAILURE => "✗",
            Look::KILLED => "⚡",
            Look::ABORTED => "■",
            Look::DISABLED => "⊘",
            Look::SKIPPED => "↷",
            Look::UNKNOWN => "?",
            Look::QUEUED => "⋯",
        }
    }

    pub fn colour(self) -> &'static str {
        match self {
            Look::NEVER_RUN => "#e4e4e4",
            Look::PENDING => "#f0e442",
            Look::WAITING_RETRY => "#f5c77e",
            Look::POLLING => "#bfe1f5",
            Look::RUNNING => "#56b4e9",
            Look::SUCCESS => "#009e73",
            Look::FAILURE => "#d55e00",
            Look::KILLED => "#e69f00",
            Look::ABORTED => "#cc79a7",
            Look::DISABLED => "#ffffff",
            Look::SKIPPED => "#d9ecd0",
            Look::UNKNOWN => "#b0b0b0",
            Look::QUEUED => "#dcd0f0",
        }
    }
}

/// How a job looks: its status, a runnable job whose last run failed shown as waiting for its
/// retry (a condition: polling), and a failure whose command was killed shown as killed.
pub fn job_look(jt: &JobToken) -> Look {
    if jt.job.skipped && jt.state == JobState::Waiting {
        return Look::SKIPPED;
    }
    let status = job_status(jt);
    let last = jt.job.history.last();
    match (status, last) {
        (Status::PENDING, Some(r)) if r.end_time.is_some() && !r.succeeded() => {
            if jt.job.is_condition() {
                Look::POLLING
            } else {
                Look::WAITING_RETRY
            }
        }
        (Status::FAILURE, Some(r)) if r.killed.is_some() => Look::KILLED,
        (s, _) => Look::from(s),
    }
}

/// Attempts a job made: its executions, except that a condition's polls are one attempt.
pub fn attempts(jt: &JobToken) -> usize {
    match (jt.job.is_condition(), jt.job.history.len()) {
        (true, n) => n.min(1),
        (false, n) => n,
    }
}

/// Attempts of the job's current try: its executions since the last manual retry (`util
/// retry` gives a fresh budget), without those lost with a worker or stopped by a pause (which
/// are not attempts); a condition's polls are one.
pub fn attempts_this_try(jt: &JobToken) -> usize {
    let history = &jt.job.history[jt.job.attempts_from.min(jt.job.history.len())..];
    let n = history
        .iter()
        .filter(|r| r.lost.is_none() || r.counted)
        .count();
    if jt.job.is_condition() { n.min(1) } else { n }
}

/// A job's status, first match wins: running while a claim holds it unwritten
/// ([`JobToken::runs_unwritten`]); never run (or disabled) without history; running while its
/// runnable token holds an open record; pending when runnable and not started; then
/// disabled, failure, success by its last record.
pub fn job_status(jt: &JobToken) -> Status {
    if jt.runs_unwritten() {
        return Status::RUNNING;
    }
    let last = jt.job.history.last();
    match last {
        None if jt.state == JobState::Runnable && !jt.job.disabled => Status::PENDING,
        None if jt.job.disabled || jt.job.skipped => Status::DISABLED,
        None => Status::NEVER_RUN,
        Some(r) if jt.state == JobState::Runnable && r.end_time.is_none() => Status::RUNNING,
        // Runnable again after a run (a retry waiting for its delay, a redo): not started yet.
        Some(_) if jt.state == JobState::Runnable && !jt.job.disabled => Status::PENDING,
        Some(_) if jt.job.disabled => Status::DISABLED,
        // Skipped by an operator: done without (another) run, like a disabled job.
        Some(_) if jt.job.skipped => Status::DISABLED,
        Some(r) if !r.succeeded() => Status::FAILURE,
        Some(_) => Status::SUCCESS,
    }
}

/// An instance's status and times.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceStatus {
    pub status: Status,
    pub start_time: Option<f64>,
    /// `None` while it runs.
    pub end_time: Option<f64>,
}

/// `archived`: its tokens are in the archive; `aborted`: an instance-level ABORT signal is among
/// them; `finished`: (live) its ARCHIVE signal is stamped.
pub fn instance_status(
    jobs: &[JobToken],
    archived: bool,
    aborted: bool,
    finished: bool,
) -> InstanceStatus {
    // Its own start: executions copied from the instance it was retried from do not count.
    let start_time = jobs
        .iter()
        .filter_map(|j| {
            j.job
                .history
                .iter()
                .find(|r| r.instance == j.instance)
                .map(|r| r.start_time)
        })
        .reduce(f64::min);
    let open = jobs
        .iter()
        .any(|j| j.runs_unwritten() || j.job.history.last().is_some_and(|r| r.end_time.is_none()));
    let end_time = jobs
        .iter()
        .filter_map(|j| j.job.history.last().and_then(|r| r.end_time))
        .reduce(f64::max);
    if archived && aborted {
        return InstanceStatus {
            status: Status::ABORTED,
            start_time,
            end_time,
        };
    }
    if open || end_time.is_none() || (!archived && !finished) {
        return InstanceStatus {
            status: Status::RUNNING,
            start_time,
            end_time: None,
        };
    }
    let failed = jobs.iter().any(|j| {
        !j.job.disabled && !j.job.skipped && j.job.history.last().is_some_and(|r| !r.succeeded())
    });
    InstanceStatus {
        status: if failed {
            Status::FAILURE
        } else {
            Status::SUCCESS
        },
        start_time,
        end_time,
    }
}

/// A workflow's status from its instances `(id, status)`: RUNNING if any runs (the latest
/// started running one is its last instance); otherwise that of the instance that ended last
/// (an unknown end compares by its start).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowStatus {
    pub status: Status,
    pub last_instance: Option<InstanceId>,
    pub last_start_time: Option<f64>,
    pub last_end_time: Option<f64>,
    pub running_instances: usize,
}

pub fn workflow_status(instances: &[(InstanceId, InstanceStatus)]) -> WorkflowStatus {
    let running: Vec<&(InstanceId, InstanceStatus)> = instances
        .iter()
        .filter(|(_, s)| s.status == Status::RUNNING)
        .collect();
    let key = |s: &InstanceStatus| s.end_time.or(s.start_time).unwrap_or(0.0);
    let last = if running.is_empty() {
        instances
            .iter()
            .max_by(|a, b| key(&a.1).total_cmp(&key(&b.1)))
    } else {
        running.iter().copied().max_by(|a, b| {
            a.1.start_time
                .unwrap_or(0.0)
                .total_cmp(&b.1.start_time.unwrap_or(0.0))
        })
    };
    match last {
        None => WorkflowStatus {
            status: Status::NEVER_RUN,
            last_instance: None,
            last_start_time: None,
            last_end_time: None,
            running_instances: 0,
        },
        Some((id, s)) => WorkflowStatus {
            status: if running.is_empty() {
                s.status
            } else {
                Status::RUNNING
            },
            last_instance: Some(id.clone()),
            last_start_time: s.start_time,
            last_end_time: if running.is_empty() { s.end_time } else { None },
            running_instances: running.len(),
        },
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
