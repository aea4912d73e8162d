//! The probes listener (`/live`, `/ready`, `/metrics` on `probe_port`) and what each
//! component exposes beyond loopback.

use super::*;

/// The `metrics_bind` listener of a workers or scheduler process: `/health`, `/ready`,
/// `/metrics`. Closed like the others: beyond loopback it needs `api_tokens` (or
/// `allow_unauthenticated`).
pub(super) async fn start_probes(
    config: &Config,
    local: Option<&Master>,
    modes: &[Mode],
    stop: watch::Receiver<bool>,
    tasks: &mut Tasks,
) -> anyhow::Result<()> {
    let Some(bind) = &config.metrics_bind else {
        return Ok(());
    };
    let (host, port) = crate::config::split_host_port(bind)
        .with_context(|| format!("metrics_bind `{bind}` must be HOST:PORT"))?;
    let access = crate::web::auth::Access::new(&config.api_tokens);
    let how = exposure(
        "metrics listener",
        host,
        (!access.is_open()).then(|| "metrics need a viewer token".to_owned()),
        "api_tokens",
        config.allow_unauthenticated,
    )?;
    let listener = TcpListener::bind((host, port))
        .await
        .with_context(|| format!("cannot listen on {bind} (metrics_bind)"))?;
    let what = if modes.contains(&Mode::Workers) {
        "workers"
    } else {
        "scheduler"
    };
    let probes = crate::master::probes::Probes {
        access,
        host_names: crate::web::auth::host_names([host]).into(),
        client: client_of(
            config,
            local,
            RetryPolicy {
                attempts: 1,
                timeout: Duration::from_secs(2),
                ..Default::default()
            },
        ),
        what,
    };
    tracing::info!(addr = %listener.local_addr()?, access = %how, "{what} metrics listening");
    let limits = crate::web::http::ServeLimits::from_config(config);
    let app = crate::master::probes::probe_router(probes);
    tasks.spawn(async move {
        crate::web::http::serve(listener, app, limits, wait_for(stop)).await?;
        Ok(())
    });
    Ok(())
}

/// How a listener is protected, for the start-up log; an error when it would listen beyond
/// loopback with nobody checked and `allow_unauthenticated` is not set.
pub(super) fn exposure(
    what: &str,
    bind: &str,
    protected: Option<String>,
    key: &str,
    allow_unauthenticated: bool,
) -> anyhow::Result<String> {
    if let Some(how) = protected {
        return Ok(how);
    }
    if crate::config::access::is_loopback(bind) {
        return Ok(format!(
            "open to every local user of this machine ({bind} is loopback; set {key} before listening elsewhere)"
        ));
    }
    if allow_unauthenticated {
        tracing::warn!(
            bind,
            "the {what} listens beyond loopback WITHOUT authentication (allow_unauthenticated: true)"
        );
        return Ok(format!("OPEN on {bind} without authentication"));
    }
    anyhow::bail!(
        "the {what} would listen on {bind}, beyond loopback, without authentication: set {key} (see docs/security.md), bind to 127.0.0.1, or set allow_unauthenticated: true"
    )
}
