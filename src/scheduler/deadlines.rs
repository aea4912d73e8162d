//! The deadline loop of the scheduler process: it long-polls a claim on the deadline watches
//! (`workflow::deadlines`). A watch becomes claimable when its moment comes (its lease is the
//! timer), so the master wakes this loop exactly then and nothing polls. For each, it asks
//! where the run stands and records what is due: a met watch is removed, one to look at again
//! is put back until then, and a miss is recorded in ONE version-checked write with the
//! `deadline_missed` notices of the workflow's rules (and the email to their addresses), which
//! also marks the watch as the run's record of the miss: a scheduler killed anywhere neither
//! loses the notice nor sends it twice.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::master::MasterClient;
use crate::ops::{Ops, OpsSettings, Standing};
use crate::parser::notify::NotifyEvent;
use crate::token::name::{self, DEADLINE_PREFIX, InstanceId, WorkflowName};
use crate::token::*;
use crate::workflow::deadlines::{Due, Missed, RunState, Watch};
use crate::workflow::mail::Notifier;
use crate::workflow::status::Status;
use crate::workflow::{definition, notices};

pub struct DeadlineWatcher {
    pub client: Arc<dyn MasterClient>,
    /// The owner its claims are made in.
    pub name: String,
    /// The longest a claim waits before the loop looks again (shutdown).
    pub poll: Duration,
    /// To ask where a run stands (live, or in the archive).
    pub ops: OpsSettings,
    pub store: Option<Arc<dyn crate::storage::Storage>>,
    /// Where notices' links point, and whether emails are recorded.
    pub notifier: Notifier,
}

/// A claim's lease: a scheduler that dies holding a watch delays it this long.
const CLAIM_LEASE_SEC: u64 = 30;

fn state_of(s: Standing) -> RunState {
    match s {
        Standing::Running => RunState::Running,
        Standing::Finished(Status::SUCCESS) | Standing::Archived(Some(Status::SUCCESS)) => {
            RunState::Succeeded
        }
        Standing::Finished(_) | Standing::Archived(_) => RunState::Failed,
        Standing::Missing => RunState::Gone,
    }
}

impl DeadlineWatcher {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(owner = %self.name, "deadline loop started");
        while !*shutdown.borrow() {
            let ask = super::claim::Ask {
                owner: &self.name,
                prefix: DEADLINE_PREFIX,
                lease_sec: CLAIM_LEASE_SEC,
                max: 64,
                wait: self.poll,
            };
            let Some(tokens) = super::claim::claim(self.client.as_ref(), ask, &mut shutdown).await
            else {
                break;
            };
            for t in tokens {
                if let Err(e) = self.look(t).await {
                    tracing::warn!(error = %e, "a deadline watch could not be settled; it is looked at again");
                }
            }
        }
        tracing::info!(owner = %self.name, "deadline loop stopped");
    }

    fn ops(&self) -> Ops<'_> {
        let ops = Ops::new(self.client.as_ref(), self.ops.clone());
        match &self.store {
            Some(s) => ops.with_store(s.clone()),
            None => ops,
        }
    }

    /// Records what watch `t` has due now.
    async fn look(&self, t: Token) -> Result<(), crate::ops::OpsError> {
        let c = self.client.as_ref();
        let (Some((w, i)), Some(watch)) = (name::deadline_of(&t.name), Watch::from_token(&t))
        else {
            tracing::error!(token = %t.name, "unreadable deadline watch; removing it");
            c.modify(ModifyRequest::delete(vec![t])).await?;
            return Ok(());
        };
        let now = crate::clock::now();
        let state = state_of(self.ops().standing(&w, &i).await?);
        match watch.decide(now, state) {
            Due::Met => {
                c.modify(ModifyRequest::delete(vec![t])).await?;
            }
            Due::Later(at) => {
                let again = Token {
                    version: t.version,
                    ..watch.token(&w, &i, at)
                };
                c.modify(ModifyRequest::update(vec![again])).await?;
            }
            Due::Missed(why) => self.missed(&w, &i, t, watch, state, why).await?,
        }
        Ok(())
    }

    /// Records the miss on the watch (kept, never claimable again, as the run's record) with
    /// its notices, in one write.
    async fn missed(
        &self,
        w: &WorkflowName,
        i: &InstanceId,
        t: Token,
        mut watch: Watch,
        state: RunState,
        why: String,
    ) -> Result<(), crate::ops::OpsError> {
        let c = self.client.as_ref();
        let now = crate::clock::now();
        watch.missed = Some(Missed {
            at: now,
            why: why.clone(),
        });
        let record = Token {
            version: t.version,
            ..watch.token(w, i, NEVER)
        };
        let rules = definition::read(c, w)
            .await?
            .map(|d| d.notify)
            .unwrap_or_default();
        let kind = NotifyEvent::DeadlineMissed;
        let (hooks, addresses) = notices::targets(&rules, kind);
        let run = self.ops().run_of(w, i).await?;
        let status = match state {
            RunState::Running => "RUNNING",
            RunState::Succeeded => "SUCCESS",
            RunState::Failed => "FAILURE",
            RunState::Gone => "UNKNOWN",
        };
        let e = notices::Event {
            kind,
            workflow: w,
            instance: Some(i),
            job: None,
            status,
            exit_code: None,
            attempt: None,
            execution: None,
            run: run.as_ref(),
            seq: now,
            reason: Some(&why),
        };
        let mut updates = vec![record];
        updates.extend(notices::tokens(&e, &hooks, &self.notifier.ui_link));
        updates.extend(self.notifier.deadline_missed(w, i, &why, now, addresses));
        c.modify(ModifyRequest::update(updates)).await?;
        metrics::counter!(crate::metrics::DEADLINES_MISSED).increment(1);
        tracing::warn!(workflow = %w, instance = %i, why, "a run missed its deadline");
        Ok(())
    }
}
