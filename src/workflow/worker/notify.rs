//! The worker's notices (PINBALL_SPEC §10.1, CONTRACT §4.5), recorded in the outbox: a job's
//! final failure, its retry and its success in the write of that end, a job past its warn
//! timeout as soon as it is noticed (the instance's end is `settle`'s). Emails go to the job's
//! `emails`, the workflow's `notify_emails` (for the instance's first failure) and the
//! addresses of the rules that hear of the event; webhook notices to the rules' webhooks. The
//! outbox's senders deliver them; nothing here waits for a server.

use super::Worker;
use crate::parser::notify::NotifyEvent;
use crate::token::*;
use crate::workflow::definition;
use crate::workflow::error::Error;
use crate::workflow::instance::JobToken;
use crate::workflow::job::Job;
use crate::workflow::notices::{self, Event};

/// What a final failure's write records: the failure email for whether the failure is the
/// instance's first (which the write decides, version-checked), and the webhook notices.
pub(super) struct FailureEmail {
    /// Job's addresses, workflow's addresses (for the first final failure only).
    recipients: Option<(Vec<String>, Vec<String>)>,
    /// The webhook notices of the failure.
    notices: Vec<Token>,
}

impl FailureEmail {
    /// Nothing to record.
    pub(super) fn none() -> FailureEmail {
        FailureEmail {
            recipients: None,
            notices: Vec::new(),
        }
    }

    /// The outbox tokens: the email, when there is anyone to tell, and the notices.
    pub(super) fn tokens(&self, w: &Worker, jt: &JobToken, job: &Job, first: bool) -> Vec<Token> {
        let mut out = self.notices.clone();
        if let Some((job_to, workflow_to)) = &self.recipients {
            let mut to = job_to.clone();
            if first {
                to.extend(workflow_to.iter().cloned());
            }
            out.extend(w.notifier.job_failure(jt, job, to));
        }
        out
    }
}

/// The event `kind` of `job`'s last execution.
fn job_event<'a>(jt: &'a JobToken, job: &'a Job, kind: NotifyEvent, status: &'a str) -> Event<'a> {
    let last = job.history.len().checked_sub(1);
    Event {
        kind,
        workflow: &jt.workflow,
        instance: Some(&jt.instance),
        job: Some(&job.name),
        status,
        exit_code: last.and_then(|n| job.history[n].exit_code),
        attempt: Some(job.history.len() as u32),
        execution: last,
        run: job.run.as_ref(),
        seq: last.map_or(0, |n| n as i64),
        reason: None,
    }
}

impl Worker {
    /// The notices of `job`'s event `kind` for its own rules and, when `workflow_too`, the
    /// workflow's (which needs its definition read).
    async fn job_notices(
        &self,
        jt: &JobToken,
        job: &Job,
        kind: NotifyEvent,
        status: &str,
        workflow_too: bool,
    ) -> Result<Vec<Token>, Error> {
        let mut hooks = notices::targets(&job.notify, kind).0;
        if workflow_too {
            let def = definition::read(self.client.as_ref(), &jt.workflow).await?;
            for h in def
                .map(|d| notices::targets(&d.notify, kind).0)
                .unwrap_or_default()
            {
                if !hooks.contains(&h) {
                    hooks.push(h);
                }
            }
        }
        let e = job_event(jt, job, kind, status);
        Ok(notices::tokens(&e, &hooks, &self.notifier.ui_link))
    }

    /// The notices of a success (the job's rules: a success is the job's own event).
    pub(super) async fn success_notices(&self, jt: &JobToken, job: &Job) -> Vec<Token> {
        self.job_notices(jt, job, NotifyEvent::Success, "SUCCESS", false)
            .await
            .unwrap_or_default()
    }

    /// The notices of a failure to be retried (the job's and the workflow's rules).
    pub(super) async fn retry_notices(
        &self,
        jt: &JobToken,
        job: &Job,
    ) -> Result<Vec<Token>, Error> {
        self.job_notices(jt, job, NotifyEvent::Retry, "FAILURE", true)
            .await
    }

    /// Reads what a final failure records (the workflow's addresses), with its notices.
    pub(super) async fn failure_email(
        &self,
        jt: &JobToken,
        job: &Job,
    ) -> Result<FailureEmail, Error> {
        let (_, addresses) = notices::targets(&job.notify, NotifyEvent::Failure);
        let notices = self
            .job_notices(jt, job, NotifyEvent::Failure, "FAILURE", false)
            .await?;
        let workflow_to = match self.notifier.mail {
            true => definition::notify_emails(self.client.as_ref(), &jt.workflow).await?,
            false => Vec::new(),
        };
        let mut job_to = job.emails.clone();
        job_to.extend(addresses);
        Ok(FailureEmail {
            recipients: Some((job_to, workflow_to)),
            notices,
        })
    }

    /// Records the warn-timeout email and notices of execution `index` (once: their names are
    /// the execution's). A failure is logged; the job runs on regardless.
    pub(super) async fn notify_timeout(&self, jt: &JobToken, job: &Job, index: usize) {
        let n = &self.notifier;
        let c = self.client.as_ref();
        let kind = NotifyEvent::WarnTimeout;
        let def = match definition::read(c, &jt.workflow).await {
            Ok(def) => def.unwrap_or_default(),
            Err(e) => {
                tracing::error!(job = %jt.token.name, error = %e, "cannot read the workflow's definition; the warn-timeout notices are not recorded");
                return;
            }
        };
        let rules: Vec<_> = job.notify.iter().chain(&def.notify).cloned().collect();
        let (hooks, addresses) = notices::targets(&rules, kind);
        let to = job
            .emails
            .iter()
            .cloned()
            .chain(def.notify_emails)
            .chain(addresses)
            .collect();
        let mut tokens: Vec<Token> = n.job_timeout(jt, job, index, to).into_iter().collect();
        let e = Event {
            status: "RUNNING",
            exit_code: None,
            execution: Some(index),
            seq: index as i64,
            ..job_event(jt, job, kind, "RUNNING")
        };
        tokens.extend(notices::tokens(&e, &hooks, &n.ui_link));
        if tokens.is_empty() {
            return;
        }
        match c.modify(ModifyRequest::update(tokens)).await {
            Ok(_) | Err(MasterError::VersionConflict(_)) => {
                tracing::info!(job = %jt.token.name, execution = index, "recorded the warn-timeout notices");
            }
            Err(e) => {
                tracing::error!(job = %jt.token.name, error = %e, "cannot record the warn-timeout notices");
            }
        }
    }
}
