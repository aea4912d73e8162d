//! `/pools/`: every pool with its slots, the slots its running jobs hold and its waiting jobs,
//! live from the master.

use askama::Template;
use axum::extract::State;

use super::{Head, PageResult, respond};
use crate::ops::pools::PoolRow;
use crate::token::name::Level;
use crate::ui::Ui;
use crate::ui::error::PageError;

#[derive(Template)]
#[template(path = "pools.html")]
struct PoolsPage {
    head: Head,
    rows: Vec<PoolRow>,
}

pub(super) async fn show(State(ui): State<Ui>) -> PageResult {
    let rows = crate::ui::api::pool_rows(&ui).await.map_err(PageError)?;
    respond(&PoolsPage {
        head: Head::new(&ui, "Pools", &Level::Global),
        rows,
    })
}
