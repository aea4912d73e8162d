//! The schedule token `/schedule/workflow/<wf>`: the schedule as written, the workflow's
//! notification addresses, and the next run time, as readable JSON. It is claimable at its
//! next run time (owner set, `expiration_time` = next run), which is how the scheduler will
//! wake exactly when a run is due.

use serde::{Deserialize, Serialize};

use super::{Field, Schedule, ScheduleDef, ScheduleError};
use crate::token::Token;
use crate::token::name::{self, InstanceId, WorkflowName};

/// Owner of a schedule token nobody has claimed yet.
pub const UNCLAIMED_OWNER: &str = "parser";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleData {
    pub workflow: WorkflowName,
    pub schedule: ScheduleDef,
    #[serde(default)]
    pub emails: Vec<String>,
    /// Seconds since the epoch.
    pub next_run_time: i64,
    /// Occurrences that passed without a run (scheduler down, or skipped by the policy).
    #[serde(default)]
    pub missed_runs: u64,
    /// The instance the scheduler started last (DELAY_UNTIL_SUCCESS looks at how it ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_instance: Option<InstanceId>,
    /// The run time whose "too many instances" email was sent: once per occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub too_many_told: Option<i64>,
    /// Paused (`util pause-schedule`): each occurrence passes without a run and is counted in
    /// `missed_runs`. An import keeps it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

impl ScheduleData {
    /// The schedule `sd` of `workflow`, with its next run after `now`.
    pub fn new(
        workflow: &WorkflowName,
        sd: &ScheduleDef,
        emails: &[String],
        now: jiff::Timestamp,
    ) -> Result<ScheduleData, ScheduleError> {
        let next = Schedule::from_def(sd)?
            .next_after(now)
            .ok_or_else(|| ScheduleError::new(Field::Schedule, "the schedule never runs again"))?;
        Ok(ScheduleData {
            workflow: workflow.clone(),
            schedule: sd.clone(),
            emails: emails.to_vec(),
            next_run_time: next.as_second(),
            missed_runs: 0,
            last_instance: None,
            too_many_told: None,
            paused: false,
        })
    }

    /// Whether `other` describes the same schedule (so rewriting it would change nothing): the
    /// same in every field, or in every field but `start` with the same next run after `now`
    /// (a start moved by whole periods, which the original saw as unchanged too).
    pub fn corresponds_to(&self, other: &ScheduleData, now: jiff::Timestamp) -> bool {
        let next = |d: &ScheduleDef| Schedule::from_def(d).ok()?.next_after(now);
        let without_start = |d: &ScheduleDef| ScheduleDef {
            start: None,
            ..d.clone()
        };
        self.workflow == other.workflow
            && self.emails == other.emails
            && (self.schedule == other.schedule
                || (without_start(&self.schedule) == without_start(&other.schedule)
                    && next(&self.schedule).is_some()
                    && next(&self.schedule) == next(&other.schedule)))
    }

    pub fn to_token(&self, version: Option<i64>) -> Token {
        Token {
            version,
            owner: Some(UNCLAIMED_OWNER.into()),
            expiration_time: Some(self.next_run_time),
            ..Token::new(
                name::schedule_token(&self.workflow),
                Some(serde_json::to_string(self).expect("schedules serialize")),
            )
        }
    }

    pub fn from_token(t: &Token) -> Option<ScheduleData> {
        serde_json::from_str(t.data.as_deref()?).ok()
    }
}
