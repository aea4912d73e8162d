//! Runs the components named by `-m` (`master`, `ui`, `scheduler`, `workers`, a comma list, or
//! `all`) in this process until `shutdown` resolves. Each component has a `run(deps, listener,
//! shutdown)` seam that tests drive directly.

use std::future::Future;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use std::sync::Arc;

use crate::config::Config;
use crate::master::{HttpMasterClient, LocalMasterClient, Master, MasterClient, api};
use crate::scheduler::run::{Scheduler, SchedulerSettings};
use crate::storage;
use crate::workflow::definition;
use crate::workflow::worker::{WorkerSettings, run_workers};

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
    let mut local: Option<Master> = None;
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
                let url = config.database_url()?;
                let store = storage::open(&url)?;
                tracing::info!(database = %storage::redact_url(&url), master = %config.master_name, "starting master");
                let master = Master::start(store, &config.master_name).await;
                local = Some(master.clone());
                let max = config.max_request_bytes;
                tasks.spawn(api::serve(master, listener, max, wait_for(stop_rx.clone())));
            }
            Mode::Workers => {
                // In the master's process, workers call it directly; elsewhere over HTTP.
                let client: Arc<dyn MasterClient> = match &local {
                    Some(m) => Arc::new(LocalMasterClient(m.clone())),
                    None => Arc::new(HttpMasterClient::new(
                        &config.master_host,
                        config.master_port,
                        crate::master::client::RetryPolicy::from_config(&config),
                    )),
                };
                if let Some(m) = &local {
                    import_definitions(&config, m).await;
                }
                let settings = WorkerSettings::from_config(&config);
                let count = config.workers as usize;
                tracing::info!(workers = count, logs = %settings.logs_dir.display(), "starting workers");
                let stop = stop_rx.clone();
                tasks.spawn(async move {
                    run_workers(client, settings, count, stop).await;
                    Ok(())
                });
            }
            Mode::Scheduler => {
                let client: Arc<dyn MasterClient> = match &local {
                    Some(m) => Arc::new(LocalMasterClient(m.clone())),
                    None => Arc::new(HttpMasterClient::new(
                        &config.master_host,
                        config.master_port,
                        crate::master::client::RetryPolicy::from_config(&config),
                    )),
                };
                let url = config.database_url()?;
                let settings = SchedulerSettings {
                    default_max_running: config.default_max_workflow_running_instances,
                    poll: std::time::Duration::from_secs(30),
                    // Workers wake delayed schedules when an instance ends; this is the fallback.
                    recheck: std::time::Duration::from_secs(10),
                    mailer: crate::email::Mailer::from_config(&config),
                    store: Some(Arc::from(storage::open(&url)?)),
                    master_name: config.master_name.clone(),
                };
                let name = crate::workflow::worker::owner_name(config.generation, 0).replacen(
                    '_',
                    "_scheduler_",
                    1,
                );
                let scheduler = Scheduler {
                    client,
                    settings,
                    name,
                };
                tracing::info!("starting scheduler");
                let stop = stop_rx.clone();
                tasks.spawn(async move {
                    scheduler.run(stop).await;
                    Ok(())
                });
            }
            Mode::Ui => {
                let host = config.ui_host.clone().unwrap_or_else(|| "127.0.0.1".into());
                let listener = TcpListener::bind((host.as_str(), config.ui_port))
                    .await
                    .with_context(|| format!("cannot listen on {host}:{}", config.ui_port))?;
                let url = config.database_url()?;
                let store = storage::open(&url)?;
                if local.is_none() {
                    // Alone, the UI may start before any master: make sure the tables exist.
                    store.migrate().await?;
                }
                let data = crate::ui::data::DataLayer::new(
                    Arc::from(store),
                    config.master_name.clone(),
                    config.default_max_workflow_running_instances,
                );
                // Actions go to the master: directly in its process, else over HTTP with a
                // short retry policy, so an unreachable master shows at once in the label.
                let client: Arc<dyn MasterClient> = match &local {
                    Some(m) => Arc::new(LocalMasterClient(m.clone())),
                    None => Arc::new(HttpMasterClient::new(
                        &config.master_host,
                        config.master_port,
                        crate::master::client::RetryPolicy {
                            attempts: 2,
                            timeout: std::time::Duration::from_secs(10),
                            ..Default::default()
                        },
                    )),
                };
                tracing::info!("starting ui");
                let ui = crate::ui::Ui::new(data, client, Arc::new(config.clone()));
                tasks.spawn(crate::ui::serve(ui, listener, wait_for(stop_rx.clone())));
            }
        }
    }
    while let Some(result) = tasks.join_next().await {
        result.context("a component panicked")??;
    }
    Ok(())
}

/// With master and workers in one process (`-m all`), the configured definitions are loaded
/// at start-up, so the example workflows can be started at once.
async fn import_definitions(config: &Config, master: &Master) {
    if config.parser_params.workflows_config.is_none() && config.parser_params.command.is_none() {
        return;
    }
    let client = LocalMasterClient(master.clone());
    match crate::parser::load_from_config(config) {
        Ok(defs) => match definition::import(&client, &defs).await {
            Ok(done) => tracing::info!(
                workflows = defs.len(),
                changed = done.definitions.len(),
                schedules = done.schedules.len(),
                "loaded workflow definitions"
            ),
            Err(e) => tracing::error!(error = %e, "cannot store the workflow definitions"),
        },
        Err(e) => tracing::error!(error = %e, "cannot read the workflow definitions"),
    }
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
