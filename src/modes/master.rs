//! The master mode: its listener, its lease (leading, or standing by until it can), its API
//! with the HTTP trigger, and its lease given up at a clean stop.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{Mode, Tasks, exposure, import_definitions, naming, wait_for};
use crate::config::Config;
use crate::master::service::MasterOptions;
use crate::master::{Master, api};
use crate::storage;

/// Starts the master; `None` when shutdown came before its database answered.
pub(super) async fn start_master(
    config: &Config,
    stop: watch::Receiver<bool>,
    tasks: &mut Tasks,
    modes: &[Mode],
) -> anyhow::Result<Option<Master>> {
    let settings = api::ApiSettings::from_config(config);
    let access = exposure(
        "master",
        &config.master_bind,
        (!settings.access.is_open()).then(|| {
            format!(
                "every call needs an API token ({} configured)",
                settings.access.token_count()
            )
        }),
        "api_tokens",
        config.allow_unauthenticated,
    )?;
    let (host, port) = (config.master_bind.as_str(), config.master_port);
    let listener = TcpListener::bind((host, port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port} (master_bind, master_port)"))?;
    let listener = Arc::new(listener);
    let url = config.database_url()?;
    // Where clients reach this master, as its lease records it (a standby names it): the
    // machine's name when it listens on every interface.
    let serving = listener.local_addr().map_or_else(
        |_| format!("{host}:{port}"),
        |a| match a.ip().is_unspecified() {
            true => format!("{}:{}", crate::config::host_name(), a.port()),
            false => a.to_string(),
        },
    );
    // One master per database and name: held before anything is loaded, for the process's life.
    let hold = storage::exclusive::hold(&url, &config.master_name, &serving)?;
    let store: Arc<dyn storage::Storage> = storage::open(&url)?.into();
    tracing::info!(database = %storage::redact_url(&url), master = %config.master_name, access = %access, "starting master");
    // Loading retries while the database is unreachable; a shutdown ends the wait.
    let spec = crate::master::lease::HoldSpec {
        address: serving,
        lease: Duration::from_secs(config.master_lease_sec),
        file_locked: hold.is_some(),
    };
    let options = MasterOptions::from_config(config, naming());
    // On a database server, a master whose lease another holds stands by until it can lead.
    let led = crate::master::standby::lead(
        store.clone(),
        &config.master_name,
        options,
        spec,
        listener.clone(),
        settings.clone(),
        stop.clone(),
    )
    .await;
    let Some(master) = led.map_err(anyhow::Error::msg)? else {
        tracing::info!("stopped before this master could lead");
        return Ok(None);
    };
    // With workers in this process, the definitions are loaded before the master serves: a
    // caller that sees it ready finds the workflows (it answered `workflow not found` to a
    // start sent between the two).
    if modes.contains(&Mode::Workers) {
        import_definitions(config, &master).await?;
    }
    // The summaries of archived instances are written here, where the archiving happens.
    let summaries = crate::ops::summaries::Summarizer::new(store, config.master_name.clone());
    tokio::spawn(summaries.follow(master.archive_commits(), stop.clone()));
    let trigger = crate::trigger::router(crate::ops::OpsSettings::from_config(config));
    let serving = serve_master(master.clone(), listener, settings, trigger, stop);
    tasks.spawn(async move {
        let _hold = hold;
        serving.await
    });
    Ok(Some(master))
}

/// Serves `master` on `listener` until the process's stop (then gives the lease up, so a
/// standby takes over at once), or until another master took the lease over (an error: the
/// process exits, and its supervisor starts it again as a standby).
async fn serve_master(
    master: Master,
    listener: Arc<TcpListener>,
    settings: api::ApiSettings,
    trigger: crate::master::server::Extra,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (deposed_tx, deposed_rx) = tokio::sync::oneshot::channel();
    let watched = master.clone();
    let until = async move {
        tokio::select! {
            () = wait_for(stop) => {}
            why = watched.deposed() => drop(deposed_tx.send(why)),
        }
    };
    crate::master::server::serve_with(master.clone(), listener, settings, Some(trigger), until)
        .await?;
    if let Ok(why) = deposed_rx.await {
        anyhow::bail!("{why}");
    }
    master.release().await;
    Ok(())
}
