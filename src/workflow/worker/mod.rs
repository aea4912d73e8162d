//! The worker (`-m workers`): claims the best runnable job across every instance in one
//! long-polling `query_and_own` (here), runs it with its lease renewed (`run`), commits the
//! outcome with version-checked writes, so a worker that lost its lease can never overwrite
//! its successor, and sends the emails it owes (`notify`). Signals: global DRAIN stops
//! claiming, EXIT (older generation) ends the worker, instance or workflow DRAIN/EXIT hand a
//! claimed job back, ABORT kills running jobs and ends the instance.

mod notify;
mod run;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::settle::{self, Settled};
use super::signal::{Action, Signals};
use crate::config::Config;
use crate::email::Mailer;
use crate::master::MasterClient;
use crate::token::name::{self, ALL_RUNNABLE_JOBS, InstanceId, Level, WorkflowName};
use crate::token::*;

/// How workers behave, from the configuration.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub generation: u32,
    pub lease: Duration,
    pub poll: Duration,
    /// Job logs go under `<logs_dir>/<workflow>/<instance>/`.
    pub logs_dir: PathBuf,
    pub archive_delay_sec: u64,
    pub base_url: Option<String>,
    /// Between SIGTERM and SIGKILL when a job is killed.
    pub kill_grace: Duration,
    /// On shutdown, how long running jobs may go on before they are stopped and handed back.
    pub shutdown_grace: Duration,
    /// Sends notification emails; `None` when no sender (`default_email`) is configured.
    pub mailer: Option<Mailer>,
    /// Where links in emails point (the UI).
    pub ui_link: String,
}

impl WorkerSettings {
    pub fn from_config(c: &Config) -> WorkerSettings {
        WorkerSettings {
            generation: c.generation,
            lease: Duration::from_secs(c.lease_sec),
            poll: Duration::from_secs(c.worker_poll_time_sec.max(1)),
            logs_dir: c.logs_dir(),
            archive_delay_sec: c.archive_delay_sec,
            base_url: c
                .ui_host
                .as_ref()
                .map(|h| format!("http://{h}:{}", c.ui_port)),
            kill_grace: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(c.worker_shutdown_grace_sec),
            mailer: Mailer::from_config(c),
            ui_link: format!(
                "http://{}:{}",
                c.ui_host.clone().unwrap_or_else(|| "localhost".into()),
                c.ui_port
            ),
        }
    }
}

/// `<host>_<generation>_<pid>_<index>_<ms>_<random>`, every part a `\w` run.
pub fn owner_name(generation: u32, index: usize) -> String {
    let host =
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "host".into());
    let host = name::to_word(host.trim());
    format!(
        "{host}_{generation}_{}_{index}_{}_{}",
        std::process::id(),
        crate::clock::now_ms(),
        fastrand::u32(..)
    )
}

/// Runs `count` workers until `shutdown` turns true (or an EXIT signal retires them).
pub async fn run_workers(
    client: Arc<dyn MasterClient>,
    settings: WorkerSettings,
    count: usize,
    shutdown: watch::Receiver<bool>,
) {
    let (mail, sender) = match settings.mailer.clone() {
        Some(mailer) => {
            let (tx, task) = notify::spawn_sender(mailer);
            (Some(tx), Some(task))
        }
        None => (None, None),
    };
    let settings = Arc::new(settings);
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..count {
        let worker = Worker {
            client: client.clone(),
            settings: settings.clone(),
            name: owner_name(settings.generation, index),
            sweeper: index == 0,
            mail: mail.clone(),
        };
        tasks.spawn(worker.run(shutdown.clone()));
    }
    drop(mail);
    while tasks.join_next().await.is_some() {}
    if let Some(sender) = sender {
        notify::flush(sender).await;
    }
}

pub struct Worker {
    pub client: Arc<dyn MasterClient>,
    pub settings: Arc<WorkerSettings>,
    pub name: String,
    /// The one worker per process that also looks after idle instances (archiving).
    pub sweeper: bool,
    /// Where its emails go to be sent; `None` without a mailer.
    mail: Option<tokio::sync::mpsc::Sender<notify::Mail>>,
}

