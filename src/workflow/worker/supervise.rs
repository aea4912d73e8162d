//! A command's run beside its lease: renewals, the watch of the instance's signals, printed
//! properties, the shutdown grace and the fence that freezes the job's processes; and what is
//! settled after it exited.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::run::{Running, Stop};
use super::{InFlight, Worker};
use crate::master::RENEWING_BACKOFF;
use crate::token::Token;
use crate::token::name::Level;
use crate::workflow::error::Error;
use crate::workflow::executor::{self, ExecResult, Report};
use crate::workflow::signal::{Action, Signals};

/// How long a watch of the signals parks at the master before it is renewed.
const SIGNAL_WATCH: Duration = Duration::from_secs(10);

/// How soon printed properties are written to the master.
const PROPERTY_FLUSH: Duration = Duration::from_millis(250);

/// How long a run goes before its watch of the instance's signals starts (from the version
/// read before it started, so no signal is missed).
const FIRST_WATCH: Duration = Duration::from_millis(200);

/// How soon a run whose start the claim's commit recorded writes its open record (what the
/// UI and `pinball status` show of a running job, with its log): a shorter job writes only
/// its end.
pub(super) const FIRST_RECORD: Duration = Duration::from_secs(1);

/// The answer of an in-flight call, or never when there is none.
async fn in_flight<T>(f: &mut Option<InFlight<T>>) -> Result<T, Error> {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Worker {
    /// Runs the command to its end beside its lease renewals, the watch of the instance's
    /// signals, printed properties and the shutdown grace; freezes its processes when no
    /// renewal was confirmed within the fence. Returns how the command ended and the renewal
    /// still in flight, if any.
    pub(super) async fn supervise(
        &self,
        r: &mut Running<'_>,
        run: &mut Pin<&mut impl Future<Output = std::io::Result<ExecResult>>>,
        reports: &mut mpsc::UnboundedReceiver<Report>,
        shutdown: &mut watch::Receiver<bool>,
        level: &Level,
    ) -> (std::io::Result<ExecResult>, Option<InFlight<Token>>) {
        let jt = r.jt;
        let index = r.index;
        let renew_every = self.renew_every();
        let first = match r.granted {
            true => renew_every.min(FIRST_RECORD),
            false => renew_every,
        };
        let mut tick = tokio::time::interval_at(Instant::now() + first, renew_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut renewing: Option<InFlight<Token>> = None;
        // Watched from the version read before the run (a signal written since answers at
        // once), after a moment: a job shorter than that asks nothing more of the master.
        let mut watching: Option<InFlight<(Signals, i64)>> =
            Some(self.watch_signals(level, Some(r.signals_at), FIRST_WATCH));
        // An early renewal: printed properties to write, or a renewal that failed.
        let mut renew_at: Option<Instant> = None;
        let mut shutdown_deadline: Option<Instant> = None;
        let result = loop {
            tokio::select! {
                // The command first: on the first pass this spawns it, before the start is written.
                biased;
                result = run.as_mut() => break result,
                Some(report) = reports.recv() => match report {
                    Report::Started(pgid) => r.pgid = Some(pgid),
                    Report::Property(k, v) => {
                        r.record_property(k, v);
                        renew_at.get_or_insert_with(|| Instant::now() + PROPERTY_FLUSH);
                    }
                    Report::WarnTimeout => {
                        tracing::warn!(workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, "job exceeded its warn_timeout_sec");
                        // The watch is not left unpolled across another await (see the
                        // worker's sweep); it reads afresh after.
                        drop(watching.take());
                        self.notify_timeout(jt, &r.job, index).await;
                        watching = Some(self.watch_signals(level, None, Duration::ZERO));
                    }
                },
                answer = in_flight(&mut renewing) => {
                    renewing = None;
                    self.renewed(r, answer);
                    // A frozen job's master is asked again soon, not at the next tick: the job
                    // goes on within a quarter second of its master's return.
                    if r.frozen_since.is_some() && r.stop.is_none() {
                        renew_at = Some(Instant::now() + RENEWING_BACKOFF);
                    }
                }
                answer = in_flight(&mut watching) => {
                    let after = self.signals_seen(r, answer);
                    let delay = if after.is_some() { Duration::ZERO } else { Duration::from_secs(1) };
                    watching = Some(self.watch_signals(level, after, delay));
                }
                _ = tick.tick(), if renewing.is_none() => {
                    renew_at = None;
                    renewing = Some(self.renew(r));
                }
                _ = sleep_until(renew_at), if renewing.is_none() => {
                    renew_at = None;
                    renewing = Some(self.renew(r));
                }
                _ = shutdown.changed(), if shutdown_deadline.is_none() => {
                    shutdown_deadline = Some(Instant::now() + self.settings.shutdown_grace);
                    tracing::info!(workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, grace_sec = self.settings.shutdown_grace.as_secs(), "shutting down: letting the job finish");
                },
                _ = sleep_until(shutdown_deadline), if r.stop.is_none() => r.stop(Stop::HandedBack),
                // No renewal confirmed within the fence: the master could give the job to
                // another worker soon. Its processes stop where they are until the master
                // confirms the lease (they go on) or says another worker has the job (they end).
                _ = tokio::time::sleep_until(r.confirmed + self.fence()), if r.frozen_since.is_none() && r.stop.is_none() && r.pgid.is_some() => self.freeze(r),
            }
        };
        (result, renewing)
    }

    /// After the command exited: the properties it printed last, and the version its end must
    /// name (a renewal in flight lands first; one whose answer never came is looked up).
    pub(super) async fn after_exit(
        &self,
        r: &mut Running<'_>,
        reports: &mut mpsc::UnboundedReceiver<Report>,
        renewing: Option<InFlight<Token>>,
    ) {
        let jt = r.jt;
        while let Ok(report) = reports.try_recv() {
            if let Report::Property(k, v) = report {
                r.record_property(k, v);
            }
        }
        // A renewal on its way decides the version the commit must name: let it land.
        if let Some(renewal) = renewing {
            let answer = tokio::select! {
                answer = renewal => answer,
                () = self.stop_deadline() => Err(Error::Stopping),
            };
            self.renewed(r, answer);
        }
        // A renewal whose answer never came may have landed: the end must name the version it
        // landed at, or it would be refused as another worker's.
        if let Some(sent) = r.unsure.take() {
            match self
                .patiently(|| super::lease::adopt(self.client.as_ref(), Some(&sent)))
                .await
            {
                Ok(Some(version)) => r.token.version = Some(version),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, error = %e, "cannot tell whether the last renewal landed")
                }
            }
        }
    }

    /// The instance's signals as a watch answered them: an ABORT stops the job. Returns the
    /// version to watch from next (none after a failed watch).
    fn signals_seen(
        &self,
        r: &mut Running<'_>,
        answer: Result<(Signals, i64), Error>,
    ) -> Option<i64> {
        let jt = r.jt;
        match answer {
            Ok((signals, version)) => {
                if signals.is_set(Action::ABORT, 0) && r.stop.is_none() {
                    tracing::info!(workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, "ABORT is set: stopping the job");
                    r.stop(Stop::Aborted);
                }
                Some(version)
            }
            Err(e) => {
                tracing::debug!(workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, error = %e, "cannot watch the signals yet");
                None
            }
        }
    }

    /// No renewal confirmed within the fence: the master could give the job to another
    /// worker soon. Its processes stop where they are until the master confirms the lease
    /// (they go on) or says another worker has the job (they end).
    fn freeze(&self, r: &mut Running<'_>) {
        let jt = r.jt;
        if let Some(pgid) = r.pgid {
            executor::freeze(pgid);
            r.frozen_since = Some(Instant::now());
            tracing::warn!(worker = %self.name, workflow = %jt.workflow, instance = %jt.instance, job = %jt.job.name, unconfirmed_ms = r.confirmed.elapsed().as_millis() as u64, "the lease could not be renewed in time: the job's processes are frozen until the master confirms it, so they never run beside another worker's copy");
        }
    }

    /// The instance's signals, after `delay`, watched from `after` (at once without it).
    fn watch_signals(
        &self,
        level: &Level,
        after: Option<i64>,
        delay: Duration,
    ) -> InFlight<(Signals, i64)> {
        let client = self.client.clone();
        let level = level.clone();
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            Ok(Signals::watch(client.as_ref(), &level, after, SIGNAL_WATCH).await?)
        })
    }
}
