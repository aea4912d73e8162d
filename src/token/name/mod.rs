//! Every workflow token name (CONTRACT §3, PINBALL_SPEC §2), and the only place one is built or
//! split. Workflow, instance and job names are `\w+` newtypes ([`WorkflowName`],
//! [`InstanceId`], [`JobName`]) parsed once where they enter (serde, clap's `FromStr`, the UI's
//! query strings) and carried as types from there; a function that takes one cannot be handed
//! a path fragment, a `..` or an empty string.

mod outbox;
mod parsed;
mod word;

use std::fmt;

pub use outbox::*;
pub use parsed::Name;
pub use word::{InstanceId, JobName, MAX_WORD_BYTES, NameError, WorkflowName, is_word, to_word};

/// The input of a job with no upstream job.
pub const WORKFLOW_START_INPUT: &str = "__WORKFLOW_START__";
/// The path segment that marks signal tokens.
pub const SIGNAL_SEGMENT: &str = "__SIGNAL__";
pub const WORKFLOW_PREFIX: &str = "/workflow/";
pub const SCHEDULE_PREFIX: &str = "/schedule/workflow/";
/// Workflow definitions kept in the master: `/definition/workflow/<wf>`.
pub const DEFINITION_PREFIX: &str = "/definition/workflow/";
/// A workflow retired by an import (it left the definition files): its token is here.
pub const RETIRED_PREFIX: &str = "/definition/retired/";
/// The receipts of HTTP triggers with an idempotency key: `/trigger/workflow/<wf>/<key>`.
pub const TRIGGER_PREFIX: &str = "/trigger/workflow/";
/// Backfills: `/backfill/<id>`, and the end marks of their runs, `/backfill/<id>/end/<instance>`
/// (the pattern the scheduler claims with).
pub const BACKFILL_PREFIX: &str = "/backfill/";
/// Pools with slots: `/pool/<name>`, data `token::PoolDef` (`pinball pool set`).
pub const POOL_PREFIX: &str = "/pool/";
/// Every runnable job of every instance: the pattern workers claim with.
pub const ALL_RUNNABLE_JOBS: &str = "/workflow/*/*/job/runnable/";
/// Every schedule token: the pattern the scheduler claims with.
pub const ALL_SCHEDULES: &str = "/schedule/workflow/*";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    Waiting,
    Runnable,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "waiting",
            JobState::Runnable => "runnable",
        }
    }
}

/// A signal's action: the last segment of a signal token's name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Action {
    DRAIN,
    ABORT,
    ARCHIVE,
    EXIT,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::DRAIN => "DRAIN",
            Action::ABORT => "ABORT",
            Action::ARCHIVE => "ARCHIVE",
            Action::EXIT => "EXIT",
        }
    }
}

pub fn workflow_prefix(wf: &WorkflowName) -> String {
    format!("{WORKFLOW_PREFIX}{wf}/")
}

/// A job's key in the log table: its instance's prefix and its name.
pub fn job_log_key(w: &WorkflowName, i: &InstanceId, j: &JobName) -> String {
    format!("{}{j}", instance_prefix(w, i))
}

pub fn instance_prefix(wf: &WorkflowName, instance: &InstanceId) -> String {
    format!("{WORKFLOW_PREFIX}{wf}/{instance}/")
}

pub fn job_prefix(wf: &WorkflowName, instance: &InstanceId) -> String {
    format!("{WORKFLOW_PREFIX}{wf}/{instance}/job/")
}

pub fn job_state_prefix(wf: &WorkflowName, instance: &InstanceId, state: JobState) -> String {
    format!("{WORKFLOW_PREFIX}{wf}/{instance}/job/{}/", state.as_str())
}

pub fn job_token(
    wf: &WorkflowName,
    instance: &InstanceId,
    state: JobState,
    job: &JobName,
) -> String {
    format!(
        "{WORKFLOW_PREFIX}{wf}/{instance}/job/{}/{job}",
        state.as_str()
    )
}

/// The events posted to every input of a job: group them by input with `group_suffix: "/"`.
pub fn inputs_prefix(wf: &WorkflowName, instance: &InstanceId, job: &JobName) -> String {
    format!("{WORKFLOW_PREFIX}{wf}/{instance}/input/{job}/")
}

/// The events posted to one input of a job.
pub fn input_prefix(
    wf: &WorkflowName,
    instance: &InstanceId,
    job: &JobName,
    input: &JobName,
) -> String {
    format!("{WORKFLOW_PREFIX}{wf}/{instance}/input/{job}/{input}/")
}

