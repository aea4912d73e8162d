//! `/instances/?workflow=W`: a workflow's instances, running first, then newest first.

use askama::Template;
use axum::extract::State;

use super::grid::{DEFAULT_RUNS, Grid, MAX_RUNS, grid};
use super::{Head, PageResult, Params, When, respond, when};
use crate::ops::read::{Instance, InstancePage, InstanceRow};
use crate::token::name::Level;
use crate::ui::Ui;
use crate::ui::error::{PageError, PageQuery, QueryIn};
use crate::ui::format::{run_secs, run_time};
use crate::workflow::status::Look;

pub struct InstanceView {
    pub instance: String,
    pub status: &'static str,
    pub colour: &'static str,
    pub icon: &'static str,
    pub start: When,
    pub end: When,
    pub run_time: String,
    pub run_secs: String,
    /// `2026-02-01 (scheduled)`: the logical date and how the run started.
    pub run: String,
    /// Waiting in the queue: no page of its own yet, a Cancel button instead.
    pub queued: bool,
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
    grid: Grid,
    /// The grid's cells, for the script that draws them.
    grid_json: String,
    looks: [Look; 13],
}

/// How an instance row shows.
fn view(r: InstanceRow, now: f64) -> InstanceView {
    InstanceView {
        queued: r.status == crate::workflow::status::Status::QUEUED,
        status: r.status.as_str(),
        colour: r.status.colour(),
        icon: Look::from(r.status).icon(),
        start: when(r.start_time, now),
        end: when(r.end_time, now),
        run_time: run_time(r.start_time, r.end_time, now),
        run_secs: run_secs(r.start_time, r.end_time, now),
        run: match (&r.logical_date, r.kind) {
            (Some(date), Some(kind)) => format!("{date} ({})", kind.as_str()),
            _ => String::new(),
        },
        instance: r.instance.into(),
    }
}

/// Instances per page.
const PAGE: u32 = 100;

pub(super) async fn show(State(ui): State<Ui>, QueryIn(p, _): PageQuery<Params>) -> PageResult {
    let now = crate::clock::now_f64();
    let w = p.workflow()?;
    let runs = p.runs.unwrap_or(DEFAULT_RUNS).clamp(1, MAX_RUNS);
    // The read and the build both take the heavy-page permit: six viewers of a big grid
    // would otherwise all read at once and none finish within the UI's bound. A viewer who
    // cannot have it soon is told at once that the UI is busy.
    let permit = ui.heavy_permit().await.map_err(PageError)?;
    let (found, recent) = ui
        .data
        .instances_and_recent(w, p.offset, PAGE, runs as u32)
        .await
        .map_err(PageError::from)?;
    let page_data = found.unwrap_or(InstancePage {
        rows: Vec::new(),
        total: 0,
        offset: 0,
        limit: PAGE,
    });
    let rows: Vec<InstanceView> = page_data.rows.into_iter().map(|r| view(r, now)).collect();
    let total = page_data.total;
    let head = Head::new(&ui, format!("{w} instances"), &Level::Workflow(w.clone()));
    let (w, chart) = (w.clone(), p.chart.clone());
    let offset = p.offset;
    // The grid is built, and the page rendered, on the blocking pool (the permit goes with
    // the work), within a bound on its cells.
    let built = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let recent = within_cells(recent);
        let grid = grid(&w, &recent, chart.as_ref(), now);
        let grid_json = grid.json(&w);
        respond(&InstancesPage {
            head,
            workflow: w.to_string(),
            first: if rows.is_empty() { 0 } else { offset + 1 },
            last: offset + rows.len() as u64,
            prev: (offset > 0).then(|| offset.saturating_sub(PAGE as u64)),
            next: (offset + (PAGE as u64) < total).then_some(offset + PAGE as u64),
            rows,
            total,
            grid,
            grid_json,
            looks: Look::ALL,
        })
    })
    .await;
    built.unwrap_or_else(|e| {
        Err(PageError(crate::ui::error::UiError::Unavailable(format!(
            "the page could not be built: {e}"
        ))))
    })
}

/// The most cells (jobs × runs) one grid shows: the newest runs that fit.
pub const MAX_GRID_CELLS: usize = 50_000;

/// The newest of `recent` (oldest first) whose cells fit in [`MAX_GRID_CELLS`].
fn within_cells(mut recent: Vec<(InstanceRow, Instance)>) -> Vec<(InstanceRow, Instance)> {
    let jobs = recent
        .iter()
        .map(|(_, i)| i.jobs.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let fit = (MAX_GRID_CELLS / jobs).max(1);
    if recent.len() > fit {
        recent.drain(..recent.len() - fit);
    }
    recent
}
