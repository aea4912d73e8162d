//! The operator's commands (PINBALL_SPEC §7.1, the original workflow_util): start, stop,
//! pause, resume, retry, redo, poison, the signals, disable and enable, reload, cleanup and the
//! schedule commands, as typed functions on [`Ops`]. The CLI and the UI's actions build an
//! [`Action`] and run it with [`Ops::apply`], which records the audit entry: the CLI prints
//! [`Done::message`], the UI renders it. Every message is the original's, word for word,
//! because scripts parse them.

mod action;
mod audit;
pub mod backfill;
mod cleanup;
mod import;
mod jobs;
pub mod pools;
pub mod read;
mod repair;
mod signals;
mod standing;
mod start;
pub mod summaries;

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{Config, Secret};
use crate::master::MasterClient;
use crate::parser::ParseError;
use crate::storage::{Storage, StorageError};
use crate::token::MasterError;
use crate::token::name::{InstanceId, WorkflowName};

pub use action::{Action, apply_raw};
pub use signals::{remove_signal, set_signal};
pub use standing::Standing;

/// Every operator command, as `pinball util` names it ([`Command::ALL`]), and `pinball
/// import` (which `util reschedule` does for one workflow or all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Import,
    Start,
    Stop,
    Pause,
    Resume,
    Retry,
    Redo,
    Poison,
    Drain,
    Undrain,
    Abort,
    Unabort,
    Exit,
    Unexit,
    Reschedule,
    Unschedule,
    Reload,
    Disable,
    Enable,
    Cleanup,
    Rerun,
    PauseSchedule,
    ResumeSchedule,
    Skip,
    Cancel,
}

impl Command {
    pub const ALL: [Command; 24] = [
        Command::Start,
        Command::Stop,
        Command::Pause,
        Command::Resume,
        Command::Retry,
        Command::Redo,
        Command::Poison,
        Command::Drain,
        Command::Undrain,
        Command::Abort,
        Command::Unabort,
        Command::Exit,
        Command::Unexit,
        Command::Reschedule,
        Command::Unschedule,
        Command::Reload,
        Command::Disable,
        Command::Enable,
        Command::Cleanup,
        Command::Rerun,
        Command::PauseSchedule,
        Command::ResumeSchedule,
        Command::Skip,
        Command::Cancel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Import => "import",
            Command::Start => "start",
            Command::Stop => "stop",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Retry => "retry",
            Command::Redo => "redo",
            Command::Poison => "poison",
            Command::Drain => "drain",
            Command::Undrain => "undrain",
            Command::Abort => "abort",
            Command::Unabort => "unabort",
            Command::Exit => "exit",
            Command::Unexit => "unexit",
            Command::Reschedule => "reschedule",
            Command::Unschedule => "unschedule",
            Command::Reload => "reload",
            Command::Disable => "disable",
            Command::Enable => "enable",
            Command::Cleanup => "cleanup",
            Command::Rerun => "rerun",
            Command::PauseSchedule => "pause-schedule",
            Command::ResumeSchedule => "resume-schedule",
            Command::Skip => "skip",
            Command::Cancel => "cancel",
        }
    }

    /// What the command does, in one line (`pinball util --help`).
    pub fn help(self) -> &'static str {
        match self {
            Command::Import => {
                "load every configured workflow into the master, retiring those that left"
            }
            Command::Start => {
                "start a new instance of -w WORKFLOW (--queue: wait for room under its run limit)"
            }
            Command::Cancel => "cancel queued run -i before it starts",
            Command::Stop => "delete the tokens of instance -i (no history kept)",
            Command::Pause => "hold every token of instance -i",
            Command::Resume => "release the tokens of a paused instance -i",
            Command::Retry => {
                "run the failed jobs of instance -i again, each with its whole max_attempts"
            }
            Command::Redo => "run finished job -j again with the events of its execution -e",
            Command::Poison => "run jobs -j and everything downstream of them again",
            Command::Drain => "claim no new job (everywhere, in -w, or in -i)",
            Command::Undrain => "remove a drain",
            Command::Abort => "kill the running jobs and end the instances (everywhere, -w, or -i)",
            Command::Unabort => "remove an abort",
            Command::Exit => "make workers of older generations exit",
            Command::Unexit => "remove an exit",
            Command::Reschedule => "the same as import (-w: that workflow only)",
            Command::Unschedule => "remove the schedule of -w",
            Command::Reload => "apply the configured definition to idle jobs of instance -i",
            Command::Disable => "make jobs -j succeed without running",
            Command::Enable => "make disabled jobs -j run again",
            Command::Cleanup => "delete archived instances older than -a days, and their logs",
            Command::Rerun => {
                "run finished instance -i again as a new instance, every job from the start"
            }
            Command::PauseSchedule => {
                "make the schedule of -w start nothing (import keeps it paused)"
            }
            Command::ResumeSchedule => "let a paused schedule of -w run again",
            Command::Skip => {
                "count failed or waiting jobs -j of instance -i as done, so their downstream jobs run"
            }
        }
    }

    /// The command named `s` (any case).
    pub fn parse(s: &str) -> Option<Command> {
        Command::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }
}

