//! `/workflows/`: every workflow with its owner, status, last instance and next run.

use askama::Template;
use axum::extract::State;

use super::{Head, PageResult, When, respond, when};
use crate::token::name::Level;
use crate::ui::Ui;
use crate::ui::error::PageError;
use crate::ui::format::{run_secs, run_time};

pub struct WorkflowView {
    pub workflow: String,
    pub owner: String,
    pub status: &'static str,
    pub colour: &'static str,
    pub icon: &'static str,
    pub last_instance: String,
    pub last_start: When,
    pub last_end: When,
    pub run_time: String,
    pub run_secs: String,
    pub running: usize,
    pub next_run: When,
    /// The last runs, oldest first, as coloured marks.
    pub recent: Vec<MarkView>,
}

/// A recent run's mark: its logical date (month-day) in its status's colour and icon, linking
/// to the run.
pub struct MarkView {
    pub instance: String,
    pub label: String,
    pub title: String,
    pub colour: &'static str,
    pub icon: &'static str,
}

impl MarkView {
    fn new(r: &crate::ops::read::RecentRun) -> MarkView {
        let date = r.logical_date.clone().unwrap_or_default();
        let kind = r
            .kind
            .map(|k| format!(" ({})", k.as_str()))
            .unwrap_or_default();
        MarkView {
            instance: r.instance.to_string(),
            label: date.get(5..).unwrap_or(r.instance.as_str()).to_owned(),
            title: format!(
                "{} {}{kind}: {}",
                if date.is_empty() { "run" } else { "run for" },
                if date.is_empty() {
                    r.instance.as_str()
                } else {
                    &date
                },
                r.status.as_str()
            ),
            colour: r.status.colour(),
            icon: crate::workflow::status::Look::from(r.status).icon(),
        }
    }
}

#[derive(Template)]
#[template(path = "workflows.html")]
struct WorkflowsPage {
    head: Head,
    rows: Vec<WorkflowView>,
}

pub(super) async fn show(State(ui): State<Ui>) -> PageResult {
    let now = crate::clock::now_f64();
    let rows = ui.data.workflows().await.map_err(PageError::from)?;
    let rows = rows
        .into_iter()
        .map(|r| WorkflowView {
            owner: r.owner.unwrap_or_default(),
            status: r.status.as_str(),
            colour: r.status.colour(),
            icon: crate::workflow::status::Look::from(r.status).icon(),
            last_instance: r.last_instance.map(String::from).unwrap_or_default(),
            last_start: when(r.last_start_time, now),
            last_end: when(r.last_end_time, now),
            run_time: run_time(r.last_start_time, r.last_end_time, now),
            run_secs: run_secs(r.last_start_time, r.last_end_time, now),
            running: r.running_instances,
            next_run: when(r.next_run_time.map(|t| t as f64), now),
            recent: r.recent.iter().map(MarkView::new).collect(),
            workflow: r.workflow.into(),
        })
        .collect();
    respond(&WorkflowsPage {
        head: Head::new(&ui, "Workflows", &Level::Global),
        rows,
    })
}
