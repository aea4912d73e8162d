//! `/backfills/`: every backfill with the count of its dates in each state; `/backfill/?id=N`:
//! one backfill, a row per date (its state, why, and its run), 500 dates a page.

use askama::Template;
use axum::extract::State;
use serde::Deserialize;

use super::{Head, PageResult, When, respond, when};
use crate::ops::read::BackfillRow;
use crate::token::name::Level;
use crate::ui::Ui;
use crate::ui::error::{PageError, PageQuery, QueryIn, UiError};
use crate::workflow::backfill::Backfill;
use crate::workflow::run_info::zoned_text;

/// Dates per page of one backfill.
const DATES_PAGE: usize = 500;

pub struct BackfillView {
    pub row: BackfillRow,
    pub from: String,
    pub to: String,
    pub created: When,
}

impl BackfillView {
    fn new(b: &Backfill, now: f64) -> BackfillView {
        BackfillView {
            row: BackfillRow::new(b),
            from: zoned_text(b.from, b.timezone.as_deref()),
            to: zoned_text(b.to, b.timezone.as_deref()),
            created: when(Some(b.created_at as f64), now),
        }
    }
}

#[derive(Template)]
#[template(path = "backfills.html")]
struct BackfillsPage {
    head: Head,
    rows: Vec<BackfillView>,
}

pub(super) async fn list(State(ui): State<Ui>) -> PageResult {
    let now = crate::clock::now_f64();
    let all = ui.data.backfills().await.map_err(PageError::from)?;
    respond(&BackfillsPage {
        head: Head::new(&ui, "Backfills", &Level::Global),
        rows: all.iter().map(|b| BackfillView::new(b, now)).collect(),
    })
}

pub struct DateView {
    pub time: String,
    pub state: &'static str,
    pub why: &'static str,
    pub instance: String,
}

#[derive(Template)]
#[template(path = "backfill.html")]
struct BackfillPage {
    head: Head,
    b: BackfillView,
    every: String,
    reprocess: String,
    params: String,
    error: String,
    dates: Vec<DateView>,
    offset: usize,
    next: Option<usize>,
    total: usize,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct BackfillParams {
    #[serde(default)]
    id: String,
    #[serde(default)]
    offset: usize,
}

pub(super) async fn show(
    State(ui): State<Ui>,
    QueryIn(p, _): PageQuery<BackfillParams>,
) -> PageResult {
    if !Backfill::is_id(&p.id) {
        return Err(PageError(UiError::BadInput(
            "this page needs ?id= with a backfill's id (digits)".into(),
        )));
    }
    let all = ui.data.backfills().await.map_err(PageError::from)?;
    let b = all
        .into_iter()
        .find(|b| b.id == p.id)
        .ok_or_else(|| PageError(UiError::NotFound(format!("backfill {} not found", p.id))))?;
    let runs = ui.data.backfill_runs(&b).await.map_err(PageError::from)?;
    let total = b.times.len();
    let offset = p.offset.min(total);
    let dates = (offset..total.min(offset + DATES_PAGE))
        .map(|i| {
            let state = b.state_of(i);
            DateView {
                time: zoned_text(b.times[i], b.timezone.as_deref()),
                state: state.word(),
                why: state.why(),
                instance: b.run_of(i, &runs).unwrap_or_default().to_owned(),
            }
        })
        .collect();
    let params: Vec<String> = b.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    respond(&BackfillPage {
        head: Head::new(&ui, format!("Backfill {}", b.id), &Level::Global),
        every: b.every.clone().unwrap_or_else(|| "its schedule".into()),
        reprocess: b.reprocess.as_str().to_owned(),
        params: params.join(" "),
        error: b.error.clone().unwrap_or_default(),
        b: BackfillView::new(&b, crate::clock::now_f64()),
        dates,
        offset,
        next: (offset + DATES_PAGE < total).then_some(offset + DATES_PAGE),
        total,
    })
}
