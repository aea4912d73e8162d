//! Runs the components named by `-m` (`master`, `ui`, `scheduler`, `workers`, a comma list, or
//! `all`) in this process until `shutdown` resolves. Each component has a `run(deps, listener,
//! shutdown)` seam that tests drive directly.

mod master;
mod naming;
mod probes;

use master::start_master;
use probes::{exposure, start_probes};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::master::client::RetryPolicy;

use crate::config::Config;
use crate::master::{HttpMasterClient, LocalMasterClient, Master, MasterClient};
use crate::scheduler::run::{Scheduler, SchedulerSettings};
use crate::storage;
use crate::workflow::definition;
use crate::workflow::worker::{WorkerSettings, run_workers};
pub use naming::naming;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Master,
    Ui,
    Scheduler,
    Workers,
}

/// A `-m` that names no mode.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown mode `{0}`; use master, ui, scheduler, workers, a comma list, or all")]
pub struct UnknownMode(pub String);

/// Parses `-m`: `all`, or a comma list of modes.
pub fn parse_modes(text: &str) -> Result<Vec<Mode>, UnknownMode> {
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
            other => return Err(UnknownMode(other.to_owned())),
        };
        if !modes.contains(&mode) {
            modes.push(mode);
        }
    }
    Ok(modes)
}

type Tasks = tokio::task::JoinSet<anyhow::Result<()>>;

/// Runs the modes until `shutdown` resolves, then stops them gracefully.
pub async fn run(
    config: Config,
    modes: Vec<Mode>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let stopper = stop_tx.clone();
    tokio::spawn(async move {
        shutdown.await;
        let _ = stopper.send(true);
    });
    // A process of workers alone ends when its workers retire (EXIT for an older generation),
    // its metrics listener with it: that is how an upgrade replaces it.
    let retire = (modes == [Mode::Workers]).then(|| stop_tx.clone());
    // The recorder first, so nothing recorded while starting is lost.
    crate::metrics::handle();
    let mut tasks = Tasks::new();
    let mut local: Option<Master> = None;
    for mode in &modes {
        let stop = stop_rx.clone();
        match mode {
            Mode::Master => match start_master(&config, stop, &mut tasks, &modes).await? {
                // Kept for the other components of this process; a master alone is held
                // only by its server, so it is dropped when it stands by again.
                Some(m) => local = (modes.len() > 1).then_some(m),
                None => return Ok(()), // stopped while the database was unreachable
            },
            Mode::Workers => {
                start_workers(&config, local.as_ref(), stop, retire.clone(), &mut tasks).await?
            }
            Mode::Scheduler => start_scheduler(&config, local.as_ref(), stop, &mut tasks)?,
            Mode::Ui => start_ui(&config, local.as_ref(), stop, &mut tasks).await?,
        }
    }
    if modes
        .iter()
        .any(|m| matches!(m, Mode::Workers | Mode::Scheduler))
    {
        start_probes(&config, local.as_ref(), &modes, stop_rx.clone(), &mut tasks).await?;
    }
    while let Some(result) = tasks.join_next().await {
        result.context("a component panicked")??;
    }
    Ok(())
}

/// A client of the master: in its process directly, elsewhere over HTTP with `policy`.
fn client_of(
    config: &Config,
    local: Option<&Master>,
    policy: RetryPolicy,
) -> Arc<dyn MasterClient> {
    match local {
        Some(m) => Arc::new(LocalMasterClient(m.clone())),
        None => Arc::new(
            HttpMasterClient::of_hosts(config.master_addresses(), policy)
                .with_token(config.presented_token().as_ref()),
        ),
    }
}

async fn start_workers(
    config: &Config,
    local: Option<&Master>,
    stop: watch::Receiver<bool>,
    retire: Option<Arc<watch::Sender<bool>>>,
    tasks: &mut Tasks,
) -> anyhow::Result<()> {
    let client = client_of(config, local, RetryPolicy::from_config(config));
    let settings = WorkerSettings::try_from_config(config)?;
    if let Some(user) = &settings.launch.user {
        tracing::info!(job_user = %user.name, uid = user.uid, "jobs run as job_user");
    }
    crate::workflow::logs::prepare_root(&settings.logs_dir)?;
    let count = config.workers as usize;
    tracing::info!(workers = count, logs = %settings.logs_dir.display(), "starting workers");
    tasks.spawn(async move {
        run_workers(client, settings, count, stop.clone()).await;
        if let Some(retire) = retire.filter(|_| !*stop.borrow()) {
            tracing::info!("every worker of this process has retired: the process exits");
            let _ = retire.send(true);
        }
        Ok(())
    });
    Ok(())
}

