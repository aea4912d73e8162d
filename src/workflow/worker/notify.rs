//! The worker's emails (PINBALL_SPEC §10.1): a job's final failure, a job past its warn timeout,
//! an instance's end. Sent in the background by one sender task per worker process: a slow or
//! hung SMTP server must never hold up a job (the warn-timeout email is sent from the loop
//! that renews the job's lease). On shutdown the sender finishes what it was given, within a
//! bound.

use std::time::Duration;

use tokio::task::JoinHandle;

use super::Worker;
use crate::clock::utc;
use crate::token::name::{InstanceId, WorkflowName};
use crate::workflow::instance::JobToken;
use crate::workflow::job::Job;
use crate::workflow::settle::InstanceEnd;

/// How long a stopping worker process waits for the emails it still owes.
const FLUSH: Duration = Duration::from_secs(30);

/// Waits (bounded) for the sender to finish the emails already queued.
pub(super) async fn flush(sender: JoinHandle<()>) {
    if tokio::time::timeout(FLUSH, sender).await.is_err() {
        tracing::error!(
            wait_sec = FLUSH.as_secs(),
            "emails still unsent at shutdown are dropped"
        );
    }
}

impl Worker {
    /// The workflow's notification addresses, from its definition in the master.
    async fn workflow_emails(&self, w: &WorkflowName) -> Vec<String> {
        match crate::workflow::definition::read(self.client.as_ref(), w).await {
            Ok(Some(def)) => def.notify_emails,
            _ => Vec::new(),
        }
    }

    async fn send(&self, to: Vec<String>, subject: String, text: String) {
        let Some(outbox) = &self.mail else {
            return;
        };
        if to.is_empty() {
            return;
        }
        let html = format!("<pre>{}</pre>", crate::email::html_escape(&text));
        let mail = crate::email::Outgoing {
            to,
            subject,
            text,
            html,
        };
        if let Err(e) = outbox.try_send(mail) {
            tracing::error!(error = %e, "the email queue is full; this email is dropped");
        }
    }

    fn execution_text(&self, jt: &JobToken, job: &Job, index: usize) -> String {
        let r = &job.history[index];
        let (w, i, j) = (&jt.workflow, &jt.instance, &job.name);
        let mut text = format!(
            "Workflow: {w}\nInstance: {i}\nJob: {j}\nExecution: {index}\nInfo: {}\nStart: {}\n",
            r.info,
            utc(r.start_time as i64)
        );
        if let Some(end) = r.end_time {
            text.push_str(&format!(
                "End: {}\nRun time: {}s\n",
                utc(end as i64),
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
    pub(super) async fn notify_failure(&self, jt: &JobToken, job: &Job, first: bool) {
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

    pub(super) async fn notify_timeout(&self, jt: &JobToken, job: &Job, index: usize) {
        let mut to = job.emails.clone();
        to.extend(self.workflow_emails(&jt.workflow).await);
        let subject = format!(
            "Workflow {}'s job {} exceeded timeout",
            jt.workflow, job.name
        );
        let text = self.execution_text(jt, job, index);
        self.send(to, subject, text).await;
    }

    pub(super) async fn notify_end(&self, w: &WorkflowName, i: &InstanceId, end: &InstanceEnd) {
        let to = self.workflow_emails(w).await;
        let when = |t: Option<f64>| t.map_or("-".to_owned(), |t| utc(t as i64));
        let status = end.status.as_str();
        let mut text = format!(
            "Workflow {w} instance {i} started at {} finished at {} with status {status}.\n{}/jobs/?workflow={w}&instance={i}\n\n",
            when(end.start),
            when(end.end),
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
                j.name.as_str(),
                when(j.last_start),
                when(j.last_end)
            ));
        }
        self.send(to, format!("{status} for workflow {w}"), text)
            .await;
    }
}
