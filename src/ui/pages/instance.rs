//! `/jobs/?workflow=W&instance=I` (`instance=latest` works): one instance's job graph, its
//! jobs table with progress bars (searchable across pages, paged), and the timeline of every
//! execution.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect};

use super::{Head, PageResult, Params, When, execution_href, respond, when};
use crate::token::name::{InstanceId, Level, Name, WorkflowName};
use crate::ui::Ui;
use crate::ui::data::{Instance, depends_on, execution_look, execution_status};
use crate::ui::error::{PageError, PageQuery, QueryIn, UiError};
use crate::ui::format::{run_secs, run_time};
use crate::ui::{gantt, graph};
use crate::workflow::instance::JobToken;
use crate::workflow::signal::Action;
use crate::workflow::status::{Look, Status, attempts, job_look, job_status};

pub struct Segment {
    pub percent: u32,
    pub colour: &'static str,
}

pub struct JobView {
    pub job: String,
    pub info: Vec<String>,
    pub status: &'static str,
    pub label: &'static str,
    pub icon: &'static str,
    pub colour: &'static str,
    pub progress: Vec<Segment>,
    pub last_start: When,
    pub last_end: When,
    pub run_time: String,
    /// The run time in seconds: what the column sorts by.
    pub run_secs: String,
    pub attempts: usize,
    /// A condition's polls (its executions).
    pub polls: Option<usize>,
    pub depends_on: Vec<String>,
    /// The jobs that wait for it.
    pub downstream: Vec<String>,
}

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

/// Failed first, then running, waiting, and the rest; by name within each.
fn table_rank(s: Look) -> u8 {
    match s {
        Look::FAILURE | Look::KILLED | Look::ABORTED => 0,
        Look::RUNNING => 1,
        Look::WAITING_RETRY | Look::POLLING | Look::PENDING => 2,
        _ => 3,
    }
}

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
        exit_code: match (&record.lost, record.exit_code) {
            (Some(why), _) => format!("none (lost: {why})"),
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
pub fn progress(jt: &JobToken, inst_start: f64, inst_end: f64) -> Vec<(u32, Look)> {
    let total = (inst_end - inst_start).max(1.0);
    let Some(first) = jt.job.history.first() else {
        return Vec::new();
    };
    let mut out = vec![(
        (100.0 * (first.start_time - inst_start) / total) as u32,
        Look::UNKNOWN,
    )];
    for (n, r) in jt.job.history.iter().enumerate() {
        let status = match execution_look(jt, n) {
            l @ (Look::RUNNING | Look::SUCCESS | Look::KILLED) => l,
            _ => Look::FAILURE,
        };
        let d = r.end_time.unwrap_or(inst_end) - r.start_time;
        out.push((((100.0 * d / total) as u32).max(1), status));
    }
    out
}

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

/// One jobs table row.
fn job_view(jt: &JobToken, span: (f64, f64), now: f64) -> JobView {
    let look = job_look(jt);
    let last = jt.job.history.last();
    let progress = progress(jt, span.0, span.1)
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
        .collect();
    JobView {
        job: jt.job.name.to_string(),
        info: job_info(jt),
        status: look.as_str(),
        label: look.label(),
        icon: look.icon(),
        colour: look.colour(),
        progress,
        last_start: when(last.map(|r| r.start_time), now),
        last_end: when(last.and_then(|r| r.end_time), now),
        run_time: last.map_or_else(String::new, |r| {
            run_time(Some(r.start_time), r.end_time, now)
        }),
        run_secs: last.map_or_else(String::new, |r| {
            run_secs(Some(r.start_time), r.end_time, now)
        }),
        attempts: attempts(jt),
        polls: jt.job.is_condition().then_some(jt.job.history.len()),
        depends_on: depends_on(jt).iter().map(|d| d.to_string()).collect(),
        downstream: jt.job.outputs.iter().map(|d| d.to_string()).collect(),
    }
}

/// The jobs that match the table's search (a name part, or a status), across all pages.
fn matching<'a>(inst: &'a Instance, q: &str) -> Vec<&'a JobToken> {
    let mut found: Vec<&JobToken> = inst
        .jobs
        .iter()
        .filter(|jt| {
            q.is_empty()
                || jt.job.name.contains(q)
                || job_status(jt).as_str().eq_ignore_ascii_case(q)
                || job_look(jt).as_str().eq_ignore_ascii_case(q)
        })
        .collect();
    found.sort_by_cached_key(|jt| (table_rank(job_look(jt)), jt.job.name.as_str()));
    found
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
    let jobs: Vec<JobView> = found
        .iter()
        .skip(from)
        .take(JOBS_PAGE)
        .map(|jt| job_view(jt, span, now))
        .collect();
    let signals: Vec<String> = inst
        .signals
        .iter()
        .filter_map(|t| match Name::parse(&t.name) {
            Some(Name::Signal { action, .. }) => Some(action),
            _ => None,
        })
        .filter(|a| a != Action::ARCHIVE.as_str())
        .collect();
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
        retried_from: inst
            .jobs
            .iter()
            .flat_map(|jt| jt.job.history.iter().map(|r| r.instance.to_string()))
            .filter(|from| from != i.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        signals,
    })
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
