//! A job's executions: `/executions/` (in one instance), `/job_executions/` (across the
//! workflow's instances) and `/execution/` (one execution, its properties, logs and Redo).

use askama::Template;
use axum::extract::State;

use super::{Head, PageResult, Params, When, execution_href, file_href, need, respond, when};
use crate::ops::read::ExecutionRow;
use crate::token::name::{JobName, Level, WorkflowName};
use crate::ui::Ui;
use crate::ui::error::{PageError, PageQuery, QueryIn, UiError};
use crate::ui::format::{run_secs, run_time};

pub struct ExecutionView {
    pub instance: String,
    pub execution: usize,
    pub href: String,
    pub info: String,
    pub properties: String,
    pub status: &'static str,
    pub icon: &'static str,
    pub colour: &'static str,
    pub exit_code: String,
    pub start: When,
    pub end: When,
    pub run_time: String,
    /// The run time in seconds: what the column sorts by.
    pub run_secs: String,
    pub worker: String,
    pub host: String,
    pub logs: Vec<(String, String)>,
    /// Incomplete logs and why, as one line (empty when every log is whole).
    pub log_trouble: String,
}

fn execution_view(w: &WorkflowName, job: &JobName, r: ExecutionRow, now: f64) -> ExecutionView {
    let i = &r.instance;
    ExecutionView {
        href: execution_href(w, i, job, r.execution),
        info: r.info.clone(),
        properties: r
            .properties
            .iter()
            .map(|(k, v)| format!("{k}={}", v.join(",")))
            .collect::<Vec<_>>()
            .join(", "),
        status: r.state.as_str(),
        icon: r.state.icon(),
        colour: r.state.colour(),
        exit_code: match (r.exit_code, r.cleanup_exit_code) {
            _ if r.lost.is_some() => match r.paused {
                true => r.lost.clone().unwrap_or_default(),
                false => format!("lost: {}", r.lost.as_deref().unwrap_or_default()),
            },
            (Some(c), Some(k)) => format!("{c} (cleanup {k})"),
            (Some(c), None) => c.to_string(),
            _ => String::new(),
        },
        start: when(Some(r.start_time), now),
        end: when(r.end_time, now),
        run_time: run_time(Some(r.start_time), r.end_time, now),
        run_secs: run_secs(Some(r.start_time), r.end_time, now),
        worker: r.worker.clone(),
        host: r.host.clone(),
        logs: r
            .log_urls
            .keys()
            .map(|kind| (kind.clone(), file_href(w, i, job, r.execution, kind)))
            .collect(),
        log_trouble: r
            .log_trouble
            .iter()
            .map(|(kind, why)| format!("{kind} {why}"))
            .collect::<Vec<_>>()
            .join("; "),
        execution: r.execution,
        instance: r.instance.to_string(),
    }
}

/// The rows of an executions table: the newest first.
fn newest_first(
    w: &WorkflowName,
    job: &JobName,
    rows: Vec<ExecutionRow>,
    now: f64,
) -> Vec<ExecutionView> {
    rows.into_iter()
        .rev()
        .map(|r| execution_view(w, job, r, now))
        .collect()
}

#[derive(Template)]
#[template(path = "executions.html")]
struct ExecutionsPage {
    head: Head,
    workflow: String,
    instance: Option<String>,
    job: String,
    rows: Vec<ExecutionView>,
    next: Option<u64>,
}

pub(super) async fn executions(
    State(ui): State<Ui>,
    QueryIn(p, _): PageQuery<Params>,
) -> PageResult {
    let now = crate::clock::now_f64();
    let (w, i) = p.instance()?;
    let job = p.job()?;
    let rows = ui
        .data
        .executions(w, i, job)
        .await
        .map_err(PageError::from)?;
    let rows = rows.ok_or_else(|| {
        UiError::NotFound(format!("job {job} of workflow {w} instance {i} not found"))
    })?;
    respond(&ExecutionsPage {
        head: Head::new(
            &ui,
            format!("{job} in {w} {i}"),
            &Level::Instance(w.clone(), i.clone()),
        ),
        workflow: w.to_string(),
        instance: Some(i.to_string()),
        job: job.to_string(),
        rows: newest_first(w, job, rows, now),
        next: None,
    })
}