/// What the commands need to know beyond their inputs.
#[derive(Debug, Clone)]
pub struct OpsSettings {
    /// `exit` records this generation: workers of older ones exit.
    pub generation: u32,
    /// The limit of running instances of a schedule that names none.
    pub default_max_running: u32,
    /// Whose archive to read.
    pub master_name: String,
    /// Where job logs are (cleanup removes an instance's folder).
    pub logs_dir: PathBuf,
}

impl OpsSettings {
    pub fn from_config(c: &Config) -> OpsSettings {
        OpsSettings {
            generation: c.generation,
            default_max_running: c.default_max_workflow_running_instances,
            master_name: c.master_name.clone(),
            logs_dir: c.logs_dir(),
        }
    }
}

/// The commands, bound to a master and (for finished instances) the archive.
#[derive(Clone)]
pub struct Ops<'a> {
    pub client: &'a dyn MasterClient,
    /// The database, read for archived instances (retry, poison) and pruned by cleanup.
    /// Opened on first use when `None`, from `database_url`.
    pub store: Option<Arc<dyn Storage>>,
    /// Holds the database password, if any: never shown.
    pub database_url: Option<Secret>,
    pub settings: OpsSettings,
}

/// What a command did: the message it prints, and the instance it created, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    pub message: String,
    pub created: Option<(WorkflowName, InstanceId)>,
    /// The command did nothing: what it names is not there, or does not allow it. The CLI
    /// prints the original's message on stderr and exits 1 (CONTRACT §1); the UI shows it as
    /// an error.
    pub refused: bool,
    /// `created` is a queued run (`start --queue` beyond the run limit): it starts when a run
    /// ends.
    pub queued: bool,
}

impl Done {
    pub(crate) fn say(message: impl Into<String>) -> Done {
        Done {
            message: message.into(),
            created: None,
            refused: false,
            queued: false,
        }
    }

    /// Nothing done, and why.
    pub(crate) fn refuse(message: impl Into<String>) -> Done {
        Done {
            refused: true,
            ..Done::say(message)
        }
    }

    fn created(message: impl Into<String>, w: &WorkflowName, i: &InstanceId) -> Done {
        Done {
            created: Some((w.clone(), i.clone())),
            ..Done::say(message)
        }
    }
}

/// Why a command did not run.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The request itself is wrong (a missing job, an age below the minimum).
    #[error("{0}")]
    Input(String),
    /// The command ran and could not do what was asked (too many instances running).
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Master(#[from] MasterError),
    #[error("the archive cannot be read: {0}")]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Definitions(#[from] ParseError),
    #[error(transparent)]
    Workflow(crate::workflow::error::Error),
    /// The workflow is not in the master, or was retired.
    #[error("{0}")]
    NoWorkflow(String),
    /// A start with a receipt (an HTTP trigger's idempotency key) found the receipt written by
    /// another start: that one's run stands.
    #[error("the idempotency key was used by a start at the same time ({0})")]
    AlreadyStarted(String),
}

impl From<crate::workflow::error::Error> for OpsError {
    fn from(e: crate::workflow::error::Error) -> Self {
        match e {
            crate::workflow::error::Error::Master(m) => OpsError::Master(m),
            other => OpsError::Workflow(other),
        }
    }
}

impl OpsError {
    /// Whether the fault is in the request (exit status 2, HTTP 400) rather than the system.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            OpsError::Input(_)
                | OpsError::Definitions(_)
                | OpsError::Workflow(crate::workflow::error::Error::Definition { .. })
                | OpsError::Master(MasterError::InputError(_))
        )
    }
}

impl<'a> Ops<'a> {
    pub fn new(client: &'a dyn MasterClient, settings: OpsSettings) -> Ops<'a> {
        Ops {
            client,
            store: None,
            database_url: None,
            settings,
        }
    }

    /// The commands of the configuration `c` (its database for the archive) through `client`.
    pub fn from_config(client: &'a dyn MasterClient, c: &Config) -> Ops<'a> {
        Ops {
            client,
            store: None,
            database_url: c.database_url().ok().map(Secret),
            settings: OpsSettings::from_config(c),
        }
    }

    pub fn with_store(mut self, store: Arc<dyn Storage>) -> Ops<'a> {
        self.store = Some(store);
        self
    }

    fn client(&self) -> &'a dyn MasterClient {
        self.client
    }

    /// The archive: the given store, else the configured database.
    fn store(&self) -> Result<Arc<dyn Storage>, OpsError> {
        if let Some(s) = &self.store {
            return Ok(s.clone());
        }
        let url = self
            .database_url
            .as_ref()
            .ok_or_else(|| OpsError::Failed("no database is configured for the archive".into()))?;
        Ok(Arc::from(crate::storage::open(&url.0)?))
    }
}

/// A list as the original printed it (Python's repr): `['a', 'b']`. Scripts parse these messages.
pub fn py_list<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{}'", s.as_ref())).collect();
    format!("[{}]", quoted.join(", "))
}
