//! The four notification emails of PINBALL_SPEC §10.1, as outbox tokens (`email::outbox`):
//! built by whoever writes the event that causes them, and put in that event's `/modify`.
//! Text and HTML from askama templates (`templates/email/`), with the spec's tables and links
//! into the dashboard at `ui_host` (else this machine's name, never `localhost`).

use askama::Template;

use super::instance::JobToken;
use super::job::Job;
use super::links;
use super::settle::InstanceEnd;
use super::status::Status;
use crate::clock::{duration, utc};
use crate::config::Config;
use crate::email::Outgoing;
use crate::token::Token;
use crate::token::name::{self, InstanceId, WorkflowName};

/// An instance-end email lists at most this many jobs (the dashboard has the rest).
const MAX_JOB_ROWS: usize = 500;

/// Builds the emails, and holds where the notices' links point. Emails are recorded only where
/// a mailer (`default_email`) is configured: without one nothing would ever deliver them.
#[derive(Debug, Clone)]
pub struct Notifier {
    /// `http://<ui_host>:<ui_port>`: where the links point.
    pub ui_link: String,
    /// Whether emails are recorded (a mailer is configured).
    pub mail: bool,
}

/// Where the emails' links point: `http://<ui_host>:<ui_port>`, or this machine's name
/// without `ui_host` (PINBALL_SPEC §10.1; a link to localhost opens nothing on the reader's
/// machine).
pub fn ui_link(c: &Config) -> String {
    format!(
        "http://{}:{}",
        c.ui_host.clone().unwrap_or_else(crate::config::host_name),
        c.ui_port
    )
}

impl Notifier {
    /// The notifier of a process with `mailer` (which records no email without one: nothing
    /// would deliver it; webhook notices are recorded either way).
    pub fn of(mailer: Option<&crate::email::Mailer>, ui_link: &str) -> Notifier {
        Notifier {
            ui_link: ui_link.to_owned(),
            mail: mailer.is_some(),
        }
    }

    fn url(&self, path: String) -> String {
        format!("{}{path}", self.ui_link)
    }

    /// A job's final failure (its last execution), to `to`.
    pub fn job_failure(&self, jt: &JobToken, job: &Job, to: Vec<String>) -> Option<Token> {
        if !self.mail {
            return None;
        }
        let index = job.history.len().checked_sub(1)?;
        let code = job.history[index].exit_code.unwrap_or(1);
        let subject = format!(
            "Workflow {}'s job {} finished with exit code {code}",
            jt.workflow, job.name
        );
        let mut v = self.execution_view(jt, job, index, subject);
        v.summary = format!(
            "Job {} of workflow {} instance {} failed with no attempts left: started {}, ran {}, ended {} with exit code {code}.",
            job.name,
            jt.workflow,
            jt.instance,
            v.start,
            v.run_time,
            v.end.as_deref().unwrap_or("-")
        );
        let name = name::failure_email_token(&jt.workflow, &jt.instance, &job.name, index);
        execution_email(v, to).token(name)
    }

    /// Execution `index` of a job running past its warn timeout, to `to`.
    pub fn job_timeout(
        &self,
        jt: &JobToken,
        job: &Job,
        index: usize,
        to: Vec<String>,
    ) -> Option<Token> {
        if !self.mail {
            return None;
        }
        let subject = format!(
            "Workflow {}'s job {} exceeded timeout",
            jt.workflow, job.name
        );
        let mut v = self.execution_view(jt, job, index, subject);
        v.end = None;
        v.exit_code = None;
        v.summary = format!(
            "Job {} of workflow {} instance {} has been running for {} (since {}), past its warn timeout of {} s.",
            job.name,
            jt.workflow,
            jt.instance,
            v.run_time,
            v.start,
            job.warn_timeout_sec.unwrap_or_default()
        );
        let name = name::timeout_email_token(&jt.workflow, &jt.instance, &job.name, index);
        execution_email(v, to).token(name)
    }

    fn execution_view(
        &self,
        jt: &JobToken,
        job: &Job,
        index: usize,
        subject: String,
    ) -> ExecutionView {
        let r = &job.history[index];
        let (w, i, j) = (&jt.workflow, &jt.instance, &job.name);
        let end = r.end_time.unwrap_or_else(crate::clock::now_f64);
        ExecutionView {
            subject,
            summary: String::new(),
            workflow: w.to_string(),
            instance: i.to_string(),
            job: j.to_string(),
            execution: index,
            info: r.info.clone(),
            start: utc(r.start_time as i64),
            end: r.end_time.map(|t| utc(t as i64)),
            run_time: duration(end - r.start_time),
            exit_code: r.exit_code,
            logs: r
                .logs
                .keys()
                .map(|kind| LogLink {
                    kind: kind.clone(),
                    url: self.url(links::file_href(w, i, j, index, kind)),
                })
                .collect(),
            instances_url: self.url(links::instances_href(w)),
            jobs_url: self.url(links::jobs_href(w, i)),
            executions_url: self.url(links::job_href(w, i, j)),
            execution_url: self.url(links::execution_href(w, i, j, index)),
        }
    }

