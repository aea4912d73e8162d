//! The browser pages, at the original's URLs (`/workflows/`, `/instances/?workflow=W`,
//! `/jobs/?workflow=W&instance=I`, ...), so links in emails and bookmarks keep working. Views
//! are computed here (times, durations, colours, the graph and the timeline); the templates
//! only lay them out.
// Handlers return `Result<Response, Response>`: the error is the error page itself.
#![allow(clippy::result_large_err)]

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Router, http::Uri};
use serde::Deserialize;

use super::Ui;
use super::api::{UiError, read_log, words};
use super::data::*;
use super::format::{ago, run_secs, run_time, utc};
use super::status::{Status, job_status};
use super::{gantt, graph};
use crate::clock::now_f64 as epoch_secs_f64;
use crate::schedule::OverrunPolicy;
use crate::token::name::Level;
use crate::workflow::instance::JobToken;
use crate::workflow::signal::Action;

pub fn router(ui: Ui) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/workflows/") }))
        .route("/workflows/", get(workflows))
        .route("/instances/", get(instances))
        .route("/jobs/", get(instance))
        .route("/executions/", get(executions))
        .route("/job_executions/", get(job_executions))
        .route("/execution/", get(execution))
        .route("/file/", get(file))
        .route("/schedules/", get(schedules))
        .route("/schedule/", get(schedule))
        .route("/token_paths/", get(token_paths))
        .route("/token/", get(token))
        .fallback(not_found)
        .with_state(ui)
}

/// What every page's frame needs.
pub struct Head {
    pub title: String,
    pub csrf: String,
    /// The status label's scope, as a query string (`workflow=W&instance=I`).
    pub scope: String,
}

impl Head {
    fn new(ui: &Ui, title: impl Into<String>, scope: &Level) -> Head {
        Head {
            title: title.into(),
            csrf: ui.csrf.to_string(),
            scope: match scope {
                Level::Global => String::new(),
                Level::Workflow(w) => format!("workflow={w}"),
                Level::Instance(w, i) => format!("workflow={w}&instance={i}"),
            },
        }
    }
}

/// A time cell: UTC text, "3 min ago", and a sort key.
pub struct When {
    pub utc: String,
    pub ago: String,
    pub sort: String,
}

fn when(t: Option<f64>, now: f64) -> When {
    When {
        utc: utc(t),
        ago: ago(t, now),
        sort: t.map_or_else(String::new, |t| format!("{t:.3}")),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    head: Head,
    status: u16,
    message: String,
}

fn error_page(ui: &Ui, e: UiError) -> Response {
    let (status, message) = match e {
        UiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
        UiError::BadInput(m) => (StatusCode::BAD_REQUEST, m),
        UiError::Unavailable(e) => {
            tracing::error!(error = %e, "the UI cannot read the database");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database cannot be read right now; try again in a moment".into(),
            )
        }
    };
    let page = ErrorPage {
        head: Head::new(ui, "Error", &Level::Global),
        status: status.as_u16(),
        message,
    };
    (status, render(&page)).into_response()
}

fn render(t: &impl Template) -> Html<String> {
    Html(t.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "a page failed to render");
        format!("page failed to render: {e}")
    }))
}

async fn not_found(State(ui): State<Ui>, uri: Uri) -> Response {
    error_page(&ui, UiError::NotFound(format!("no page at {}", uri.path())))
}

/// A page or the error page; both are whole responses, built once per request.
type PageResult = Result<Response, Response>;

fn page(t: &impl Template) -> PageResult {
    Ok(render(t).into_response())
}

macro_rules! try_page {
    ($ui:expr, $e:expr) => {
        $e.map_err(|e: UiError| error_page(&$ui, e))?
    };
}

fn need<T>(what: &str, v: Option<T>) -> Result<T, UiError> {
    v.ok_or_else(|| UiError::BadInput(format!("this page needs {what}")))
}

#[derive(Deserialize, Default)]
struct Params {
    workflow: Option<String>,
    instance: Option<String>,
    job: Option<String>,
    execution: Option<usize>,
    log_type: Option<String>,
    path: Option<String>,
    #[serde(default)]
    offset: u64,
    /// The first row of an instance's jobs table.
    #[serde(default)]
    jobs_offset: usize,
    /// Only the jobs whose name contains this, or whose status is this (all pages).
    jobs_q: Option<String>,
    #[serde(default)]
    full: Option<u8>,
    /// Set by the live refresh: the heavy, separately refreshed parts (the graph) are left out.
    #[serde(default)]
    live: Option<u8>,
}

