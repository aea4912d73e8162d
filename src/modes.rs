//! Runs the components named by `-m` (`master`, `ui`, `scheduler`, `workers`, a comma list, or
//! `all`) in this process until `shutdown` resolves. Each component has a `run(deps, listener,
//! shutdown)` seam that tests drive directly.

use std::future::Future;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::master::{Master, api};
use crate::storage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Master,
    Ui,
    Scheduler,
    Workers,
}

/// Parses `-m`: `all`, or a comma list of modes.
pub fn parse_modes(text: &str) -> Result<Vec<Mode>, String> {
    let mut modes = Vec::new();
    for part in text.split(',').map(str::trim) {
        let mode = match part {
            "all" => {
                modes.extend([Mode::Master, Mode::Scheduler, Mode::Workers, Mode::Ui]);
                continue;
            }
            "master" => Mode::Master,
            "ui" => Mode::Ui,
            "scheduler" => Mode::Scheduler,
            "workers" => Mode::Workers,
            other => {
                return Err(format!(
                    "unknown mode `{other}`; use master, ui, scheduler, workers, a comma list, or all"
                ));
            }
        };
        if !modes.contains(&mode) {
            modes.push(mode);
        }
    }
    Ok(modes)
}

/// Runs the modes until `shutdown` resolves, then stops them gracefully.
pub async fn run(
    config: Config,
    modes: Vec<Mode>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut tasks = tokio::task::JoinSet::new();
    for mode in &modes {
        match mode {
            Mode::Master => {
                let listener = TcpListener::bind((config.master_host.as_str(), config.master_port))
                    .await
                    .with_context(|| {
                        format!(
                            "cannot listen on {}:{}",
                            config.master_host, config.master_port
                        )
                    })?;
                let url = config.database_url().map_err(anyhow::Error::msg)?;
                let store = storage::open(&url)?;
                tracing::info!(database = %storage::redact_url(&url), master = %config.master_name, "starting master");
                let master = Master::start(store, &config.master_name).await;
                let max = config.max_request_bytes;
                tasks.spawn(api::serve(master, listener, max, wait_for(stop_rx.clone())));
            }
            other => {
                tracing::warn!(mode = ?other, "this mode is not built yet; it is skipped");
            }
        }
    }
    while let Some(result) = tasks.join_next().await {
        result.context("a component panicked")??;
    }
    Ok(())
}

async fn wait_for(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_means_every_mode_and_lists_are_deduplicated() {
        assert_eq!(parse_modes("all").unwrap().len(), 4);
        assert_eq!(
            parse_modes("master,workers,master").unwrap(),
            vec![Mode::Master, Mode::Workers]
        );
        assert!(parse_modes("masters").unwrap_err().contains("masters"));
    }
}
