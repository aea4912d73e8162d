//! Running one claimed job: the signals that stop it before it starts, the execution record,
//! and the command started once its start is recorded (`supervise` runs it beside its lease);
//! how the run ends and is committed is `end`'s. The verdicts (a lost execution, the outcome
//! class) are `plan`'s.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::Worker;
use crate::clock;
use crate::parser::template;
use crate::token::name::Level;
use crate::token::{ClaimContext, Token};
use crate::workflow::error::Error;
use crate::workflow::executor::{self, ExecSpec};
use crate::workflow::instance::JobToken;
use crate::workflow::job::{ExecutionRecord, Job, merged_attributes};
use crate::workflow::logs;
use crate::workflow::plan;

/// How a run ended, for the commit.
pub enum RunEnd {
    /// The command ended by itself, whatever its exit code (or it could not run at all).
    Finished(Job),
    /// Killed by an ABORT: the job goes back to waiting and the instance ends.
    Aborted(Job),
    /// Stopped for shutdown: the job goes back to runnable for another worker.
    HandedBack(Job),
    /// The token changed under us: another worker owns the job now. Nothing is written.
    LostLease,
}

impl RunEnd {
    /// The job as the run left it; none when another worker owns it now.
    pub(super) fn job(&self) -> Option<&Job> {
        match self {
            RunEnd::Finished(j) | RunEnd::Aborted(j) | RunEnd::HandedBack(j) => Some(j),
            RunEnd::LostLease => None,
        }
    }
}

/// Why the worker stopped a command before it ended by itself.
pub(super) use plan::Stopped as Stop;

/// A run in progress: the job with its open record (the last), and the token at its latest
/// version (each renewal advances it).
pub(super) struct Running<'a> {
    pub(super) jt: &'a JobToken,
    pub(super) job: Job,
    pub(super) index: usize,
    pub(super) token: Token,
    pub(super) stop: Option<Stop>,
    pub(super) abort: watch::Sender<bool>,
    /// The last renewal sent whose outcome is unknown (the master went away meanwhile): if it
    /// landed, the token's version moved, and the next write must name the new one.
    pub(super) unsure: Option<Token>,
    /// Since when renewals have failed for want of a master.
    pub(super) unreachable_since: Option<Instant>,
    /// The job's process group, once it exists.
    pub(super) pgid: Option<u32>,
    /// When the last renewal the master confirmed was sent: the master's lease runs at least
    /// `lease_sec - 1` from then (its clock counts whole seconds).
    pub(super) confirmed: Instant,
    /// When the renewal in flight was sent.
    pub(super) sent: Option<Instant>,
    /// Since when the job's processes are frozen, for want of a confirmed lease.
    pub(super) frozen_since: Option<Instant>,
    /// The claim's commit recorded the start: the open record is first written by a renewal,
    /// the first within [`super::supervise::FIRST_RECORD`].
    pub(super) granted: bool,
    /// The version of the instance's signals read before the run: their watch starts there.
    pub(super) signals_at: i64,
}

impl Running<'_> {
    pub(super) fn record_property(&mut self, key: String, value: String) {
        let values = self.job.history[self.index]
            .properties
            .entry(key)
            .or_default();
        if !values.contains(&value) {
            values.push(value);
        }
    }

    pub(super) fn stop(&mut self, why: Stop) {
        if self.stop.is_none() {
            self.stop = Some(why);
            // Frozen processes would not act on the executor's SIGTERM, and may not run
            // another instruction without a lease: they end at once.
            if let (Some(pgid), Some(_)) = (self.pgid, self.frozen_since.take()) {
                executor::kill_frozen(pgid);
            }
            let _ = self.abort.send(true);
        }
    }

    /// The lease is confirmed again: frozen processes go on.
    pub(super) fn thaw(&mut self) {
        if let (Some(pgid), Some(since)) = (self.pgid, self.frozen_since.take()) {
            executor::thaw(pgid);
            let jt = self.jt;
            tracing::info!(workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, frozen_ms = since.elapsed().as_millis() as u64, "the master confirmed the lease again: the job's processes go on");
        }
    }
}

