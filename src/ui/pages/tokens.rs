//! The token explorer: `/token_paths/?path=P` (the children of a path, with how many tokens
//! each holds, live and archived) and `/token/?path=NAME` (one token, its data pretty-printed).

use askama::Template;
use axum::extract::State;

use super::{Head, PageResult, Params, need, respond};
use crate::token::name::{self, Level};
use crate::ui::Ui;
use crate::ui::error::{PageError, PageQuery, QueryIn, UiError};
use crate::ui::format::utc;

#[derive(Template)]
#[template(path = "token_paths.html")]
struct TokenPathsPage {
    head: Head,
    path: String,
    crumbs: Vec<(String, String)>,
    children: Vec<(String, u64, String)>,
}

/// Each `/`-ended prefix of `path`: its last segment as the label, and its link.
fn crumbs(path: &str) -> Vec<(String, String)> {
    name::path_prefixes(path)
        .into_iter()
        .map(|prefix| {
            let label = match prefix[..prefix.len() - 1].rfind('/') {
                Some(at) if prefix.len() > 1 => &prefix[at + 1..],
                _ => "/",
            };
            (label.to_owned(), format!("/token_paths/?path={prefix}"))
        })
        .collect()
}

pub(super) async fn token_paths(
    State(ui): State<Ui>,
    QueryIn(p, _): PageQuery<Params>,
) -> PageResult {
    let path = p.path.clone().unwrap_or_else(|| "/".into());
    if !path.starts_with('/') {
        return Err(UiError::BadInput(format!("a token path starts with /, not {path:?}")).into());
    }
    let children = ui.data.token_paths(&path).await.map_err(PageError::from)?;
    respond(&TokenPathsPage {
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

pub(super) async fn token(State(ui): State<Ui>, QueryIn(p, _): PageQuery<Params>) -> PageResult {
    let token_name = need("?path=", p.path.clone())?;
    let found = ui.data.token(&token_name).await.map_err(PageError::from)?;
    let (t, archived) =
        found.ok_or_else(|| UiError::NotFound(format!("token {token_name} not found")))?;
    let data = t.data.as_deref().unwrap_or("");
    let pretty = serde_json::from_str::<serde_json::Value>(data)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| data.to_owned());
    respond(&TokenPage {
        head: Head::new(&ui, format!("Token {token_name}"), &Level::Global),
        crumbs: crumbs(&token_name),
        version: t.version.unwrap_or(0),
        owner: t.owner.clone().unwrap_or_default(),
        expiration: t
            .expiration_time
            .map_or_else(|| "inf".to_owned(), |e| utc(Some(e as f64))),
        priority: t.priority,
        data: pretty,
        archived,
        name: token_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breadcrumbs_walk_the_path() {
        let c = crumbs("/workflow/w/1/");
        let labels: Vec<&str> = c.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, ["/", "workflow/", "w/", "1/"]);
        assert_eq!(c[2].1, "/token_paths/?path=/workflow/w/");
    }
}
