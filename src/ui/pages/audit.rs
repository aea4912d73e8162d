//! `/audit/`: the audit log, newest first, 100 entries a page: who did what, when, through which
//! API token, on which workflow, instance and jobs, and how it ended.

use askama::Template;
use axum::extract::State;
use serde::Deserialize;

use super::{Head, PageResult, When, respond, when};
use crate::token::name::Level;
use crate::ui::Ui;
use crate::ui::error::{PageError, PageQuery, QueryIn};

const PAGE: u32 = 100;

pub struct EntryView {
    pub at: When,
    pub actor: String,
    pub via: String,
    pub command: String,
    pub workflow: String,
    pub instance: String,
    pub jobs: String,
    pub ok: bool,
    pub result: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    head: Head,
    entries: Vec<EntryView>,
    /// The `before` of the next (older) page, if there may be one.
    older: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct AuditParams {
    before: Option<i64>,
}

pub(super) async fn show(
    State(ui): State<Ui>,
    QueryIn(p, _): PageQuery<AuditParams>,
) -> PageResult {
    let now = crate::clock::now_f64();
    let rows = ui
        .data
        .store
        .audit_log(&ui.data.master, p.before, PAGE)
        .await
        .map_err(|e| PageError(e.into()))?;
    let older = (rows.len() == PAGE as usize)
        .then(|| rows.last().map(|e| e.id))
        .flatten();
    let entries = rows
        .into_iter()
        .map(|e| EntryView {
            at: when(Some(e.at), now),
            actor: e.action.actor,
            via: e.via,
            command: e.action.command,
            workflow: e.action.workflow.unwrap_or_default(),
            instance: e.action.instance.unwrap_or_default(),
            jobs: e.action.jobs.join(", "),
            ok: e.action.ok,
            result: e.action.result,
        })
        .collect();
    respond(&AuditPage {
        head: Head::new(&ui, "Audit log", &Level::Global),
        entries,
        older,
    })
}