/// Instances searched per page of a job's executions across instances.
const EXECUTION_INSTANCES: u32 = 50;

pub(super) async fn job_executions(
    State(ui): State<Ui>,
    QueryIn(p, _): PageQuery<Params>,
) -> PageResult {
    let now = crate::clock::now_f64();
    let w = p.workflow()?;
    let job = p.job()?;
    let rows = ui
        .data
        .job_executions(w, job, p.offset, EXECUTION_INSTANCES)
        .await
        .map_err(PageError::from)?;
    let more = !rows.is_empty();
    respond(&ExecutionsPage {
        head: Head::new(&ui, format!("{job} in {w}"), &Level::Workflow(w.clone())),
        workflow: w.to_string(),
        instance: None,
        job: job.to_string(),
        rows: newest_first(w, job, rows, now),
        next: more.then_some(p.offset + EXECUTION_INSTANCES as u64),
    })
}

/// A property value as a link when it is one: `label|http://...` or a bare URL.
pub struct Property {
    pub key: String,
    pub text: String,
    pub href: Option<String>,
}

fn property(key: &str, value: &str) -> Property {
    let is_url = |s: &str| s.starts_with("http://") || s.starts_with("https://");
    match value.split_once('|') {
        Some((label, url)) if is_url(url) => Property {
            key: key.into(),
            text: label.into(),
            href: Some(url.into()),
        },
        _ => Property {
            key: key.into(),
            text: value.into(),
            href: is_url(value).then(|| value.into()),
        },
    }
}

#[derive(Template)]
#[template(path = "execution.html")]
struct ExecutionPage {
    head: Head,
    workflow: String,
    instance: String,
    job: String,
    e: ExecutionView,
    properties: Vec<Property>,
    can_redo: bool,
}

pub(super) async fn execution(
    State(ui): State<Ui>,
    QueryIn(p, _): PageQuery<Params>,
) -> PageResult {
    let now = crate::clock::now_f64();
    let (w, i) = p.instance()?;
    let job = p.job()?;
    let n = need("&execution=", p.execution)?;
    let rows = ui
        .data
        .executions(w, i, job)
        .await
        .map_err(PageError::from)?;
    let row = rows.and_then(|r| r.into_iter().nth(n)).ok_or_else(|| {
        UiError::NotFound(format!(
            "execution {n} of job {job} in workflow {w} instance {i} not found"
        ))
    })?;
    let properties = row
        .properties
        .iter()
        .flat_map(|(k, vs)| vs.iter().map(move |v| property(k, v)))
        .collect();
    let can_redo = row.exit_code.is_some();
    let mut e = execution_view(w, job, row, now);
    // Logs are served under the instance the page names (a copied history keeps its files).
    e.logs = e
        .logs
        .iter()
        .map(|(kind, _)| (kind.clone(), file_href(w, i, job, n, kind)))
        .collect();
    respond(&ExecutionPage {
        head: Head::new(
            &ui,
            format!("{job} #{n}"),
            &Level::Instance(w.clone(), i.clone()),
        ),
        workflow: w.to_string(),
        instance: i.to_string(),
        job: job.to_string(),
        e,
        properties,
        can_redo,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_link_when_they_are_urls() {
        let p = property("kv_job_url", "j_1|https://tracker/job/1");
        assert_eq!(
            (p.text.as_str(), p.href.as_deref()),
            ("j_1", Some("https://tracker/job/1"))
        );
        assert_eq!(property("k", "plain").href, None);
        assert_eq!(property("k", "http://x").href.as_deref(), Some("http://x"));
    }
}
