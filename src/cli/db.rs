//! `pinball db copy --from URL --to URL` and `pinball db check [--url URL]`: moving a
//! deployment's database (the embedded SQLite file to MariaDB, say) and checking one.

use clap::{Args, Subcommand};

use super::CliError;
use crate::config::Config;
use crate::config::env::secret_var;
use crate::storage::copy::{self, CopyError, Progress};
use crate::storage::{self, redact_url};

#[derive(Debug, Args)]
pub struct DbArgs {
    #[command(subcommand)]
    pub command: DbCommand,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copy every table (tokens, archive, summaries, audit log, job logs) into another
    /// database, e.g. sqlite://pinball.db to mysql://user:pass@host/pinball. Stop the master
    /// first. An interrupted copy resumes where it stopped when run again. A URL with a
    /// password is best given as PINBALL_DB_FROM / PINBALL_DB_TO, which `ps` does not show.
    Copy {
        /// The source (default: PINBALL_DB_FROM, else the configured database).
        #[arg(long = "from")]
        from: Option<String>,
        /// The target (default: PINBALL_DB_TO).
        #[arg(long = "to")]
        to: Option<String>,
    },
    /// Verify the schema of an existing database and report the rows of each table and its
    /// size (--url, else PINBALL_DB_URL, else the configured database).
    Check {
        #[arg(long = "url")]
        url: Option<String>,
    },
}

impl From<CopyError> for CliError {
    fn from(e: CopyError) -> Self {
        CliError::failed(e.to_string())
    }
}

fn open(url: &str) -> Result<Box<dyn storage::Admin>, CliError> {
    // Only the administration port: `pinball db` reaches no token of a master.
    Ok(storage::open(url).map_err(|e| CliError::usage(e.to_string()))?)
}

pub async fn run(args: &DbArgs, config: &Config) -> Result<String, CliError> {
    let configured = || {
        config
            .database_url()
            .map_err(|e| CliError::usage(e.to_string()))
    };
    match &args.command {
        DbCommand::Copy { from, to } => {
            let from = match from.clone().or_else(|| secret_var("PINBALL_DB_FROM")) {
                Some(u) => u,
                None => configured()?,
            };
            let to = to
                .clone()
                .or_else(|| secret_var("PINBALL_DB_TO"))
                .ok_or_else(|| {
                    CliError::usage("db copy needs a target: --to URL, or PINBALL_DB_TO")
                })?;
            copy_db(&from, &to).await
        }
        DbCommand::Check { url } => {
            let url = match url.clone().or_else(|| secret_var("PINBALL_DB_URL")) {
                Some(u) => u,
                None => configured()?,
            };
            check_db(&url).await
        }
    }
}

async fn copy_db(from: &str, to: &str) -> Result<String, CliError> {
    if from == to {
        return Err(CliError::usage("--from and --to name the same database"));
    }
    let (source, target) = (open(from)?, open(to)?);
    tracing::info!(from = %redact_url(from), to = %redact_url(to), "copying the database");
    let style = indicatif::ProgressStyle::with_template(
        "{msg:>32} [{bar:40}] {pos}/{len} rows ({per_sec}, {eta} left)",
    )
    .expect("a valid progress template")
    .progress_chars("=> ");
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut on_progress = |p: Progress<'_>| match p {
        Progress::Table {
            master,
            spec,
            total,
            already,
        } => {
            if let Some(done) = bar.take() {
                done.finish();
            }
            if already > 0 {
                tracing::info!(
                    master,
                    table = spec.name,
                    rows = total,
                    already,
                    "resuming the copy of a table"
                );
            } else {
                tracing::info!(master, table = spec.name, rows = total, "copying a table");
            }
            let b = indicatif::ProgressBar::new(total).with_style(style.clone());
            b.set_message(format!("{master}/{}", spec.name));
            b.set_position(already);
            bar = Some(b);
        }
        Progress::Copied { rows, .. } => {
            if let Some(b) = &bar {
                b.set_position(rows);
            }
        }
    };
    let report = copy::copy(source.as_ref(), target.as_ref(), &mut on_progress).await?;
    if let Some(done) = bar.take() {
        done.finish();
    }
    let mut out = String::new();
    for t in &report {
        out += &format!("{:>12} {:>20}: {} rows", t.master, t.table, t.total);
        if t.resumed_after > 0 {
            out += &format!(
                " ({} copied now, resumed after {} already there)",
                t.copied, t.resumed_after
            );
        }
        out += "\n";
    }
    out += &format!(
        "copied {} into {}; every table holds as many rows as the source\n",
        redact_url(from),
        redact_url(to)
    );
    tracing::info!(to = %redact_url(to), "database copied and verified");
    Ok(out)
}

async fn check_db(url: &str) -> Result<String, CliError> {
    // A check looks; it never leaves a new, empty database behind.
    if let Some(path) = storage::sqlite_path(url)
        && !std::path::Path::new(path).exists()
    {
        return Err(CliError::failed(format!(
            "{}: no such database file",
            redact_url(url)
        )));
    }
    let store = open(url)?;
    let c = copy::check(store.as_ref()).await?;
    let mut out = format!(
        "{} ({}): schema version {} (current)\n",
        redact_url(url),
        c.kind,
        c.schema_version.unwrap_or(0)
    );
    for (table, rows) in &c.tables {
        out += &format!("{table:>20}: {rows} rows\n");
    }
    if let Some(bytes) = c.bytes {
        out += &format!(
            "{:>20}: {:.1} MiB\n",
            "size",
            bytes as f64 / (1 << 20) as f64
        );
    }
    Ok(out)
}
