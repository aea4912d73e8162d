//! The worker's emails (PINBALL_SPEC §10.1), recorded in the outbox: a job's final failure in
//! the write of that failure, a job past its warn timeout as soon as it is noticed (the
//! instance's end is `settle`'s). The outbox's sender delivers them; nothing here waits for an
//! SMTP server.

use super::Worker;
use crate::token::*;
use crate::workflow::definition;
use crate::workflow::error::Error;
use crate::workflow::instance::JobToken;
use crate::workflow::job::Job;

/// What a final failure's write records: the failure email for whether the failure is the
/// instance's first (which the write decides, version-checked).
pub(super) struct FailureEmail {
    /// Job's addresses, workflow's addresses (for the first final failure only).
    recipients: Option<(Vec<String>, Vec<String>)>,
}

impl FailureEmail {
    /// No email (no mailer).
    pub(super) fn none() -> FailureEmail {
        FailureEmail { recipients: None }
    }

    /// The outbox token, when there is anyone to tell.
    pub(super) fn token(&self, w: &Worker, jt: &JobToken, job: &Job, first: bool) -> Option<Token> {
        let (job_to, workflow_to) = self.recipients.as_ref()?;
        let mut to = job_to.clone();
        if first {
            to.extend(workflow_to.iter().cloned());
        }
        w.notifier.as_ref()?.job_failure(jt, job, to)
    }
}

impl Worker {
    /// Reads what a final failure's email needs (the workflow's addresses).
    pub(super) async fn failure_email(
        &self,
        jt: &JobToken,
        job: &Job,
    ) -> Result<FailureEmail, Error> {
        if self.notifier.is_none() {
            return Ok(FailureEmail::none());
        }
        let workflow_to = definition::notify_emails(self.client.as_ref(), &jt.workflow).await?;
        Ok(FailureEmail {
            recipients: Some((job.emails.clone(), workflow_to)),
        })
    }

    /// Records the warn-timeout email of execution `index` (once: its name is the
    /// execution's). A failure is logged; the job runs on regardless.
    pub(super) async fn notify_timeout(&self, jt: &JobToken, job: &Job, index: usize) {
        let Some(n) = &self.notifier else {
            return;
        };
        let c = self.client.as_ref();
        let to = match definition::notify_emails(c, &jt.workflow).await {
            Ok(w) => job.emails.iter().cloned().chain(w).collect(),
            Err(e) => {
                tracing::error!(job = %jt.token.name, error = %e, "cannot read the workflow's addresses; the warn-timeout email is not recorded");
                return;
            }
        };
        let Some(token) = n.job_timeout(jt, job, index, to) else {
            return;
        };
        match c.modify(ModifyRequest::update(vec![token])).await {
            Ok(_) | Err(MasterError::VersionConflict(_)) => {
                tracing::info!(job = %jt.token.name, execution = index, "recorded the warn-timeout email");
            }
            Err(e) => {
                tracing::error!(job = %jt.token.name, error = %e, "cannot record the warn-timeout email");
            }
        }
    }
}
