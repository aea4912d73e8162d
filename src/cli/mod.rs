//! The command line (CONTRACT §1): `pinball [-c CONFIG] -m MODES`, `pinball token ...`,
//! `pinball util ...`, `pinball import`, `status`, `logs`, `validate`, `db`. It parses arguments, asks for confirmation, calls
//! the domain (`ops`, `MasterClient`) and prints; it decides nothing itself. Exit status: 0
//! success, 1 the operation failed, 2 bad usage or input.

pub mod backfill;
pub mod db;
pub mod handover;
pub mod pool;
pub mod status;
pub mod token;
pub mod util;

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "pinball",
    version,
    about = "Pinball: a workflow manager in one binary",
    arg_required_else_help = true
)]
pub struct Cli {
    /// Configuration file (default: ./pinball.yaml if present, else built-in defaults).
    #[arg(short = 'c', long = "config", global = true)]
    pub config: Option<PathBuf>,
    /// Components to run in this process: master, ui, scheduler, workers, a comma list, or all.
    #[arg(short = 'm', long = "mode")]
    pub modes: Option<String>,
    /// Log what a command does (info) on stderr (`pinball -v util ...`); without it a command logs only warnings,
    /// and its answer alone is on stdout.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Raw token access against a running master (the original pinball_util).
    Token(token::TokenArgs),
    /// Operate workflows: start, stop, retry, drain, abort, exit, disable, enable... (workflow_util).
    Util(util::UtilArgs),
    /// Load the workflow definitions into the master (`import -f reschedule`).
    Import(util::ImportArgs),
    /// What runs: every workflow, a workflow's runs (-w), a run's jobs (-w -i); from the database.
    Status(status::StatusArgs),
    /// Print a job's log (-w -i -j [-e N] [--stderr] [--follow]); from the database.
    Logs(status::LogsArgs),
    /// Run a workflow once per fire time in a range (-w --from --to), or list, show, pause, resume, cancel backfills.
    Backfill(backfill::BackfillArgs),
    /// Pools with slots: `pool set NAME --slots N`, `pool ls`, `pool rm NAME`.
    Pool(pool::PoolArgs),
    /// Check workflow definitions offline (no master): every error at once; exit 2 on any.
    Validate(ValidateArgs),
    /// Read a password from stdin and print its argon2id hash, for `ui_users`.
    HashPassword,
    /// Move or check the database: `db copy --from URL --to URL`, `db check`.
    Db(db::DbArgs),
    /// The masters: `master handover` (the leader hands its lease to a standby).
    Master(handover::MasterArgs),
    /// The helper a workers process starts so its jobs' processes die with it (internal).
    #[command(hide = true)]
    ReapJobs,
}

/// `pinball validate [FILE...]`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Files or folders of definitions (default: the configuration's `workflows_config`).
    pub files: Vec<std::path::PathBuf>,
}

/// `pinball validate`: checks the definitions at `args.files` (or the configuration's) without
/// a master, and prints every error at once.
pub fn validate(args: &ValidateArgs, config: &crate::config::Config) -> Result<String, CliError> {
    let paths = if args.files.is_empty() {
        match config.parser_params.workflows_config.as_deref() {
            Some(p) if config.parser != "exec" => vec![std::path::PathBuf::from(p)],
            _ => {
                // The exec parser's program, or no definitions configured: read them as import does.
                let defs = crate::parser::load_from_config(config)
                    .map_err(|e| CliError::usage(e.to_string()))?;
                return Ok(format!(
                    "{} workflow(s) in {} are valid\n",
                    defs.len(),
                    crate::parser::source_of(config)
                ));
            }
        }
    } else {
        args.files.clone()
    };
    let known = |n: &str| config.webhooks.contains_key(n);
    let (valid, errors) = crate::parser::check_paths(&paths, &known);
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    if errors.is_empty() {
        return Ok(format!(
            "{valid} workflow(s) in {} are valid\n",
            shown.join(", ")
        ));
    }
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    Err(CliError::usage(format!(
        "{} error(s) in the definitions:\n{}",
        lines.len(),
        lines.join("\n")
    )))
}

/// `pinball hash-password`: the password from the terminal (asked twice, not echoed) or the
/// first line of stdin; its argon2id hash, for `ui_users`.
pub fn hash_password() -> Result<String, CliError> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")
            .map_err(|e| CliError::failed(format!("cannot read the password: {e}")))?;
        let again = rpassword::prompt_password("Again: ")
            .map_err(|e| CliError::failed(format!("cannot read the password: {e}")))?;
        if first != again {
            return Err(CliError::usage("the two passwords differ"));
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .take(4096)
            .read_line(&mut line)
            .map_err(|e| CliError::failed(format!("cannot read the password: {e}")))?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    if password.is_empty() {
        return Err(CliError::usage("the password is empty"));
    }
    let hash = crate::config::access::hash_password(&password)
        .map_err(|e| CliError::failed(format!("cannot hash the password: {e}")))?;
    Ok(format!("{hash}\n"))
}

/// An error a command reports: one sentence on stderr, and an exit status.
#[derive(Debug)]
pub struct CliError {
    pub status: i32,
    pub message: String,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            status: EXIT_USAGE,
            message: message.into(),
        }
    }
    pub fn failed(message: impl Into<String>) -> Self {
        CliError {
            status: EXIT_FAILED,
            message: message.into(),
        }
    }
}

impl From<crate::master::MasterError> for CliError {
    fn from(e: crate::master::MasterError) -> Self {
        match e {
            crate::master::MasterError::InputError(m) => CliError::usage(m),
            other => CliError::failed(other.to_string()),
        }
    }
}

/// Who runs this command, for the audit log: the operating-system user.
pub fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        // SAFETY: getuid only reads the process's real user id.
        .unwrap_or_else(|| format!("uid {}", unsafe { libc::getuid() }))
}

/// Asks `question [n]|y` on the terminal; an empty answer is no. A destructive command without
/// `-f` and without a terminal is a usage error (CONTRACT §1).
pub fn confirm(question: &str, force: bool) -> Result<bool, CliError> {
    if force {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(format!(
            "{question}: refusing to proceed without confirmation; stdin is not a terminal, so pass -f"
        )));
    }
    print!("{question} [n]|y: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::failed(e.to_string()))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        // Every subcommand built and checked: two options with one short name would panic at
        // run time (the `-v` of `token` beside a global `-v` did).
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