    /// An instance's end, noticed at `at_ms`, to `to`.
    pub fn instance_end(
        &self,
        w: &WorkflowName,
        i: &InstanceId,
        end: &InstanceEnd,
        at_ms: i64,
        to: Vec<String>,
    ) -> Option<Token> {
        if !self.mail {
            return None;
        }
        let when = |t: Option<f64>| t.map_or("-".to_owned(), |t| utc(t as i64));
        let ran = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => duration(b - a),
            _ => "-".to_owned(),
        };
        let status = end.status.as_str();
        let jobs: Vec<JobRow> = end
            .jobs
            .iter()
            .take(MAX_JOB_ROWS)
            .map(|j| {
                let status = match j.succeeded {
                    Some(true) => Status::SUCCESS,
                    Some(false) => Status::FAILURE,
                    None => Status::NEVER_RUN,
                };
                JobRow {
                    name: j.name.to_string(),
                    last_start: when(j.last_start),
                    last_end: when(j.last_end),
                    run_time: ran(j.last_start, j.last_end),
                    status: status.as_str(),
                    colour: colour(status),
                    url: self.url(links::job_href(w, i, &j.name)),
                }
            })
            .collect();
        let v = EndView {
            subject: format!("{status} for workflow {w}"),
            summary: format!(
                "Workflow {w} instance {i} started at {} finished after {} at {} with status {status}.",
                when(end.start),
                ran(end.start, end.end),
                when(end.end)
            ),
            jobs_url: self.url(links::jobs_href(w, i)),
            more: end.jobs.len().saturating_sub(MAX_JOB_ROWS),
            jobs,
        };
        let text = EndText { v: &v }.render().expect("templates render");
        let html = EndHtml { v: &v }.render().expect("templates render");
        Outgoing::new(to, v.subject.clone(), text, Some(html))
            .token(name::end_email_token(w, i, at_ms))
    }

    /// Run `i` of `w` missed its deadline (`why`), noticed at `at`, to `to`. Text only.
    pub fn deadline_missed(
        &self,
        w: &WorkflowName,
        i: &InstanceId,
        why: &str,
        at: i64,
        to: Vec<String>,
    ) -> Option<Token> {
        if !self.mail {
            return None;
        }
        let subject = format!("Workflow {w} instance {i} missed its deadline");
        let text = format!(
            "Workflow {w} instance {i}: {why} (noticed at {}).\n\n{}\n",
            utc(at),
            self.url(links::jobs_href(w, i))
        );
        Outgoing::new(to, subject, text, None).token(name::deadline_email_token(w, i))
    }

    /// A scheduled run (due at `due`) held back: `running` instances of `w` reach `limit`.
    /// Text only, as the spec has it.
    pub fn too_many(
        &self,
        w: &WorkflowName,
        running: usize,
        limit: u32,
        due: i64,
        to: Vec<String>,
    ) -> Option<Token> {
        if !self.mail {
            return None;
        }
        let text = TooManyText {
            running,
            limit,
            workflow: w.as_str(),
            due: utc(due),
            instances_url: self.url(links::instances_href(w)),
        }
        .render()
        .expect("templates render");
        let subject = format!("Too many ({running}) instances running for workflow {w} !");
        Outgoing::new(to, subject, text, None).token(name::too_many_email_token(w, due))
    }
}

fn execution_email(v: ExecutionView, to: Vec<String>) -> Outgoing {
    let text = ExecutionText { v: &v }.render().expect("templates render");
    let html = ExecutionHtml { v: &v }.render().expect("templates render");
    Outgoing::new(to, v.subject, text, Some(html))
}

/// Green for success, red for failure (the spec's coloured status), grey otherwise.
fn colour(s: Status) -> &'static str {
    match s {
        Status::SUCCESS => "#1a7f37",
        Status::FAILURE | Status::ABORTED => "#cf222e",
        _ => "#57606a",
    }
}

struct LogLink {
    kind: String,
    url: String,
}

struct ExecutionView {
    subject: String,
    summary: String,
    workflow: String,
    instance: String,
    job: String,
    execution: usize,
    info: String,
    start: String,
    end: Option<String>,
    run_time: String,
    exit_code: Option<i32>,
    logs: Vec<LogLink>,
    instances_url: String,
    jobs_url: String,
    executions_url: String,
    execution_url: String,
}

#[derive(Template)]
#[template(path = "email/execution.txt")]
struct ExecutionText<'a> {
    v: &'a ExecutionView,
}

#[derive(Template)]
#[template(path = "email/execution.html")]
struct ExecutionHtml<'a> {
    v: &'a ExecutionView,
}

struct JobRow {
    name: String,
    last_start: String,
    last_end: String,
    run_time: String,
    status: &'static str,
    colour: &'static str,
    url: String,
}

struct EndView {
    subject: String,
    summary: String,
    jobs_url: String,
    jobs: Vec<JobRow>,
    more: usize,
}

#[derive(Template)]
#[template(path = "email/end.txt")]
struct EndText<'a> {
    v: &'a EndView,
}

#[derive(Template)]
#[template(path = "email/end.html")]
struct EndHtml<'a> {
    v: &'a EndView,
}

#[derive(Template)]
#[template(path = "email/too_many.txt")]
struct TooManyText<'a> {
    running: usize,
    limit: u32,
    workflow: &'a str,
    due: String,
    instances_url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_name_ui_host_or_this_machine_never_localhost() {
        let named = Config {
            ui_host: Some("pinball.example.com".into()),
            ..Config::default()
        };
        assert_eq!(
            ui_link(&named),
            format!("http://pinball.example.com:{}", named.ui_port)
        );
        let unnamed = Config::default();
        assert_eq!(
            ui_link(&unnamed),
            format!("http://{}:{}", crate::config::host_name(), unnamed.ui_port)
        );
    }
}
