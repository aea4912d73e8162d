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
    let mut options = MasterOptions::from_config(config, naming());
    // Alone in its process, a master that lost its lease, or handed it over, stands by again
    // in the same process: nothing else here holds it.
    options.may_hand_over = modes == [Mode::Master] && !spec.file_locked;
    let leading = Leading {
        store: store.clone(),
        name: config.master_name.clone(),
        options,
        spec,
        listener,
        settings,
        ops: crate::ops::OpsSettings::from_config(config),
    };
    // On a database server, a master whose lease another holds stands by until it can lead.
    let Some(master) = leading.lead(stop.clone()).await? else {
        tracing::info!("stopped before this master could lead");
        return Ok(None);
    };
    // With workers in this process, the definitions are loaded before the master serves: a
    // caller that sees it ready finds the workflows (it answered `workflow not found` to a
    // start sent between the two).
    if modes.contains(&Mode::Workers) {
        import_definitions(config, &master).await?;
    }
    let first = master.clone();
    tasks.spawn(async move {
        let _hold = hold;
        leading.serve(first, stop).await
    });
    Ok(Some(master))
}

/// What a master process needs to lead again after it stood by.
struct Leading {
    store: Arc<dyn storage::Storage>,
    name: String,
    options: MasterOptions,
    spec: crate::master::lease::HoldSpec,
    listener: Arc<TcpListener>,
    settings: api::ApiSettings,
    ops: crate::ops::OpsSettings,
}

/// Why a master stopped serving.
enum Ended {
    /// The process stops.
    Stopped,
    /// Another master took its lease over.
    Deposed(String),
    /// An operator asked it to hand over; it gave its lease (this epoch) up.
    HandedOver(i64),
}

impl Leading {
    /// Takes the lease and loads the tokens, or stands by until it can; `None` at a stop.
    async fn lead(&self, stop: watch::Receiver<bool>) -> anyhow::Result<Option<Master>> {
        crate::master::standby::lead(
            self.store.clone(),
            &self.name,
            self.options.clone(),
            self.spec.clone(),
            self.listener.clone(),
            self.settings.clone(),
            stop,
        )
        .await
        .map_err(anyhow::Error::msg)
    }

    /// Serves `master`, and after a deposition or a handover stands by and leads again when
    /// this process is a master alone; until the process's stop (an error when a deposed
    /// master shares its process: it exits, and its supervisor starts it again).
    async fn serve(self, mut master: Master, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        loop {
            // The summaries of archived instances are written here, where the archiving happens.
            let summaries =
                crate::ops::summaries::Summarizer::new(self.store.clone(), self.name.clone());
            tokio::spawn(summaries.follow(master.archive_commits(), stop.clone()));
            let trigger = crate::trigger::router(self.ops.clone());
            let ended = serve_master(
                master,
                self.listener.clone(),
                self.settings.clone(),
                trigger,
                stop.clone(),
            )
            .await?;
            metrics::gauge!(crate::metrics::IS_LEADER).set(0.0);
            match ended {
                Ended::Stopped => return Ok(()),
                Ended::Deposed(why) if !self.options.may_hand_over => anyhow::bail!("{why}"),
                Ended::Deposed(why) => {
                    tracing::info!(master = %self.name, reason = %why, "this master lost its lease: it stands by again");
                }
                Ended::HandedOver(epoch) => self.wait_taken(epoch, stop.clone()).await,
            }
            master = match self.lead(stop.clone()).await? {
                Some(m) => m,
                None => return Ok(()),
            };
        }
    }

    /// After a handover: waits until another master took the lease (a greater epoch), so
    /// this one does not take it straight back; at most two leases' length, after which it
    /// stands by as usual (and takes the lease when none did).
    async fn wait_taken(&self, epoch: i64, mut stop: watch::Receiver<bool>) {
        let until = tokio::time::Instant::now() + self.spec.lease * 2;
        while tokio::time::Instant::now() < until && !*stop.borrow() {
            if let Ok(Some(h)) = self.store.lease_holder(&self.name).await
                && h.epoch > epoch
            {
                tracing::info!(master = %self.name, leader = %h.address, epoch = h.epoch, "the lease was handed over");
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// Serves `master` on `listener` until the process's stop (then gives the lease up, so a
/// standby takes over at once), an operator's handover (the same, then it stands by), or
/// another master took the lease over.
async fn serve_master(
    master: Master,
    listener: Arc<TcpListener>,
    settings: api::ApiSettings,
    trigger: crate::master::server::Extra,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Ended> {
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel();
    let watched = master.clone();
    let until = async move {
        let ended = tokio::select! {
            () = wait_for(stop) => Ended::Stopped,
            why = watched.deposed() => Ended::Deposed(why),
            () = watched.handover_asked() => Ended::HandedOver(watched.epoch().unwrap_or(0)),
        };
        drop(ended_tx.send(ended));
    };
    crate::master::server::serve_with(master.clone(), listener, settings, Some(trigger), until)
        .await?;
    let ended = ended_rx.await.unwrap_or(Ended::Stopped);
    if !matches!(ended, Ended::Deposed(_)) {
        master.release().await;
    }
    Ok(ended)
}
