//! The scheduler loop (`-m scheduler`). It long-polls a claim on every schedule token; a token
//! is claimable exactly at its next run time (its lease ends then), so the master wakes the
//! scheduler when a run is due, with no polling. For each due token it reads the workflow's
//! situation, asks `schedule::fire` what to do, and writes the new instance and the advanced
//! schedule in ONE request, so a crash can neither lose nor duplicate a run.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;

use crate::email::Mailer;
use crate::master::MasterClient;
use crate::ops::set_signal;
use crate::schedule::{Fire, OverrunPolicy, Schedule, ScheduleData, Situation};
use crate::token::name::{self, ALL_SCHEDULES, Level, WorkflowName};
use crate::token::*;
use crate::workflow::instance::{new_instance_id, with_start_attributes};
use crate::workflow::run_info::{RunInfo, RunKind, run_tokens};
use crate::workflow::signal::{Action, Attributes};
use crate::workflow::{definition, settle};

pub struct SchedulerSettings {
    pub default_max_running: u32,
    /// The longest a claim waits before the scheduler looks again (signals, shutdown).
    pub poll: Duration,
    /// How soon a delayed run is looked at again.
    pub recheck: Duration,
    /// Delivers the outbox's emails from this process too; `None` without `default_email`.
    pub mailer: Option<Mailer>,
    /// Where the emails' links point (the UI).
    pub ui_link: String,
    /// Read access to the archive, to see how an archived instance ended.
    pub store: Option<Arc<dyn crate::storage::Archive>>,
    pub master_name: String,
}

pub struct Scheduler {
    pub client: Arc<dyn MasterClient>,
    pub settings: SchedulerSettings,
    pub name: String,
}

/// The lease a claim of due schedules asks for: the master's clock is the claim's expiration
/// time less this. A scheduler killed while it handles a schedule (milliseconds) holds that
/// schedule this long, so a restarted one waits at most this long for it: 15 s, not a minute.
const CLAIM_LEASE_SEC: u64 = 15;

/// A step of the master's clock back by more than this re-plans every schedule.
const STEP_BACK_SEC: i64 = 60;

/// The master's clock, as the scheduler last read it, with the monotonic instant it was read:
/// schedules are due by the master's clock (a token is claimable at its next run time), so
/// the scheduler decides by it too, never by its own, which may be stepped.
#[derive(Debug, Default)]
struct MasterTime {
    last: Option<(i64, std::time::Instant)>,
}

impl MasterTime {
    /// Takes a reading; `true` when the master's clock went back by more than
    /// [`STEP_BACK_SEC`] since the last one (by the monotonic clock between them).
    fn read(&mut self, master_now: i64) -> bool {
        let now = std::time::Instant::now();
        let stepped_back = self.last.is_some_and(|(then, at)| {
            master_now < then + now.duration_since(at).as_secs() as i64 - STEP_BACK_SEC
        });
        self.last = Some((master_now, now));
        stepped_back
    }
}