/// One event. `event` is made a `\w+` run here: any character outside it becomes `_`.
pub fn event_token(
    wf: &WorkflowName,
    instance: &InstanceId,
    job: &JobName,
    input: &JobName,
    event: &str,
) -> String {
    let event = to_word(event);
    format!("{WORKFLOW_PREFIX}{wf}/{instance}/input/{job}/{input}/{event}")
}

pub fn schedule_token(wf: &WorkflowName) -> String {
    format!("{SCHEDULE_PREFIX}{wf}")
}

pub fn retired_token(wf: &WorkflowName) -> String {
    format!("{RETIRED_PREFIX}{wf}")
}

pub fn definition_token(wf: &WorkflowName) -> String {
    format!("{DEFINITION_PREFIX}{wf}")
}

/// The outbox: each notification email, recorded in the commit of the event that causes it,
/// until a sender has delivered it. Its name is the event's, so one event records one email.
pub const OUTBOX_PREFIX: &str = "/email/";

/// A job's final failure in execution `execution`.
pub fn failure_email_token(
    wf: &WorkflowName,
    i: &InstanceId,
    job: &JobName,
    execution: usize,
) -> String {
    format!("{OUTBOX_PREFIX}failure/{wf}/{i}/{job}/{execution}")
}

/// Execution `execution` of a job running past its warn timeout.
pub fn timeout_email_token(
    wf: &WorkflowName,
    i: &InstanceId,
    job: &JobName,
    execution: usize,
) -> String {
    format!("{OUTBOX_PREFIX}timeout/{wf}/{i}/{job}/{execution}")
}

/// An instance's end, recorded at `at_ms` (an instance retried after its end may end again).
pub fn end_email_token(wf: &WorkflowName, i: &InstanceId, at_ms: i64) -> String {
    format!("{OUTBOX_PREFIX}end/{wf}/{i}/{at_ms}")
}

/// A scheduled run (the occurrence due at `at`) held back by too many running instances.
pub fn deadline_email_token(wf: &WorkflowName, i: &InstanceId) -> String {
    format!("{OUTBOX_PREFIX}deadline/{wf}/{i}")
}

pub fn too_many_email_token(wf: &WorkflowName, at: i64) -> String {
    format!("{OUTBOX_PREFIX}too_many/{wf}/{at}")
}

/// Where a signal applies: everywhere, one workflow, or one instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Level {
    Global,
    Workflow(WorkflowName),
    Instance(WorkflowName, InstanceId),
}

impl Level {
    /// The workflow a workflow or instance level belongs to.
    pub fn workflow(&self) -> Option<&WorkflowName> {
        match self {
            Level::Global => None,
            Level::Workflow(w) | Level::Instance(w, _) => Some(w),
        }
    }

    pub fn signal_prefix(&self) -> String {
        match self {
            Level::Global => format!("{WORKFLOW_PREFIX}{SIGNAL_SEGMENT}/"),
            Level::Workflow(w) => format!("{WORKFLOW_PREFIX}{w}/{SIGNAL_SEGMENT}/"),
            Level::Instance(w, i) => format!("{WORKFLOW_PREFIX}{w}/{i}/{SIGNAL_SEGMENT}/"),
        }
    }

    /// Where the signals that apply here are, least specific first.
    pub fn visible_signal_prefixes(&self) -> Vec<String> {
        self.visible_levels()
            .iter()
            .map(Level::signal_prefix)
            .collect()
    }

    /// The levels whose signals apply here, least specific first.
    pub fn visible_levels(&self) -> Vec<Level> {
        match self {
            Level::Global => vec![Level::Global],
            Level::Workflow(w) => vec![Level::Global, Level::Workflow(w.clone())],
            Level::Instance(w, _) => vec![Level::Global, Level::Workflow(w.clone()), self.clone()],
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Level::Global => f.write_str("global"),
            Level::Workflow(w) => write!(f, "workflow {w}"),
            Level::Instance(w, i) => write!(f, "workflow {w} instance {i}"),
        }
    }
}

/// The receipt of a trigger of `w` with idempotency key `key` (checked by the caller).
pub fn trigger_receipt(w: &WorkflowName, key: &str) -> String {
    format!("{TRIGGER_PREFIX}{w}/{key}")
}

/// The token of backfill `id` (digits, made by `pinball backfill`).
pub fn backfill_token(id: &str) -> String {
    format!("{BACKFILL_PREFIX}{id}")
}

/// The mark the commit that ends run `instance` of backfill `id` writes.
pub fn backfill_end_mark(id: &str, instance: &str) -> String {
    format!("{BACKFILL_PREFIX}{id}/end/{instance}")
}

