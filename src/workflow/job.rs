//! The data inside job and event tokens, as documented JSON a person can read in the database
//! (PINBALL_SPEC §3.2 "Recommended JSON encoding"), and the pure rules on it: retries, event
//! attributes, and `%(key)s` command substitution.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::token::name::{InstanceId, JobName};

/// What a job is: a command, or a condition (a command polled until it succeeds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobType {
    ShellJob,
    ShellConditionJob,
}

/// An event: it sits in one input of a job and carries attributes from its creator's run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub creator: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// One execution attempt of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    /// The command as configured (not substituted), or `DISABLED`.
    pub info: String,
    /// The instance the execution ran in (kept when a job is copied into a new instance).
    pub instance: InstanceId,
    pub start_time: f64,
    pub end_time: Option<f64>,
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub cleanup_exit_code: Option<i32>,
    #[serde(default)]
    pub events: Vec<Event>,
    /// The owner name of the worker that ran it (`<host>_<generation>_<pid>_<slot>_...`).
    #[serde(default)]
    pub worker: String,
    /// The machine it ran on (empty in records written before hosts were recorded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// `PINBALL:key=value` lines; each key keeps its distinct values in emission order.
    #[serde(default)]
    pub properties: BTreeMap<String, Vec<String>>,
    /// `stdout`, `stderr`, `pinlog` -> path.
    #[serde(default)]
    pub logs: BTreeMap<String, String>,
    /// Set when the execution was lost rather than ended: its worker stopped renewing the
    /// lease (died, or was cut off from the master for longer than its grace). Names the
    /// worker and why. A lost execution is not an attempt: it has no exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<String>,
    /// A lost execution that counts as a failed attempt all the same: the job had used up its
    /// `lost_lease_retries`. It still has no exit code (the process was never seen to exit).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub counted: bool,
    /// Logs that are incomplete (`stdout`, `stderr`) and why: the worker could not write
    /// them (a full disk). The job ran on; its outcome is its own exit code.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub log_trouble: BTreeMap<String, String>,
    /// Set when the command was killed rather than ending by itself: by an abort of its
    /// instance, or past its `abort_timeout_sec`. Says which.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub killed: Option<String>,
    /// Closed by `util pause` while it ran (`lost` says who paused it): its worker stops it,
    /// it is not an attempt and does not use up `lost_lease_retries`; `resume` runs it again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

impl ExecutionRecord {
    /// Why the execution has no exit code of its own: `lost: WHY`, or `paused by USER`.
    pub fn cut_short(&self) -> Option<String> {
        let why = self.lost.as_deref()?;
        Some(if self.paused {
            why.to_owned()
        } else {
            format!("lost: {why}")
        })
    }

