//! The worker (`-m workers`): claims the best runnable job across every instance in one
//! long-polling `query_and_own` (here), runs it with its lease renewed (`run`), commits the
//! outcome with version-checked writes, so a worker that lost its lease can never overwrite
//! its successor, and records the emails it owes in the outbox (`notify`), which a sender task delivers. Signals: global DRAIN stops
//! claiming, EXIT (older generation) ends the worker, instance or workflow DRAIN/EXIT hand a
//! claimed job back, ABORT kills running jobs and ends the instance.

mod claim;
mod end;
mod lease;
mod notify;
mod run;
mod settings;
mod ship;
mod spool;
mod supervise;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::mail::Notifier;
use super::settle::{self, Settled};
use super::signal::{Action, Signals};
use crate::master::MasterClient;
use crate::token::name::{self, InstanceId, Level, WorkflowName};
use crate::token::*;
use crate::workflow::error::Error;

/// A call to the master running beside other work (a watch, a renewal).
type InFlight<T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send>>;

/// How long an idle worker's watch of the global signals parks at the master.
const GLOBAL_WATCH: Duration = Duration::from_secs(30);

pub use settings::WorkerSettings;

/// `<host>_<generation>_<pid>_<index>_<ms>_<random>`, every part a `\w` run.
pub fn owner_name(generation: u32, index: usize) -> String {
    let host = name::to_word(&crate::config::host_name());
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
    let notifier = Notifier::of(settings.mailer.as_ref(), &settings.ui_link);
    let settings = Arc::new(settings);
    // When the workers must be gone: `worker_shutdown_grace_sec` after the stop, whatever the
    // master does meanwhile.
    let (stop_tx, stop_at) = watch::channel(None);
    let grace = settings.shutdown_grace;
    let mut stopping = shutdown.clone();
    let deadline = tokio::spawn(async move {
        if stopping.wait_for(|s| *s).await.is_ok() {
            let _ = stop_tx.send(Some(Instant::now() + grace));
        }
    });
    let labels = Arc::new(crate::metrics::Admitted::new(WORKFLOW_LABELS));
    let mut tasks = tokio::task::JoinSet::new();
    // The outbox's sender: every email recorded by any process, this one's included.
    let (sender_stop, sender_stopped) = watch::channel(false);
    let sender = settings.mailer.clone().map(|mailer| {
        let owner = owner_name(settings.generation, count).replacen('_', "_mail_", 1);
        tokio::spawn(crate::email::run_outbox(
            client.clone(),
            mailer,
            owner,
            sender_stopped,
        ))
    });
    let notices = settings.webhooks.clone().map(|hooks| {
        let owner = owner_name(settings.generation, count).replacen('_', "_notify_", 1);
        let stopped = sender_stop.subscribe();
        tokio::spawn(crate::email::notices::run_notices(
            client.clone(),
            hooks,
            owner,
            stopped,
        ))
    });
    for index in 0..count {
        let worker = Worker {
            client: client.clone(),
            settings: settings.clone(),
            name: owner_name(settings.generation, index),
            host: crate::config::host_name(),
            sweeper: index == 0,
            notifier: notifier.clone(),
            labels: labels.clone(),
            stop_at: stop_at.clone(),
            older_master: std::sync::atomic::AtomicBool::new(false),
            no_end_logs: std::sync::atomic::AtomicBool::new(false),
            no_claim_context: std::sync::atomic::AtomicBool::new(false),
        };
        tasks.spawn(worker.run(shutdown.clone()));
    }
    while tasks.join_next().await.is_some() {}
    deadline.abort();
    let _ = sender_stop.send(true);
    if let Some(notices) = notices {
        let _ = notices.await;
    }
    if let Some(sender) = sender {
        let _ = sender.await;
    }
}

