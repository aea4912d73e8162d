//! `pinball util` (the original workflow_util, PINBALL_SPEC §7.1) and `pinball import`: the
//! operator's commands, with the original's messages. Everything goes through `MasterClient`.

use clap::{Args, ValueEnum};

use super::{CliError, confirm};
use crate::config::Config;
use crate::master::MasterClient;
use crate::token::name::{self, JobState, Level, Name};
use crate::token::*;
use crate::workflow::instance::{JobToken, new_instance_id, new_instance_tokens};
use crate::workflow::signal::{self, Action, Attributes, Signals};
use crate::workflow::{definition, progress};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "lower")]
pub enum UtilCommand {
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
}

#[derive(Debug, Args)]
pub struct UtilArgs {
    pub command: UtilCommand,
    /// Do not ask for confirmation.
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    #[arg(short = 'w', long = "workflow")]
    pub workflow: Option<String>,
    #[arg(short = 'i', long = "instance")]
    pub instance: Option<String>,
    /// Jobs, comma-separated.
    #[arg(short = 'j', long = "jobs", value_delimiter = ',')]
    pub jobs: Vec<String>,
    #[arg(short = 'e', long = "execution")]
    pub execution: Option<usize>,
    #[arg(short = 'a', long = "age-days", default_value_t = 28)]
    pub age_days: u32,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Do not ask for confirmation.
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Also (re)write schedule tokens (accepted for the original's `import -f reschedule`).
    pub reschedule: Option<String>,
}

fn workflow(args: &UtilArgs) -> Result<&str, CliError> {
    let w = args
        .workflow
        .as_deref()
        .ok_or_else(|| CliError::usage("this command needs -w WORKFLOW"))?;
    name::check_word("workflow", w).map_err(CliError::usage)?;
    Ok(w)
}

fn instance(args: &UtilArgs) -> Result<(&str, &str), CliError> {
    let w = workflow(args)?;
    let i = args
        .instance
        .as_deref()
        .ok_or_else(|| CliError::usage("this command needs -i INSTANCE"))?;
    name::check_word("instance", i).map_err(CliError::usage)?;
    Ok((w, i))
}

/// The level `-w` and `-i` name (global without either; -i needs -w).
fn level(args: &UtilArgs) -> Result<Level, CliError> {
    match (&args.workflow, &args.instance) {
        (None, None) => Ok(Level::Global),
        (Some(_), None) => Ok(Level::Workflow(workflow(args)?.to_owned())),
        (_, Some(_)) => {
            let (w, i) = instance(args)?;
            Ok(Level::Instance(w.to_owned(), i.to_owned()))
        }
    }
}

pub async fn run(
    args: &UtilArgs,
    config: &Config,
    client: &dyn MasterClient,
) -> Result<String, CliError> {
    use UtilCommand::*;
    let what = format!("{:?}", args.command).to_lowercase();
    if !confirm(&format!("run {what}"), args.force)? {
        return Ok("not confirmed; nothing changed\n".into());
    }
    match args.command {
        Start => start(args, config, client).await,
        Stop => stop(args, client).await,
        Retry => retry(args, config, client).await,
        Drain => {
            Ok(signal::set(client, &level(args)?, Action::DRAIN, Attributes::default()).await?)
        }
        Undrain => Ok(signal::remove(client, &level(args)?, Action::DRAIN).await?),
        Abort => {
            let now = crate::clock::now_f64();
            Ok(signal::set(
                client,
                &level(args)?,
                Action::ABORT,
                Attributes {
                    timestamp: Some(now),
                    generation: None,
                },
            )
            .await?)
        }
        Unabort => Ok(signal::remove(client, &level(args)?, Action::ABORT).await?),
        Exit => {
            let attrs = Attributes {
                timestamp: None,
                generation: Some(config.generation),
            };
            Ok(signal::set(client, &level(args)?, Action::EXIT, attrs).await?)
        }
        Unexit => Ok(signal::remove(client, &level(args)?, Action::EXIT).await?),
        Disable => set_disabled(args, client, true).await,
        Enable => set_disabled(args, client, false).await,
        Reschedule => import(config, client, args.workflow.as_deref()).await,
        Pause => {
            let (w, i) = instance(args)?;
            super::repair::pause(w, i, client).await
        }
        Resume => {
            let (w, i) = instance(args)?;
            super::repair::resume(w, i, client).await
        }
        Redo => {
            let (w, i) = instance(args)?;
            super::repair::redo(args, w, i, client).await
        }
        Poison => super::repair::poison(args, workflow(args)?, config, client).await,
        Cleanup => super::repair::cleanup(args, config).await,
        Reload => {
            let (w, i) = instance(args)?;
            super::repair::reload(args, w, i, config, client).await
        }
        Unschedule => {
            let w = workflow(args)?;
            let token = name::schedule_token(w);
            match client.get(&token).await? {
                Some(t) => {
                    client.modify(ModifyRequest::delete(vec![t])).await?;
                    Ok(format!("removed schedule for workflow {w}\n"))
                }
                None => Ok(format!("schedule for workflow {w} not found\n")),
            }
        }
    }
}

/// `pinball import` / `util reschedule`: loads the definitions into the master.
pub async fn import(
    config: &Config,
    client: &dyn MasterClient,
    only: Option<&str>,
) -> Result<String, CliError> {
    let mut defs = definition::load_from_config(config).map_err(|e| CliError::usage(e.0))?;
    if let Some(w) = only {
        if !defs.contains_key(w) {
            return Ok(format!("workflow {w} not found\n"));
        }
        defs.retain(|k, _| k == w);
    }
    if defs.is_empty() {
        return Ok("no workflows found in the configured definitions\n".into());
    }
    let done = definition::import(client, &defs).await?;
    let tokens =
        |names: &[String], f: fn(&str) -> String| names.iter().map(|w| f(w)).collect::<Vec<_>>();
    let mut out = format!(
        "imported workflows {}.  Their definition tokens are {}\n",
        super::py_list(&done.definitions),
        super::py_list(&tokens(&done.definitions, definition::definition_token))
    );
    out.push_str(&format!(
        "rescheduled workflows {}.  Their schedule tokens are {}\n",
        super::py_list(&done.schedules),
        super::py_list(&tokens(&done.schedules, name::schedule_token))
    ));
    Ok(out)
}

async fn start(
    args: &UtilArgs,
    config: &Config,
    client: &dyn MasterClient,
) -> Result<String, CliError> {
    let w = workflow(args)?;
    let def = definition::read(client, w).await?.ok_or_else(|| {
        CliError::failed(format!(
            "workflow {w} not found in the master; load it with `pinball import -f reschedule`"
        ))
    })?;
    if let Some(schedule) = &def.schedule {
        let limit = schedule
            .max_running_instances
            .unwrap_or(config.default_max_workflow_running_instances) as usize;
        let running = progress::running_instances(client, w).await?;
        if running.len() >= limit {
            return Err(CliError::failed(format!(
                "failed to start a new instance for workflow {w} due to too many instances running! ({} running, max_running_instances {limit})",
                running.len()
            )));
        }
    }
    let graph = def.graph();
    // An instance id is a millisecond stamp; two starts in one millisecond retry with the next.
    for _ in 0..5 {
        let i = new_instance_id();
        let tokens = new_instance_tokens(w, &i, &graph);
        match client.modify(ModifyRequest::update(tokens)).await {
            Ok(_) => {
                tracing::info!(workflow = w, instance = %i, "started an instance");
                return Ok(format!(
                    "exported workflow {w} instance {i}.  Its tokens are under {}\n",
                    name::instance_prefix(w, &i)
                ));
            }
            Err(crate::master::MasterError::VersionConflict(_)) => {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(CliError::failed(format!(
        "could not find a free instance id for workflow {w}"
    )))
}

async fn stop(args: &UtilArgs, client: &dyn MasterClient) -> Result<String, CliError> {
    let (w, i) = instance(args)?;
    for attempt in 1..=10 {
        let tokens = client.query_prefix(&name::instance_prefix(w, i)).await?;
        if tokens.is_empty() {
            return Ok(format!("workflow {w} instance {i} not found\n"));
        }
        let n = tokens.len();
        match client.modify(ModifyRequest::delete(tokens)).await {
            Ok(_) => return Ok(format!("removed {n} token(s) in {attempt} tries\n")),
            Err(e) if attempt == 10 => return Err(e.into()),
            Err(_) => {}
        }
    }
    unreachable!("the loop returns on its last attempt")
}

/// Retries an active instance: failed jobs become runnable with their triggering events, and
/// the ARCHIVE signal goes, in one request.
async fn retry(
    args: &UtilArgs,
    config: &Config,
    client: &dyn MasterClient,
) -> Result<String, CliError> {
    let (w, i) = instance(args)?;
    let tokens = progress::read_instance(client, w, i).await?;
    if tokens.all.is_empty() {
        return super::repair::retry_archived(w, i, config, client).await;
    }
    let failed: Vec<&JobToken> = tokens
        .waiting
        .iter()
        .filter(|jt| {
            jt.job
                .history
                .last()
                .is_some_and(|r| r.exit_code != Some(0))
        })
        .collect();
    if failed.is_empty() {
        return Ok(format!(
            "no failed jobs found in workflow {w} instance {i}\n"
        ));
    }
    let mut req = ModifyRequest::default();
    for jt in &failed {
        let mut job = jt.job.clone();
        job.events = job
            .history
            .last()
            .map(|r| r.events.clone())
            .unwrap_or_default();
        req.updates.push(jt.rewritten(JobState::Runnable, &job));
        req.deletes.push(jt.token.clone());
    }
    let archive = name::signal_token(
        &Level::Instance(w.into(), i.into()),
        Action::ARCHIVE.as_str(),
    );
    req.deletes
        .extend(tokens.all.iter().filter(|t| t.name == archive).cloned());
    client.modify(req).await?;
    Ok(format!(
        "retried {} job(s) in workflow {w} instance {i}\n",
        failed.len()
    ))
}

async fn set_disabled(
    args: &UtilArgs,
    client: &dyn MasterClient,
    disabled: bool,
) -> Result<String, CliError> {
    let (w, i) = instance(args)?;
    if args.jobs.is_empty() {
        return Err(CliError::usage("this command needs -j JOB[,JOB...]"));
    }
    let verb = if disabled { "disable" } else { "enable" };
    let now = crate::clock::now();
    for attempt in 1..=10 {
        let all = client.query_prefix(&name::job_prefix(w, i)).await?;
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for j in &args.jobs {
            let t = all
                .iter()
                .find(|t| matches!(Name::parse(&t.name), Some(Name::Job { job, .. }) if job == *j));
            match t {
                Some(t) => found.push(JobToken::parse(t.clone()).map_err(CliError::failed)?),
                None => missing.push(j.clone()),
            }
        }
        if !missing.is_empty() {
            return Ok(format!(
                "job(s) {} not found in the master.  Note that only jobs of a running workflow can be {verb}d\n",
                super::py_list(&missing)
            ));
        }
        if found.iter().any(|jt| {
            jt.token.owner.is_some() && jt.token.expiration_time.is_some_and(|e| e > now - 1)
        }) {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            continue;
        }
        let updates = found
            .iter()
            .map(|jt| {
                let mut job = jt.job.clone();
                job.disabled = disabled;
                Token {
                    data: Some(job.to_data()),
                    ..jt.token.clone()
                }
            })
            .collect();
        if client.modify(ModifyRequest::update(updates)).await.is_ok() {
            return Ok(format!(
                "{verb}d {} job(s) in {attempt} tries\n",
                found.len()
            ));
        }
    }
    Ok(format!("failed to {verb} job(s) in 10 tries\n"))
}

/// The signals visible at a level, for status displays.
pub async fn visible_signals(
    client: &dyn MasterClient,
    level: &Level,
) -> Result<Signals, CliError> {
    Ok(Signals::read(client, level).await?)
}