impl Worker {
    /// Runs a job claimed by a claim sent at `claimed` (its lease runs at least from then).
    pub(super) async fn handle(
        &self,
        token: Token,
        context: Option<ClaimContext>,
        claimed: Instant,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let mut jt = match JobToken::parse(token) {
            Ok(jt) => jt,
            Err(e) => {
                tracing::error!(error = %e, "claimed a token that is not a readable job; leaving it to its lease");
                return;
            }
        };
        // The master recorded this claim's grant in the data it committed (an older master
        // does not): the run's start is durable already, and the runs of earlier grants that
        // left no trace are closed as lost before anything else is written.
        let granted = jt.job.grant.clone().filter(|g| g.owner == self.name);
        // The grant came at least as long after the claim was sent as the claim waited at the
        // master (its own clock's measure): the lease runs at least from then.
        let granted_at = granted
            .as_ref()
            .map(|g| claimed + Duration::from_millis(g.waited_ms));
        let (now, retries) = (clock::now_f64(), self.settings.lost_lease_retries);
        let lost = match &granted {
            Some(g) => plan::close_lost_grants(&mut jt.job, g, &jt.instance, now, retries),
            None => plan::close_lost(&mut jt.job, now, retries),
        };
        if let Err(e) = self
            .handle_job(&jt, context, granted_at, lost, shutdown)
            .await
        {
            tracing::error!(worker = %self.name, workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, error = %e, "job handling failed; its lease will expire and another worker will retry it");
        }
    }

