//! `/jobs/?workflow=W&instance=I` (`instance=latest` works): one instance's job graph, its
//! jobs table with progress bars (searchable across pages, paged), and the timeline of every
//! execution.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect};

mod jobs;

use super::{Head, PageResult, Params, When, execution_href, respond, when};
use crate::ops::read::{Instance, depends_on, execution_look, execution_status};
use crate::token::name::{InstanceId, Level, Name, WorkflowName};
use crate::ui::Ui;
use crate::ui::error::{PageError, PageQuery, QueryIn, UiError};
use crate::ui::format::{run_secs, run_time};
use crate::ui::{gantt, graph};
use crate::workflow::instance::JobToken;
use crate::workflow::signal::Action;
use crate::workflow::status::{Look, Status, attempts, attempts_this_try, job_look, job_status};
pub use jobs::progress;
use jobs::{JobView, job_view, matching, waiting_for_slots};

/// What went wrong, at the top of the instance page: the instance's first failed job (by
/// when its last run ended), its exit code, attempts and the end of its stderr.
pub struct FailureView {
    pub job: String,
    /// `failed`, or `was killed (by an abort of its instance)`.
    pub verb: String,
    pub href: String,
    pub exit_code: String,
    pub attempts: usize,
    pub ended: When,
    /// The last lines of its stderr (or why they cannot be shown).
    pub tail: String,
    pub stderr_href: Option<String>,
    pub stdout_href: Option<String>,
    /// Further failed jobs.
    pub others: usize,
}

/// Lines of stderr the failure banner shows, from at most this many bytes.
const TAIL_LINES: usize = 20;
const TAIL_BYTES: u64 = 8 * 1024;

async fn failure_view(
    ui: &Ui,
    inst: &Instance,
    w: &WorkflowName,
    i: &InstanceId,
    now: f64,
) -> Option<FailureView> {
    let failed: Vec<&JobToken> = inst
        .jobs
        .iter()
        .filter(|jt| matches!(job_look(jt), Look::FAILURE | Look::KILLED))
        .collect();
    let first = failed.iter().min_by(|a, b| {
        let end = |jt: &JobToken| {
            jt.job
                .history
                .last()
                .and_then(|r| r.end_time)
                .unwrap_or(f64::MAX)
        };
        end(a).total_cmp(&end(b))
    })?;
    let n = first.job.history.len().checked_sub(1)?;
    let record = &first.job.history[n];
    let job = &first.job.name;
    let has = |kind: &str| {
        record
            .logs
            .contains_key(kind)
            .then(|| super::file_href(w, i, job, n, kind))
    };
    let tail = match crate::ui::logs::open_job_log(ui, first, n, "stderr").await {
        Ok(log) => {
            let text = log.tail(TAIL_BYTES).await.text;
            let lines: Vec<&str> = text.lines().collect();
            let shown = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
            if shown.trim().is_empty() {
                "(its stderr is empty)".to_owned()
            } else {
                shown
            }
        }
        Err(e) => format!("(its stderr cannot be shown: {e})"),
    };
    Some(FailureView {
        job: job.to_string(),
        verb: match &record.killed {
            Some(why) => format!("was killed ({why})"),
            None => "failed".to_owned(),
        },
        href: execution_href(w, i, job, n),
        exit_code: match (record.cut_short(), record.exit_code) {
            (Some(why), _) => format!("none ({why})"),
            (None, Some(c)) => c.to_string(),
            (None, None) => "none".to_owned(),
        },
        attempts: first.job.history.len(),
        ended: when(record.end_time, now),
        tail,
        stderr_href: has("stderr"),
        stdout_href: has("stdout"),
        others: failed.len() - 1,
    })
}

