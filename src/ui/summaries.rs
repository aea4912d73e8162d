//! The writer of `instance_summaries`: when the master archives an instance, the same commit
//! queues its prefix in `archive_queue`; this summarises queued instances from their archived
//! tokens (status, times, job counts) and drops what it consumed, in one transaction per pass.
//! Lists of finished instances then read one row each instead of a whole history. It runs in
//! the background (`ui::serve`) and one bounded pass before a list is served.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::data::Instance;
use crate::storage::{InstanceSummary, Storage, StorageError, Table};
use crate::token::name::instance_of_prefix;
use crate::workflow::status::{Status, job_status};

/// Queue rows summarised per pass (each pass is one transaction).
const SUMMARY_BATCH: u32 = 500;

#[derive(Clone)]
pub struct Summarizer {
    store: Arc<dyn Storage>,
    master: String,
    /// One pass at a time per process.
    running: Arc<tokio::sync::Mutex<()>>,
}

impl Summarizer {
    pub fn new(store: Arc<dyn Storage>, master: String) -> Self {
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
                data: serde_json::json!({"jobs": inst.jobs.len(), "failed_jobs": failed})
                    .to_string(),
            });
        }
        self.store
            .write_summaries(&self.master, &summaries, &removed, last_seq)
            .await?;
        tracing::info!(
            summarised = summaries.len(),
            removed = removed.len(),
            "ui summarised archived instances"
        );
        Ok(Some(summaries.len()))
    }
}