impl Worker {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(worker = %self.name, generation = self.settings.generation, "worker started");
        let mut last_sweep: Option<Instant> = None;
        while !*shutdown.borrow() {
            match Signals::read(self.client.as_ref(), &Level::Global).await {
                Ok(s) if s.is_set(Action::EXIT, self.settings.generation) => {
                    tracing::info!(worker = %self.name, "EXIT is set for an older generation: worker exits");
                    break;
                }
                Ok(s) if s.is_set(Action::DRAIN, 0) => {
                    self.pause(&mut shutdown).await;
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(worker = %self.name, error = %e, "cannot read signals");
                    self.pause(&mut shutdown).await;
                    continue;
                }
            }
            if self.sweeper && last_sweep.is_none_or(|t| t.elapsed() >= self.settings.poll) {
                if let Err(e) = self.sweep().await {
                    tracing::warn!(error = %e, "sweeping instances failed");
                }
                last_sweep = Some(Instant::now());
            }
            let claimed = tokio::select! {
                r = self.client.query_and_own(self.claim()) => r,
                _ = shutdown.changed() => break,
            };
            match claimed {
                Ok(mut r) => {
                    if let Some(token) = r.tokens.pop() {
                        self.handle(token, &mut shutdown).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(worker = %self.name, error = %e, "claiming a job failed");
                    self.pause(&mut shutdown).await;
                }
            }
        }
        tracing::info!(worker = %self.name, "worker stopped");
    }

    /// The long-polled claim of the best runnable job of every instance.
    fn claim(&self) -> QueryAndOwnRequest {
        QueryAndOwnRequest::new(
            &self.name,
            crate::clock::now() + self.settings.lease.as_secs() as i64,
            ALL_RUNNABLE_JOBS,
            Some(1),
            Some(self.settings.poll.as_millis() as u64),
        )
    }

    async fn pause(&self, shutdown: &mut watch::Receiver<bool>) {
        tokio::select! {
            _ = tokio::time::sleep(self.settings.poll) => {}
            _ = shutdown.changed() => {}
        }
    }

    /// Settles every instance in the master: makes satisfied jobs runnable and archives what
    /// is finished or aborted. Only while idle, and at most once per poll interval.
    async fn sweep(&self) -> Result<(), MasterError> {
        let c = self.client.as_ref();
        let groups = |prefix: String| GroupRequest {
            name_prefix: prefix,
            group_suffix: Some("/".into()),
        };
        let workflows = c.group(groups(name::WORKFLOW_PREFIX.into())).await?;
        for w in name::workflows_of_groups(workflows.counts.keys()) {
            let instances = c.group(groups(name::workflow_prefix(&w))).await?;
            for i in name::instances_of_groups(&w, instances.counts.keys()) {
                self.settle(&w, &i).await?;
            }
        }
        Ok(())
    }

    /// Settles an instance and sends its end email when this call ended it.
    async fn settle(&self, w: &WorkflowName, i: &InstanceId) -> Result<(), MasterError> {
        let settled =
            settle::settle(self.client.as_ref(), w, i, self.settings.archive_delay_sec).await?;
        if let Settled::Finished(end) | Settled::Aborted(end) = settled {
            self.notify_end(w, i, &end).await;
            self.wake_schedule(w).await;
        }
        Ok(())
    }

    /// An instance ended: a delayed scheduled run (DELAY, DELAY_UNTIL_SUCCESS, or one held by
    /// max_running_instances) may go now. Making the workflow's schedule token claimable at
    /// once wakes the scheduler's parked claim; a schedule that is not due is put back by it.
    async fn wake_schedule(&self, w: &WorkflowName) {
        let c = self.client.as_ref();
        let Ok(Some(t)) = c.get(&name::schedule_token(w)).await else {
            return;
        };
        let now = crate::clock::now();
        if t.expiration_time.is_some_and(|e| e > now) {
            let woken = Token {
                expiration_time: Some(now),
                ..t
            };
            // A conflict means the scheduler is handling it right now: nothing to wake.
            let _ = c.modify(ModifyRequest::update(vec![woken])).await;
        }
    }
}
