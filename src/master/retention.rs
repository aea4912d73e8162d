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
/// Ends when `until` changes or its sender goes (its master deposed or gone).
pub fn spawn(
    storage: Arc<dyn Retention>,
    master: String,
    days: u32,
    group: GroupOf,
    mut until: tokio::sync::watch::Receiver<Option<String>>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = until.changed() => return,
            }
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::storage::StorageError;

    /// Archived instances by prefix, with the time their last token was archived.
    struct Archive(Mutex<Vec<(String, i64)>>);

    #[async_trait]
    impl Retention for Archive {
        async fn delete_archived(&self, _: &str, prefix: &str) -> Result<u64, StorageError> {
            let mut all = self.0.lock().unwrap();
            let before = all.len();
            all.retain(|(p, _)| p != prefix);
            Ok((before - all.len()) as u64)
        }

        async fn expired_archives(
            &self,
            _: &str,
            archived_before: i64,
            limit: u32,
            _: GroupOf,
        ) -> Result<Vec<String>, StorageError> {
            let all = self.0.lock().unwrap();
            Ok(all
                .iter()
                .filter(|(_, at)| *at < archived_before)
                .take(limit as usize)
                .map(|(p, _)| p.clone())
                .collect())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pass_deletes_every_expired_instance_in_paced_batches() {
        let now = crate::clock::now();
        let mut instances: Vec<(String, i64)> = (0..45)
            .map(|n| (format!("/workflow/w/{n}/"), now - 40 * 86_400))
            .collect();
        instances.push(("/workflow/w/recent/".into(), now - 86_400));
        let archive = Archive(Mutex::new(instances));
        let started = tokio::time::Instant::now();
        let deleted = pass(&archive, "default", 30, |n| n).await.unwrap();
        assert_eq!(deleted, 45, "every instance older than 30 days");
        let left = archive.0.lock().unwrap().clone();
        assert_eq!(left, [("/workflow/w/recent/".to_owned(), now - 86_400)]);
        // Three look-ups (20, 20, 5 and then none: four) and 45 deletes, each followed by a
        // pause of at least MIN_PAUSE: the database is left alone between them.
        let paced = tokio::time::Instant::now() - started;
        assert!(
            paced >= MIN_PAUSE * (45 + 4),
            "paused {paced:?} in virtual time"
        );
    }
}