    /// An open record: started at `start_time` in `instance`, not ended.
    pub fn new(instance: InstanceId, info: impl Into<String>, start_time: f64) -> Self {
        ExecutionRecord {
            info: info.into(),
            instance,
            start_time,
            end_time: None,
            exit_code: None,
            cleanup_exit_code: None,
            events: Vec::new(),
            worker: String::new(),
            host: String::new(),
            properties: BTreeMap::new(),
            logs: BTreeMap::new(),
            lost: None,
            counted: false,
            log_trouble: BTreeMap::new(),
            killed: None,
            paused: false,
        }
    }

    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// Attributes for the events this execution emits: `EVENT_ATTR:key` properties, several
    /// values joined with `,` (PINBALL_SPEC §3.6, recommended string semantics).
    pub fn event_attributes(&self) -> BTreeMap<String, String> {
        self.properties
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("EVENT_ATTR:")
                    .map(|attr| (attr.to_owned(), v.join(",")))
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    #[serde(rename = "type")]
    pub job_type: JobType,
    /// The pool whose workers may claim it (the master reads this field: see
    /// `token::pool_of`); none is `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The slots of its pool it holds while it runs (the master reads this field: see
    /// `token::pool_use`); none is 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_slots: Option<u32>,
    /// Always the token's job name.
    pub name: JobName,
    pub inputs: Vec<JobName>,
    pub outputs: Vec<JobName>,
    #[serde(default)]
    pub emails: Vec<String>,
    /// The job's own `notify` rules (CONTRACT §4.5), copied from its definition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<crate::parser::notify::NotifyRule>,
    pub max_attempts: u32,
    #[serde(default)]
    pub retry_delay_sec: u64,
    #[serde(default)]
    pub warn_timeout_sec: Option<u64>,
    #[serde(default)]
    pub abort_timeout_sec: Option<u64>,
    #[serde(default)]
    pub disabled: bool,
    pub command: String,
    #[serde(default)]
    pub cleanup_template: Option<String>,
    /// Triggering events of the next execution.
    #[serde(default)]
    pub events: Vec<Event>,
    #[serde(default)]
    pub history: Vec<ExecutionRecord>,
    /// The history index from which attempts count against `max_attempts`: a manual retry
    /// sets it to the history's length, so the job gets its whole budget again.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts_from: usize,
    /// Skipped by an operator (`util skip`): done without (another) run; its events went
    /// downstream. A later run of the job clears it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// What the run is for: its kind, logical time and parameters (the same on every job of
    /// the instance; none on instances started before runs had them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<super::run_info::RunInfo>,
    /// The master's record of the last claim granted on this job (a worker's claim asks for
    /// it): the start of that claim's run is durable from the grant's commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<crate::token::Grant>,
    /// The last grant whose run (open or ended) or hand-back this data holds: a grant above it
    /// and below the current one went to a worker that never wrote, so its run was lost.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub recorded_grant: u64,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

impl Job {
    /// A shell job running `command`, with no inputs, outputs, history or options.
    pub fn shell(name: JobName, command: impl Into<String>) -> Job {
        Job {
            job_type: JobType::ShellJob,
            pool: None,
            pool_slots: None,
            name,
            inputs: Vec::new(),
            outputs: Vec::new(),
            emails: Vec::new(),
            notify: Vec::new(),
            max_attempts: 1,
            retry_delay_sec: 0,
            warn_timeout_sec: None,
            abort_timeout_sec: None,
            disabled: false,
            command: command.into(),
            cleanup_template: None,
            events: Vec::new(),
            history: Vec::new(),
            attempts_from: 0,
            skipped: false,
            run: None,
            grant: None,
            recorded_grant: 0,
        }
    }

    pub fn is_condition(&self) -> bool {
        self.job_type == JobType::ShellConditionJob
    }

    pub fn to_data(&self) -> String {
        serde_json::to_string(self).expect("job data always serializes")
    }

    pub fn from_data(data: &str) -> Result<Job, serde_json::Error> {
        serde_json::from_str(data)
    }

    /// The triggering events of its last execution: what a retry or a redo runs with.
    pub fn last_events(&self) -> Vec<Event> {
        self.history
            .last()
            .map(|r| r.events.clone())
            .unwrap_or_default()
    }

    /// Whether its last run failed.
    pub fn last_failed(&self) -> bool {
        self.history.last().is_some_and(|r| r.exit_code != Some(0))
    }

    /// Whether a failed job may run again: failed records of the newest record's instance since
    /// the last manual retry (`attempts_from`), counted newest first until a record of another
    /// instance, are fewer than `max_attempts`.
    pub fn can_retry(&self) -> bool {
        let Some(last) = self.history.last() else {
            return false;
        };
        let failures = self.history[self.attempts_from.min(self.history.len())..]
            .iter()
            .rev()
            .take_while(|r| r.instance == last.instance)
            .filter(|r| r.exit_code != Some(0) && (r.lost.is_none() || r.counted))
            .count();
        failures < self.max_attempts as usize
    }

    /// A manual retry: the job gets `max_attempts` attempts again (or `attempts`, when given,
    /// which becomes its budget), counted from now.
    pub fn retried_by_hand(&mut self, attempts: Option<u32>) {
        self.attempts_from = self.history.len();
        if let Some(n) = attempts {
            self.max_attempts = n;
        }
    }

    /// How many executions in a row, newest first and in the newest record's instance, were
    /// lost with their worker (see [`ExecutionRecord::lost`]); paused ones do not count.
    pub fn lost_in_a_row(&self) -> usize {
        let Some(last) = self.history.last() else {
            return 0;
        };
        self.history
            .iter()
            .rev()
            .filter(|r| !r.paused)
            .take_while(|r| r.instance == last.instance && r.lost.is_some() && !r.counted)
            .count()
    }
}

/// Attributes of all triggering events merged: several values of a key are joined with `,`,
/// empty ones skipped, in event order.
pub fn merged_attributes(events: &[Event]) -> BTreeMap<String, String> {
    let mut merged: BTreeMap<String, String> = BTreeMap::new();
    for event in events {
        for (k, v) in &event.attributes {
            if v.is_empty() {
                merged.entry(k.clone()).or_default();
                continue;
            }
            let slot = merged.entry(k.clone()).or_default();
            if !slot.is_empty() {
                slot.push(',');
            }
            slot.push_str(v);
        }
    }
    merged
}

#[cfg(test)]
#[path = "job_tests.rs"]
mod tests;
