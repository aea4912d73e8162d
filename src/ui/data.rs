//! What the UI shows, read straight from the database (active and archived tokens), so history
//! outlives the master's memory. This first version derives everything from the tokens on each
//! request; summaries of finished instances (for very long histories) are still to come.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::status::{InstanceStatus, Status, instance_status, job_status, workflow_status};
use crate::master::token::Token;
use crate::scheduler::token::ScheduleData;
use crate::storage::{Storage, StorageError, Table};
use crate::workflow::instance::JobToken;
use crate::workflow::name::{self, Level, Name};
use crate::workflow::signal::{Action, Signal};

#[derive(Clone)]
pub struct DataLayer {
    pub store: Arc<dyn Storage>,
    pub master: String,
    /// `default_max_workflow_running_instances`: the limit of a schedule that names none.
    pub default_max_running: u32,
}

/// One instance's tokens and where they live.
#[derive(Debug, Default)]
struct Instance {
    jobs: Vec<JobToken>,
    live: bool,
    aborted: bool,
    finished: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkflowRow {
    pub workflow: String,
    pub status: Status,
    pub last_instance: Option<String>,
    pub last_start_time: Option<f64>,
    pub last_end_time: Option<f64>,
    pub running_instances: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InstanceRow {
    pub instance: String,
    pub status: Status,
    pub start_time: Option<f64>,
    pub end_time: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobRow {
    pub job: String,
    pub status: Status,
    pub last_start_time: Option<f64>,
    pub last_end_time: Option<f64>,
    pub attempts: usize,
    pub depends_on: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExecutionRow {
    pub execution: usize,
    pub status: Status,
    pub exit_code: Option<i32>,
    pub start_time: f64,
    pub end_time: Option<f64>,
    pub worker: String,
    /// Log kind -> URL of this API that serves it.
    pub log_urls: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScheduleRow {
    pub workflow: String,
    pub next_run_time: i64,
    pub recurrence: Option<String>,
    pub cron: Option<String>,
    pub overrun_policy: String,
    /// The limit in force (the configured default when the schedule names none).
    pub max_running_instances: u32,
    pub emails: Vec<String>,
    pub missed_runs: u64,
}

impl DataLayer {
    /// Active and archived tokens under `prefix`; archived ones marked. A name archived more
    /// than once keeps its latest copy.
    async fn tokens(&self, prefix: &str) -> Result<Vec<(Token, bool)>, StorageError> {
        let mut by_name: BTreeMap<String, (Token, bool)> = BTreeMap::new();
        for t in self
            .store
            .read(&self.master, Table::Archived, prefix)
            .await?
        {
            by_name.insert(t.name.clone(), (t, true));
        }
        for t in self.store.read(&self.master, Table::Active, prefix).await? {
            by_name.insert(t.name.clone(), (t, false));
        }
        Ok(by_name.into_values().collect())
    }

    async fn instances_of(&self, w: &str) -> Result<BTreeMap<String, Instance>, StorageError> {
        let mut out: BTreeMap<String, Instance> = BTreeMap::new();
        for (t, archived) in self.tokens(&name::workflow_prefix(w)).await? {
            match Name::parse(&t.name) {
                Some(Name::Job { instance, .. }) => {
                    let entry = out.entry(instance).or_default();
                    entry.live |= !archived;
                    if let Ok(jt) = JobToken::parse(t) {
                        entry.jobs.push(jt);
                    }
                }
                Some(Name::Signal {
                    level: Level::Instance(_, instance),
                    action,
                }) => {
                    let entry = out.entry(instance).or_default();
                    entry.live |= !archived;
                    if action == Action::ABORT.as_str() {
                        entry.aborted = true;
                    }
                    if action == Action::ARCHIVE.as_str() {
                        let signal = t
                            .data
                            .as_deref()
                            .and_then(|d| serde_json::from_str::<Signal>(d).ok());
                        entry.finished |= signal.is_some_and(|s| s.attributes.timestamp.is_some());
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    fn status(i: &Instance) -> InstanceStatus {
        instance_status(&i.jobs, !i.live, i.aborted, i.finished)
    }

    /// A workflow's instances, newest first; `None` when the workflow has none.
    pub async fn instances(&self, w: &str) -> Result<Option<Vec<InstanceRow>>, StorageError> {
        let all = self.instances_of(w).await?;
        if all.is_empty() {
            return Ok(None);
        }
        let mut rows: Vec<InstanceRow> = all
            .iter()
            .map(|(id, i)| {
                let s = Self::status(i);
                InstanceRow {
                    instance: id.clone(),
                    status: s.status,
                    start_time: s.start_time,
                    end_time: s.end_time,
                }
            })
            .collect();
        rows.sort_by(|a, b| b.instance.cmp(&a.instance));
        Ok(Some(rows))
    }

    pub async fn workflows(&self) -> Result<Vec<WorkflowRow>, StorageError> {
        let mut names: Vec<String> = self
            .tokens(name::WORKFLOW_PREFIX)
            .await?
            .into_iter()
            .filter_map(|(t, _)| t.name.split('/').nth(2).map(str::to_owned))
            .filter(|w| w != name::SIGNAL_SEGMENT)
            .collect();
        names.dedup();
        let mut rows = Vec::new();
        for w in names {
            let instances: Vec<(String, InstanceStatus)> = self
                .instances_of(&w)
                .await?
                .iter()
                .map(|(id, i)| (id.clone(), Self::status(i)))
                .collect();
            let s = workflow_status(&instances);
            rows.push(WorkflowRow {
                workflow: w,
                status: s.status,
                last_instance: s.last_instance,
                last_start_time: s.last_start_time,
                last_end_time: s.last_end_time,
                running_instances: s.running_instances,
            });
        }
        Ok(rows)
    }

    async fn instance_jobs(&self, w: &str, i: &str) -> Result<Option<Vec<JobToken>>, StorageError> {
        let mut jobs: Vec<JobToken> = self
            .tokens(&name::job_prefix(w, i))
            .await?
            .into_iter()
            .filter_map(|(t, _)| JobToken::parse(t).ok())
            .collect();
        if jobs.is_empty() {
            return Ok(None);
        }
        jobs.sort_by(|a, b| a.job.name.cmp(&b.job.name));
        Ok(Some(jobs))
    }

    pub async fn jobs(&self, w: &str, i: &str) -> Result<Option<Vec<JobRow>>, StorageError> {
        Ok(self.instance_jobs(w, i).await?.map(|jobs| {
            jobs.iter()
                .map(|jt| {
                    let last = jt.job.history.last();
                    JobRow {
                        job: jt.job.name.clone(),
                        status: job_status(jt),
                        last_start_time: last.map(|r| r.start_time),
                        last_end_time: last.and_then(|r| r.end_time),
                        attempts: jt.job.history.len(),
                        depends_on: jt
                            .job
                            .inputs
                            .iter()
                            .filter(|x| *x != name::WORKFLOW_START_INPUT)
                            .cloned()
                            .collect(),
                    }
                })
                .collect()
        }))
    }

    /// The job's token, live or archived.
    pub async fn job(&self, w: &str, i: &str, job: &str) -> Result<Option<JobToken>, StorageError> {
        Ok(self
            .instance_jobs(w, i)
            .await?
            .and_then(|jobs| jobs.into_iter().find(|jt| jt.job.name == job)))
    }

    pub async fn executions(
        &self,
        w: &str,
        i: &str,
        job: &str,
    ) -> Result<Option<Vec<ExecutionRow>>, StorageError> {
        Ok(self.job(w, i, job).await?.map(|jt| {
            let running = jt.state == name::JobState::Runnable;
            jt.job
                .history
                .iter()
                .enumerate()
                .map(|(n, r)| ExecutionRow {
                    execution: n,
                    status: match (r.end_time, r.exit_code) {
                        (None, _) if running => Status::RUNNING,
                        (None, _) => Status::UNKNOWN,
                        (Some(_), Some(0)) => Status::SUCCESS,
                        _ => Status::FAILURE,
                    },
                    exit_code: r.exit_code,
                    start_time: r.start_time,
                    end_time: r.end_time,
                    worker: r.worker.clone(),
                    log_urls: r
                        .logs
                        .keys()
                        .map(|kind| (kind.clone(), format!("/api/v1/workflows/{w}/instances/{i}/jobs/{job}/executions/{n}/logs/{kind}")))
                        .collect(),
                })
                .collect()
        }))
    }

    pub async fn schedules(&self) -> Result<Vec<ScheduleRow>, StorageError> {
        let tokens = self
            .store
            .read(&self.master, Table::Active, name::SCHEDULE_PREFIX)
            .await?;
        Ok(tokens
            .iter()
            .filter_map(ScheduleData::from_token)
            .map(|d| ScheduleRow {
                workflow: d.workflow.clone(),
                next_run_time: d.next_run_time,
                recurrence: d.schedule.recurrence.clone(),
                cron: d.schedule.cron.clone(),
                overrun_policy: d
                    .schedule
                    .overrun_policy
                    .clone()
                    .unwrap_or_else(|| "SKIP".into()),
                max_running_instances: d
                    .schedule
                    .max_running_instances
                    .unwrap_or(self.default_max_running),
                emails: d.emails.clone(),
                missed_runs: d.missed_runs,
            })
            .collect())
    }
}
