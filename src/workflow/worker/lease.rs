//! The lease of a claimed job: the instance's signals read before it runs (while the claim's
//! lease may run), its start recorded before the command runs (for an older master), renewals beside
//! the command (and what their answers mean), and the fence that freezes the job's processes
//! when no renewal is confirmed in time.

use std::time::Duration;

use tokio::time::Instant;

use super::end::bounded;
use super::run::{Running, Stop};
use super::{InFlight, Worker};
use crate::clock;
use crate::master::MasterClient;
use crate::token::name::Level;
use crate::token::{ClaimContext, MasterError, ModifyRequest, Query, QueryRequest, Token};
use crate::workflow::error::Error;
use crate::workflow::instance::JobToken;
use crate::workflow::plan;
use crate::workflow::progress;
use crate::workflow::signal::{Action, Signals};

/// When the write `sent` may have landed unseen: the version it landed at, read back from the
/// master (it landed when the token holds exactly what was sent, owner included).
pub(super) async fn adopt(
    c: &dyn MasterClient,
    sent: Option<&Token>,
) -> Result<Option<i64>, MasterError> {
    let Some(sent) = sent else {
        return Ok(None);
    };
    // Answered at once when the master holds its leases (its database is away, or its own
    // lease lapsed): the renewal counts that answer (see `Worker::renewed`).
    let req = QueryRequest::new(vec![Query {
        name_prefix: sent.name.clone(),
        max_tokens: None,
    }]);
    let found = c.query_held(req).await?.tokens.pop().unwrap_or_default();
    Ok(found
        .into_iter()
        .find(|t| t.name == sent.name)
        .and_then(|t| {
            (t.owner == sent.owner && t.data == sent.data && t.version != sent.version)
                .then_some(t.version)
                .flatten()
        }))
}

impl Worker {
    /// Whether the instance's signals stop the claimed job before it runs: an ABORT ends it
    /// (and the instance); a DRAIN, or an EXIT for this generation, hands it back unrun. `None`
    /// when they did; otherwise the version the run's watch of them starts from.
    ///
    /// A master that does not answer is asked again while the claim's lease may still run
    /// (`granted`: from then, within the fence).
    pub(super) async fn unless_stopped_by_signals(
        &self,
        jt: &JobToken,
        context: Option<ClaimContext>,
        granted: Option<Instant>,
    ) -> Result<Option<i64>, Error> {
        let c = self.client.as_ref();
        let (w, i) = (&jt.workflow, &jt.instance);
        let level = Level::Instance(w.clone(), i.clone());
        let (signals, version) = match context {
            // The claim's answer read them in the grant's commit: no request of its own.
            Some(context) => (Signals::of_levels(&level, context.tokens), context.version),
            None => {
                let grace = granted.map_or(Duration::ZERO, |at| {
                    (at + self.fence()).saturating_duration_since(Instant::now())
                });
                let read = || Signals::watch(c, &level, None, Duration::ZERO);
                self.patiently_within(grace, "the read of the job's signals", read)
                    .await?
            }
        };
        if signals.is_set(Action::ABORT, 0) {
            let mut job = jt.job.clone();
            job.events.clear();
            progress::commit_failure(c, jt, &job, &self.name, &[], false, &progress::no_email)
                .await?;
            self.settle(w, i).await?;
            return Ok(None);
        }
        if signals.is_set(Action::DRAIN, 0)
            || signals.is_set(Action::EXIT, self.settings.generation)
        {
            // Hand it back, not claimable for one poll interval, so nobody spins on it.
            let until = clock::now() + self.settings.poll.as_secs() as i64;
            c.modify(plan::hold(jt, &self.name, until)).await?;
            return Ok(None);
        }
        Ok(Some(version))
    }

    /// Commits the open record before the command runs, through an outage of the master up to
    /// its grace. Returns false when the lease is lost (another worker has the job) or the
    /// master stayed away too long: then the command must not run.
    pub(super) async fn record_start(&self, r: &mut Running<'_>) -> bool {
        loop {
            let answer = self.renew(r).await;
            let landed = answer.is_ok();
            self.renewed(r, answer);
            if landed {
                return true;
            }
            if r.stop.is_some() {
                return false;
            }
            tokio::time::sleep(super::end::RETRY).await;
        }
    }