pub struct Worker {
    pub client: Arc<dyn MasterClient>,
    pub settings: Arc<WorkerSettings>,
    pub name: String,
    /// The host its runs record (read once, as its name was).
    pub host: String,
    /// The one worker per process that also looks after idle instances (archiving).
    pub sweeper: bool,
    /// Builds the emails it records in the outbox (none without a mailer) and the notices'
    /// links.
    notifier: Notifier,
    /// The workflows its job metrics name (those with a definition); others are `other`.
    labels: Arc<crate::metrics::Admitted>,
    /// When the worker must be gone, once it is told to stop.
    stop_at: watch::Receiver<Option<Instant>>,
    /// The master refused `record_grant` (a version before it, during an upgrade): claims go
    /// without it and each run's start is written by the worker.
    older_master: std::sync::atomic::AtomicBool,
    /// The master refused `logs` in a run's end (a version before it): the last bytes of a
    /// run's logs go on their own (`/logs`) before its end.
    no_end_logs: std::sync::atomic::AtomicBool,
    /// The master refused `context` in a claim (a version before it): each run's signals are
    /// read before it starts.
    no_claim_context: std::sync::atomic::AtomicBool,
}

/// Workflows a process's job metrics name at most, so the series stay bounded whatever
/// workflow names a worker token invents.
pub const WORKFLOW_LABELS: usize = 500;

