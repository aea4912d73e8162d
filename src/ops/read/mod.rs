//! The read model of the dashboard and of `pinball status` and `pinball logs`: what they show,
//! read straight from the database (active and archived tokens), so history outlives the
//! master's memory. Running instances are derived from their
//! live tokens on every request; finished (archived) ones come from `instance_summaries`,
//! which `summaries` keeps current, so lists never re-read a long history token by token.

mod jobs;
pub mod logs;
mod rows;
mod runs;

use runs::LiveStatus;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub use rows::*;

use crate::ops::summaries::Summarizer;
use crate::parser::WorkflowDef;
use crate::schedule::ScheduleData;
use crate::storage::{Storage, StorageError, Table};
use crate::token::Token;
use crate::token::name::{
    self, DEFINITION_PREFIX, InstanceId, JobName, JobState, Level, Name, WorkflowName,
};
use crate::workflow::definition;
use crate::workflow::instance::JobToken;
use crate::workflow::queue::QueuedRun;
use crate::workflow::signal::Signals;
use crate::workflow::status::{InstanceStatus, Status, workflow_status};

#[derive(Clone)]
pub struct DataLayer {
    pub store: Arc<dyn Storage>,
    pub master: String,
    /// `default_max_workflow_running_instances`: the limit of a schedule that names none.
    pub default_max_running: u32,
    pub summaries: Summarizer,
}

impl DataLayer {
    pub fn new(store: Arc<dyn Storage>, master: String, default_max_running: u32) -> Self {
        DataLayer {
            summaries: Summarizer::new(store.clone(), master.clone()),
            store,
            master,
            default_max_running,
        }
    }

    /// Active tokens under `prefix`, and the archived ones too when `archived` (a name archived
    /// more than once keeps its latest copy; a live token wins over its archived copies).
    async fn tokens(
        &self,
        prefix: &str,
        archived: bool,
    ) -> Result<Vec<(Token, bool)>, StorageError> {
        let mut by_name: BTreeMap<String, (Token, bool)> = BTreeMap::new();
        if archived {
            for t in self
                .store
                .read(&self.master, Table::Archived, prefix)
                .await?
            {
                by_name.insert(t.name.clone(), (t, true));
            }
        }
        for t in self.store.read(&self.master, Table::Active, prefix).await? {
            by_name.insert(t.name.clone(), (t, false));
        }
        Ok(by_name.into_values().collect())
    }

    /// Live instances (with any live token) under `prefix`, by (workflow, instance).
    async fn live_instances(
        &self,
        prefix: &str,
    ) -> Result<BTreeMap<(WorkflowName, InstanceId), Instance>, StorageError> {
        let tokens = self.tokens(prefix, false).await?;
        // Parsing every job's JSON is the costly part: on the blocking pool, never on a thread
        // the master (in the same process) answers from.
        let parse = move || {
            let mut out: BTreeMap<(WorkflowName, InstanceId), Instance> = BTreeMap::new();
            for (t, _) in tokens {
                let key = match Name::parse(&t.name) {
                    Some(Name::Job {
                        workflow, instance, ..
                    }) => (workflow, instance),
                    Some(Name::Signal {
                        level: Level::Instance(w, i),
                        ..
                    }) => (w, i),
                    _ => continue,
                };
                out.entry(key).or_default().add(t, false);
            }
            out
        };
        tokio::task::spawn_blocking(parse).await.map_err(|e| {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
            StorageError::unavailable(crate::storage::Cause::Timeout, "the UI is stopping")
        })
    }

