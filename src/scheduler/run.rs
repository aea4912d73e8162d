//! The scheduler loop (`-m scheduler`). It long-polls a claim on every schedule token; a token
//! is claimable exactly at its next run time (its lease ends then), so the master wakes the
//! scheduler when a run is due, with no polling. For each due token it applies the overrun
//! policy and writes the new instance and the advanced schedule in ONE request, so a crash can
//! neither lose nor duplicate a run.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;

use crate::email::Mailer;
use crate::master::{MasterClient, MasterError};
use crate::schedule::{Decision, OverrunPolicy, Schedule, ScheduleData, decide};
use crate::storage::{Storage, Table};
use crate::token::name::{self, Level};
use crate::token::*;
use crate::workflow::instance::{new_instance_id, new_instance_tokens, with_start_attributes};
use crate::workflow::signal::{self, Action, Attributes};
use crate::workflow::{definition, progress};

/// Every schedule token.
pub const ALL_SCHEDULES: &str = "/schedule/workflow/*";

pub struct SchedulerSettings {
    pub default_max_running: u32,
    /// The longest a claim waits before the scheduler looks again (signals, shutdown).
    pub poll: Duration,
    /// How soon a delayed run is looked at again.
    pub recheck: Duration,
    pub mailer: Option<Mailer>,
    /// Read access to the archive, to see how an archived instance ended.
    pub store: Option<Arc<dyn Storage>>,
    pub master_name: String,
}

pub struct Scheduler {
    pub client: Arc<dyn MasterClient>,
    pub settings: SchedulerSettings,
    pub name: String,
}