/// The backfill id of a backfill token or end mark, and whether it is a mark.
pub fn backfill_of(name: &str) -> Option<(&str, bool)> {
    let rest = name.strip_prefix(BACKFILL_PREFIX)?;
    match rest.split_once('/') {
        None => Some((rest, false)),
        Some((id, tail)) => tail.starts_with("end/").then_some((id, true)),
    }
}

/// The token of pool `pool` (a pool name: `token::is_pool_name`).
pub fn pool_token(pool: &str) -> String {
    format!("{POOL_PREFIX}{pool}")
}

/// Whether writing `name` is the operator's alone: workflow definitions, trigger receipts, pools, and
/// signals that reach beyond one instance (global and workflow-wide DRAIN, ABORT, EXIT).
pub fn needs_operator(name: &str) -> bool {
    if name.starts_with("/definition/")
        || name.starts_with("/trigger/")
        || name.starts_with(POOL_PREFIX)
    {
        return true;
    }
    let Some(rest) = name.strip_prefix(WORKFLOW_PREFIX) else {
        return false;
    };
    let mut parts = rest.split('/');
    let first = parts.next();
    first == Some(SIGNAL_SEGMENT) || parts.next() == Some(SIGNAL_SEGMENT)
}

pub fn signal_token(level: &Level, action: Action) -> String {
    format!("{}{}", level.signal_prefix(), action.as_str())
}

/// The workflow and instance a token under `/workflow/W/I/` belongs to (signal segments are
/// neither); `None` for any other name.
pub fn instance_of(name: &str) -> Option<(WorkflowName, InstanceId)> {
    let rest = name.strip_prefix(WORKFLOW_PREFIX)?;
    let mut parts = rest.split('/');
    let (w, i) = (parts.next()?, parts.next()?);
    (is_word(w) && is_word(i) && w != SIGNAL_SEGMENT && i != SIGNAL_SEGMENT)
        .then(|| (WorkflowName(w.to_owned()), InstanceId(i.to_owned())))
}

/// `/workflow/W/I/` (exactly an instance's prefix) -> (W, I).
pub fn instance_of_prefix(prefix: &str) -> Option<(WorkflowName, InstanceId)> {
    let rest = prefix.strip_prefix(WORKFLOW_PREFIX)?.strip_suffix('/')?;
    if rest.split('/').count() != 2 {
        return None;
    }
    instance_of(prefix)
}

/// What the archive queue records for an archived name: its first three path segments
/// (`/workflow/W/I/` for an instance's tokens), or the whole name when it is shorter.
pub fn archive_prefix(name: &str) -> &str {
    match name.match_indices('/').nth(3) {
        Some((at, _)) => &name[..=at],
        None => name,
    }
}

/// The part of a `/group` key after `prefix` (a key is a name cut before a `/`): the child's
/// own segment, such as the workflow of a key under `/workflow/`.
pub fn group_child<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    key.strip_prefix(prefix).filter(|s| !s.is_empty())
}

/// The workflows whose `/group` keys under `/workflow/` are given (signals left out).
pub fn workflows_of_groups<'a>(keys: impl IntoIterator<Item = &'a String>) -> Vec<WorkflowName> {
    keys.into_iter()
        .filter_map(|k| group_child(WORKFLOW_PREFIX, k))
        .filter(|w| *w != SIGNAL_SEGMENT)
        .filter_map(|w| WorkflowName::parse(w).ok())
        .collect()
}

/// The instances of `wf` whose `/group` keys under its prefix are given (signals left out).
pub fn instances_of_groups<'a>(
    wf: &WorkflowName,
    keys: impl IntoIterator<Item = &'a String>,
) -> Vec<InstanceId> {
    let prefix = workflow_prefix(wf);
    keys.into_iter()
        .filter_map(|k| group_child(&prefix, k))
        .filter(|i| *i != SIGNAL_SEGMENT)
        .filter_map(|i| InstanceId::parse(i).ok())
        .collect()
}

/// Every `/`-ended prefix of a token path, the root first: `/a/b/c` -> `/`, `/a/`, `/a/b/`.
pub fn path_prefixes(path: &str) -> Vec<&str> {
    let mut out = vec!["/"];
    out.extend(path.match_indices('/').skip(1).map(|(at, _)| &path[..=at]));
    out
}

/// The child of `path` that `name` lies under: the name up to and including the next `/` after
/// `path`, or the whole name (the token explorer's rows).
pub fn path_child<'a>(path: &str, name: &'a str) -> &'a str {
    match name.get(path.len()..).and_then(|rest| rest.find('/')) {
        Some(at) => &name[..path.len() + at + 1],
        None => name,
    }
}

#[cfg(test)]
mod tests;