fn start_scheduler(
    config: &Config,
    local: Option<&Master>,
    stop: watch::Receiver<bool>,
    tasks: &mut Tasks,
) -> anyhow::Result<()> {
    let client = client_of(config, local, RetryPolicy::from_config(config));
    let url = config.database_url()?;
    let store = Arc::<dyn storage::Storage>::from(storage::open(&url)?);
    let settings = SchedulerSettings {
        default_max_running: config.default_max_workflow_running_instances,
        poll: Duration::from_secs(30),
        // Workers wake delayed schedules when an instance ends; this is the fallback.
        recheck: Duration::from_secs(10),
        mailer: crate::email::Mailer::from_config(config),
        ui_link: crate::workflow::mail::ui_link(config),
        store: Some(store.clone()),
        master_name: config.master_name.clone(),
    };
    let name =
        crate::workflow::worker::owner_name(config.generation, 0).replacen('_', "_scheduler_", 1);
    let backfiller = crate::scheduler::backfill::Backfiller {
        client: client.clone(),
        name: format!("{name}_backfill"),
        poll: Duration::from_secs(30),
        default_max_running: config.default_max_workflow_running_instances,
    };
    let queuer = crate::scheduler::queue::Queuer {
        client: client.clone(),
        name: format!("{name}_queue"),
        poll: Duration::from_secs(30),
        default_max_running: config.default_max_workflow_running_instances,
    };
    let watcher = crate::scheduler::deadlines::DeadlineWatcher {
        client: client.clone(),
        name: format!("{name}_deadline"),
        poll: Duration::from_secs(30),
        ops: crate::ops::OpsSettings::from_config(config),
        store: Some(store),
        notifier: crate::workflow::mail::Notifier::of(settings.mailer.as_ref(), &settings.ui_link),
    };
    let scheduler = Scheduler {
        client,
        settings,
        name,
    };
    tracing::info!("starting scheduler");
    let (backfill_stop, queue_stop, deadline_stop) = (stop.clone(), stop.clone(), stop.clone());
    tasks.spawn(async move {
        scheduler.run(stop).await;
        Ok(())
    });
    tasks.spawn(async move {
        backfiller.run(backfill_stop).await;
        Ok(())
    });
    tasks.spawn(async move {
        queuer.run(queue_stop).await;
        Ok(())
    });
    tasks.spawn(async move {
        watcher.run(deadline_stop).await;
        Ok(())
    });
    Ok(())
}

async fn start_ui(
    config: &Config,
    local: Option<&Master>,
    stop: watch::Receiver<bool>,
    tasks: &mut Tasks,
) -> anyhow::Result<()> {
    let access = exposure(
        "ui",
        &config.ui_bind,
        (!config.ui_users.is_empty())
            .then(|| format!("sign-in required ({} users)", config.ui_users.len())),
        "ui_users",
        config.allow_unauthenticated,
    )?;
    let host = config.ui_bind.as_str();
    let listener = TcpListener::bind((host, config.ui_port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {host}:{} (ui_bind, ui_port)",
                config.ui_port
            )
        })?;
    tracing::info!(access = %access, "ui access");
    let store = storage::open(&config.database_url()?)?;
    if local.is_none() {
        // Alone, the UI may start before any master: make sure the tables exist.
        tokio::select! {
            migrated = store.migrate() => migrated?,
            () = wait_for(stop.clone()) => return Ok(()),
        }
    }
    let data = crate::ops::read::DataLayer::new(
        Arc::from(store),
        config.master_name.clone(),
        config.default_max_workflow_running_instances,
    );
    // A short retry policy, so an unreachable master shows at once in the status label.
    let policy = RetryPolicy {
        attempts: 2,
        timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let client = client_of(config, local, policy);
    tracing::info!("starting ui");
    let ui = crate::ui::Ui::new(data, client, Arc::new(config.clone()));
    tasks.spawn(crate::ui::serve(ui, listener, wait_for(stop)));
    Ok(())
}

/// With master and workers in one process (`-m all`), the configured definitions are loaded
/// at start-up, so the example workflows can be started at once. Definitions that do not
/// parse stop the start: the process would otherwise run with none of them.
async fn import_definitions(config: &Config, master: &Master) -> anyhow::Result<()> {
    if config.parser_params.workflows_config.is_none() && config.parser_params.command.is_none() {
        return Ok(());
    }
    let client = LocalMasterClient(master.clone());
    match crate::parser::load_from_config(config) {
        Ok(defs) => {
            match definition::import(
                &client,
                &defs,
                Some(&crate::parser::source_of(config)),
                false,
            )
            .await
            {
                Ok(done) => tracing::info!(
                    workflows = defs.len(),
                    changed = done.definitions.len(),
                    schedules = done.schedules.len(),
                    "loaded workflow definitions"
                ),
                Err(e) => tracing::error!(error = %e, "cannot store the workflow definitions"),
            }
        }
        Err(e) => anyhow::bail!(
            "the workflow definitions are not valid, so nothing was started: {e} (`pinball validate` lists every error)"
        ),
    }
    Ok(())
}

async fn wait_for(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests;