impl Scheduler {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(scheduler = %self.name, "scheduler started");
        while !*shutdown.borrow() {
            let req = QueryAndOwnRequest {
                owner: self.name.clone(),
                expiration_time: crate::clock::now() + 60,
                query: Some(Query {
                    name_prefix: ALL_SCHEDULES.into(),
                    max_tokens: Some(64),
                }),
                wait_ms: Some(self.settings.poll.as_millis() as u64),
            };
            let claimed = tokio::select! {
                r = self.client.query_and_own(req) => r,
                _ = shutdown.changed() => break,
            };
            match claimed {
                Ok(r) => {
                    for token in r.tokens {
                        if let Err(e) = self.fire(token).await {
                            // The claim's lease ends within a minute and the token is retried.
                            tracing::warn!(error = %e, "handling a due schedule failed; it will be retried");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming due schedules failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        tracing::info!(scheduler = %self.name, "scheduler stopped");
    }

    /// Writes the schedule token back, claimable again at `at`.
    fn schedule_token(&self, claimed: &Token, data: &ScheduleData, at: i64) -> Token {
        Token {
            version: claimed.version,
            owner: Some(self.name.clone()),
            expiration_time: Some(at),
            ..data.to_token(None)
        }
    }

    async fn fire(&self, token: Token) -> Result<(), MasterError> {
        let c = self.client.as_ref();
        let Some(mut data) = ScheduleData::from_token(&token) else {
            tracing::error!(token = %token.name, "unreadable schedule token; leaving it");
            return Ok(());
        };
        let w = data.workflow.clone();
        let schedule = match Schedule::from_def(&data.schedule) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(workflow = %w, error = %e, "invalid schedule; leaving it");
                return Ok(());
            }
        };
        let now = Timestamp::now();
        if data.next_run_time > now.as_second() {
            // Claimed early (clocks): put it back until it is due.
            let back = self.schedule_token(&token, &data, data.next_run_time);
            c.modify(ModifyRequest::update(vec![back])).await?;
            return Ok(());
        }
        let due = Timestamp::from_second(data.next_run_time).unwrap_or(now);
        // Occurrences after this one that have also passed: collapsed into this run and counted
        // (or, with catchup, each run in turn).
        let late = schedule.count_between(due, now, 100_000);
        let next = if schedule.catchup {
            schedule.next_after(due)
        } else {
            schedule.next_after(now)
        };
        let Some(next) = next.map(|t| t.as_second()) else {
            tracing::warn!(workflow = %w, "the schedule never runs again; removing nothing, it stays for the operator");
            return Ok(());
        };
        let Some(def) = definition::read(c, &w).await? else {
            tracing::error!(workflow = %w, "scheduled workflow has no definition in the master; skipping this run");
            data.next_run_time = next;
            data.missed_runs += 1;
            c.modify(ModifyRequest::update(vec![
                self.schedule_token(&token, &data, next),
            ]))
            .await?;
            return Ok(());
        };
        let running = progress::running_instances(c, &w).await?;
        let limit = schedule
            .max_running_instances
            .unwrap_or(self.settings.default_max_running) as usize;
        let last_failed =
            schedule.policy == OverrunPolicy::DELAY_UNTIL_SUCCESS && self.last_failed(&w).await;
        let decision = decide(schedule.policy, running.len(), limit, last_failed);
        tracing::info!(workflow = %w, ?decision, running = running.len(), late, "schedule due");
        let recheck = now.as_second() + self.settings.recheck.as_secs().max(1) as i64;
        match decision {
            Decision::Delay => {
                let back = self.schedule_token(&token, &data, recheck);
                c.modify(ModifyRequest::update(vec![back])).await?;
            }
            Decision::TooMany => {
                // Tell the owners once per occurrence: on its first claim the lease end is
                // still the run time itself; rechecks carry later lease ends.
                if token.expiration_time == Some(data.next_run_time) {
                    self.too_many(&data, running.len(), limit).await;
                }
                let back = self.schedule_token(&token, &data, recheck);
                c.modify(ModifyRequest::update(vec![back])).await?;
            }
            Decision::Skip => {
                data.next_run_time = next;
                data.missed_runs += 1 + if schedule.catchup { 0 } else { late };
                let back = self.schedule_token(&token, &data, next);
                c.modify(ModifyRequest::update(vec![back])).await?;
            }
            Decision::Start | Decision::AbortRunningThenStart => {
                if decision == Decision::AbortRunningThenStart {
                    for i in &running {
                        let attrs = Attributes {
                            timestamp: Some(now.as_second() as f64),
                            generation: None,
                        };
                        signal::set(
                            c,
                            &Level::Instance(w.clone(), i.clone()),
                            Action::ABORT,
                            attrs,
                        )
                        .await?;
                        tracing::info!(workflow = %w, instance = %i, "aborted a running instance (ABORT_RUNNING)");
                    }
                }
                let instance = new_instance_id();
                let attributes =
                    [("scheduled_time".to_string(), data.next_run_time.to_string())].into();
                let mut updates = with_start_attributes(
                    new_instance_tokens(&w, &instance, &def.graph()),
                    &attributes,
                );
                data.next_run_time = next;
                data.missed_runs += if schedule.catchup { 0 } else { late };
                data.last_instance = Some(instance.clone());
                updates.push(self.schedule_token(&token, &data, next));
                c.modify(ModifyRequest::update(updates)).await?;
                tracing::info!(workflow = %w, instance = %instance, "started a scheduled instance");
            }
        }
        Ok(())
    }

    /// Whether the workflow's most recent finished instance (live or archived, a manual retry
    /// included) ended FAILURE or ABORTED. Never run counts as not failed; an unreadable
    /// archive counts as failed, so DELAY_UNTIL_SUCCESS waits rather than guess.
    async fn last_failed(&self, w: &str) -> bool {
        let live = match self.client.query_prefix(&name::workflow_prefix(w)).await {
            Ok(t) => t,
            Err(_) => return true,
        };
        let mut finished: Vec<(u64, &'static str)> = Vec::new();
        let mut by_instance = |tokens: Vec<Token>, archived: bool| {
            let mut groups: std::collections::BTreeMap<String, Vec<Token>> =
                std::collections::BTreeMap::new();
            for t in tokens {
                if let Some(i) = t
                    .name
                    .split('/')
                    .nth(3)
                    .filter(|i| *i != name::SIGNAL_SEGMENT)
                {
                    groups.entry(i.to_owned()).or_default().push(t);
                }
            }
            for (i, ts) in groups {
                if let (Ok(id), Some(o)) =
                    (i.parse::<u64>(), progress::outcome(w, &i, &ts, archived))
                {
                    finished.push((id, o));
                }
            }
        };
        by_instance(live, false);
        if let Some(store) = &self.settings.store {
            match store
                .read(
                    &self.settings.master_name,
                    Table::Archived,
                    &name::workflow_prefix(w),
                )
                .await
            {
                Ok(archived) => by_instance(archived, true),
                Err(_) => return true,
            }
        }
        finished
            .iter()
            .max_by_key(|(id, _)| *id)
            .is_some_and(|(_, o)| *o != "SUCCESS")
    }

    async fn too_many(&self, data: &ScheduleData, running: usize, limit: usize) {
        let w = &data.workflow;
        tracing::warn!(workflow = %w, running, limit, "too many instances running; the scheduled run waits");
        let Some(mailer) = &self.settings.mailer else {
            return;
        };
        let subject = format!("Too many ({running}) instances running for workflow {w} !");
        let text = format!(
            "There are {running} instances running at the same time for workflow {w}, reaching the limit of {limit}.\n"
        );
        if let Err(e) = mailer
            .send(
                &data.emails,
                &subject,
                &text,
                &format!("<p>{}</p>", crate::email::html_escape(&text)),
            )
            .await
        {
            tracing::error!(error = %e, "cannot send email");
        }
    }
}
