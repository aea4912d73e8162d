//! Deadline watches (CONTRACT §4.5): a run with a deadline (a scheduled run of a workflow with
//! `deadline`) or a `max_duration_sec` gets one token `/deadline/<wf>/<instance>` in the commit
//! that starts it, held by no one until the first moment it must be looked at: its lease is the
//! timer, so the scheduler's deadline loop is woken by the master exactly then. What is due is
//! decided here ([`Watch::decide`]); the loop records a miss and its notices in ONE
//! version-checked write that also marks the watch, so a restart neither loses nor repeats it.

use serde::{Deserialize, Serialize};

use super::run_info::RunInfo;
use crate::token::Token;
use crate::token::name::{self, InstanceId, WorkflowName};

/// The owner a pending watch is held by: no claim takes it before its time.
pub const PENDING: &str = "pinball_deadline";

/// The data of a watch token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    /// The run must have succeeded by then (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<i64>,
    /// The run must have ended by then: its start plus `max_duration_sec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_end: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_sec: Option<u64>,
    /// The miss, once recorded: the watch then stays, as the run's record of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<Missed>,
}

/// A recorded miss: when it was noticed, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Missed {
    pub at: i64,
    pub why: String,
}

/// Where a watched run stands when its time comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Running,
    Succeeded,
    /// Ended other than succeeded (it may still be retried in place).
    Failed,
    /// Not found (stopped: its tokens were deleted).
    Gone,
}

/// What a watch's time brings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Nothing more to watch: remove it.
    Met,
    /// Missed, for this reason.
    Missed(String),
    /// Look again at this moment.
    Later(i64),
}

impl Watch {
    /// The first moment to look at a run, if any.
    pub fn next(&self) -> Option<i64> {
        match (self.deadline, self.max_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What is due at `now` for a run in `state`.
    pub fn decide(&self, now: i64, state: RunState) -> Due {
        if let Some(d) = self.deadline.filter(|d| *d <= now) {
            return match state {
                RunState::Succeeded => Due::Met,
                _ => Due::Missed(format!(
                    "it had not succeeded by its deadline, {}",
                    crate::clock::utc(d)
                )),
            };
        }
        if self.max_end.is_some_and(|m| m <= now) && state == RunState::Running {
            return Due::Missed(format!(
                "it has run longer than max_duration_sec ({} s)",
                self.max_duration_sec.unwrap_or_default()
            ));
        }
        // Ended, or still in time: only a deadline still ahead is left to look at.
        let ahead = |t: Option<i64>| t.filter(|t| *t > now);
        let next = match state {
            RunState::Succeeded | RunState::Gone => None,
            RunState::Failed => ahead(self.deadline),
            RunState::Running => match (ahead(self.deadline), ahead(self.max_end)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        };
        next.map_or(Due::Met, Due::Later)
    }

    /// The watch token, pending until `at` (held by [`PENDING`], so unclaimable until then).
    pub fn token(&self, w: &WorkflowName, i: &InstanceId, at: i64) -> Token {
        Token {
            owner: Some(PENDING.into()),
            expiration_time: Some(at),
            ..Token::new(
                name::deadline_watch(w, i),
                Some(serde_json::to_string(self).expect("watches serialize")),
            )
        }
    }

    pub fn from_token(t: &Token) -> Option<Watch> {
        serde_json::from_str(t.data.as_deref()?).ok()
    }
}

/// The watch of a run that starts at `now`, if it has anything to watch.
pub fn watch(w: &WorkflowName, i: &InstanceId, run: &RunInfo, now: i64) -> Option<Token> {
    let watch = Watch {
        deadline: run.deadline,
        max_end: run.max_duration_sec.map(|d| now.saturating_add(d as i64)),
        max_duration_sec: run.max_duration_sec,
        missed: None,
    };
    let at = watch.next()?;
    Some(watch.token(w, i, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_is_met_missed_or_looked_at_again() {
        let both = Watch {
            deadline: Some(1000),
            max_end: Some(500),
            max_duration_sec: Some(100),
            missed: None,
        };
        assert_eq!(both.next(), Some(500));
        // At the maximum duration: still running is a miss, ended is fine until the deadline.
        assert!(
            matches!(both.decide(500, RunState::Running), Due::Missed(w) if w.contains("max_duration_sec (100 s)"))
        );
        assert_eq!(both.decide(500, RunState::Failed), Due::Later(1000));
        assert_eq!(both.decide(500, RunState::Succeeded), Due::Met);
        // At the deadline: only success meets it.
        for s in [RunState::Running, RunState::Failed, RunState::Gone] {
            assert!(
                matches!(both.decide(1000, s), Due::Missed(w) if w.contains("had not succeeded by its deadline"))
            );
        }
        assert_eq!(both.decide(1000, RunState::Succeeded), Due::Met);
        // Early (a lease that lapsed sooner): look again at the next moment.
        assert_eq!(both.decide(10, RunState::Running), Due::Later(500));
        let nothing = Watch {
            deadline: None,
            max_end: None,
            max_duration_sec: None,
            missed: None,
        };
        assert_eq!(nothing.next(), None);
    }
}
