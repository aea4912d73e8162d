//! Runs across instances: every run of a workflow, a backfill's runs and the backfills
//! themselves, and each workflow's recent runs for the workflows page.

use std::collections::BTreeMap;

use super::{DataLayer, InstanceRow, RecentRun, summary_run, summary_status};
use crate::storage::{InstanceSummary, StorageError, Table};
use crate::token::name::{self, InstanceId, WorkflowName};
use crate::workflow::instance::JobToken;
use crate::workflow::run_info::RunInfo;
use crate::workflow::status::InstanceStatus;

/// The runs the workflows page shows per workflow.
pub const RECENT: usize = 10;

/// A live instance as the workflows page reads it: its status, its run when it was read whole,
/// and the name of one of its job tokens (to read its run from).
pub(super) struct LiveStatus {
    pub status: InstanceStatus,
    pub run: Option<RunInfo>,
    pub a_job: Option<String>,
}

impl DataLayer {
    /// Every run of `w` (live ones first, then finished ones, each newest first), at most
    /// `max`, read a thousand at a time.
    pub async fn all_runs(
        &self,
        w: &WorkflowName,
        max: u64,
    ) -> Result<Vec<InstanceRow>, StorageError> {
        self.runs_since(w, max, 0).await
    }

    /// [`DataLayer::all_runs`] down to the runs created at `since_ms` (ids are creation
    /// times): pages of older runs are not read.
    pub async fn runs_since(
        &self,
        w: &WorkflowName,
        max: u64,
        since_ms: u64,
    ) -> Result<Vec<InstanceRow>, StorageError> {
        const PAGE: u32 = 1000;
        let mut runs = Vec::new();
        let mut offset = 0u64;
        while offset < max {
            let Some(page) = self.instances(w, offset, PAGE).await? else {
                break;
            };
            let total = page.total;
            let older = page
                .rows
                .last()
                .is_some_and(|r| r.instance.as_str().parse::<u64>().unwrap_or(0) < since_ms);
            runs.extend(page.rows);
            if older {
                break;
            }
            // The first page holds the live runs and the newest finished ones; later pages
            // only finished ones.
            offset += u64::from(PAGE);
            if offset >= total {
                break;
            }
        }
        Ok(runs)
    }

    /// The runs of backfill `b`, by logical time (the newest of a date, when it ran twice).
    pub async fn backfill_runs(
        &self,
        b: &crate::workflow::backfill::Backfill,
    ) -> Result<BTreeMap<i64, InstanceId>, StorageError> {
        let Ok(w) = WorkflowName::parse(&b.workflow) else {
            return Ok(BTreeMap::new());
        };
        let mut by_time = BTreeMap::new();
        let since = b.id.parse::<u64>().unwrap_or(0);
        for r in self.runs_since(&w, 200_000, since).await? {
            if r.backfill.as_deref() == Some(b.id.as_str())
                && let Some(t) = r.logical_time
            {
                let id = |i: &InstanceId| i.as_str().parse::<u64>().unwrap_or(0);
                let newer = by_time.get(&t).is_none_or(|i| id(i) < id(&r.instance));
                if newer {
                    by_time.insert(t, r.instance);
                }
            }
        }
        Ok(by_time)
    }

    /// Every backfill, newest first (its token, without the end marks of its runs).
    pub async fn backfills(
        &self,
    ) -> Result<Vec<crate::workflow::backfill::Backfill>, StorageError> {
        let tokens = self.tokens(name::BACKFILL_PREFIX, false).await?;
        Ok(crate::workflow::backfill::Backfill::all_in(
            tokens.iter().map(|(t, _)| t),
        ))
    }

    /// Each workflow's newest [`RECENT`] runs, oldest first: finished ones from `latest` (the
    /// newest summaries of each), live ones from `live` (a job token read for the run of
    /// those not read whole).
    pub(super) async fn recent_runs(
        &self,
        latest: &[InstanceSummary],
        live: &BTreeMap<(WorkflowName, InstanceId), LiveStatus>,
    ) -> Result<BTreeMap<WorkflowName, Vec<RecentRun>>, StorageError> {
        let id = |i: &InstanceId| i.as_str().parse::<u64>().unwrap_or(0);
        let mut by_w: BTreeMap<WorkflowName, BTreeMap<u64, RecentRun>> = BTreeMap::new();
        for s in latest {
            if let Some((w, i, st)) = summary_status(s) {
                let run = summary_run(s);
                let row = RecentRun::new(i.clone(), st.status, run.as_ref());
                by_w.entry(w).or_default().insert(id(&i), row);
            }
        }
        let mut live_by_w: BTreeMap<&WorkflowName, Vec<(&InstanceId, &LiveStatus)>> =
            BTreeMap::new();
        for ((w, i), l) in live {
            live_by_w.entry(w).or_default().push((i, l));
        }
        for (w, list) in live_by_w {
            // Keys in order: the last ones are the newest.
            for (i, l) in list.into_iter().rev().take(RECENT) {
                let run = match (&l.run, &l.a_job) {
                    (Some(run), _) => Some(run.clone()),
                    (None, Some(job)) => self.run_in(job).await?,
                    (None, None) => None,
                };
                let row = RecentRun::new(i.clone(), l.status.status, run.as_ref());
                by_w.entry(w.clone()).or_default().insert(id(i), row);
            }
        }
        Ok(by_w
            .into_iter()
            .map(|(w, runs)| {
                let mut newest: Vec<RecentRun> = runs.into_values().rev().take(RECENT).collect();
                newest.reverse();
                (w, newest)
            })
            .collect())
    }

    /// The run a live job token carries.
    async fn run_in(&self, job: &str) -> Result<Option<RunInfo>, StorageError> {
        let tokens = self.store.read(&self.master, Table::Active, job).await?;
        Ok(tokens
            .into_iter()
            .find(|t| t.name == job)
            .and_then(|t| JobToken::parse(t).ok()?.job.run))
    }
}