    /// The statuses of every live instance, read from names where names say enough: a live
    /// instance without an ARCHIVE signal is RUNNING whatever its jobs hold, so only those
    /// with one (finished, or waiting for their archive delay) and each workflow's newest
    /// running instance (whose start time the list shows) are read whole. The workflows page
    /// costs one name scan then, not a parse of every live job (2,000 running instances of
    /// 40 jobs each were 80,000 JSON documents per page).
    async fn live_statuses(
        &self,
    ) -> Result<BTreeMap<(WorkflowName, InstanceId), LiveStatus>, StorageError> {
        let mut archiving: BTreeMap<(WorkflowName, InstanceId), bool> = BTreeMap::new();
        let mut a_job: BTreeMap<(WorkflowName, InstanceId), String> = BTreeMap::new();
        for n in self
            .store
            .names(&self.master, Table::Active, name::WORKFLOW_PREFIX)
            .await?
        {
            match Name::parse(&n) {
                Some(Name::Job {
                    workflow, instance, ..
                }) => {
                    let key = (workflow, instance);
                    archiving.entry(key.clone()).or_default();
                    a_job.entry(key).or_insert(n);
                }
                Some(Name::Signal {
                    level: Level::Instance(w, i),
                    action,
                }) => {
                    *archiving.entry((w, i)).or_default() |=
                        action == crate::workflow::signal::Action::ARCHIVE.as_str();
                }
                _ => {}
            }
        }
        let mut newest: BTreeMap<&WorkflowName, &InstanceId> = BTreeMap::new();
        for ((w, i), _) in archiving.iter().filter(|(_, a)| !**a) {
            newest.insert(w, i); // keys in order: the last one is the newest
        }
        let read_whole: BTreeSet<(WorkflowName, InstanceId)> = archiving
            .iter()
            .filter(|(_, a)| **a)
            .map(|(k, _)| k.clone())
            .chain(newest.into_iter().map(|(w, i)| (w.clone(), i.clone())))
            .collect();
        let mut out = BTreeMap::new();
        for (key, _) in archiving {
            let (status, run) = if read_whole.contains(&key) {
                let mut inst = Instance::default();
                for (t, _) in self
                    .tokens(&name::instance_prefix(&key.0, &key.1), false)
                    .await?
                {
                    inst.add(t, false);
                }
                (inst.status(), run_of(&inst).cloned())
            } else {
                let status = InstanceStatus {
                    status: crate::workflow::status::Status::RUNNING,
                    start_time: None,
                    end_time: None,
                };
                (status, None)
            };
            let a_job = a_job.remove(&key);
            out.insert(key, LiveStatus { status, run, a_job });
        }
        Ok(out)
    }

    /// One instance, live or archived; `None` when it has no job tokens.
    pub async fn instance(
        &self,
        w: &WorkflowName,
        i: &InstanceId,
    ) -> Result<Option<Instance>, StorageError> {
        let mut inst = Instance::default();
        for (t, archived) in self.tokens(&name::instance_prefix(w, i), true).await? {
            inst.add(t, archived);
        }
        if inst.jobs.is_empty() {
            return Ok(None);
        }
        inst.jobs.sort_by(|a, b| a.job.name.cmp(&b.job.name));
        Ok(Some(inst))
    }

    /// The definitions stored in the master, by workflow.
    pub async fn definitions(&self) -> Result<BTreeMap<WorkflowName, WorkflowDef>, StorageError> {
        let tokens = self
            .store
            .read(&self.master, Table::Active, DEFINITION_PREFIX)
            .await?;
        Ok(tokens
            .iter()
            .filter_map(|t| match Name::parse(&t.name) {
                Some(Name::Definition { workflow }) => Some((workflow, definition::from_token(t)?)),
                _ => None,
            })
            .collect())
    }

    pub async fn definition(&self, w: &WorkflowName) -> Result<Option<WorkflowDef>, StorageError> {
        let token_name = name::definition_token(w);
        let tokens = self
            .store
            .read(&self.master, Table::Active, &token_name)
            .await?;
        Ok(tokens
            .iter()
            .find(|t| t.name == token_name)
            .and_then(definition::from_token))
    }

    /// Every workflow with a definition, a schedule or any instance: its status from its live
    /// instances and its latest finished one.
    pub async fn workflows(&self) -> Result<Vec<WorkflowRow>, StorageError> {
        self.summaries.catch_up().await?;
        let live = self.live_statuses().await?;
        // As in `instances_and_recent`: what was archived during the live read.
        self.summaries.catch_up().await?;
        let latest = self
            .store
            .latest_summaries(&self.master, runs::RECENT as u32)
            .await?;
        let defs = self.definitions().await?;
        let schedules: BTreeMap<WorkflowName, i64> = self
            .schedules()
            .await?
            .into_iter()
            .map(|s| (s.workflow, s.next_run_time))
            .collect();
        let mut by_workflow: BTreeMap<WorkflowName, BTreeMap<InstanceId, InstanceStatus>> =
            BTreeMap::new();
        for (w, i, s) in latest.iter().filter_map(summary_status) {
            by_workflow.entry(w).or_default().insert(i, s);
        }
        let recent = self.recent_runs(&latest, &live).await?;
        for ((w, i), live) in live {
            by_workflow.entry(w).or_default().insert(i, live.status);
        }
        for w in defs.keys().chain(schedules.keys()) {
            by_workflow.entry(w.clone()).or_default();
        }
        Ok(by_workflow
            .into_iter()
            .map(|(w, instances)| {
                let instances: Vec<(InstanceId, InstanceStatus)> = instances.into_iter().collect();
                let s = workflow_status(&instances);
                let recent = recent.get(&w).cloned().unwrap_or_default();
                WorkflowRow {
                    owner: defs.get(&w).and_then(owner_of),
                    next_run_time: schedules.get(&w).copied(),
                    workflow: w,
                    status: s.status,
                    last_instance: s.last_instance,
                    last_start_time: s.last_start_time,
                    last_end_time: s.last_end_time,
                    running_instances: s.running_instances,
                    recent,
                }
            })
            .collect())
    }

