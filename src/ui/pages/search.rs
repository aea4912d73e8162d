//! `/search/?q=TEXT`: one search across workflows (by name or owner), instances (by id, the
//! newest 200 of each workflow) and jobs (by name, in the stored definitions). Each kind shows
//! at most [`LIMIT`] hits.

use askama::Template;
use axum::extract::{Query, State};
use serde::Deserialize;

use super::{Head, PageResult, respond};
use crate::token::name::Level;
use crate::ui::Ui;
use crate::ui::error::PageError;
use crate::workflow::links;

/// Hits shown per kind.
const LIMIT: usize = 50;
/// Instances looked at per workflow.
const INSTANCES: u32 = 200;
/// The longest query taken.
const MAX_QUERY: usize = 128;

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

pub struct Hit {
    pub text: String,
    pub detail: String,
    pub href: String,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    head: Head,
    q: String,
    /// Workflows, instances, jobs: each with its hits.
    sections: Vec<(&'static str, Vec<Hit>)>,
}

pub(super) async fn show(State(ui): State<Ui>, Query(p): Query<SearchQuery>) -> PageResult {
    let q: String = p.q.trim().chars().take(MAX_QUERY).collect();
    let needle = q.to_lowercase();
    let (mut workflows, mut instances, mut jobs) = (Vec::new(), Vec::new(), Vec::new());
    if !needle.is_empty() {
        let rows = ui.data.workflows().await.map_err(PageError::from)?;
        for r in &rows {
            let owner = r.owner.clone().unwrap_or_default();
            if r.workflow.to_lowercase().contains(&needle) || owner.to_lowercase().contains(&needle)
            {
                workflows.push(Hit {
                    text: r.workflow.to_string(),
                    detail: format!("{} · {owner}", r.status.as_str()),
                    href: links::instances_href(&r.workflow),
                });
            }
            if instances.len() < LIMIT
                && let Some(page) = ui
                    .data
                    .instances(&r.workflow, 0, INSTANCES)
                    .await
                    .map_err(PageError::from)?
            {
                instances.extend(
                    page.rows
                        .iter()
                        .filter(|i| i.instance.contains(&needle))
                        .map(|i| Hit {
                            text: format!("{} {}", r.workflow, i.instance),
                            detail: i.status.as_str().to_owned(),
                            href: links::jobs_href(&r.workflow, &i.instance),
                        }),
                );
            }
        }
        let defs = ui.data.definitions().await.map_err(PageError::from)?;
        for (w, def) in &defs {
            for (j, _) in def.graph().jobs.iter() {
                if j.to_lowercase().contains(&needle) {
                    jobs.push(Hit {
                        text: format!("{w} {j}"),
                        detail: "every run of it".into(),
                        href: format!("/job_executions/?workflow={w}&job={j}"),
                    });
                }
            }
        }
    }
    for hits in [&mut workflows, &mut instances, &mut jobs] {
        hits.truncate(LIMIT);
    }
    respond(&SearchPage {
        head: Head::new(&ui, format!("search {q}"), &Level::Global),
        q,
        sections: vec![
            ("Workflows", workflows),
            ("Instances", instances),
            ("Jobs", jobs),
        ],
    })
}
