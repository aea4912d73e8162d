//! `pinball util` (the original workflow_util, PINBALL_SPEC §7.1) and `pinball import`: parses
//! the arguments, asks for confirmation, calls `ops`, and returns what to print.

use clap::Args;
use clap::builder::{PossibleValuesParser, TypedValueParser};

use super::{CliError, confirm};
use crate::config::Config;
use crate::master::MasterClient;
use crate::ops::{Action, Ops, OpsError};
use crate::parser;
use crate::token::name::{InstanceId, JobName, WorkflowName};

pub use crate::ops::Command as UtilCommand;

/// What `pinball util` does: one of `ops`' commands, or `test-email` / `test-notify` (which
/// need no master).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UtilVerb {
    Ops(UtilCommand),
    TestEmail,
    TestNotify,
}

impl From<UtilCommand> for UtilVerb {
    fn from(c: UtilCommand) -> Self {
        UtilVerb::Ops(c)
    }
}

/// The command argument, by name (clap lists them in `--help`).
fn command_parser() -> impl TypedValueParser<Value = UtilVerb> {
    use clap::builder::PossibleValue;
    let values = UtilCommand::ALL
        .map(|c| PossibleValue::new(c.as_str()).help(c.help()))
        .into_iter()
        .chain([
            PossibleValue::new("test-email")
                .help("send a test message with the smtp_* settings to --to ADDRESS"),
            PossibleValue::new("test-notify")
                .help("send a test notice to --to WEBHOOK or ADDRESS and print the answer"),
        ]);
    PossibleValuesParser::new(values).map(|s| match UtilCommand::parse(&s) {
        Some(c) => UtilVerb::Ops(c),
        None if s == "test-notify" => UtilVerb::TestNotify,
        None => UtilVerb::TestEmail,
    })
}

#[derive(Debug, Args)]
pub struct UtilArgs {
    #[arg(value_parser = command_parser())]
    pub command: UtilVerb,
    /// Do not ask for confirmation.
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// The workflow.
    #[arg(short = 'w', long = "workflow")]
    pub workflow: Option<WorkflowName>,
    /// The instance (`latest`: the workflow's newest).
    #[arg(short = 'i', long = "instance")]
    pub instance: Option<InstanceId>,
    /// Jobs, comma-separated.
    #[arg(short = 'j', long = "jobs", value_delimiter = ',')]
    pub jobs: Vec<JobName>,
    /// `redo`: the execution whose events the job runs with again.
    #[arg(short = 'e', long = "execution")]
    pub execution: Option<usize>,
    /// `cleanup`: the age in days of the archived instances to delete (at least 7).
    #[arg(short = 'a', long = "age-days", default_value_t = 28)]
    pub age_days: u32,
    /// `retry`: the attempts each retried job gets (default: its max_attempts).
    #[arg(long = "attempts", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub attempts: Option<u32>,
    /// `test-email`, `test-notify`: the address (or webhook) to send the test to.
    #[arg(long = "to")]
    pub to: Option<String>,
    /// `start`: a run parameter, KEY=VALUE (repeat for more); checked against the workflow's params.
    #[arg(short = 'p', long = "param", value_parser = key_value)]
    pub params: Vec<(String, String)>,
    /// `start`: the run's logical time, RFC 3339 or YYYY-MM-DD (default: now).
    #[arg(long = "logical-time")]
    pub logical_time: Option<String>,
    /// `start`: beyond max_running_instances, wait as a QUEUED run that starts when a run ends.
    #[arg(long = "queue")]
    pub queue: bool,
}

/// `KEY=VALUE` of `-p`.
pub(super) fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Do not ask for confirmation.
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Print what would change (added, changed, retired workflows) and write nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Also (re)write schedule tokens (accepted for the original's `import -f reschedule`).
    pub reschedule: Option<String>,
}

impl From<OpsError> for CliError {
    fn from(e: OpsError) -> Self {
        if e.is_input() {
            CliError::usage(e.to_string())
        } else {
            CliError::failed(e.to_string())
        }
    }
}

/// Runs one `util` command against the master `client`, with the archive and definitions of
/// `config`; returns what it prints.
pub async fn run(
    args: &UtilArgs,
    config: &Config,
    client: &dyn MasterClient,
) -> Result<String, CliError> {
    let command = match args.command {
        UtilVerb::TestEmail => return test_email(args, config).await,
        UtilVerb::TestNotify => return test_notify(args, config).await,
        UtilVerb::Ops(c) => c,
    };
    if !confirm(&format!("run {}", command.as_str()), args.force)? {
        return Ok("not confirmed; nothing changed\n".into());
    }
    // Definitions are checked before the master is asked anything.
    let definitions = match command {
        UtilCommand::Reload | UtilCommand::Reschedule => Some(Ok(
            parser::load_from_config(config).map_err(|e| CliError::usage(e.to_string()))?
        )),
        _ => None,
    };
    if command != UtilCommand::Start
        && (!args.params.is_empty() || args.logical_time.is_some() || args.queue)
    {
        return Err(CliError::usage(
            "-p, --logical-time and --queue are for start (rerun keeps the run's own)",
        ));
    }
    let params = params_of(&args.params)?;
    let ops = Ops::from_config(client, config);
    let action = Action {
        command,
        workflow: args.workflow.clone(),
        instance: args.instance.clone(),
        jobs: args.jobs.clone(),
        execution: args.execution,
        age_days: args.age_days,
        attempts: args.attempts,
        definitions,
        source: parser::source_of(config),
        dry_run: false,
        params,
        logical_time: args.logical_time.clone(),
        queue: args.queue,
        ..Action::new(command)
    };
    let done = ops.apply(&action, &super::os_user()).await?;
    if done.refused {
        return Err(CliError::failed(done.message.trim_end()));
    }
    Ok(done.message)
}

