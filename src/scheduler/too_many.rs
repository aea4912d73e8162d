//! What a scheduled run held back by `max_running_instances` records, once per occurrence:
//! the too-many email (to the schedule's addresses and those of the workflow's rules that
//! hear of `too_many_runs`) and the webhook notices of those rules.

use super::run::Scheduler;
use crate::parser::notify::NotifyEvent;
use crate::schedule::{Schedule, ScheduleData};
use crate::token::Token;
use crate::workflow::mail::Notifier;
use crate::workflow::{definition, notices, settle};

impl Scheduler {
    /// The too-many email's outbox token (text only, to the schedule's addresses and those of
    /// the workflow's rules that hear of `too_many_runs`; none without a mailer or addresses),
    /// and the webhook notices of those rules.
    pub(super) async fn too_many(&self, data: &ScheduleData) -> Vec<Token> {
        let w = &data.workflow;
        let Ok(schedule) = Schedule::from_def(&data.schedule) else {
            return Vec::new();
        };
        let running = settle::running_instances(self.client.as_ref(), w)
            .await
            .map_or(0, |r| r.len());
        let limit = schedule
            .max_running_instances
            .unwrap_or(self.settings.default_max_running);
        tracing::warn!(workflow = %w, running, limit, "too many instances running; the scheduled run waits");
        let kind = NotifyEvent::TooManyRuns;
        let rules = match definition::read(self.client.as_ref(), w).await {
            Ok(def) => def.map(|d| d.notify).unwrap_or_default(),
            Err(e) => {
                tracing::warn!(workflow = %w, error = %e, "cannot read the workflow's notify rules; only the schedule's addresses are told");
                Vec::new()
            }
        };
        let (hooks, addresses) = notices::targets(&rules, kind);
        let mut to = data.emails.clone();
        to.extend(
            addresses
                .into_iter()
                .filter(|a| !data.emails.contains(a))
                .collect::<Vec<_>>(),
        );
        let n = Notifier::of(self.settings.mailer.as_ref(), &self.settings.ui_link);
        let mut out: Vec<Token> = n
            .too_many(w, running, limit, data.next_run_time, to)
            .into_iter()
            .collect();
        let e = notices::Event {
            kind,
            workflow: w,
            instance: None,
            job: None,
            status: "TOO_MANY_RUNS",
            exit_code: None,
            attempt: None,
            execution: None,
            run: None,
            seq: data.next_run_time,
            reason: None,
        };
        out.extend(notices::tokens(&e, &hooks, &n.ui_link));
        out
    }
}
