//! `retention_days`: archived instances whose last archiving is older than that are deleted in
//! the background, with their summaries and stored logs, one instance a transaction with a
//! pause a hundred times as long as the delete after each, so the token writer seldom waits
//! behind one (`cargo bench --bench retention` measures it).

use std::sync::Arc;
use std::time::Duration;

use crate::storage::GroupOf;
use crate::storage::Retention;

/// Instances looked up at once.
const BATCH: u32 = 20;
/// The pause after each deleted instance (and each look-up), as a multiple of the time it took: the
/// database is busy with retention at most 1/101 of the time, so few of the master's commits
/// ever wait behind one.
const PAUSE_FACTOR: u32 = 100;
/// The shortest pause.
const MIN_PAUSE: Duration = Duration::from_millis(20);
/// How often a pass runs once nothing old is left.
const EVERY: Duration = Duration::from_secs(600);

/// Runs passes until the process ends: the first at once, then every ten minutes.
pub fn spawn(storage: Arc<dyn Retention>, master: String, days: u32, group: GroupOf) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tick.tick().await;
            match pass(storage.as_ref(), &master, days, group).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(
                    deleted,
                    older_than_days = days,
                    "retention deleted archived instances"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "retention cannot delete old instances now; trying again later")
                }
            }
        }
    });
}

/// Deletes every archived instance archived more than `days` ago. Returns how many.
pub async fn pass(
    storage: &dyn Retention,
    master: &str,
    days: u32,
    group: GroupOf,
) -> Result<u64, crate::storage::StorageError> {
    let before = crate::clock::now() - i64::from(days) * 86_400;
    let mut deleted = 0;
    loop {
        let started = std::time::Instant::now();
        let old = storage
            .expired_archives(master, before, BATCH, group)
            .await?;
        // The look-up is database work too: paced like the deletes.
        tokio::time::sleep((started.elapsed() * PAUSE_FACTOR).max(MIN_PAUSE)).await;
        for prefix in &old {
            let started = std::time::Instant::now();
            let tokens = storage.delete_archived(master, prefix).await?;
            let took = started.elapsed();
            deleted += 1;
            metrics::counter!(crate::metrics::RETENTION_DELETED).increment(1);
            tracing::debug!(instance = %prefix, tokens, "retention deleted an archived instance");
            tokio::time::sleep((took * PAUSE_FACTOR).max(MIN_PAUSE)).await;
        }
        if old.is_empty() {
            return Ok(deleted);
        }
    }
}