    /// One page of a workflow's instances: the live ones first (on the first page), then the
    /// finished ones (from their summaries), each newest first. `None` when the workflow has
    /// none.
    pub async fn instances(
        &self,
        w: &WorkflowName,
        offset: u64,
        limit: u32,
    ) -> Result<Option<InstancePage>, StorageError> {
        Ok(self.instances_and_recent(w, offset, limit, 0).await?.0)
    }

    /// [`DataLayer::instances`], and the newest `runs` instances with their jobs, oldest
    /// first (the runs grid), from one read of the live tokens.
    pub async fn instances_and_recent(
        &self,
        w: &WorkflowName,
        offset: u64,
        limit: u32,
        runs: u32,
    ) -> Result<(Option<InstancePage>, Vec<(InstanceRow, Instance)>), StorageError> {
        self.summaries.catch_up().await?;
        let live: BTreeMap<InstanceId, Instance> = self
            .live_instances(&name::workflow_prefix(w))
            .await?
            .into_iter()
            .map(|((_, i), inst)| (i, inst))
            .collect();
        // An instance archived after the first catch-up and before the live read is in
        // neither: summarise what was archived meanwhile (one indexed read when nothing was).
        self.summaries.catch_up().await?;
        let (summaries, archived_total) = self
            .store
            .summaries(&self.master, w, offset, limit.max(runs))
            .await?;
        let queued = self.queued(w).await?;
        if live.is_empty() && archived_total == 0 && queued.is_empty() {
            return Ok((None, Vec::new()));
        }
        // A summary of a live instance (retried in place) is stale: its live row stands.
        let finished: Vec<InstanceRow> = summaries
            .iter()
            .filter_map(|s| summary_status(s).map(|found| (found, summary_run(s))))
            .filter(|((_, i, _), _)| !live.contains_key(i))
            .map(|((_, i, s), run)| InstanceRow::new(i, s, run.as_ref()))
            .collect();
        let mut rows = Vec::new();
        let queued_total = queued.len() as u64;
        if offset == 0 {
            rows.extend(queued);
            rows.extend(
                live.iter()
                    .rev()
                    .map(|(i, inst)| InstanceRow::new(i.clone(), inst.status(), run_of(inst))),
            );
        }
        rows.extend(finished.iter().take(limit as usize).cloned());
        let page = InstancePage {
            rows,
            total: archived_total + live.len() as u64 + queued_total,
            offset,
            limit,
        };
        // The grid: the newest live ones (already read), then the newest finished ones.
        let mut recent: Vec<(InstanceRow, Instance)> = Vec::new();
        if offset == 0 && runs > 0 {
            for (i, inst) in live.into_iter().rev().take(runs as usize) {
                let row = InstanceRow::new(i, inst.status(), run_of(&inst));
                recent.push((row, inst));
            }
            let more = runs as usize - recent.len();
            for r in finished.into_iter().take(more) {
                if let Some(inst) = self.instance(w, &r.instance).await? {
                    recent.push((r, inst));
                }
            }
            // Ids are creation times in ms: by id is oldest first.
            recent.sort_by_key(|(r, _)| r.instance.as_str().parse::<u64>().unwrap_or(u64::MAX));
        }
        Ok((Some(page), recent))
    }

    /// The newest instance (a queued run is not one yet): `latest` in URLs.
    pub async fn latest_instance(
        &self,
        w: &WorkflowName,
    ) -> Result<Option<InstanceId>, StorageError> {
        Ok(self
            .instances(w, 0, 1)
            .await?
            .and_then(|p| p.rows.into_iter().find(|r| r.status != Status::QUEUED))
            .map(|r| r.instance))
    }

    /// `w`'s queued runs (at most `queue::MAX_QUEUED`), newest first, as `QUEUED` rows.
    pub async fn queued(&self, w: &WorkflowName) -> Result<Vec<InstanceRow>, StorageError> {
        let tokens = self
            .tokens(&name::queue_prefix(w), false)
            .await?
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        Ok(crate::workflow::queue::oldest_first(tokens)
            .into_iter()
            .rev()
            .map(|(i, t)| {
                let q = QueuedRun::from_token(&t);
                let status = InstanceStatus {
                    status: Status::QUEUED,
                    start_time: None,
                    end_time: None,
                };
                InstanceRow::new(i, status, q.as_ref().map(|q| &q.run))
            })
            .collect())
    }
}
