//! How a run ends: the open record closed with how the command ended (and the cleanup after a
//! failure), and the commit of that end, retried through a master outage (up to its grace, or
//! the stop's), with the email a final failure owes.

use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::Worker;
use super::run::{RunEnd, Running, Stop, runnable};
use crate::token::{LogRequest, MasterError};
use crate::workflow::error::Error;
use crate::workflow::executor::{self, ExecResult, ExecSpec};
use crate::workflow::instance::JobToken;
use crate::workflow::job::{ExecutionRecord, Job};
use crate::workflow::logs;
use crate::workflow::plan;
use crate::workflow::progress::{self, Committed};

impl Worker {
    /// Closes the open record with how the command ended, runs the cleanup after a failure,
    /// and says how the run ended.
    pub(super) async fn finish(
        &self,
        mut r: Running<'_>,
        result: std::io::Result<ExecResult>,
        ended: f64,
    ) -> (JobToken, RunEnd) {
        let jt = r.jt;
        let dir = logs::instance_dir(&self.settings.logs_dir, &jt.workflow, &jt.instance);
        let record = &mut r.job.history[r.index];
        record.end_time = Some(ended);
        match result {
            Ok(done) => {
                record.exit_code = Some(done.exit_code);
                for (kind, why) in done.log_trouble {
                    tracing::error!(workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, execution = r.index, log = kind, trouble = %why, "the job's log is incomplete");
                    record.log_trouble.insert(kind.to_owned(), why);
                }
                if r.stop == Some(Stop::Aborted) {
                    record.killed = Some("by an abort of its instance".into());
                } else if let Some(reason) = done.killed_because.filter(|_| r.stop.is_none()) {
                    logs::pinlog(&dir, &jt.job.name, record, &format!("killed: {reason}"));
                    record.killed = Some(reason);
                }
            }
            Err(e) => {
                record.exit_code = Some(1);
                let message = format!("could not run the command: {e}");
                logs::pinlog(&dir, &jt.job.name, record, &message);
            }
        }
        let exit_code = record.exit_code;
        let outcome = plan::outcome_class(r.stop, record.killed.is_some(), exit_code);
        let workflow = self.workflow_label(&jt.workflow).await;
        metrics::histogram!(crate::metrics::JOB_DURATION, "workflow" => workflow.clone())
            .record((ended - record.start_time).max(0.0));
        metrics::counter!(crate::metrics::JOBS_FINISHED, "workflow" => workflow, "outcome" => outcome)
            .increment(1);
        tracing::info!(worker = %self.name, workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, execution = r.index, exit_code, outcome, "job ended");
        if exit_code != Some(0) && r.stop.is_none() {
            self.cleanup(jt, &mut r.job, r.index).await;
        }
        let end = match r.stop {
            Some(Stop::LostLease) => RunEnd::LostLease,
            Some(Stop::Aborted) => RunEnd::Aborted(r.job),
            Some(Stop::HandedBack) => RunEnd::HandedBack(r.job),
            None => RunEnd::Finished(r.job),
        };
        let latest = JobToken {
            token: r.token,
            ..jt.clone()
        };
        (latest, end)
    }

    /// The `workflow` label of a job metric: the workflow's name when its definition exists
    /// (asked of the master once per name), `other` otherwise.
    pub(super) async fn workflow_label(&self, wf: &crate::token::name::WorkflowName) -> String {
        if let Some(label) = self.labels.known(wf.as_str()) {
            return label;
        }
        let name = crate::token::name::definition_token(wf);
        let defined = tokio::select! {
            found = self.client.get(&name) => matches!(found, Ok(Some(_))),
            // A stopping worker does not wait for an absent master to name a metric.
            () = self.stop_deadline() => return "other".to_owned(),
        };
        self.labels.checked(wf.as_str(), defined)
    }