/// The `-p KEY=VALUE` options as a map; a key given twice is a usage error.
pub(super) fn params_of(
    given: &[(String, String)],
) -> Result<std::collections::BTreeMap<String, String>, CliError> {
    let mut params = std::collections::BTreeMap::new();
    for (k, v) in given {
        if params.insert(k.clone(), v.clone()).is_some() {
            return Err(CliError::usage(format!("-p {k} is given twice")));
        }
    }
    Ok(params)
}

/// `test-email --to ADDRESS`: sends a test message with the configured SMTP settings and
/// prints the server's answer, so an operator can check them.
async fn test_email(args: &UtilArgs, config: &Config) -> Result<String, CliError> {
    let to = args
        .to
        .as_deref()
        .ok_or_else(|| CliError::usage("test-email needs --to ADDRESS"))?;
    let mailer = crate::email::Mailer::from_config(config).ok_or_else(|| {
        CliError::usage("default_email is not set: it is the sender of every email")
    })?;
    let server = format!("{}:{}", mailer.host, mailer.port);
    let text = format!(
        "This is a test message from Pinball, sent through {server} as {}.\n",
        mailer.from
    );
    let html = format!("<p>{}</p>", crate::email::html_escape(&text));
    let message = crate::email::Outgoing::new(
        vec![to.to_owned()],
        "Pinball test email".into(),
        text,
        Some(html),
    );
    match mailer.send(&message).await {
        Ok(answers) => Ok(answers
            .iter()
            .map(|(r, answer)| {
                let words: Vec<&str> = answer.message().collect();
                format!(
                    "sent to {r} through {server}: the server answered {} {}\n",
                    answer.code(),
                    words.join(" ")
                )
            })
            .collect()),
        Err(e) => Err(CliError::failed(format!(
            "the test email was not sent through {server}: {e}"
        ))),
    }
}

/// `test-notify --to WEBHOOK|ADDRESS`: a test notice to a configured webhook (its answer
/// printed) or a test email to an address.
async fn test_notify(args: &UtilArgs, config: &Config) -> Result<String, CliError> {
    let to = args
        .to
        .as_deref()
        .ok_or_else(|| CliError::usage("test-notify needs --to WEBHOOK or --to ADDRESS"))?;
    if crate::parser::notify::is_address(to) {
        return test_email(args, config).await;
    }
    let hooks = crate::email::webhook::Webhooks::from_config(config)
        .map_err(CliError::usage)?
        .filter(|h| h.knows(to))
        .ok_or_else(|| {
            let known: Vec<&String> = config.webhooks.keys().collect();
            CliError::usage(format!(
                "webhook `{to}` is not in the configuration's webhooks ({known:?})"
            ))
        })?;
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).expect("the OS has a secure random source");
    let notice = crate::email::webhook::Notice {
        target: to.to_owned(),
        event: serde_json::json!({
            "event": "test", "workflow": null, "instance": null, "status": "TEST",
            "logical_time": crate::clock::now(), "params": {},
            "links": {}, "text": "This is a test notice from Pinball.",
        }),
        delivery: crate::token::hex(&id),
        created: crate::clock::now(),
        attempts: 0,
        last_error: None,
    };
    match hooks.post(&notice).await {
        Ok(a) => Ok(format!(
            "posted a test notice to webhook {to} (delivery {}): it answered {} {}\n",
            notice.delivery,
            a.status,
            a.body.trim()
        )),
        Err(e) => Err(CliError::failed(format!(
            "the test notice to webhook {to} was not taken: {e}"
        ))),
    }
}

/// `pinball import`: asks, and loads the definitions into the master (`ops`' `import`,
/// audited there).
pub async fn run_import(
    args: &ImportArgs,
    config: &Config,
    client: &dyn MasterClient,
) -> Result<String, CliError> {
    // Checked before the master is asked anything: a broken file fails at once, offline.
    let defs = parser::load_from_config(config).map_err(|e| CliError::usage(e.to_string()))?;
    if !args.dry_run && !confirm("import the workflow definitions", args.force)? {
        return Ok("not confirmed; nothing changed\n".into());
    }
    let ops = Ops::from_config(client, config);
    let action = Action {
        definitions: Some(Ok(defs)),
        source: parser::source_of(config),
        dry_run: args.dry_run,
        ..Action::new(UtilCommand::Import)
    };
    Ok(ops.apply(&action, &super::os_user()).await?.message)
}
