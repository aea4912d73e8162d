//! The writer of `instance_summaries`: when the master archives an instance, the same commit
//! queues its prefix in `archive_queue`; this summarises queued instances from their archived
//! tokens (status, times, job counts) and drops what it consumed, in one transaction per pass.
//! Lists of finished instances then read one row each instead of a whole history, and the
//! scheduler reads a workflow's last outcome from them. It runs in the master's process,
//! woken by every commit that archives (`modes`); the UI runs one bounded pass before a list
//! is served, in case the master's is still under way.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::storage::{Archive, InstanceSummary, StorageError, Table};
use crate::token::name::instance_of_prefix;
use crate::workflow::status::{Status, job_status};
use crate::workflow::view::Instance;

/// Queue rows summarised per pass (each pass is one transaction).
const SUMMARY_BATCH: u32 = 500;

#[derive(Clone)]
pub struct Summarizer {
    store: Arc<dyn Archive>,
    master: String,
    /// One pass at a time per process.
    running: Arc<tokio::sync::Mutex<()>>,
}

impl Summarizer {
    pub fn new(store: Arc<dyn Archive>, master: String) -> Self {
        Summarizer {
            store,
            master,
            running: Arc::default(),
        }
    }

    /// Brings the summaries up to date with the archive. Cheap when nothing was archived (one
    /// indexed query). Returns how many instances it summarised.
    pub async fn summarize(&self) -> Result<usize, StorageError> {
        let mut done = 0;
        // One pass per lock, so a request waits for one pass at most, never a whole backfill.
        loop {
            let _one = self.running.lock().await;
            match self.pass().await? {
                Some(n) => done += n,
                None => return Ok(done),
            }
        }
    }

    /// Before serving a list: one pass (up to 500 instances), after any pass under way.
    pub async fn catch_up(&self) -> Result<(), StorageError> {
        let _one = self.running.lock().await;
        self.pass().await?;
        Ok(())
    }

    /// Summarises up to one batch of the queue; `None` when the queue was empty.
    async fn pass(&self) -> Result<Option<usize>, StorageError> {
        let queue = self
            .store
            .archive_queue(&self.master, SUMMARY_BATCH)
            .await?;
        let Some(&(last_seq, _)) = queue.last() else {
            return Ok(None);
        };
        let prefixes: BTreeSet<String> = queue.into_iter().map(|(_, p)| p).collect();
        let mut summaries = Vec::new();
        let mut removed = Vec::new();
        for prefix in prefixes {
            let Some((w, i)) = instance_of_prefix(&prefix) else {
                continue;
            };
            let mut inst = Instance::default();
            for t in self
                .store
                .read(&self.master, Table::Archived, &prefix)
                .await?
            {
                inst.add(t, true);
            }
            if inst.jobs.is_empty() {
                removed.push(prefix);
                continue;
            }
            let s = inst.status();
            let failed = inst
                .jobs
                .iter()
                .filter(|j| job_status(j) == Status::FAILURE)
                .count();
            summaries.push(InstanceSummary {
                prefix,
                workflow: w.to_string(),
                instance: i.to_string(),
                status: s.status.as_str().to_owned(),
                start_time: s.start_time,
                end_time: s.end_time,
                sort_time: s.end_time.or(s.start_time).unwrap_or(0.0),
                data: serde_json::json!({
                    "jobs": inst.jobs.len(),
                    "failed_jobs": failed,
                    "run": super::read::run_of(&inst),
                })
                .to_string(),
            });
        }
        self.store
            .write_summaries(&self.master, &summaries, &removed, last_seq)
            .await?;
        tracing::info!(
            summarised = summaries.len(),
            removed = removed.len(),
            "summarised archived instances"
        );
        Ok(Some(summaries.len()))
    }

    /// Summarises what was archived while this process was down, then again after every
    /// commit that archives (`archived` changes), until `stop`. A pass that fails is retried
    /// after 10 s; the queue keeps what it has not consumed.
    pub async fn follow(
        self,
        mut archived: tokio::sync::watch::Receiver<u64>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let wait = match self.summarize().await {
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot summarise archived instances now; retrying in 10 s");
                    Some(std::time::Duration::from_secs(10))
                }
            };
            tokio::select! {
                changed = archived.changed(), if wait.is_none() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => {}
                _ = stop.changed() => return,
            }
        }
    }
}