    /// Runs the cleanup template after a failed run, with the `kill_id` values it reported.
    pub(super) async fn cleanup(&self, jt: &JobToken, job: &mut Job, index: usize) {
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
        let (command, mut env) = runnable(&template, &attributes, &jt.token.name);
        let banner = |which: &str| {
            format!(
                "echo '\n<<<<<<<<<<{which} of cleanup code logs>>>>>>>>>>'; echo '\n<<<<<<<<<<{which} of cleanup code logs>>>>>>>>>>' >&2"
            )
        };
        let spec = ExecSpec {
            command: format!(
                "{}; {{ {command}\n}}; rc=$?; {}; exit $rc",
                banner("Start"),
                banner("End")
            ),
            launch: self.settings.launch.clone(),
            env: {
                env.extend([
                    ("PINBALL_WORKFLOW".into(), jt.workflow.to_string()),
                    ("PINBALL_INSTANCE".into(), jt.instance.to_string()),
                    ("PINBALL_JOB".into(), job.name.to_string()),
                ]);
                env
            },
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

    /// What a success of `job` will write depends on its downstream jobs: read while its
    /// command runs, so the end's commit need not wait for it (a race reads them again).
    pub(super) fn read_ahead(&self, jt: &JobToken, job: &Job) -> Ahead {
        let (client, at) = (
            self.client.clone(),
            (jt.workflow.clone(), jt.instance.clone()),
        );
        let (from, outputs) = (job.name.clone(), job.outputs.clone());
        tokio::spawn(async move {
            progress::read_downstream(client.as_ref(), (&at.0, &at.1), &from, &outputs).await
        })
    }

    /// Writes how the run ended, retrying through a master outage (up to the outage grace),
    /// then sends the email it owes and settles the instance. `ahead`: the read of the
    /// downstream jobs started beside the run, for a success; `tails`: the last bytes of its
    /// logs, stored in the same commit.
    pub(super) async fn commit(
        &self,
        jt: &JobToken,
        end: RunEnd,
        ahead: Option<Ahead>,
        mut tails: Vec<LogRequest>,
    ) -> Result<(), Error> {
        let c = self.client.as_ref();
        let saved = |e: Error| {
            if !self.past_stop_deadline() {
                return Err(e);
            }
            // Told to stop, and the master is away: the end waits on this host for the next
            // worker process, rather than keeping this one beyond its grace.
            match super::spool::save(&self.settings.logs_dir, jt, &end) {
                Ok(Some(path)) => {
                    tracing::warn!(worker = %self.name, workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, file = %path.display(), "stopping without a master: the run's end is saved for the next worker process on this host to commit");
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(io) => {
                    tracing::error!(worker = %self.name, job = %jt.job.name, error = %io, "cannot save the run's end; the job runs again once its lease ends");
                    Err(e)
                }
            }
        };
        if let RunEnd::HandedBack(job) = &end {
            if let Err(e) = self.patiently(|| c.modify(plan::hand_back(jt, job))).await {
                return saved(e);
            }
            tracing::info!(workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, "handed the job back for another worker");
            return Ok(());
        }
        let mut ahead = match ahead {
            Some(read) if matches!(&end, RunEnd::Finished(j) if j.history.last().is_some_and(ExecutionRecord::succeeded)) => {
                read.await.ok().and_then(Result::ok)
            }
            _ => None,
        };
        let committed = loop {
            match self
                .patiently(|| self.write_end(jt, &end, ahead.take(), &tails))
                .await
            {
                Ok(c) => break c,
                // The end never waits on its logs: refused with them, it goes without them.
                Err(e) if !tails.is_empty() && refused(&e) => {
                    if !super::claim::refuses_field(&e, "logs") {
                        tracing::warn!(worker = %self.name, job = %jt.job.name, error = %e, "the master refused the run's end with its logs; sending them on their own");
                    } else if !self.no_end_logs.swap(true, Relaxed) {
                        tracing::info!(worker = %self.name, "the master takes no logs with a run's end (an older version): this worker sends them on their own first");
                    }
                    super::ship::send_tails(c, std::mem::take(&mut tails)).await;
                }
                Err(e) => return saved(e),
            }
        };
        match committed {
            Committed::LostLease => {
                tracing::warn!(workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, "another worker owns this job now; this result is dropped");
                Ok(())
            }
            // A job it made runnable keeps the instance going: settling would find just that.
            Committed::Progressed => Ok(()),
            _ => self.settle(&jt.workflow, &jt.instance).await,
        }
    }

    /// The version-checked write of a run's end, with the email a final failure (or an
    /// abort that failed the run) records in the outbox; a success or a retry has none.
    pub(super) async fn write_end(
        &self,
        jt: &JobToken,
        end: &RunEnd,
        ahead: Option<progress::Prefetched>,
        tails: &[LogRequest],
    ) -> Result<Committed, Error> {
        let c = self.client.as_ref();
        let name = &self.name;
        Ok(match end {
            RunEnd::LostLease | RunEnd::HandedBack(_) => Committed::LostLease,
            RunEnd::Finished(job) if job.history.last().is_some_and(ExecutionRecord::succeeded) => {
                let notices = self.success_notices(jt, job).await;
                progress::commit_success(c, jt, job, name, tails, &notices, ahead).await?
            }
            RunEnd::Finished(job) if job.can_retry() => {
                tracing::info!(workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, delay_sec = job.retry_delay_sec, "job failed; it will be retried");
                let notices = self.retry_notices(jt, job).await?;
                let tokens = |_first| notices.clone();
                progress::commit_failure(c, jt, job, name, tails, true, &tokens).await?
            }
            RunEnd::Finished(job) | RunEnd::Aborted(job) => {
                let failed = !job.history.last().is_some_and(ExecutionRecord::succeeded);
                if matches!(end, RunEnd::Finished(_)) {
                    tracing::warn!(workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, "job failed with no attempts left");
                }
                let email = match failed {
                    true => self.failure_email(jt, job).await?,
                    false => super::notify::FailureEmail::none(),
                };
                let token = |first| email.tokens(self, jt, job, first);
                progress::commit_failure(c, jt, job, name, tails, false, &token).await?
            }
        })
    }

    /// Calls `f` until the master answers it, through an outage of up to the outage grace: a
    /// run that ended while the master (or its database) was away is committed when it is back.
    pub(super) async fn patiently<T, E, Fut>(&self, f: impl FnMut() -> Fut) -> Result<T, Error>
    where
        Fut: Future<Output = Result<T, E>>,
        E: Into<Error>,
    {
        self.patiently_within(self.settings.outage_grace, "the job's end", f)
            .await
    }

    /// [`Worker::patiently`] for calls that may be tried again only within `grace` (once when
    /// it is zero); `what` names the call in the log.
    pub(super) async fn patiently_within<T, E, Fut>(
        &self,
        grace: Duration,
        what: &str,
        mut f: impl FnMut() -> Fut,
    ) -> Result<T, Error>
    where
        Fut: Future<Output = Result<T, E>>,
        E: Into<Error>,
    {
        let started = Instant::now();
        let mut told = false;
        loop {
            // Bounded like a renewal, so a master back from an outage gets the end well within
            // the lease it gives back; and by the stop's grace, once told to stop.
            let answer = tokio::select! {
                answer = bounded(self.call_limit(), f()) => answer,
                () = self.stop_deadline() => Err(Error::Stopping),
            };
            if self.past_stop_deadline() && answer.is_err() {
                return answer;
            }
            match answer {
                Err(e) if e.is_transient() && started.elapsed() < grace => {
                    if !std::mem::replace(&mut told, true) {
                        tracing::warn!(worker = %self.name, error = %e, "the master cannot take {what} yet; trying until it can");
                    }
                    tokio::time::sleep(RETRY).await;
                }
                other => {
                    if told && other.is_ok() {
                        // Answered: whether it took this worker's end is the caller's to say.
                        tracing::info!(worker = %self.name, "the master answers again");
                    }
                    return other;
                }
            }
        }
    }
}

/// Whether the master refused a write for what it carried (not for its versions).
fn refused(e: &Error) -> bool {
    matches!(
        e,
        Error::Master(MasterError::InputError(_) | MasterError::Forbidden(_))
    )
}

/// How long a worker waits before asking an unanswering master again.
pub(super) const RETRY: Duration = Duration::from_millis(250);

/// The read of a job's downstream jobs and signals, started when its command starts.
pub(super) type Ahead = tokio::task::JoinHandle<Result<progress::Prefetched, MasterError>>;

/// `call`, or an unreachable master when it takes longer than `limit` (its outcome unknown).
pub(super) async fn bounded<T, E: Into<Error>>(
    limit: Duration,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, Error> {
    match tokio::time::timeout(limit, call).await {
        Ok(answer) => answer.map_err(Into::into),
        Err(_) => Err(Error::NoAnswer {
            ms: limit.as_millis(),
        }),
    }
}