/// The instances the jobs' earlier executions ran in (this one is a retry of them).
fn retried_from(inst: &Instance, i: &InstanceId) -> Vec<String> {
    inst.jobs
        .iter()
        .flat_map(|jt| jt.job.history.iter().map(|r| r.instance.to_string()))
        .filter(|from| from != i.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// What the run is for, as the page's head shows it.
fn run_view(inst: &Instance) -> Option<(String, Vec<String>)> {
    let r = crate::ops::read::run_of(inst)?;
    Some((
        format!("{} ({})", r.logical_date(), r.kind.as_str()),
        r.params.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    ))
}

#[derive(Template)]
#[template(path = "instance.html")]
struct InstancePageView {
    head: Head,
    workflow: String,
    instance: String,
    status: &'static str,
    colour: &'static str,
    icon: &'static str,
    start: When,
    end: When,
    run_time: String,
    jobs: Vec<JobView>,
    graph: String,
    gantt: String,
    legend: Vec<Look>,
    live: bool,
    signals: Vec<String>,
    /// The actions that apply to this instance as it stands.
    can: Can,
    /// What went wrong, when a job failed.
    failure: Option<FailureView>,
    /// The instances its jobs' earlier executions ran in (it is a retry of them).
    retried_from: Vec<String>,
    /// What the run is for: `2026-03-29 (scheduled)`, and its parameters as `k=v`.
    run: Option<(String, Vec<String>)>,
    /// `deadline missed at T: why`, when the run missed its deadline or max duration.
    missed: Option<String>,
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

/// The actions an instance offers: signals only while it runs (an archived instance's history
/// cannot change), their removal while they are set, retry once it has ended, job edits while
/// it is in the master; poison always (an archived one is copied).
#[derive(Debug, Default, PartialEq)]
struct Can {
    drain: bool,
    undrain: bool,
    abort: bool,
    unabort: bool,
    retry: bool,
    edit_jobs: bool,
}

impl Can {
    fn of(live: bool, running: bool, signals: &[String]) -> Can {
        let set = |a: Action| signals.iter().any(|s| s == a.as_str());
        Can {
            drain: live && running && !set(Action::DRAIN),
            undrain: live && set(Action::DRAIN),
            abort: live && running && !set(Action::ABORT),
            unabort: live && set(Action::ABORT),
            retry: !running || !live,
            edit_jobs: live,
        }
    }
}

/// Jobs table rows per page: a browser lays out a 10,000-row table for seconds.
pub const JOBS_PAGE: usize = 250;

fn graph_svg(inst: &Instance) -> String {
    let nodes: Vec<graph::GraphNode> = inst
        .jobs
        .iter()
        .map(|jt| graph::GraphNode {
            name: jt.job.name.to_string(),
            depends_on: depends_on(jt).into_iter().map(String::from).collect(),
            status: job_look(jt),
            condition: jt.job.is_condition(),
        })
        .collect();
    graph::svg(&nodes)
}

fn timeline(inst: &Instance, w: &WorkflowName, i: &InstanceId, now: f64) -> String {
    let bars = inst
        .jobs
        .iter()
        .flat_map(|jt| {
            jt.job
                .history
                .iter()
                .enumerate()
                .map(move |(n, r)| gantt::Bar {
                    job: jt.job.name.to_string(),
                    execution: n,
                    start: r.start_time,
                    end: r.end_time,
                    status: execution_status(jt, n),
                    href: execution_href(w, i, &jt.job.name, n),
                })
        })
        .collect();
    gantt::svg(bars, now)
}

pub(super) async fn show(State(ui): State<Ui>, QueryIn(p, _): PageQuery<Params>) -> PageResult {
    let now = crate::clock::now_f64();
    let (w, i) = p.instance()?;
    if i.as_str() == "latest" {
        let latest = ui.data.latest_instance(w).await.map_err(PageError::from)?;
        let latest =
            latest.ok_or_else(|| UiError::NotFound(format!("workflow {w} has no instance")))?;
        return Ok(Redirect::to(&format!("/jobs/?workflow={w}&instance={latest}")).into_response());
    }
    let inst = ui.data.instance(w, i).await.map_err(PageError::from)?;
    let inst =
        inst.ok_or_else(|| UiError::NotFound(format!("workflow {w} instance {i} not found")))?;
    let s = inst.status();
    let span = (s.start_time.unwrap_or(now), s.end_time.unwrap_or(now));
    let running = s.status == Status::RUNNING;
    let q = p.jobs_q.as_deref().unwrap_or("").trim().to_owned();
    let found = matching(&inst, &q);
    let count = found.len();
    let from = p
        .jobs_offset
        .min(count.saturating_sub(1) / JOBS_PAGE * JOBS_PAGE);
    let mut jobs: Vec<JobView> = found
        .iter()
        .skip(from)
        .take(JOBS_PAGE)
        .map(|jt| job_view(jt, span, now))
        .collect();
    // Pending jobs of a named pool: asked of the master whether it has room for them.
    if jobs.iter().any(|j| j.pool.is_some())
        && let Ok(rows) = crate::ui::api::pool_rows(&ui).await
    {
        waiting_for_slots(&mut jobs, &rows);
    }
    let signals = signal_names(&inst);
    respond(&InstancePageView {
        head: Head::new(
            &ui,
            format!("{w} {i}"),
            &Level::Instance(w.clone(), i.clone()),
        ),
        workflow: w.to_string(),
        instance: i.to_string(),
        status: s.status.as_str(),
        colour: s.status.colour(),
        icon: Look::from(s.status).icon(),
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
        names: inst.jobs.iter().map(|j| j.job.name.to_string()).collect(),
        graph: if p.live.is_some() {
            String::new()
        } else {
            graph_svg(&inst)
        },
        gantt: timeline(&inst, w, i, now),
        legend: Look::ALL.to_vec(),
        live: inst.live,
        can: Can::of(inst.live, running, &signals),
        failure: failure_view(&ui, &inst, w, i, now).await,
        run: run_view(&inst),
        missed: missed(&ui, w, i).await,
        retried_from: retried_from(&inst, i),
        signals,
    })
}

/// The signals set on the instance (ARCHIVE aside).
fn signal_names(inst: &Instance) -> Vec<String> {
    inst.signals
        .iter()
        .filter_map(|t| match Name::parse(&t.name) {
            Some(Name::Signal { action, .. }) => Some(action),
            _ => None,
        })
        .filter(|a| a != Action::ARCHIVE.as_str())
        .collect()
}

/// The run's missed deadline, from its deadline watch.
async fn missed(ui: &Ui, w: &WorkflowName, i: &InstanceId) -> Option<String> {
    let name = crate::token::name::deadline_watch(w, i);
    let (token, _) = ui.data.token(&name).await.ok()??;
    let m = crate::workflow::deadlines::Watch::from_token(&token)?.missed?;
    Some(format!(
        "deadline missed at {}: {}",
        crate::clock::utc(m.at),
        m.why
    ))
}

#[cfg(test)]
mod can_tests {
    use super::*;

    #[test]
    fn an_archived_instance_offers_retry_and_no_signal() {
        let archived = Can::of(false, false, &["ABORT".to_string()]);
        assert_eq!(
            archived,
            Can {
                retry: true,
                ..Can::default()
            }
        );
        let running = Can::of(true, true, &["DRAIN".to_string()]);
        assert!(running.undrain && !running.drain && running.abort && !running.retry);
        let finished = Can::of(true, false, &[]);
        assert!(!finished.abort && !finished.drain && finished.retry && finished.edit_jobs);
    }
}