impl Params {
    fn workflow(&self) -> Result<&str, UiError> {
        let w = need("?workflow=", self.workflow.as_deref())?;
        words(&[("workflow", w)])?;
        Ok(w)
    }
    fn instance(&self) -> Result<(&str, &str), UiError> {
        let w = self.workflow()?;
        let i = need("&instance=", self.instance.as_deref())?;
        words(&[("instance", i)])?;
        Ok((w, i))
    }
    fn job(&self) -> Result<&str, UiError> {
        let j = need("&job=", self.job.as_deref())?;
        words(&[("job", j)])?;
        Ok(j)
    }
}

// ---------------------------------------------------------------------------------------------
// Workflows

pub struct WorkflowView {
    pub workflow: String,
    pub owner: String,
    pub status: &'static str,
    pub colour: &'static str,
    pub last_instance: String,
    pub last_start: When,
    pub last_end: When,
    pub run_time: String,
    pub run_secs: String,
    pub running: usize,
    pub next_run: When,
}

#[derive(Template)]
#[template(path = "workflows.html")]
struct WorkflowsPage {
    head: Head,
    rows: Vec<WorkflowView>,
}

async fn workflows(State(ui): State<Ui>) -> PageResult {
    let now = epoch_secs_f64();
    let rows = try_page!(ui, ui.data.workflows().await.map_err(UiError::from));
    let rows = rows
        .into_iter()
        .map(|r| WorkflowView {
            owner: r.owner.unwrap_or_default(),
            status: r.status.as_str(),
            colour: r.status.colour(),
            last_instance: r.last_instance.unwrap_or_default(),
            last_start: when(r.last_start_time, now),
            last_end: when(r.last_end_time, now),
            run_time: run_time(r.last_start_time, r.last_end_time, now),
            run_secs: run_secs(r.last_start_time, r.last_end_time, now),
            running: r.running_instances,
            next_run: when(r.next_run_time.map(|t| t as f64), now),
            workflow: r.workflow,
        })
        .collect();
    page(&WorkflowsPage {
        head: Head::new(&ui, "Workflows", &Level::Global),
        rows,
    })
}

// ---------------------------------------------------------------------------------------------
// Instances

pub struct InstanceView {
    pub instance: String,
    pub status: &'static str,
    pub colour: &'static str,
    pub start: When,
    pub end: When,
    pub run_time: String,
    pub run_secs: String,
}

#[derive(Template)]
#[template(path = "instances.html")]
struct InstancesPage {
    head: Head,
    workflow: String,
    rows: Vec<InstanceView>,
    total: u64,
    first: u64,
    last: u64,
    prev: Option<u64>,
    next: Option<u64>,
}

/// Instances per page.
const PAGE: u32 = 100;

async fn instances(State(ui): State<Ui>, Query(p): Query<Params>) -> PageResult {
    let now = epoch_secs_f64();
    let w = try_page!(ui, p.workflow());
    let found = try_page!(
        ui,
        ui.data
            .instances(w, p.offset, PAGE)
            .await
            .map_err(UiError::from)
    );
    let page_data = found.unwrap_or(InstancePage {
        rows: Vec::new(),
        total: 0,
        offset: 0,
        limit: PAGE,
    });
    let rows: Vec<InstanceView> = page_data
        .rows
        .into_iter()
        .map(|r| InstanceView {
            status: r.status.as_str(),
            colour: r.status.colour(),
            start: when(r.start_time, now),
            end: when(r.end_time, now),
            run_time: run_time(r.start_time, r.end_time, now),
            run_secs: run_secs(r.start_time, r.end_time, now),
            instance: r.instance,
        })
        .collect();
    let total = page_data.total;
    page(&InstancesPage {
        head: Head::new(&ui, format!("{w} instances"), &Level::Workflow(w.into())),
        workflow: w.into(),
        first: if rows.is_empty() { 0 } else { p.offset + 1 },
        last: p.offset + rows.len() as u64,
        prev: (p.offset > 0).then(|| p.offset.saturating_sub(PAGE as u64)),
        next: (p.offset + (PAGE as u64) < total).then_some(p.offset + PAGE as u64),
        rows,
        total,
    })
}