impl Scheduler {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(scheduler = %self.name, "scheduler started");
        // The outbox's sender: the too-many emails, and any other a process recorded.
        let sender = self.settings.mailer.clone().map(|mailer| {
            tokio::spawn(crate::email::run_outbox(
                self.client.clone(),
                mailer,
                self.name.replacen("_scheduler_", "_mail_", 1),
                shutdown.clone(),
            ))
        });
        let mut time = MasterTime::default();
        while !*shutdown.borrow() {
            // The master's clock, before each claim: a step back re-plans every schedule. A
            // master that does not answer at once is asked again at the next claim; a stop
            // never waits for it.
            let health = tokio::select! {
                h = tokio::time::timeout(Duration::from_secs(2), self.client.health()) => h.ok(),
                _ = shutdown.changed() => break,
            };
            if let Some(Ok(h)) = health
                && h.time > 0
                && time.read(h.time)
            {
                tracing::warn!(
                    master_time = h.time,
                    "the master's clock went back: every schedule is planned again from its definition"
                );
                if let Err(e) = self.replan(h.time).await {
                    tracing::warn!(error = %e, "planning the schedules again failed; it is tried at the next step");
                }
            }
            // The claim's lease, counted by the master from the moment it grants the claim.
            let req = QueryAndOwnRequest {
                lease_sec: Some(CLAIM_LEASE_SEC),
                ..QueryAndOwnRequest::new(
                    &self.name,
                    0,
                    ALL_SCHEDULES,
                    Some(64),
                    Some(self.settings.poll.as_millis() as u64),
                )
            };
            let claimed = tokio::select! {
                r = self.client.query_and_own(req) => r,
                _ = shutdown.changed() => break,
            };
            match claimed {
                Ok(r) => {
                    for token in r.tokens {
                        if let Err(e) = self.handle(token).await {
                            // The claim's lease ends within CLAIM_LEASE_SEC and the token is retried.
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
        if let Some(sender) = sender {
            let _ = sender.await;
        }
        tracing::info!(scheduler = %self.name, "scheduler stopped");
    }

    /// The schedule token written back, claimable again at `at`.
    fn schedule_token(&self, claimed: &Token, data: &ScheduleData, at: i64) -> Token {
        Token {
            version: claimed.version,
            owner: Some(self.name.clone()),
            expiration_time: Some(at),
            ..data.to_token(None)
        }
    }

    async fn put_back(
        &self,
        claimed: &Token,
        data: &ScheduleData,
        at: i64,
    ) -> Result<(), MasterError> {
        let token = self.schedule_token(claimed, data, at);
        self.client
            .modify(ModifyRequest::update(vec![token]))
            .await?;
        Ok(())
    }

    async fn handle(&self, token: Token) -> Result<(), MasterError> {
        let Some(data) = ScheduleData::from_token(&token) else {
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
        // By the master's clock (when it granted the claim, from the lease's end), not this
        // process's: a scheduler whose clock was stepped ahead must not fire runs for times to
        // come.
        let now = token
            .expiration_time
            .map(|end| crate::master::state::granted_at(end, CLAIM_LEASE_SEC))
            .and_then(|t| Timestamp::from_second(t).ok())
            .unwrap_or_else(Timestamp::now);
        let step = match crate::schedule::fire::before_reading(&data, &schedule, now) {
            Some(step) => step,
            None => {
                let situation = self.situation(&w, &schedule).await?;
                let recheck = self.settings.recheck.as_secs() as i64;
                crate::schedule::fire::fire(&data, &schedule, now, situation, recheck)
            }
        };
        self.act(&token, &data, step).await
    }

    /// After the master's clock went back: every schedule due later than its definition's next
    /// run after `master_now` (planned by the clock before the step) is made due then, rather
    /// than waiting out the difference. A schedule being handled is due already, so it is not
    /// moved; the write is version-checked all the same.
    async fn replan(&self, master_now: i64) -> Result<(), MasterError> {
        let now = Timestamp::from_second(master_now).unwrap_or_else(|_| Timestamp::now());
        let mut moved = Vec::new();
        for token in self.client.query_prefix(name::SCHEDULE_PREFIX).await? {
            let Some(mut data) = ScheduleData::from_token(&token) else {
                continue;
            };
            let Ok(schedule) = Schedule::from_def(&data.schedule) else {
                continue;
            };
            let Some(next) = schedule.next_after(now).map(|t| t.as_second()) else {
                continue;
            };
            if data.next_run_time > next {
                tracing::info!(workflow = %data.workflow, was = data.next_run_time, now_due = next, "schedule planned again after the clock went back");
                data.next_run_time = next;
                moved.push(Token {
                    version: token.version,
                    owner: token.owner.clone(),
                    expiration_time: Some(next),
                    ..data.to_token(None)
                });
            }
        }
        if !moved.is_empty() {
            self.client.modify(ModifyRequest::update(moved)).await?;
        }
        Ok(())
    }

    /// What the policy needs to know of the workflow.
    async fn situation(
        &self,
        w: &WorkflowName,
        schedule: &Schedule,
    ) -> Result<Situation, MasterError> {
        let c = self.client.as_ref();
        let has_definition = definition::read(c, w).await?.is_some();
        let running = settle::running_instances(c, w).await?.len();
        let limit = schedule
            .max_running_instances
            .unwrap_or(self.settings.default_max_running) as usize;
        let last_failed =
            schedule.policy == OverrunPolicy::DELAY_UNTIL_SUCCESS && self.last_failed(w).await;
        Ok(Situation {
            has_definition,
            running,
            limit,
            last_failed,
        })
    }

    async fn act(&self, token: &Token, data: &ScheduleData, step: Fire) -> Result<(), MasterError> {
        let w = &data.workflow;
        tracing::info!(workflow = %w, step = ?step_name(&step), "schedule due");
        match step {
            Fire::NotYet { at } => self.put_back(token, data, at).await,
            Fire::Never => {
                tracing::warn!(workflow = %w, "the schedule never runs again; removing nothing, it stays for the operator");
                Ok(())
            }
            Fire::NoDefinition { data: next, at } => {
                tracing::error!(workflow = %w, "scheduled workflow has no definition in the master; skipping this run");
                self.put_back(token, &next, at).await
            }
            Fire::Delay { at } => self.put_back(token, data, at).await,
            Fire::TooMany { at, notify } => {
                if !notify {
                    return self.put_back(token, data, at).await;
                }
                // Told once per occurrence: the mark travels with the schedule, and the email
                // is recorded in the same write, so a re-check (or another scheduler) does not
                // record it again.
                let told = ScheduleData {
                    too_many_told: Some(data.next_run_time),
                    ..data.clone()
                };
                let mut updates = vec![self.schedule_token(token, &told, at)];
                updates.extend(self.too_many(data).await);
                self.client.modify(ModifyRequest::update(updates)).await?;
                Ok(())
            }
            Fire::Skip { data: next, at } | Fire::Paused { data: next, at } => {
                self.put_back(token, &next, at).await
            }
            Fire::Start {
                data: next,
                at,
                scheduled_time,
                abort_running,
            } => {
                self.start(token, next, at, scheduled_time, abort_running)
                    .await
            }
        }
    }

    async fn start(
        &self,
        token: &Token,
        mut next: ScheduleData,
        at: i64,
        scheduled_time: i64,
        abort_running: bool,
    ) -> Result<(), MasterError> {
        let c = self.client.as_ref();
        let w = next.workflow.clone();
        let Some(def) = definition::read(c, &w).await? else {
            return Ok(()); // removed since; the next look records the miss
        };
        if abort_running {
            let attributes = Attributes {
                timestamp: Some(crate::clock::now() as f64),
                ..Attributes::default()
            };
            for i in settle::running_instances(c, &w).await? {
                let level = Level::Instance(w.clone(), i.clone());
                set_signal(c, &level, Action::ABORT, attributes.clone()).await?;
                tracing::info!(workflow = %w, instance = %i, "aborted a running instance (ABORT_RUNNING)");
            }
        }
        let instance = new_instance_id();
        let attributes = [("scheduled_time".to_string(), scheduled_time.to_string())].into();
        let due =
            jiff::Timestamp::from_second(scheduled_time).unwrap_or_else(|_| jiff::Timestamp::now());
        // Import makes sure a scheduled workflow's params all have defaults.
        let run = RunInfo::new(&def, RunKind::Scheduled, due, &Default::default()).unwrap_or_else(|e| {
            tracing::error!(workflow = %w, error = %e, "a scheduled run's params do not resolve; it runs without them");
            RunInfo {
                kind: RunKind::Scheduled,
                logical_time: scheduled_time,
                interval_start: scheduled_time,
                interval_end: scheduled_time,
                ..Default::default()
            }
        });
        let mut updates =
            with_start_attributes(run_tokens(&w, &instance, &def.graph(), &run), &attributes);
        next.last_instance = Some(instance.clone());
        updates.push(self.schedule_token(token, &next, at));
        c.modify(ModifyRequest::update(updates)).await?;
        let skew = (crate::clock::now_ms() as f64 / 1000.0 - scheduled_time as f64).max(0.0);
        metrics::histogram!(crate::metrics::SCHEDULE_SKEW).record(skew);
        tracing::info!(workflow = %w, instance = %instance, skew_sec = skew, "started a scheduled instance");
        Ok(())
    }
}

/// The step's name for the log line.
fn step_name(step: &Fire) -> &'static str {
    match step {
        Fire::NotYet { .. } => "not yet due",
        Fire::Never => "never again",
        Fire::NoDefinition { .. } => "no definition",
        Fire::Delay { .. } => "delay",
        Fire::TooMany { .. } => "too many running",
        Fire::Skip { .. } => "skip",
        Fire::Paused { .. } => "paused",
        Fire::Start { .. } => "start",
    }
}