    /// A renewal of the lease (from the master's clock), which also writes the properties
    /// printed since the last one. It runs beside the command: see [`Worker::renewed`].
    pub(super) fn renew(&self, r: &mut Running<'_>) -> InFlight<Token> {
        let renewed = plan::renewal(
            r.jt,
            &r.job,
            r.token.version,
            &self.name,
            clock::now() + self.settings.lease.as_secs() as i64,
        );
        let unsure = r.unsure.replace(renewed.clone());
        r.sent = Some(Instant::now());
        let client = self.client.clone();
        let lease_sec = self.settings.lease.as_secs();
        let renewal = async move {
            let mut renewed = renewed;
            if let Some(version) = adopt(client.as_ref(), unsure.as_ref()).await? {
                renewed.version = Some(version);
            }
            let req = ModifyRequest {
                updates: vec![renewed],
                lease_sec: Some(lease_sec),
                ..ModifyRequest::default()
            };
            Ok::<_, MasterError>(client.renew(req).await?.updates.remove(0))
        };
        // A renewal never outlives half a lease: the next one starts fresh, so the first to
        // reach a master back from an outage is well within the lease it gives back (the
        // client's own backoff could be longer than the whole lease).
        Box::pin(bounded(self.call_limit(), renewal))
    }

    /// How long one renewal or one try at committing may take before the next starts: half a
    /// lease, so one started after a master comes back lands well within the lease it gives.
    pub(super) fn call_limit(&self) -> Duration {
        (self.settings.lease / 2).max(Duration::from_secs(1))
    }

    /// How often a lease is renewed: a third of it, and at least twice within the fence.
    pub(super) fn renew_every(&self) -> Duration {
        (self.settings.lease / 3)
            .min(self.fence() / 2)
            .max(Duration::from_millis(200))
    }

    /// How long after the last confirmed renewal was sent the job's processes may run: within
    /// the lease the master counts from when it took that renewal (at least `lease_sec - 1`,
    /// its clock counting whole seconds), with a fifth to spare for clocks that drift.
    pub(super) fn fence(&self) -> Duration {
        self.settings
            .lease
            .saturating_sub(Duration::from_secs(1))
            .mul_f64(0.8)
            .max(Duration::from_millis(400))
    }

    /// What a renewal's answer means: the new version; a conflict (another worker owns the job,
    /// or it was edited) stops the command; an outage keeps it running, up to the outage grace.
    pub(super) fn renewed(&self, r: &mut Running<'_>, answer: Result<Token, Error>) {
        let jt = r.jt;
        match answer {
            Ok(token) => {
                if r.unreachable_since.take().is_some() {
                    tracing::info!(workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, "the master answers again; the lease is renewed");
                }
                r.confirmed = r.sent.take().unwrap_or_else(Instant::now);
                r.token = token;
                r.unsure = None;
                r.thaw();
            }
            Err(Error::Master(MasterError::VersionConflict(_) | MasterError::NotFound(_))) => {
                match (r.frozen_since, r.unreachable_since) {
                    (Some(_), Some(since)) => {
                        tracing::error!(workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, unreachable_sec = since.elapsed().as_secs(), "stopped: the master was unreachable longer than the lease and gave the job to another worker; the frozen processes are killed")
                    }
                    _ => {
                        tracing::error!(workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, "lost the job's lease (another worker has it, or it was edited); killing it")
                    }
                }
                r.unsure = None;
                r.stop(Stop::LostLease);
            }
            Err(e) => {
                if matches!(e, Error::Master(MasterError::Held(_))) {
                    // The master is alive and commits nothing (its database is away): it can
                    // grant the job to no one until its next commit, which gives the lease its
                    // full length again. As good as a renewal for the fence.
                    r.confirmed = r.sent.take().unwrap_or_else(Instant::now);
                    r.thaw();
                }
                let since = *r.unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.settings.outage_grace {
                    tracing::error!(workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, error = %e, grace_sec = self.settings.outage_grace.as_secs(), "the master has been unreachable longer than master_outage_grace_sec; giving the job up");
                    r.stop(Stop::LostLease);
                } else {
                    tracing::warn!(workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, error = %e, "cannot renew the lease yet; the job runs on")
                }
            }
        }
    }
}