// ---------------------------------------------------------------------------------------------
// One instance: graph, jobs, timeline

pub struct Segment {
    pub percent: u32,
    pub colour: &'static str,
}

pub struct JobView {
    pub job: String,
    pub info: Vec<String>,
    pub status: &'static str,
    pub colour: &'static str,
    pub progress: Vec<Segment>,
    pub last_start: When,
    pub last_end: When,
    pub run_time: String,
    pub attempts: usize,
    pub depends_on: String,
}

#[derive(Template)]
#[template(path = "instance.html")]
struct InstancePageView {
    head: Head,
    workflow: String,
    instance: String,
    status: &'static str,
    colour: &'static str,
    start: When,
    end: When,
    run_time: String,
    jobs: Vec<JobView>,
    graph: String,
    gantt: String,
    legend: Vec<(&'static str, &'static str)>,
    live: bool,
    signals: Vec<String>,
    /// Jobs in the table (after the search), and in the instance.
    count: usize,
    total: usize,
    /// The jobs table's search across pages.
    q: String,
    /// Every job, for the graph's search box.
    names: Vec<String>,
    /// The jobs table's page: rows `first..=last` of `count`.
    first: usize,
    last: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Jobs table rows per page: a browser lays out a 10,000-row table for seconds.
pub const JOBS_PAGE: usize = 250;

pub const LEGEND: [Status; 7] = [
    Status::NEVER_RUN,
    Status::PENDING,
    Status::RUNNING,
    Status::SUCCESS,
    Status::FAILURE,
    Status::DISABLED,
    Status::UNKNOWN,
];

fn job_info(jt: &JobToken) -> Vec<String> {
    let j = &jt.job;
    let mut info = vec![j.command.clone()];
    if j.is_condition() {
        info.push("condition".into());
    }
    if jt.token.priority != 0.0 {
        info.push(format!("priority {}", jt.token.priority));
    }
    if !j.emails.is_empty() {
        info.push(format!("emails {}", j.emails.join(", ")));
    }
    if j.max_attempts > 1 {
        info.push(format!("max_attempts {}", j.max_attempts));
    }
    if j.retry_delay_sec > 0 {
        info.push(format!("retry_delay_sec {}", j.retry_delay_sec));
    }
    if let Some(t) = j.warn_timeout_sec {
        info.push(format!("warn_timeout_sec {t}"));
    }
    if let Some(t) = j.abort_timeout_sec {
        info.push(format!("abort_timeout_sec {t}"));
    }
    if j.disabled {
        info.push("disabled".into());
    }
    info
}

/// PINBALL_SPEC §8.3: the share of the instance's duration before the job's first start, then
/// one segment per execution (at least 1%), coloured by how it ended.
pub fn progress(jt: &JobToken, inst_start: f64, inst_end: f64) -> Vec<(u32, Status)> {
    let total = (inst_end - inst_start).max(1.0);
    let Some(first) = jt.job.history.first() else {
        return Vec::new();
    };
    let mut out = vec![(
        (100.0 * (first.start_time - inst_start) / total) as u32,
        Status::UNKNOWN,
    )];
    for (n, r) in jt.job.history.iter().enumerate() {
        let status = match execution_status(jt, n) {
            Status::RUNNING => Status::RUNNING,
            Status::SUCCESS => Status::SUCCESS,
            _ => Status::FAILURE,
        };
        let d = r.end_time.unwrap_or(inst_end) - r.start_time;
        out.push((((100.0 * d / total) as u32).max(1), status));
    }
    out
}

pub fn job_href(w: &str, i: &str, job: &str) -> String {
    format!("/executions/?workflow={w}&instance={i}&job={job}")
}

pub fn execution_href(w: &str, i: &str, job: &str, n: usize) -> String {
    format!("/execution/?workflow={w}&instance={i}&job={job}&execution={n}")
}

async fn instance(State(ui): State<Ui>, Query(p): Query<Params>) -> PageResult {
    let now = epoch_secs_f64();
    let (w, i) = try_page!(ui, p.instance());
    if i == "latest" {
        let latest = try_page!(ui, ui.data.latest_instance(w).await.map_err(UiError::from));
        let latest = try_page!(
            ui,
            latest.ok_or_else(|| UiError::NotFound(format!("workflow {w} has no instance")))
        );
        return Ok(Redirect::to(&format!("/jobs/?workflow={w}&instance={latest}")).into_response());
    }
    let inst = try_page!(ui, ui.data.instance(w, i).await.map_err(UiError::from));
    let inst = try_page!(
        ui,
        inst.ok_or_else(|| UiError::NotFound(format!("workflow {w} instance {i} not found")))
    );
    let s = inst.status();
    let inst_start = s.start_time.unwrap_or(now);
    let inst_end = s.end_time.unwrap_or(now);
    let running = s.status == Status::RUNNING;
    let colour_of = |jt: &JobToken| {
        let st = job_status(jt);
        // A failed condition in a running instance is not final: it may be retried.
        if jt.job.is_condition() && st == Status::FAILURE && running {
            Status::PENDING
        } else {
            st
        }
    };
    let graph = if p.live.is_some() {
        String::new()
    } else {
        let nodes: Vec<graph::GraphNode> = inst
            .jobs
            .iter()
            .map(|jt| graph::GraphNode {
                name: jt.job.name.clone(),
                depends_on: depends_on(jt),
                status: colour_of(jt),
                condition: jt.job.is_condition(),
            })
            .collect();
        graph::svg(&nodes)
    };
    let bars = inst
        .jobs
        .iter()
        .flat_map(|jt| {
            jt.job
                .history
                .iter()
                .enumerate()
                .map(move |(n, r)| gantt::Bar {
                    job: jt.job.name.clone(),
                    execution: n,
                    start: r.start_time,
                    end: r.end_time,
                    status: execution_status(jt, n),
                    href: execution_href(w, i, &jt.job.name, n),
                })
        })
        .collect();
    let q = p.jobs_q.as_deref().unwrap_or("").trim().to_owned();
    let matching: Vec<&JobToken> = inst
        .jobs
        .iter()
        .filter(|jt| {
            q.is_empty()
                || jt.job.name.contains(q.as_str())
                || job_status(jt).as_str().eq_ignore_ascii_case(&q)
        })
        .collect();
    let count = matching.len();
    let from = p
        .jobs_offset
        .min(count.saturating_sub(1) / JOBS_PAGE * JOBS_PAGE);
    let jobs: Vec<JobView> = matching
        .iter()
        .copied()
        .skip(from)
        .take(JOBS_PAGE)
        .map(|jt| {
            let st = colour_of(jt);
            let last = jt.job.history.last();
            JobView {
                job: jt.job.name.clone(),
                info: job_info(jt),
                status: job_status(jt).as_str(),
                colour: st.colour(),
                progress: progress(jt, inst_start, inst_end)
                    .into_iter()
                    .enumerate()
                    .map(|(k, (percent, status))| Segment {
                        percent,
                        colour: if k == 0 {
                            "transparent"
                        } else {
                            status.colour()
                        },
                    })
                    .collect(),
                last_start: when(last.map(|r| r.start_time), now),
                last_end: when(last.and_then(|r| r.end_time), now),
                run_time: last.map_or_else(String::new, |r| {
                    run_time(Some(r.start_time), r.end_time, now)
                }),
                attempts: jt.job.history.len(),
                depends_on: depends_on(jt).join(", "),
            }
        })
        .collect();
    let signals: Vec<String> = inst
        .signals
        .iter()
        .filter_map(|t| t.name.rsplit('/').next())
        .filter(|a| *a != Action::ARCHIVE.as_str())
        .map(str::to_owned)
        .collect();
    page(&InstancePageView {
        head: Head::new(
            &ui,
            format!("{w} {i}"),
            &Level::Instance(w.into(), i.into()),
        ),
        workflow: w.into(),
        instance: i.into(),
        status: s.status.as_str(),
        colour: s.status.colour(),
        start: when(s.start_time, now),
        end: when(s.end_time, now),
        run_time: run_time(s.start_time, s.end_time, now),
        count,
        total: inst.jobs.len(),
        q,
        first: from + 1,
        last: from + jobs.len(),
        prev: (from > 0).then(|| from.saturating_sub(JOBS_PAGE)),
        next: (from + JOBS_PAGE < count).then_some(from + JOBS_PAGE),
        jobs,
        names: inst.jobs.iter().map(|j| j.job.name.clone()).collect(),
        graph,
        gantt: gantt::svg(bars, now),
        legend: LEGEND.iter().map(|s| (s.as_str(), s.colour())).collect(),
        live: inst.live,
        signals,
    })
}

// ---------------------------------------------------------------------------------------------
// Executions

pub struct ExecutionView {
    pub instance: String,
    pub execution: usize,
    pub href: String,
    pub info: String,
    pub properties: String,
    pub status: &'static str,
    pub colour: &'static str,
    pub exit_code: String,
    pub start: When,
    pub end: When,
    pub run_time: String,
    pub worker: String,
    pub logs: Vec<(String, String)>,
}

fn file_href(w: &str, i: &str, job: &str, n: usize, kind: &str) -> String {
    format!("/file/?workflow={w}&instance={i}&job={job}&execution={n}&log_type={kind}")
}

fn execution_view(w: &str, job: &str, r: ExecutionRow, now: f64) -> ExecutionView {
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
        status: r.status.as_str(),
        colour: r.status.colour(),
        exit_code: match (r.exit_code, r.cleanup_exit_code) {
            (Some(c), Some(k)) => format!("{c} (cleanup {k})"),
            (Some(c), None) => c.to_string(),
            _ => String::new(),
        },
        start: when(Some(r.start_time), now),
        end: when(r.end_time, now),
        run_time: run_time(Some(r.start_time), r.end_time, now),
        worker: r.worker.clone(),
        logs: r
            .log_urls
            .keys()
            .map(|kind| (kind.clone(), file_href(w, i, job, r.execution, kind)))
            .collect(),
        execution: r.execution,
        instance: r.instance,
    }
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

async fn executions(State(ui): State<Ui>, Query(p): Query<Params>) -> PageResult {
    let now = epoch_secs_f64();
    let (w, i) = try_page!(ui, p.instance());
    let job = try_page!(ui, p.job());
    let rows = try_page!(
        ui,
        ui.data.executions(w, i, job).await.map_err(UiError::from)
    );
    let rows = try_page!(
        ui,
        rows.ok_or_else(|| UiError::NotFound(format!(
            "job {job} of workflow {w} instance {i} not found"
        )))
    );
    page(&ExecutionsPage {
        head: Head::new(
            &ui,
            format!("{job} in {w} {i}"),
            &Level::Instance(w.into(), i.into()),
        ),
        workflow: w.into(),
        instance: Some(i.into()),
        job: job.into(),
        rows: rows
            .into_iter()
            .rev()
            .map(|r| execution_view(w, job, r, now))
            .collect(),
        next: None,
    })
}

/// Instances searched per page of a job's executions across instances.
const EXECUTION_INSTANCES: u32 = 50;

async fn job_executions(State(ui): State<Ui>, Query(p): Query<Params>) -> PageResult {
    let now = epoch_secs_f64();
    let w = try_page!(ui, p.workflow());
    let job = try_page!(ui, p.job());
    let rows = try_page!(
        ui,
        ui.data
            .job_executions(w, job, p.offset, EXECUTION_INSTANCES)
            .await
            .map_err(UiError::from)
    );
    let more = !rows.is_empty();
    page(&ExecutionsPage {
        head: Head::new(&ui, format!("{job} in {w}"), &Level::Workflow(w.into())),
        workflow: w.into(),
        instance: None,
        job: job.into(),
        rows: rows
            .into_iter()
            .rev()
            .map(|r| execution_view(w, job, r, now))
            .collect(),
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

async fn execution(State(ui): State<Ui>, Query(p): Query<Params>) -> PageResult {
    let now = epoch_secs_f64();
    let (w, i) = try_page!(ui, p.instance());
    let job = try_page!(ui, p.job());
    let n = try_page!(ui, need("&execution=", p.execution));
    let rows = try_page!(
        ui,
        ui.data.executions(w, i, job).await.map_err(UiError::from)
    );
    let row = try_page!(
        ui,
        rows.and_then(|r| r.into_iter().nth(n))
            .ok_or_else(|| UiError::NotFound(format!(
                "execution {n} of job {job} in workflow {w} instance {i} not found"
            )))
    );
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
    page(&ExecutionPage {
        head: Head::new(
            &ui,
            format!("{job} #{n}"),
            &Level::Instance(w.into(), i.into()),
        ),
        workflow: w.into(),
        instance: i.into(),
        job: job.into(),
        e,
        properties,
        can_redo,
    })
}

/// How much of a log the page shows unless the whole file is asked for.
pub const LOG_TAIL: u64 = 64 * 1024;

#[derive(Template)]
#[template(path = "file.html")]
struct FilePage {
    head: Head,
    workflow: String,
    instance: String,
    job: String,
    execution: usize,
    kind: String,
    text: String,
    size: u64,
    truncated: bool,
    running: bool,
    api: String,
    kinds: Vec<(String, String)>,
}

async fn file(State(ui): State<Ui>, Query(p): Query<Params>) -> PageResult {
    let (w, i) = try_page!(ui, p.instance());
    let job = try_page!(ui, p.job());
    let n = try_page!(ui, need("&execution=", p.execution));
    let kind = p.log_type.as_deref().unwrap_or("stdout");
    let full = p.full.is_some();
    let log = try_page!(
        ui,
        read_log(&ui, (w, i, job), n, kind, (!full).then_some(LOG_TAIL)).await
    );
    let kinds = log
        .kinds
        .iter()
        .map(|k| (k.clone(), file_href(w, i, job, n, k)))
        .collect();
    page(&FilePage {
        head: Head::new(
            &ui,
            format!("{job} #{n} {kind}"),
            &Level::Instance(w.into(), i.into()),
        ),
        workflow: w.into(),
        instance: i.into(),
        job: job.into(),
        execution: n,
        kind: kind.into(),
        truncated: (log.text.len() as u64) < log.size,
        text: log.text,
        size: log.size,
        running: log.running,
        api: log_url(w, i, job, n, kind),
        kinds,
    })
}

// ---------------------------------------------------------------------------------------------
// Schedules

pub struct ScheduleView {
    pub workflow: String,
    pub next_run: When,
    pub recurrence: String,
    pub policy: String,
    pub policy_help: &'static str,
    pub max_running: u32,
    pub emails: String,
    pub missed_runs: u64,
}

fn schedule_view(s: ScheduleRow, now: f64) -> ScheduleView {
    let mut recurrence = match (&s.recurrence, &s.cron) {
        (Some(r), _) => format!("every {r}"),
        (None, Some(c)) => format!("cron {c}"),
        _ => String::new(),
    };
    if let Some(tz) = &s.timezone {
        recurrence.push_str(&format!(" ({tz})"));
    }
    if s.catchup {
        recurrence.push_str(", catch up missed runs");
    }
    ScheduleView {
        next_run: when(Some(s.next_run_time as f64), now),
        policy_help: OverrunPolicy::parse(&s.overrun_policy).map_or("", OverrunPolicy::help),
        policy: s.overrun_policy,
        max_running: s.max_running_instances,
        emails: s.emails.join(", "),
        missed_runs: s.missed_runs,
        recurrence,
        workflow: s.workflow,
    }
}

#[derive(Template)]
#[template(path = "schedules.html")]
struct SchedulesPage {
    head: Head,
    rows: Vec<ScheduleView>,
}

async fn schedules(State(ui): State<Ui>) -> PageResult {
    let now = epoch_secs_f64();
    let rows = try_page!(ui, ui.data.schedules().await.map_err(UiError::from));
    page(&SchedulesPage {
        head: Head::new(&ui, "Schedules", &Level::Global),
        rows: rows.into_iter().map(|s| schedule_view(s, now)).collect(),
    })
}

pub struct DefJobView {
    pub job: String,
    pub info: Vec<String>,
    pub depends_on: String,
    pub downstream: String,
}

#[derive(Template)]
#[template(path = "schedule.html")]
struct SchedulePage {
    head: Head,
    workflow: String,
    schedule: Option<ScheduleView>,
    graph: String,
    jobs: Vec<DefJobView>,
}

async fn schedule(State(ui): State<Ui>, Query(p): Query<Params>) -> PageResult {
    let now = epoch_secs_f64();
    let w = try_page!(ui, p.workflow());
    let def = try_page!(ui, ui.data.definition(w).await.map_err(UiError::from));
    let def = try_page!(
        ui,
        def.ok_or_else(|| UiError::NotFound(format!("workflow {w} has no definition")))
    );
    let schedule = try_page!(ui, ui.data.schedules().await.map_err(UiError::from))
        .into_iter()
        .find(|s| s.workflow == w)
        .map(|s| schedule_view(s, now));
    let g = def.graph();
    let nodes: Vec<graph::GraphNode> = g
        .jobs
        .iter()
        .map(|(name, j)| graph::GraphNode {
            name: name.clone(),
            depends_on: j.depends_on.clone(),
            status: Status::NEVER_RUN,
            condition: j.def.condition,
        })
        .collect();
    let jobs = g
        .jobs
        .iter()
        .map(|(name, j)| {
            let mut info = vec![j.def.command.clone()];
            if j.def.condition {
                info.push("condition".into());
            }
            if let Some(m) = j.def.max_attempts.filter(|m| *m > 1) {
                info.push(format!("max_attempts {m}"));
            }
            if j.def.disabled {
                info.push("disabled".into());
            }
            DefJobView {
                job: name.clone(),
                info,
                depends_on: j.depends_on.join(", "),
                downstream: j.outputs.join(", "),
            }
        })
        .collect();
    page(&SchedulePage {
        head: Head::new(&ui, format!("{w} schedule"), &Level::Workflow(w.into())),
        workflow: w.into(),
        schedule,
        graph: graph::svg(&nodes),
        jobs,
    })
}

// ---------------------------------------------------------------------------------------------
// Token explorer

#[derive(Template)]
#[template(path = "token_paths.html")]
struct TokenPathsPage {
    head: Head,
    path: String,
    crumbs: Vec<(String, String)>,
    children: Vec<(String, u64, String)>,
}

fn crumbs(path: &str) -> Vec<(String, String)> {
    let mut out = vec![("/".to_owned(), "/token_paths/?path=/".to_owned())];
    let mut at = 1;
    while let Some(k) = path[at..].find('/') {
        let end = at + k + 1;
        out.push((
            path[at..end].to_owned(),
            format!("/token_paths/?path={}", &path[..end]),
        ));
        at = end;
    }
    out
}

async fn token_paths(State(ui): State<Ui>, Query(p): Query<Params>) -> PageResult {
    let path = p.path.clone().unwrap_or_else(|| "/".into());
    if !path.starts_with('/') {
        return Err(error_page(
            &ui,
            UiError::BadInput(format!("a token path starts with /, not {path:?}")),
        ));
    }
    let children = try_page!(ui, ui.data.token_paths(&path).await.map_err(UiError::from));
    page(&TokenPathsPage {
        head: Head::new(&ui, format!("Tokens {path}"), &Level::Global),
        crumbs: crumbs(&path),
        children: children
            .into_iter()
            .map(|c| {
                let href = if c.path.ends_with('/') {
                    format!("/token_paths/?path={}", c.path)
                } else {
                    format!("/token/?path={}", c.path)
                };
                (c.path, c.count, href)
            })
            .collect(),
        path,
    })
}

#[derive(Template)]
#[template(path = "token.html")]
struct TokenPage {
    head: Head,
    name: String,
    crumbs: Vec<(String, String)>,
    version: i64,
    owner: String,
    expiration: String,
    priority: f64,
    data: String,
    archived: bool,
}

async fn token(State(ui): State<Ui>, Query(p): Query<Params>) -> PageResult {
    let name = try_page!(ui, need("?path=", p.path.clone()));
    let found = try_page!(ui, ui.data.token(&name).await.map_err(UiError::from));
    let (t, archived) = try_page!(
        ui,
        found.ok_or_else(|| UiError::NotFound(format!("token {name} not found")))
    );
    let data = t.data.as_deref().unwrap_or("");
    let pretty = serde_json::from_str::<serde_json::Value>(data)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| data.to_owned());
    page(&TokenPage {
        head: Head::new(&ui, format!("Token {name}"), &Level::Global),
        crumbs: crumbs(&name),
        version: t.version.unwrap_or(0),
        owner: t.owner.clone().unwrap_or_default(),
        expiration: t
            .expiration_time
            .map_or_else(|| "inf".to_owned(), |e| utc(Some(e as f64))),
        priority: t.priority,
        data: pretty,
        archived,
        name,
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

    #[test]
    fn breadcrumbs_walk_the_path() {
        let c = crumbs("/workflow/w/1/");
        let labels: Vec<&str> = c.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, ["/", "workflow/", "w/", "1/"]);
        assert_eq!(c[2].1, "/token_paths/?path=/workflow/w/");
    }
}
