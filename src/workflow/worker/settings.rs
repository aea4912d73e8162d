//! How workers behave, from the configuration.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::email::Mailer;

/// How workers behave, from the configuration.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub generation: u32,
    pub lease: Duration,
    pub poll: Duration,
    /// Job logs go under `<logs_dir>/<workflow>/<instance>/`.
    pub logs_dir: PathBuf,
    pub archive_delay_sec: u64,
    pub base_url: Option<String>,
    /// Between SIGTERM and SIGKILL when a job is killed.
    pub kill_grace: Duration,
    /// On shutdown, how long running jobs may go on before they are stopped and handed back.
    pub shutdown_grace: Duration,
    /// Sends notification emails; `None` when no sender (`default_email`) is configured.
    pub mailer: Option<Mailer>,
    /// Posts webhook notices; `None` when the configuration names no `webhooks`.
    pub webhooks: Option<crate::email::webhook::Webhooks>,
    /// Where links in emails point (the UI).
    pub ui_link: String,
    /// How long a running job is kept, and its end retried, while the master is away.
    pub outage_grace: Duration,
    /// Reruns of a job whose worker died that cost no attempt.
    pub lost_lease_retries: u32,
    /// The pools whose jobs this process claims.
    pub pools: Vec<String>,
    /// Who jobs run as and the environment they start from (never Pinball's secrets).
    pub launch: Arc<crate::workflow::executor::Launch>,
}

impl WorkerSettings {
    /// The settings of `c`, its `job_user` resolved (an error names what is wrong with it).
    pub fn try_from_config(
        c: &Config,
    ) -> Result<WorkerSettings, crate::workflow::launch::LaunchError> {
        let plain = WorkerSettings::from_config(c);
        let launch = (*plain.launch).clone().for_workers(c)?;
        let webhooks = crate::email::webhook::Webhooks::from_config(c)
            .map_err(crate::workflow::launch::LaunchError::Settings)?;
        Ok(WorkerSettings {
            launch: Arc::new(launch),
            webhooks,
            ..plain
        })
    }

    /// The settings of `c`, jobs run as the workers' own user with `c`'s cleaned environment
    /// (`try_from_config` also resolves `job_user`).
    pub fn from_config(c: &Config) -> WorkerSettings {
        WorkerSettings {
            generation: c.generation,
            lease: Duration::from_secs(c.lease_sec),
            poll: Duration::from_secs(c.worker_poll_time_sec.max(1)),
            logs_dir: c.logs_dir(),
            archive_delay_sec: c.archive_delay_sec,
            base_url: c
                .ui_host
                .as_ref()
                .map(|h| format!("http://{h}:{}", c.ui_port)),
            kill_grace: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(c.worker_shutdown_grace_sec),
            mailer: Mailer::from_config(c),
            webhooks: None,
            ui_link: crate::workflow::mail::ui_link(c),
            outage_grace: Duration::from_secs(c.master_outage_grace_sec),
            lost_lease_retries: c.lost_lease_retries,
            pools: c.pools.clone(),
            launch: Arc::new(crate::workflow::executor::Launch::plain(c)),
        }
    }
}