impl Worker {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(worker = %self.name, generation = self.settings.generation, pools = ?self.settings.pools, "worker started");
        if self.sweeper {
            self.commit_pending().await;
        }
        let mut last_sweep: Option<Instant> = None;
        // The global signals, watched all along (one parked request at the master), so DRAIN
        // and EXIT reach an idle worker at once, not after its parked claim.
        let mut watching = self.watch_global(None, Duration::ZERO);
        let mut signals: Option<Signals> = None;
        let mut after: Option<i64> = None;
        let mut claiming: Option<InFlight<QueryAndOwnResponse>> = None;
        // When the claim in flight was sent: its lease runs at least from then.
        let mut claim_sent = Instant::now();
        while !*shutdown.borrow() {
            let Some(s) = &signals else {
                tokio::select! {
                    answer = &mut watching => signals = self.watched(answer, &mut watching, &mut after),
                    _ = shutdown.changed() => break,
                }
                continue;
            };
            if s.is_set(Action::EXIT, self.settings.generation) {
                tracing::info!(worker = %self.name, "EXIT is set for an older generation: worker exits");
                break;
            }
            if s.is_set(Action::DRAIN, 0) {
                // Drained: claim nothing until the signals change. A claim on its way is
                // dropped (the master forgets it when the connection closes).
                claiming = None;
                tokio::select! {
                    answer = &mut watching => signals = self.watched(answer, &mut watching, &mut after),
                    _ = shutdown.changed() => break,
                }
                continue;
            }
            if self.sweeper && last_sweep.is_none_or(|t| t.elapsed() >= self.settings.poll) {
                // The watch of the global signals goes on in its task meanwhile.
                if let Err(e) = self.sweep().await {
                    tracing::warn!(error = %e, "sweeping instances failed");
                }
                last_sweep = Some(Instant::now());
            }
            let claim = claiming.get_or_insert_with(|| {
                claim_sent = Instant::now();
                let client = self.client.clone();
                let req = self.claim();
                Box::pin(async move { Ok(client.query_and_own(req).await?) })
            });
            let claimed = tokio::select! {
                r = claim => r,
                // The signals changed, or their watch was renewed: look at them again, the
                // parked claim still on its way.
                answer = &mut watching => {
                    signals = self.watched(answer, &mut watching, &mut after);
                    continue;
                }
                _ = shutdown.changed() => break,
            };
            claiming = None;
            match claimed {
                Ok(mut r) => {
                    if let Some(token) = r.tokens.pop() {
                        // The watch goes on in its task meanwhile: its answer is read after.
                        self.handle(token, r.context, claim_sent, &mut shutdown)
                            .await;
                    }
                }
                Err(e) if self.claims_without_refused_field(&e) => {}
                Err(e) => {
                    tracing::warn!(worker = %self.name, error = %e, "claiming a job failed");
                    self.pause(&mut shutdown).await;
                }
            }
        }
        tracing::info!(worker = %self.name, "worker stopped");
    }

    /// The global signals, after `delay`, watched from `after` (read at once without it). The
    /// watch runs in a task of its own, so it is never left unpolled while this worker runs a
    /// job or sweeps (a master in this process could grant it its state's read lock, and
    /// writes would wait behind it), and never dropped mid-request, which would cost its
    /// connection.
    fn watch_global(&self, after: Option<i64>, delay: Duration) -> InFlight<(Signals, i64)> {
        let client = self.client.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            Signals::watch(client.as_ref(), &Level::Global, after, GLOBAL_WATCH).await
        });
        Box::pin(async move {
            // A task ends unanswered only when the runtime stops.
            task.await
                .map_err(|_| Error::Stopping)?
                .map_err(Error::from)
        })
    }

    /// Takes a watch's answer and starts the next watch; `None` (signals unknown) when the
    /// master could not answer, and the next look is a poll interval later.
    fn watched(
        &self,
        answer: Result<(Signals, i64), Error>,
        watching: &mut InFlight<(Signals, i64)>,
        after: &mut Option<i64>,
    ) -> Option<Signals> {
        match answer {
            Ok((signals, version)) => {
                *after = Some(version);
                *watching = self.watch_global(Some(version), Duration::ZERO);
                Some(signals)
            }
            Err(e) => {
                tracing::warn!(worker = %self.name, error = %e, "cannot read signals");
                *after = None;
                *watching = self.watch_global(None, self.settings.poll);
                None
            }
        }
    }

    /// Resolves when this worker must be gone: `worker_shutdown_grace_sec` after it was told
    /// to stop (never, until it is).
    async fn stop_deadline(&self) {
        let mut rx = self.stop_at.clone();
        let at = match rx.wait_for(Option::is_some).await {
            Ok(at) => *at,
            Err(_) => None,
        };
        match at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }

    /// Whether the stop's grace has run out.
    fn past_stop_deadline(&self) -> bool {
        self.stop_at.borrow().is_some_and(|at| Instant::now() >= at)
    }

    /// Commits the ends an earlier worker process on this host saved when it had to stop
    /// without a master (`spool`), before this one claims anything.
    async fn commit_pending(&self) {
        for (path, jt, end) in spool::pending(&self.settings.logs_dir) {
            tracing::info!(worker = %self.name, workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, "committing the end of a run an earlier worker process saved when it stopped");
            match self.commit(&jt, end, None, Vec::new()).await {
                Ok(()) if !self.past_stop_deadline() => {
                    if let Err(e) = std::fs::remove_file(&path) {
                        tracing::error!(file = %path.display(), error = %e, "cannot remove a committed pending end");
                    }
                }
                Ok(()) => return, // stopping again: it was saved again
                Err(e) => {
                    tracing::error!(worker = %self.name, error = %e, "cannot commit a pending end yet; it stays for the next worker process");
                    return;
                }
            }
        }
    }

    async fn pause(&self, shutdown: &mut watch::Receiver<bool>) {
        tokio::select! {
            _ = tokio::time::sleep(self.settings.poll) => {}
            _ = shutdown.changed() => {}
        }
    }

    /// Settles every instance in the master: makes satisfied jobs runnable and archives what
    /// is finished or aborted. Only while idle, and at most once per poll interval.
    async fn sweep(&self) -> Result<(), Error> {
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

    /// Settles an instance (recording its end email when this call ended it).
    async fn settle(&self, w: &WorkflowName, i: &InstanceId) -> Result<(), Error> {
        let settled = settle::settle(
            self.client.as_ref(),
            w,
            i,
            self.settings.archive_delay_sec,
            &self.notifier,
        )
        .await?;
        if let Settled::Finished(_) | Settled::Aborted(_) = settled {
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
