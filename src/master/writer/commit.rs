//! The commit of a batch: one transaction with the lease check, the rows, the archive, the
//! audit entries and the outcomes of keyed writes; retried while the database is away.

use super::*;

impl Writer {
    /// Commits a sealed batch in one transaction, bounded by [`COMMIT_WITHIN`] and abandoned
    /// (outcome unknown) when the monitor finds the database gone meanwhile. A failure holds
    /// the leases (their holders cannot renew them), and an unknown outcome makes the master
    /// reload before it writes again.
    pub(super) async fn commit(&mut self, pending: &Pending) -> Result<(), StorageError> {
        let mut batch = commit_batch(
            pending,
            self.shared.epoch,
            self.shared.options.naming.archive_group,
        );
        batch.requests = self.keyed.outcomes.iter().collect();
        if self.forgot_at.elapsed() >= FORGET_EVERY {
            batch.forget_requests_before = Some(crate::clock::now() - requests::WINDOW_SEC);
        }
        let rows = batch.upserts.len()
            + batch.deletes.len()
            + batch.archived.len()
            + batch.audits.len()
            + batch.logs.len();
        let started = Instant::now();
        let mut reachable = self.reachable.clone();
        let gone = async move {
            let _ = reachable.wait_for(|r| !*r).await;
        };
        let result = tokio::select! {
            r = tokio::time::timeout(COMMIT_WITHIN, self.storage.commit(&self.shared.name, &batch)) => {
                r.unwrap_or_else(|_| Err(StorageError::CommitUnknown {
                    cause: Cause::Timeout,
                    detail: format!("no answer within {} s", COMMIT_WITHIN.as_secs()),
                }))
            }
            () = gone => Err(StorageError::CommitUnknown {
                cause: Cause::Unreachable,
                detail: "the database stopped answering during the commit".into(),
            }),
        };
        let outcome = match &result {
            Ok(()) => "ok",
            Err(StorageError::CommitUnknown { .. }) => "unknown",
            Err(_) => "failed",
        };
        metrics::histogram!(crate::metrics::COMMIT_DURATION)
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!(crate::metrics::COMMIT_ROWS).record(rows as f64);
        metrics::counter!(crate::metrics::COMMITS, "result" => outcome).increment(1);
        match &result {
            Ok(()) => {
                if batch.forget_requests_before.is_some() {
                    self.forgot_at = Instant::now();
                }
                self.shared.db.commit_result(None);
                if self.frozen {
                    self.frozen = false;
                    tracing::info!("the database takes commits again; leases run again");
                }
            }
            Err(StorageError::Deposed(why)) => self.shared.depose(why.clone()),
            Err(e) => {
                tracing::error!(error = %e, rows = batch.upserts.len() + batch.deletes.len(), "database commit failed; the batch was not applied");
                self.shared.db.commit_result(e.cause());
                if !self.frozen {
                    self.frozen = true;
                    tracing::warn!("leases are held while the database takes no commits");
                }
                if matches!(e, StorageError::CommitUnknown { .. }) {
                    // The database may hold the batch or not: reload before the next write.
                    self.shared.healthy.store(false, Ordering::Release);
                    self.retry_at = Some((Instant::now(), Duration::from_millis(100)));
                }
            }
        }
        result
    }
}

/// The rows a sealed batch writes: every touched name's new value (or its deletion).
fn commit_batch(pending: &Pending, epoch: Option<i64>, group: GroupOf) -> CommitBatch<'_> {
    let mut batch = CommitBatch {
        epoch,
        version_floor: pending.version(),
        ..Default::default()
    };
    for (name, entry) in pending.rows() {
        match entry {
            Some(e) => batch.upserts.push(TokenRef {
                name,
                version: e.version,
                owner: e.owner.as_deref(),
                expiration_time: e.expiration_time,
                priority: e.priority,
                data: e.data.as_deref(),
            }),
            None => batch.deletes.push(name),
        }
    }
    batch.archived = pending.archived().iter().map(TokenRef::from).collect();
    batch.archive_groups = crate::storage::archive_groups(&batch.archived, group);
    batch.audits = pending.audits().iter().collect();
    batch.logs = pending.logs().iter().collect();
    batch
}
