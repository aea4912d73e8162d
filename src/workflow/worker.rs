//! The worker (`-m workers`): claims the best runnable job across every instance in one
//! long-polling `query_and_own`, runs it with its lease renewed, and commits the outcome with
//! version-checked writes, so a worker that lost its lease can never overwrite its successor.
//! Signals: global DRAIN stops claiming, EXIT (older generation) ends the worker, instance or
//! workflow DRAIN/EXIT hand a claimed job back, ABORT kills running jobs and ends the instance.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::executor::{self, ExecSpec, Report};
use super::instance::JobToken;
use super::job::{ExecutionRecord, Job, customize_command, merged_attributes};
use super::progress::{self, Committed};
use super::signal::{Action, Signals};
use crate::clock::now as unix_now;
use crate::clock::now_f64 as epoch_secs_f64;
use crate::config::Config;
use crate::email::{Mailer, html_escape};
use crate::master::{MasterClient, MasterError};
use crate::token::name::{self, ALL_RUNNABLE_JOBS, JobState, Level};
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
        let root = c
            .local_logs_dir_prefix
            .as_ref()
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        WorkerSettings {
            generation: c.generation,
            lease: Duration::from_secs(c.lease_sec),
            poll: Duration::from_secs(c.worker_poll_time_sec.max(1)),
            logs_dir: root.join(&c.job_log_path_prefix),
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
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let ms = crate::clock::now_ms();
    format!(
        "{host}_{generation}_{}_{index}_{ms}_{}",
        std::process::id(),
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
    let settings = Arc::new(settings);
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..count {
        let worker = Worker {
            client: client.clone(),
            settings: settings.clone(),
            name: owner_name(settings.generation, index),
            sweeper: index == 0,
        };
        tasks.spawn(worker.run(shutdown.clone()));
    }
    while tasks.join_next().await.is_some() {}
}

pub struct Worker {
    pub client: Arc<dyn MasterClient>,
    pub settings: Arc<WorkerSettings>,
    pub name: String,
    /// The one worker per process that also looks after idle instances (archiving).
    pub sweeper: bool,
}

/// How a run ended, for the commit.
enum Ending {
    Finished(Job),
    /// Aborted by a signal: the job goes back to waiting and the instance ends.
    Aborted(Job),
    /// Shutting down: the job goes back to runnable for another worker.
    HandedBack(Job),
    LostLease,
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
            let req = QueryAndOwnRequest {
                owner: self.name.clone(),
                expiration_time: unix_now() + self.settings.lease.as_secs() as i64,
                query: Some(Query {
                    name_prefix: ALL_RUNNABLE_JOBS.into(),
                    max_tokens: Some(1),
                }),
                wait_ms: Some(self.settings.poll.as_millis() as u64),
            };
            let claimed = tokio::select! {
                r = self.client.query_and_own(req) => r,
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
        let workflows = c
            .group(GroupRequest {
                name_prefix: name::WORKFLOW_PREFIX.into(),
                group_suffix: Some("/".into()),
            })
            .await?;
        for key in workflows.counts.keys() {
            let w = key.trim_start_matches(name::WORKFLOW_PREFIX);
            if w == name::SIGNAL_SEGMENT {
                continue;
            }
            let instances = c
                .group(GroupRequest {
                    name_prefix: name::workflow_prefix(w),
                    group_suffix: Some("/".into()),
                })
                .await?;
            for ikey in instances.counts.keys() {
                let i = &ikey[name::workflow_prefix(w).len()..];
                if i != name::SIGNAL_SEGMENT {
                    self.settle(w, i).await?;
                }
            }
        }
        Ok(())
    }

    async fn handle(&self, token: Token, shutdown: &mut watch::Receiver<bool>) {
        let jt = match JobToken::parse(token) {
            Ok(jt) => jt,
            Err(e) => {
                tracing::error!(error = %e, "claimed a token that is not a readable job; leaving it to its lease");
                return;
            }
        };
        if let Err(e) = self.handle_job(&jt, shutdown).await {
            tracing::error!(worker = %self.name, job = %jt.token.name, error = %e, "job handling failed; its lease will expire and another worker will retry it");
        }
    }

    async fn handle_job(
        &self,
        jt: &JobToken,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), MasterError> {
        let c = self.client.as_ref();
        let (w, i) = (jt.workflow.clone(), jt.instance.clone());
        let signals = Signals::read(c, &Level::Instance(w.clone(), i.clone())).await?;
        if signals.is_set(Action::ABORT, 0) {
            let mut job = jt.job.clone();
            job.events.clear();
            progress::commit_failure(c, jt, &job, &self.name, false).await?;
            self.settle(&w, &i).await?;
            return Ok(());
        }
        if signals.is_set(Action::DRAIN, 0)
            || signals.is_set(Action::EXIT, self.settings.generation)
        {
            // Hand it back, not claimable for one poll interval, so nobody spins on it.
            let mut token = jt.rewritten(JobState::Runnable, &jt.job);
            token.owner = Some(self.name.clone());
            token.expiration_time = Some(unix_now() + self.settings.poll.as_secs() as i64);
            c.modify(ModifyRequest::update(vec![token])).await?;
            return Ok(());
        }
        let mut job = jt.job.clone();
        if job.history.last().is_some_and(|r| r.end_time.is_none()) {
            // Its previous worker died or lost its lease mid-run: that attempt failed.
            let record = job.history.last_mut().expect("checked");
            record.end_time = Some(epoch_secs_f64());
            record.exit_code = Some(1);
            self.pinlog(
                &w,
                &i,
                &job.name.clone(),
                record,
                "executor failed to renew job ownership on time",
            );
            tracing::warn!(job = %jt.token.name, "previous execution lost its lease; counted as a failed attempt");
            return self.commit(jt, Ending::Finished(job)).await;
        }
        let started = epoch_secs_f64();
        let mut record = ExecutionRecord {
            info: if job.disabled {
                "DISABLED".into()
            } else {
                job.command.clone()
            },
            instance: i.clone(),
            start_time: started,
            events: std::mem::take(&mut job.events),
            worker: self.name.clone(),
            ..Default::default()
        };
        if job.is_condition() && job.history.len() >= job.max_attempts as usize {
            let keep = job.max_attempts.saturating_sub(1) as usize;
            job.history.drain(..job.history.len() - keep);
        }
        if job.disabled {
            record.end_time = Some(started);
            record.exit_code = Some(0);
            job.history.push(record);
            tracing::info!(job = %jt.token.name, "job is disabled: completed without running");
            return self.commit(jt, Ending::Finished(job)).await;
        }
        let dir = self.settings.logs_dir.join(&w).join(&i);
        // `<job>.<start second>.<kind>` as the original; an attempt that starts in the same second
        // as an earlier one (a quick retry) gets its execution number too, so logs never mix.
        let mut stem = format!("{}.{}", job.name, started as i64);
        if dir.join(format!("{stem}.stdout")).exists() {
            stem = format!("{stem}.{}", job.history.len());
        }
        for kind in ["stdout", "stderr"] {
            record.logs.insert(
                kind.into(),
                dir.join(format!("{stem}.{kind}")).display().to_string(),
            );
        }
        if let Err(e) = std::fs::create_dir_all(&dir) {
            record.end_time = Some(epoch_secs_f64());
            record.exit_code = Some(1);
            tracing::error!(dir = %dir.display(), error = %e, "cannot create the job log directory");
            job.history.push(record);
            return self.commit(jt, Ending::Finished(job)).await;
        }
        job.history.push(record);
        // The claim already holds the lease. The start (the open record the UI shows as RUNNING,
        // and that an heir counts if this worker dies) is written by the first lease renewal,
        // right after the spawn, so it is not on the path from one job to the next.
        let (jt, ending) = self.execute(jt, job, shutdown).await;
        self.commit(&jt, ending).await
    }

    /// Runs the command, renewing the lease and watching for ABORT, until it ends. Returns the
    /// job token at its latest version (renewals advance it) and how the run ended.
    async fn execute(
        &self,
        jt: &JobToken,
        mut job: Job,
        shutdown: &mut watch::Receiver<bool>,
    ) -> (JobToken, Ending) {
        let c = self.client.as_ref();
        let index = job.history.len() - 1;
        let record = job.history[index].clone();
        let attributes = merged_attributes(&record.events);
        let command = customize_command(&job.command, &attributes).unwrap_or_else(|e| {
            tracing::warn!(job = %jt.token.name, error = %e, "running the command unsubstituted");
            job.command.clone()
        });
        let mut env = vec![
            ("PINBALL_WORKFLOW".to_owned(), jt.workflow.clone()),
            ("PINBALL_INSTANCE".to_owned(), jt.instance.clone()),
            ("PINBALL_JOB".to_owned(), job.name.clone()),
            ("PINBALL_EXECUTION".to_owned(), index.to_string()),
        ];
        if let Some(url) = &self.settings.base_url {
            env.push(("PINBALL_BASE_URL".into(), url.clone()));
        }
        let spec = ExecSpec {
            command,
            env,
            stdout_log: record.logs["stdout"].clone().into(),
            stderr_log: record.logs["stderr"].clone().into(),
            abort_timeout: job.abort_timeout_sec.map(Duration::from_secs),
            warn_timeout: job.warn_timeout_sec.map(Duration::from_secs),
            kill_grace: self.settings.kill_grace,
        };
        tracing::info!(worker = %self.name, job = %jt.token.name, execution = index, "job started");
        let (reports_tx, mut reports) = mpsc::unbounded_channel();
        let (abort_tx, abort_rx) = watch::channel(false);
        let run = executor::run(spec, reports_tx, abort_rx);
        tokio::pin!(run);
        let mut token = jt.token.clone();
        let renew_every = (self.settings.lease / 3).max(Duration::from_secs(1));
        // The first tick fires at once: it publishes the start.
        let mut tick = tokio::time::interval(renew_every);
        let mut dirty = false;
        let mut why: Option<&str> = None;
        let mut shutdown_deadline: Option<Instant> = None;
        let result = loop {
            tokio::select! {
                // The command first: on the first pass this spawns it, before the start is written.
                biased;
                result = &mut run => break result,
                Some(report) = reports.recv() => match report {
                    Report::Property(k, v) => {
                        let values = job.history[index].properties.entry(k).or_default();
                        if !values.contains(&v) {
                            values.push(v);
                            dirty = true;
                        }
                    }
                    Report::WarnTimeout => {
                        tracing::warn!(job = %jt.token.name, "job exceeded its warn_timeout_sec");
                        self.notify_timeout(jt, &job, index).await;
                    }
                },
                _ = tick.tick() => {
                    if let Ok(s) = Signals::read(c, &Level::Instance(jt.workflow.clone(), jt.instance.clone())).await
                        && s.is_set(Action::ABORT, 0) && why.is_none() {
                        why = Some("aborted");
                        let _ = abort_tx.send(true);
                    }
                    let mut renewed = jt.rewritten(JobState::Runnable, &job);
                    renewed.version = token.version;
                    renewed.owner = Some(self.name.clone());
                    renewed.expiration_time = Some(unix_now() + self.settings.lease.as_secs() as i64);
                    match c.modify(ModifyRequest::update(vec![renewed])).await {
                        Ok(mut r) => { token = r.updates.remove(0); dirty = false; }
                        Err(MasterError::VersionConflict(_) | MasterError::NotFound(_)) => {
                            tracing::error!(job = %jt.token.name, "lost the job's lease; killing it");
                            let _ = abort_tx.send(true);
                            why = Some("lost lease");
                        }
                        Err(e) => tracing::warn!(job = %jt.token.name, error = %e, dirty, "cannot renew the lease yet"),
                    }
                },
                _ = shutdown.changed(), if shutdown_deadline.is_none() => {
                    shutdown_deadline = Some(Instant::now() + self.settings.shutdown_grace);
                    tracing::info!(job = %jt.token.name, grace_sec = self.settings.shutdown_grace.as_secs(), "shutting down: letting the job finish");
                },
                _ = sleep_until(shutdown_deadline), if why.is_none() => {
                    why = Some("handed back");
                    let _ = abort_tx.send(true);
                },
            }
        };
        while let Ok(Report::Property(k, v)) = reports.try_recv() {
            let values = job.history[index].properties.entry(k).or_default();
            if !values.contains(&v) {
                values.push(v);
            }
        }
        let (w, i) = (jt.workflow.clone(), jt.instance.clone());
        let record = &mut job.history[index];
        record.end_time = Some(epoch_secs_f64());
        match result {
            Ok(r) => {
                record.exit_code = Some(r.exit_code);
                if let Some(reason) = r.killed_because.as_deref().filter(|_| why.is_none()) {
                    self.pinlog(
                        &w,
                        &i,
                        &job.name.clone(),
                        record,
                        &format!("killed: {reason}"),
                    );
                }
            }
            Err(e) => {
                record.exit_code = Some(1);
                self.pinlog(
                    &w,
                    &i,
                    &job.name.clone(),
                    record,
                    &format!("could not run the command: {e}"),
                );
            }
        }
        let record = &job.history[index];
        tracing::info!(worker = %self.name, job = %jt.token.name, exit_code = record.exit_code, "job ended");
        if !record.succeeded() && why.is_none() {
            self.cleanup(&w, &i, &mut job, index).await;
        }
        let ending = match why {
            Some("lost lease") => Ending::LostLease,
            Some("aborted") => Ending::Aborted(job),
            Some(_) => Ending::HandedBack(job),
            None => Ending::Finished(job),
        };
        (
            JobToken {
                token,
                ..jt.clone()
            },
            ending,
        )
    }

    /// Runs the cleanup template after a failed run, with the `kill_id` values it reported.
    async fn cleanup(&self, w: &str, i: &str, job: &mut Job, index: usize) {
        let Some(template) = job.cleanup_template.clone() else {
            return;
        };
        let record = &mut job.history[index];
        let kill_ids = record
            .properties
            .get("kill_id")
            .map(|v| v.join(","))
            .unwrap_or_default();
        let attributes = [("kill_id".to_string(), kill_ids)].into();
        let command = customize_command(&template, &attributes).unwrap_or(template);
        let spec = ExecSpec {
            command: format!(
                "echo '\n<<<<<<<<<<Start of cleanup code logs>>>>>>>>>>'; echo '\n<<<<<<<<<<Start of cleanup code logs>>>>>>>>>>' >&2; {{ {command}\n}}; rc=$?; echo '\n<<<<<<<<<<End of cleanup code logs>>>>>>>>>>'; echo '\n<<<<<<<<<<End of cleanup code logs>>>>>>>>>>' >&2; exit $rc"
            ),
            env: vec![
                ("PINBALL_WORKFLOW".into(), w.into()),
                ("PINBALL_INSTANCE".into(), i.into()),
                ("PINBALL_JOB".into(), job.name.clone()),
            ],
            stdout_log: record.logs["stdout"].clone().into(),
            stderr_log: record.logs["stderr"].clone().into(),
            abort_timeout: Some(Duration::from_secs(600)),
            warn_timeout: None,
            kill_grace: self.settings.kill_grace,
        };
        let (tx, _rx) = mpsc::unbounded_channel();
        let (_abort, abort_rx) = watch::channel(false);
        record.cleanup_exit_code = Some(
            executor::run(spec, tx, abort_rx)
                .await
                .map_or(1, |r| r.exit_code),
        );
    }

    /// Appends a line to the execution's pinlog (Pinball's own notes about it).
    fn pinlog(&self, w: &str, i: &str, job: &str, record: &mut ExecutionRecord, message: &str) {
        let dir = self.settings.logs_dir.join(w).join(i);
        let path = record
            .logs
            .entry("pinlog".into())
            .or_insert_with(|| {
                dir.join(format!("{job}.{}.pinlog", record.start_time as i64))
                    .display()
                    .to_string()
            })
            .clone();
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            use std::io::Write;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?
                .write_all(format!("{message}\n").as_bytes())
        });
        if let Err(e) = written {
            tracing::warn!(path, error = %e, "cannot write the pinlog");
        }
    }

    async fn commit(&self, jt: &JobToken, ending: Ending) -> Result<(), MasterError> {
        let c = self.client.as_ref();
        let committed = match &ending {
            Ending::LostLease => Committed::LostLease,
            Ending::Finished(job) if job.history.last().is_some_and(ExecutionRecord::succeeded) => {
                progress::commit_success(c, jt, job, &self.name).await?
            }
            Ending::Finished(job) => {
                let retry = job.can_retry();
                if retry {
                    tracing::info!(job = %jt.token.name, delay_sec = job.retry_delay_sec, "job failed; it will be retried");
                } else {
                    tracing::warn!(job = %jt.token.name, "job failed with no attempts left");
                }
                progress::commit_failure(c, jt, job, &self.name, retry).await?
            }
            Ending::Aborted(job) => progress::commit_failure(c, jt, job, &self.name, false).await?,
            Ending::HandedBack(job) => {
                let mut next = job.clone();
                next.events = job
                    .history
                    .last()
                    .map(|r| r.events.clone())
                    .unwrap_or_default();
                c.modify(ModifyRequest::update(vec![
                    jt.rewritten(JobState::Runnable, &next),
                ]))
                .await?;
                tracing::info!(job = %jt.token.name, "handed the job back for another worker");
                return Ok(());
            }
        };
        if committed == Committed::LostLease {
            tracing::warn!(job = %jt.token.name, "another worker owns this job now; this result is dropped");
            return Ok(());
        }
        if let Ending::Finished(job) | Ending::Aborted(job) = &ending
            && !job.history.last().is_some_and(ExecutionRecord::succeeded)
            && !(matches!(ending, Ending::Finished(_)) && job.can_retry())
        {
            self.notify_failure(jt, job, committed == Committed::FirstFailure)
                .await;
        }
        self.settle(&jt.workflow, &jt.instance).await?;
        Ok(())
    }

    /// Settles an instance and sends its end email when this call ended it.
    async fn settle(&self, w: &str, i: &str) -> Result<(), MasterError> {
        if let progress::Settled::Finished(end) | progress::Settled::Aborted(end) =
            progress::settle(self.client.as_ref(), w, i, self.settings.archive_delay_sec).await?
        {
            self.notify_end(w, i, &end).await;
            self.wake_schedule(w).await;
        }
        Ok(())
    }

    /// An instance ended: a delayed scheduled run (DELAY, DELAY_UNTIL_SUCCESS, or one held by
    /// max_running_instances) may go now. Making the workflow's schedule token claimable at
    /// once wakes the scheduler's parked claim; a schedule that is not due is put back by it.
    async fn wake_schedule(&self, w: &str) {
        let c = self.client.as_ref();
        let name = name::schedule_token(w);
        let Ok(Some(t)) = c.get(&name).await else {
            return;
        };
        let now = unix_now();
        if t.expiration_time.is_some_and(|e| e > now) {
            let woken = Token {
                expiration_time: Some(now),
                ..t
            };
            // A conflict means the scheduler is handling it right now: nothing to wake.
            let _ = c.modify(ModifyRequest::update(vec![woken])).await;
        }
    }

    /// The workflow's notification addresses, from its definition in the master.
    async fn workflow_emails(&self, w: &str) -> Vec<String> {
        match crate::workflow::definition::read(self.client.as_ref(), w).await {
            Ok(Some(def)) => def.notify_emails,
            _ => Vec::new(),
        }
    }

    /// Sends in the background: a slow or hung SMTP server must never hold up a job (the
    /// warn-timeout email is sent from the loop that renews the job's lease).
    async fn send(&self, to: Vec<String>, subject: String, text: String) {
        let Some(mailer) = self.settings.mailer.clone() else {
            return;
        };
        if to.is_empty() {
            return;
        }
        tokio::spawn(async move {
            let html = format!("<pre>{}</pre>", html_escape(&text));
            match mailer.send(&to, &subject, &text, &html).await {
                Ok(()) => tracing::info!(subject, recipients = to.len(), "sent email"),
                Err(e) => tracing::error!(subject, error = %e, "cannot send email"),
            }
        });
    }

    fn execution_text(&self, jt: &JobToken, job: &Job, index: usize) -> String {
        let r = &job.history[index];
        let (w, i, j) = (&jt.workflow, &jt.instance, &job.name);
        let mut text = format!(
            "Workflow: {w}\nInstance: {i}\nJob: {j}\nExecution: {index}\nInfo: {}\nStart: {}\n",
            r.info,
            crate::clock::utc(r.start_time as i64)
        );
        if let Some(end) = r.end_time {
            text.push_str(&format!(
                "End: {}\nRun time: {}s\n",
                crate::clock::utc(end as i64),
                (end - r.start_time) as i64
            ));
        }
        if let Some(code) = r.exit_code {
            text.push_str(&format!("Exit code: {code}\n"));
        }
        for (kind, path) in &r.logs {
            text.push_str(&format!("Log {kind}: {path}\n"));
        }
        text.push_str(&format!(
            "\n{}/executions/?workflow={w}&instance={i}&job={j}\n",
            self.settings.ui_link
        ));
        text
    }

    /// A final failure: the job's addresses, and the workflow's for the instance's first.
    async fn notify_failure(&self, jt: &JobToken, job: &Job, first: bool) {
        let mut to = job.emails.clone();
        if first {
            to.extend(self.workflow_emails(&jt.workflow).await);
        }
        let code = job.history.last().and_then(|r| r.exit_code).unwrap_or(1);
        let subject = format!(
            "Workflow {}'s job {} finished with exit code {code}",
            jt.workflow, job.name
        );
        let text = self.execution_text(jt, job, job.history.len() - 1);
        self.send(to, subject, text).await;
    }

    async fn notify_timeout(&self, jt: &JobToken, job: &Job, index: usize) {
        let mut to = job.emails.clone();
        to.extend(self.workflow_emails(&jt.workflow).await);
        let subject = format!(
            "Workflow {}'s job {} exceeded timeout",
            jt.workflow, job.name
        );
        let text = self.execution_text(jt, job, index);
        self.send(to, subject, text).await;
    }

    async fn notify_end(&self, w: &str, i: &str, end: &progress::InstanceEnd) {
        let to = self.workflow_emails(w).await;
        let when = |t: Option<f64>| t.map_or("-".to_owned(), |t| crate::clock::utc(t as i64));
        let mut text = format!(
            "Workflow {w} instance {i} started at {} finished at {} with status {}.\n{}/jobs/?workflow={w}&instance={i}\n\n",
            when(end.start),
            when(end.end),
            end.status,
            self.settings.ui_link
        );
        for j in &end.jobs {
            let status = match j.succeeded {
                Some(true) => "SUCCESS",
                Some(false) => "FAILURE",
                None => "NEVER_RUN",
            };
            text.push_str(&format!(
                "{:<30} {:<24} {:<24} {status}\n",
                j.name,
                when(j.last_start),
                when(j.last_end)
            ));
        }
        self.send(to, format!("{} for workflow {w}", end.status), text)
            .await;
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
