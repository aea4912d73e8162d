//! What the UI's pages and read API show, as rows computed from tokens and summaries.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::parser::WorkflowDef;
use crate::storage::InstanceSummary;
use crate::token::name::{self, InstanceId, JobName, JobState, WorkflowName};
use crate::workflow::instance::JobToken;
use crate::workflow::run_info::{RunInfo, RunKind};
use crate::workflow::status::{
    InstanceStatus, Look, Status, attempts, attempts_this_try, job_look, job_status,
};

pub use crate::workflow::view::Instance;

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct WorkflowRow {
    pub workflow: WorkflowName,
    pub status: Status,
    pub last_instance: Option<InstanceId>,
    pub last_start_time: Option<f64>,
    pub last_end_time: Option<f64>,
    pub running_instances: usize,
    /// The definition's `owner`, else the local parts of its notification emails.
    pub owner: Option<String>,
    pub next_run_time: Option<i64>,
    /// The newest runs (at most 10), oldest first: the workflows page's marks.
    pub recent: Vec<RecentRun>,
}

/// A recent run of a workflow: its status and the date it is for.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct RecentRun {
    pub instance: InstanceId,
    pub status: Status,
    pub kind: Option<RunKind>,
    pub logical_date: Option<String>,
}

impl RecentRun {
    pub fn new(instance: InstanceId, status: Status, run: Option<&RunInfo>) -> RecentRun {
        RecentRun {
            instance,
            status,
            kind: run.map(|r| r.kind),
            logical_date: run.map(RunInfo::logical_date),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct InstanceRow {
    pub instance: InstanceId,
    pub status: Status,
    pub start_time: Option<f64>,
    pub end_time: Option<f64>,
    /// How the run was started; `null` for runs from before runs had it.
    pub kind: Option<RunKind>,
    /// The run's logical time, seconds since the epoch.
    pub logical_time: Option<i64>,
    /// The logical time's date in the schedule's time zone, `YYYY-MM-DD`.
    pub logical_date: Option<String>,
    pub params: BTreeMap<String, String>,
    /// The backfill the run is a date of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backfill: Option<String>,
}

impl InstanceRow {
    pub fn new(instance: InstanceId, s: InstanceStatus, run: Option<&RunInfo>) -> InstanceRow {
        InstanceRow {
            instance,
            status: s.status,
            start_time: s.start_time,
            end_time: s.end_time,
            kind: run.map(|r| r.kind),
            logical_time: run.map(|r| r.logical_time),
            logical_date: run.map(RunInfo::logical_date),
            params: run.map(|r| r.params.clone()).unwrap_or_default(),
            backfill: run.and_then(|r| r.backfill.clone()),
        }
    }
}

/// The run an instance is for: from its jobs.
pub fn run_of(inst: &Instance) -> Option<&RunInfo> {
    inst.jobs.iter().find_map(|jt| jt.job.run.as_ref())
}

/// The run a summary recorded (summaries written before runs had one have none).
pub(super) fn summary_run(s: &InstanceSummary) -> Option<RunInfo> {
    let data: serde_json::Value = serde_json::from_str(&s.data).ok()?;
    serde_json::from_value(data.get("run")?.clone()).ok()
}

/// One page of a workflow's instances, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct InstancePage {
    pub rows: Vec<InstanceRow>,
    pub total: u64,
    pub offset: u64,
    pub limit: u32,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct JobRow {
    pub job: JobName,
    pub status: Status,
    /// The status as the dashboard shows it: also `WAITING_RETRY`, `POLLING`, `KILLED`.
    pub state: Look,
    pub last_start_time: Option<f64>,
    pub last_end_time: Option<f64>,
    /// Executions, except that a condition's polls count as one attempt.
    pub attempts: usize,
    /// Attempts since the last manual retry, without executions lost with a worker or
    /// stopped by a pause: what counts against `max_attempts`.
    pub attempts_this_try: usize,
    /// Every execution (a condition's polls included).
    pub executions: usize,
    pub depends_on: Vec<JobName>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ExecutionRow {
    pub instance: InstanceId,
    pub execution: usize,
    pub status: Status,
    /// As the dashboard shows it: also `KILLED` (by an abort or a timeout).
    pub state: Look,
    pub exit_code: Option<i32>,
    pub cleanup_exit_code: Option<i32>,
    /// Why the execution was lost with its worker (it is not counted as an attempt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<String>,
    /// `lost` says who paused it (`util pause`): stopped, not an attempt, run again on resume.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// Logs that are incomplete, and why (the worker could not write them).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub log_trouble: BTreeMap<String, String>,
    pub start_time: f64,
    pub end_time: Option<f64>,
    pub worker: String,
    /// The machine it ran on.
    pub host: String,
    pub info: String,
    pub properties: BTreeMap<String, Vec<String>>,
    /// Log kind -> URL of this API that serves it.
    pub log_urls: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ScheduleRow {
    pub workflow: WorkflowName,
    pub next_run_time: i64,
    pub recurrence: Option<String>,
    pub cron: Option<String>,
    pub overrun_policy: String,
    /// The limit in force (the configured default when the schedule names none).
    pub max_running_instances: u32,
    pub emails: Vec<String>,
    pub missed_runs: u64,
    /// `util pause-schedule`: it starts nothing until resumed.
    pub paused: bool,
    pub catchup: bool,
    pub timezone: Option<String>,
}

/// A token path's child and how many tokens are under it (both tables).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PathCount {
    pub path: String,
    pub count: u64,
}

/// A summary's status; `None` for a row whose names are not valid (a hand-edited database).
pub(super) fn summary_status(
    s: &InstanceSummary,
) -> Option<(WorkflowName, InstanceId, InstanceStatus)> {
    let w = WorkflowName::parse(s.workflow.as_str()).ok()?;
    let i = InstanceId::parse(s.instance.as_str()).ok()?;
    let status = InstanceStatus {
        status: Status::parse(&s.status).unwrap_or(Status::UNKNOWN),
        start_time: s.start_time,
        end_time: s.end_time,
    };
    Some((w, i, status))
}

pub(super) fn owner_of(def: &WorkflowDef) -> Option<String> {
    def.owner.clone().or_else(|| {
        let locals: Vec<&str> = def
            .notify_emails
            .iter()
            .map(|e| e.split('@').next().unwrap_or(e))
            .collect();
        (!locals.is_empty()).then(|| locals.join(","))
    })
}

/// The status of one execution of a job.
pub fn execution_status(jt: &JobToken, n: usize) -> Status {
    let Some(r) = jt.job.history.get(n) else {
        return Status::UNKNOWN;
    };
    let last = n + 1 == jt.job.history.len();
    match (r.end_time, r.exit_code) {
        (None, _) if last && jt.state == JobState::Runnable => Status::RUNNING,
        (None, _) => Status::UNKNOWN,
        // Lost: not an attempt (aborted), unless it was counted as a failed one.
        (Some(_), _) if r.lost.is_some() && !r.counted => Status::ABORTED,
        (Some(_), Some(0)) => Status::SUCCESS,
        _ => Status::FAILURE,
    }
}

/// How one execution looks: its status, or killed.
pub fn execution_look(jt: &JobToken, n: usize) -> Look {
    match execution_status(jt, n) {
        Status::FAILURE if jt.job.history[n].killed.is_some() => Look::KILLED,
        s => Look::from(s),
    }
}

pub fn job_row(jt: &JobToken) -> JobRow {
    let last = jt.job.history.last();
    JobRow {
        job: jt.job.name.clone(),
        status: job_status(jt),
        state: job_look(jt),
        last_start_time: last.map(|r| r.start_time),
        last_end_time: last.and_then(|r| r.end_time),
        attempts: attempts(jt),
        attempts_this_try: attempts_this_try(jt),
        executions: jt.job.history.len(),
        depends_on: depends_on(jt),
    }
}

pub fn depends_on(jt: &JobToken) -> Vec<JobName> {
    jt.job
        .inputs
        .iter()
        .filter(|x| x.as_str() != name::WORKFLOW_START_INPUT)
        .cloned()
        .collect()
}

pub fn log_url(w: &WorkflowName, i: &InstanceId, job: &JobName, n: usize, kind: &str) -> String {
    format!("/api/v1/workflows/{w}/instances/{i}/jobs/{job}/executions/{n}/logs/{kind}")
}

pub(super) fn execution_rows(jt: &JobToken) -> Vec<ExecutionRow> {
    let (w, i, job) = (&jt.workflow, &jt.instance, &jt.job.name);
    jt.job
        .history
        .iter()
        .enumerate()
        .map(|(n, r)| ExecutionRow {
            instance: r.instance.clone(),
            execution: n,
            status: execution_status(jt, n),
            state: execution_look(jt, n),
            exit_code: r.exit_code,
            cleanup_exit_code: r.cleanup_exit_code,
            lost: r.lost.clone(),
            paused: r.paused,
            log_trouble: r.log_trouble.clone(),
            start_time: r.start_time,
            end_time: r.end_time,
            worker: r.worker.clone(),
            host: r.host.clone(),
            info: r.info.clone(),
            properties: r.properties.clone(),
            log_urls: r
                .logs
                .keys()
                .map(|kind| (kind.clone(), log_url(w, i, job, n, kind)))
                .collect(),
        })
        .collect()
}

/// A backfill in the read API (CONTRACT §4.3): its state and how many dates are in each.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct BackfillRow {
    pub id: String,
    pub workflow: String,
    /// `running`, `paused`, `cancelled` or `done`.
    pub state: String,
    /// The range's first and last time, seconds since the epoch.
    pub from: i64,
    pub to: i64,
    pub pending: usize,
    pub running: usize,
    pub done: usize,
    pub failed: usize,
    /// Skipped (a run exists, succeeded, or is in progress) and cancelled dates.
    pub skipped: usize,
    pub max_active: u32,
    pub created_by: String,
    pub created_at: i64,
}

impl BackfillRow {
    pub fn new(b: &crate::workflow::backfill::Backfill) -> BackfillRow {
        let c = b.counts();
        BackfillRow {
            id: b.id.clone(),
            workflow: b.workflow.clone(),
            state: b.state.as_str().to_owned(),
            from: b.from,
            to: b.to,
            pending: c.pending,
            running: c.running,
            done: c.done,
            failed: c.failed,
            skipped: c.skipped + c.cancelled,
            max_active: b.max_active,
            created_by: b.created_by.clone(),
            created_at: b.created_at,
        }
    }
}
