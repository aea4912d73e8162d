//! `/file/`: an execution's stdout, stderr or pinlog; the last 64 KiB unless the whole file is
//! asked for (up to 4 MiB in the page; Raw streams all of it), followed live while the job
//! runs.

use askama::Template;
use axum::extract::State;

use super::{Head, PageResult, Params, file_href, need, respond};
use crate::ops::read::log_url;
use crate::token::name::Level;
use crate::ui::Ui;
use crate::ui::error::{PageQuery, QueryIn};
use crate::ui::logs::{MAX_TAIL, open_log};

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
    /// Why the log is incomplete (the worker could not write it all).
    trouble: Option<String>,
    /// Why there is nothing to show (too old, never sent from its host).
    missing: Option<String>,
    /// The execution's exit code and run time.
    outcome: String,
    api: String,
    kinds: Vec<(String, String)>,
}

pub(super) async fn show(State(ui): State<Ui>, QueryIn(p, _): PageQuery<Params>) -> PageResult {
    let (w, i) = p.instance()?;
    let job = p.job()?;
    let n = need("&execution=", p.execution)?;
    let kind = p.log_type.as_deref().unwrap_or("stdout");
    let full = p.full.is_some();
    let tail = if full { MAX_TAIL } else { LOG_TAIL };
    let log = open_log(&ui, (w, i, job), n, kind).await?.tail(tail).await;
    let kinds = log
        .kinds
        .iter()
        .map(|k| (k.clone(), file_href(w, i, job, n, k)))
        .collect();
    respond(&FilePage {
        head: Head::new(
            &ui,
            format!("{job} #{n} {kind}"),
            &Level::Instance(w.clone(), i.clone()),
        ),
        workflow: w.to_string(),
        instance: i.to_string(),
        job: job.to_string(),
        execution: n,
        kind: kind.into(),
        truncated: (log.text.len() as u64) < log.size,
        text: log.text,
        size: log.size,
        running: log.running,
        trouble: log.trouble,
        missing: log.missing,
        outcome: log.outcome,
        api: log_url(w, i, job, n, kind),
        kinds,
    })
}
