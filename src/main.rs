//! The `pinball` binary: parses the command line, sets up logging, loads the configuration and
//! hands over to the library. Everything else lives in `pinball::*`.

use clap::Parser;
use pinball::cli::{self, Cli, CliError, Command};
use pinball::config::{Config, LogFormat};
use pinball::master::HttpMasterClient;
use pinball::modes;

fn main() {
    pinball::config::install_tls_provider();
    // SAFETY: the first thing the process does, before any other thread exists.
    unsafe { pinball::config::env::take_secrets() };
    let cli = Cli::parse();
    if matches!(cli.command, Some(Command::ReapJobs)) {
        // The workers' helper: no configuration, no runtime; it ends when its worker does.
        pinball::workflow::reaper::serve(std::io::stdin().lock());
        return;
    }
    // The configuration names the log format; its own errors are printed without tracing.
    let loaded = Config::load(cli.config.as_deref());
    if let Ok((config, _)) = &loaded {
        // SAFETY: still the only thread.
        unsafe { pinball::config::env::scrub_secrets(config) };
    }
    // A command's answer goes to stdout alone: its own logs are warnings unless -v. The
    // modes, and `db`'s long copies (their progress), log what they do.
    let quiet = !cli.verbose
        && matches!(
            cli.command,
            Some(
                Command::Util(_)
                    | Command::Token(_)
                    | Command::Import(_)
                    | Command::Validate(_)
                    | Command::Status(_)
                    | Command::Backfill(_)
                    | Command::Pool(_)
                    | Command::Master(_)
                    | Command::Logs(_)
            )
        );
    init_tracing(
        loaded
            .as_ref()
            .map_or(LogFormat::Text, |(c, _)| c.log_format),
        if quiet { "warn" } else { "info" },
    );
    let status = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(run(cli, loaded)),
        Err(e) => Err(CliError::failed(format!("cannot start the runtime: {e}"))),
    };
    match status {
        Ok(output) => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            // A reader that went away (`| head -1`) has what it wanted: end quietly.
            match out.write_all(output.as_bytes()).and_then(|()| out.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("pinball: cannot write the output: {e}");
                    std::process::exit(1);
                }
                _ => {}
            }
        }
        Err(e) => {
            eprintln!("pinball: {}", e.message);
            std::process::exit(e.status);
        }
    }
}

async fn run(
    cli: Cli,
    loaded: Result<(Config, Vec<String>), pinball::config::ConfigError>,
) -> Result<String, CliError> {
    let (config, warnings) = loaded.map_err(|e| CliError::usage(e.to_string()))?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    match (cli.modes, cli.command) {
        (Some(_), Some(_)) => Err(CliError::usage(
            "give either -m MODES or a command, not both",
        )),
        (Some(text), None) => {
            let modes = modes::parse_modes(&text).map_err(|e| CliError::usage(e.to_string()))?;
            modes::run(config, modes, shutdown_signal())
                .await
                .map_err(|e| CliError::failed(format!("{e:#}")))?;
            Ok(String::new())
        }
        (None, Some(Command::Token(args))) => {
            let host = args
                .host
                .clone()
                .unwrap_or_else(|| config.master_host.clone());
            let port = args.port.unwrap_or(config.master_port);
            let client = HttpMasterClient::new(
                &host,
                port,
                pinball::master::client::RetryPolicy::from_config(&config),
            )
            .with_token(config.presented_token().as_ref());
            cli::token::run(&args, &client).await
        }
        (None, Some(Command::Util(args))) => {
            let client = HttpMasterClient::from_config(&config);
            cli::util::run(&args, &config, &client).await
        }
        (None, Some(Command::Import(args))) => {
            if let Some(word) = args.reschedule.as_deref().filter(|w| *w != "reschedule") {
                return Err(CliError::usage(format!(
                    "import takes `reschedule` or nothing, not `{word}`"
                )));
            }
            let client = HttpMasterClient::from_config(&config);
            cli::util::run_import(&args, &config, &client).await
        }
        (None, Some(Command::Validate(args))) => cli::validate(&args, &config),
        (None, Some(Command::Pool(args))) => {
            let client = HttpMasterClient::from_config(&config);
            cli::pool::run(&args, &config, &client).await
        }
        (None, Some(Command::Backfill(args))) => {
            let client = HttpMasterClient::from_config(&config);
            cli::backfill::run(&args, &config, &client).await
        }
        (None, Some(Command::Status(args))) => cli::status::status(&args, &config).await,
        (None, Some(Command::Logs(args))) => {
            let mut out = std::io::stdout().lock();
            cli::status::logs(&args, &config, &mut out).await?;
            Ok(String::new())
        }
        (None, Some(Command::HashPassword)) => cli::hash_password(),
        (None, Some(Command::Db(args))) => cli::db::run(&args, &config).await,
        (None, Some(Command::Master(args))) => cli::handover::run(&args, &config).await,
        // Served before the configuration is read (see `main`).
        (None, Some(Command::ReapJobs)) => Ok(String::new()),
        (None, None) => Err(CliError::usage(
            "nothing to do: give -m MODES or a command (see --help)",
        )),
    }
}

/// Logs go to stderr, as text or one JSON object a line (`log_format`), at `default` or
/// above; `PINBALL_LOG` (or `RUST_LOG`) sets the filter, e.g. `info,pinball=debug`.
fn init_tracing(format: LogFormat, default: &str) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let spec = std::env::var("PINBALL_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.into());
    let filter: Targets = spec
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO));
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false);
    match format {
        LogFormat::Text => tracing_subscriber::registry()
            .with(layer)
            .with(filter)
            .init(),
        // The event's fields (workflow, instance, job, execution, ...) at the top level of
        // each object, beside timestamp, level, target and message.
        LogFormat::Json => tracing_subscriber::registry()
            .with(layer.json().flatten_event(true).with_current_span(false))
            .with(filter)
            .init(),
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled, so a signal that comes while the modes start is never missed
/// (the default action would kill the process instead of stopping it).
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .expect("install SIGINT handler");
    async move {
        #[cfg(unix)]
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown requested");
    }
}
