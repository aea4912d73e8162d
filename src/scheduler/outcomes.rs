//! A workflow's last outcome, for DELAY_UNTIL_SUCCESS: its live instances from the master, its
//! archived ones from their summaries (and from their tokens only while not summarised yet).

use std::collections::BTreeMap;

use super::run::Scheduler;
use crate::storage::{Archive, StorageError, Table};
use crate::token::Token;
use crate::token::name::{self, InstanceId, WorkflowName};
use crate::workflow::settle;
use crate::workflow::status::Status;

/// The finished instances among `tokens` (of workflow `w`), by numeric instance id.
fn outcomes(w: &WorkflowName, tokens: Vec<Token>, archived: bool) -> Vec<(u64, Status)> {
    let mut groups: BTreeMap<InstanceId, Vec<Token>> = BTreeMap::new();
    for t in tokens {
        if let Some((_, i)) = name::instance_of(&t.name) {
            groups.entry(i).or_default().push(t);
        }
    }
    groups
        .into_iter()
        .filter_map(|(i, ts)| Some((i.parse().ok()?, settle::outcome(w, &i, &ts, archived)?)))
        .collect()
}

/// Queue rows looked through for instances archived but not summarised yet; a longer queue
/// (its summariser far behind) means the whole archive is read.
const PENDING_LOOKED: u32 = 1_000;

/// The outcomes among `w`'s archived instances that may be its latest: the newest summary, and
/// every instance queued for a summary it does not have yet.
async fn archived_outcomes(
    store: &dyn Archive,
    master: &str,
    w: &WorkflowName,
) -> Result<Vec<(u64, Status)>, StorageError> {
    let prefix = name::workflow_prefix(w);
    let pending = store.archive_queue(master, PENDING_LOOKED).await?;
    if pending.len() >= PENDING_LOOKED as usize {
        let all = store.read(master, Table::Archived, &prefix).await?;
        return Ok(outcomes(w, all, true));
    }
    let (newest, _) = store.summaries(master, w.as_str(), 0, 1).await?;
    let mut out: Vec<(u64, Status)> = newest
        .iter()
        .filter_map(|s| Some((s.instance.parse().ok()?, Status::parse(&s.status)?)))
        .collect();
    let queued: std::collections::BTreeSet<String> = pending
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| p.starts_with(&prefix))
        .collect();
    for p in queued {
        let tokens = store.read(master, Table::Archived, &p).await?;
        out.extend(outcomes(w, tokens, true));
    }
    Ok(out)
}

impl Scheduler {
    /// Whether the workflow's most recent finished instance (live or archived, a manual retry
    /// included) ended FAILURE or ABORTED. Never run counts as not failed; an unreadable
    /// archive counts as failed, so DELAY_UNTIL_SUCCESS waits rather than guess. Archived
    /// instances are read from their summaries (the newest one), and from their tokens only
    /// while archived but not summarised yet.
    pub async fn last_failed(&self, w: &WorkflowName) -> bool {
        let Ok(live) = self.client.query_prefix(&name::workflow_prefix(w)).await else {
            return true;
        };
        let mut finished = outcomes(w, live, false);
        if let Some(store) = &self.settings.store {
            match archived_outcomes(store.as_ref(), &self.settings.master_name, w).await {
                Ok(archived) => finished.extend(archived),
                Err(e) => {
                    tracing::warn!(workflow = %w, error = %e, "cannot read the workflow's archived outcomes; DELAY_UNTIL_SUCCESS waits");
                    return true;
                }
            }
        }
        finished
            .iter()
            .max_by_key(|(id, _)| *id)
            .is_some_and(|(_, o)| *o != Status::SUCCESS)
    }
}