    /// Runs a claimed job whose earlier lost runs are closed (`lost` says how); `granted`: its
    /// start is durable in the claim's commit, whose lease runs at least from then; `context`:
    /// what the claim's answer says its signals were then.
    async fn handle_job(
        &self,
        jt: &JobToken,
        context: Option<ClaimContext>,
        granted: Option<Instant>,
        lost: Option<plan::LostVerdict>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Error> {
        let Some(signals_at) = self.unless_stopped_by_signals(jt, context, granted).await? else {
            return Ok(());
        };
        let dir = logs::instance_dir(&self.settings.logs_dir, &jt.workflow, &jt.instance);
        let mut job = jt.job.clone();
        match lost {
            Some(plan::LostVerdict::Rerun { reason }) => {
                let record = job.history.last_mut().expect("the closed record");
                let message = format!(
                    "execution lost: {reason}; it runs again and is not counted as an attempt"
                );
                logs::pinlog(&dir, &jt.job.name, record, &message);
                tracing::warn!(workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, %reason, "previous execution was lost with its worker; running the job again without counting an attempt");
            }
            Some(plan::LostVerdict::Counted { reason }) => {
                let record = job.history.last_mut().expect("the closed record");
                let message = format!(
                    "executor failed to renew job ownership on time ({reason}); lost_lease_retries used up, so this execution counts as a failed attempt"
                );
                logs::pinlog(&dir, &jt.job.name, record, &message);
                tracing::warn!(workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, %reason, "previous execution lost its lease with no lost_lease_retries left; counted as a failed attempt");
                return self
                    .commit(jt, RunEnd::Finished(job), None, Vec::new())
                    .await;
            }
            None => {}
        }
        let mut record = self.new_record(jt, &mut job);
        if job.disabled {
            record.end_time = Some(record.start_time);
            record.exit_code = Some(0);
            job.history.push(record);
            tracing::info!(workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, "job is disabled: completed without running");
            return self
                .commit(jt, RunEnd::Finished(job), None, Vec::new())
                .await;
        }
        logs::assign(&dir, &job.name, job.history.len(), &mut record);
        if let Err(e) = logs::create_dir(&dir) {
            record.end_time = Some(clock::now_f64());
            record.exit_code = Some(1);
            tracing::error!(dir = %dir.display(), error = %e, "cannot create the job log directory");
            job.history.push(record);
            return self
                .commit(jt, RunEnd::Finished(job), None, Vec::new())
                .await;
        }
        let of = super::ship::LogOf {
            workflow: jt.workflow.to_string(),
            instance: jt.instance.to_string(),
            job: job.name.to_string(),
            execution: job.history.len() as u32,
            host: record.host.clone(),
            root: self.settings.logs_dir.clone(),
            owner: self.name.clone(),
        };
        let shipper = super::ship::Shipper::start(self.client.clone(), of, &record);
        job.history.push(record.clone());
        let ahead = self.read_ahead(jt, &job);
        // The claim already holds the lease; `execute` commits the start unless the claim's
        // commit did, then runs the command.
        let (jt, end) = self.execute(jt, job, (granted, signals_at), shutdown).await;
        let tails = self.finish_logs(shipper, &end, &record, &jt).await;
        self.commit(&jt, end, Some(ahead), tails).await
    }

    /// The record of the execution about to start, holding the triggering events it takes from
    /// `job`. A condition keeps only its last `max_attempts - 1` polls before the new one.
    fn new_record(&self, jt: &JobToken, job: &mut Job) -> ExecutionRecord {
        let info = if job.disabled {
            "DISABLED".to_owned()
        } else {
            job.command.clone()
        };
        job.skipped = false;
        let mut record = ExecutionRecord::new(jt.instance.clone(), info, clock::now_f64());
        record.events = std::mem::take(&mut job.events);
        record.worker = self.name.clone();
        record.host = self.host.clone();
        if job.is_condition() && job.history.len() >= job.max_attempts as usize {
            let keep = job.max_attempts.saturating_sub(1) as usize;
            job.history.drain(..job.history.len() - keep);
        }
        record
    }

    /// What to run for the open record of `job`: the command with its attributes substituted,
    /// and Pinball's variables in its environment.
    fn spec(&self, jt: &JobToken, job: &Job, index: usize) -> ExecSpec {
        let record = &job.history[index];
        let attributes = merged_attributes(&record.events);
        let (command, mut env) = runnable(&job.command, &attributes, &jt.token.name);
        env.extend([
            ("PINBALL_WORKFLOW".to_owned(), jt.workflow.to_string()),
            ("PINBALL_INSTANCE".to_owned(), jt.instance.to_string()),
            ("PINBALL_JOB".to_owned(), job.name.to_string()),
            ("PINBALL_EXECUTION".to_owned(), index.to_string()),
        ]);
        if let Some(url) = &self.settings.base_url {
            env.push(("PINBALL_BASE_URL".into(), url.clone()));
        }
        if let Some(run) = &job.run {
            env.extend(run.env());
        }
        ExecSpec {
            command,
            launch: self.settings.launch.clone(),
            env,
            stdout_log: record.logs["stdout"].clone().into(),
            stderr_log: record.logs["stderr"].clone().into(),
            abort_timeout: job.abort_timeout_sec.map(Duration::from_secs),
            warn_timeout: job.warn_timeout_sec.map(Duration::from_secs),
            kill_grace: self.settings.kill_grace,
        }
    }

    /// Runs the command until it ends, with the lease renewed every `lease`/3, printed
    /// properties written within a second, and the instance's signals watched (a parked
    /// request at the master) so an ABORT stops it within a second. Neither the renewal nor
    /// the watch ever holds up the loop that waits for the process, so its end time is the
    /// moment it exited, whatever the master is doing. Returns the job token at its latest
    /// version and how the run ended.
    ///
    /// The start must be durable before the command runs: were it written beside the run, a
    /// worker dying after a short job ended but before that write landed would leave a run the
    /// history never saw, and the next worker would run the job again unseen (the soak found one
    /// in 10,000 jobs). The claim's commit recorded the grant (`granted_at`): an heir finds it
    /// and closes the run as lost, so the command runs at once, and the open record (what the UI
    /// shows of a run) is written by the first renewal. Otherwise (an older master) the open
    /// record is committed first, the process spawned meanwhile and held at its gate, so the
    /// commit and the spawn overlap.
    async fn execute(
        &self,
        jt: &JobToken,
        job: Job,
        (granted_at, signals_at): (Option<Instant>, i64),
        shutdown: &mut watch::Receiver<bool>,
    ) -> (JobToken, RunEnd) {
        let granted = granted_at.is_some();
        let index = job.history.len() - 1;
        let spec = self.spec(jt, &job, index);
        let (reports_tx, mut reports) = mpsc::unbounded_channel();
        let (abort, abort_rx) = watch::channel(false);
        let (open_gate, gate) = tokio::sync::oneshot::channel();
        let run = executor::run_after(spec, reports_tx, abort_rx, (!granted).then_some(gate));
        tokio::pin!(run);
        let mut r = Running {
            jt,
            job,
            index,
            token: jt.token.clone(),
            stop: None,
            abort,
            unsure: None,
            unreachable_since: None,
            pgid: None,
            // The claim's lease runs at least from when it was sent; a start written by this
            // worker confirms it again.
            confirmed: granted_at.unwrap_or_else(Instant::now),
            sent: None,
            frozen_since: None,
            granted,
            signals_at,
        };
        let level = Level::Instance(jt.workflow.clone(), jt.instance.clone());
        let mut spawn_failed = None;
        // A claim whose lease may have run out meanwhile (the master was slow to answer the
        // signals' read) does not run: another worker may have the job by now.
        let recorded = if let Some(at) = granted_at {
            at.elapsed() < self.fence()
        } else {
            let record = self.record_start(&mut r);
            tokio::pin!(record);
            loop {
                tokio::select! {
                    biased;
                    recorded = &mut record => break recorded,
                    // Told to stop and out of grace before the start was recorded: the
                    // command never ran; the job's lease ends and another worker runs it.
                    () = self.stop_deadline() => break false,
                    // Only a failed spawn ends before the gate opens.
                    result = &mut run, if spawn_failed.is_none() => spawn_failed = Some(result),
                }
            }
        };
        if !recorded {
            tracing::warn!(worker = %self.name, workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, "the job's lease could not be confirmed in time (its start unrecorded, or its claim too old); it was not run");
            drop(open_gate);
            let latest = JobToken {
                token: r.token,
                ..jt.clone()
            };
            return (latest, RunEnd::LostLease);
        }
        if let Some(result) = spawn_failed {
            return self.finish(r, result, clock::now_f64()).await;
        }
        let _ = open_gate.send(());
        tracing::info!(worker = %self.name, workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, execution = index, "job started");
        let (result, renewing) = self
            .supervise(&mut r, &mut run, &mut reports, shutdown, &level)
            .await;
        // The end is the moment the process exited, not when the master next answers.
        let ended = clock::now_f64();
        self.after_exit(&mut r, &mut reports, renewing).await;
        self.finish(r, result, ended).await
    }
}

/// The shell text and environment that run `template` with `attributes`. A template the rule
/// of `parser::template` refuses (a definition stored before the rule) does not run: the
/// command prints why on stderr and exits 2.
pub(super) fn runnable(
    template: &str,
    attributes: &std::collections::BTreeMap<String, String>,
    job: &str,
) -> (String, Vec<(String, String)>) {
    match template::substitute(template, attributes) {
        Ok(s) => (s.command, s.env),
        Err(e) => {
            tracing::error!(job, error = %e, "refusing to run a command template");
            (
                r#"printf 'pinball: %s\n' "$PINBALL_TEMPLATE_ERROR" >&2; exit 2"#.to_owned(),
                vec![("PINBALL_TEMPLATE_ERROR".to_owned(), e.to_string())],
            )
        }
    }
}
