//! `pinball backfill` (CONTRACT §1, §4.3): plan and write a backfill, or list, show, pause,
//! resume and cancel one. It returns at once: the scheduler runs the dates.

use clap::Subcommand;

use super::CliError;
use super::util::{key_value, params_of};
use crate::config::Config;
use crate::master::MasterClient;
use crate::ops::Ops;
use crate::ops::backfill::{Backfill, BackfillSpec, Control, Reprocess, zoned_text};
use crate::token::name::{InstanceId, WorkflowName};

/// `pinball backfill -w WF --from T1 --to T2 [...]`, or `pinball backfill list|show|pause|resume|cancel`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackfillArgs {
    #[command(subcommand)]
    pub command: Option<BackfillCommand>,
    /// The workflow to backfill.
    #[arg(short = 'w', long = "workflow")]
    pub workflow: Option<String>,
    /// The first time (RFC 3339, or YYYY-MM-DD at midnight in the schedule's time zone).
    #[arg(long)]
    pub from: Option<String>,
    /// The last time, included (a date: every fire time of that day).
    #[arg(long)]
    pub to: Option<String>,
    /// Which dates with runs run again: missing (none), failed (those whose newest run failed), all.
    #[arg(long, default_value = "missing", value_parser = ["missing", "failed", "all"])]
    pub reprocess: String,
    /// How many of the backfill's runs may run at once.
    #[arg(long = "max-active", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_active: u32,
    /// forward (oldest date first) or backward.
    #[arg(long, default_value = "forward", value_parser = ["forward", "backward"])]
    pub order: String,
    /// A run parameter, KEY=VALUE (repeat for more), for every run.
    #[arg(short = 'p', long = "param", value_parser = key_value)]
    pub params: Vec<(String, String)>,
    /// The dates of a workflow without a schedule (or other than its schedule's): 1D, 6H, or a cron.
    #[arg(long)]
    pub every: Option<String>,
    /// Print each date and what would happen to it; write nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BackfillCommand {
    /// Every backfill: its state and counts.
    List,
    /// A backfill's dates: each one's state and run.
    Show { id: String },
    /// Start no more of its dates; runs in progress finish.
    Pause { id: String },
    /// Start its dates again.
    Resume { id: String },
    /// Start none of its pending dates and abort its runs in progress.
    Cancel { id: String },
}

pub async fn run(
    args: &BackfillArgs,
    config: &Config,
    client: &dyn MasterClient,
) -> Result<String, CliError> {
    let ops = Ops::from_config(client, config);
    let actor = super::os_user();
    let done = match &args.command {
        Some(BackfillCommand::List) => return Ok(list(&ops.backfills().await?)),
        Some(BackfillCommand::Show { id }) => {
            let b = ops.backfill_of(id).await?.1;
            let runs = ops.backfill_runs(&b).await?;
            return Ok(show(&b, &runs));
        }
        Some(BackfillCommand::Pause { id }) => {
            ops.control_backfill(id, Control::Pause, &actor).await?
        }
        Some(BackfillCommand::Resume { id }) => {
            ops.control_backfill(id, Control::Resume, &actor).await?
        }
        Some(BackfillCommand::Cancel { id }) => {
            ops.control_backfill(id, Control::Cancel, &actor).await?
        }
        None => {
            let spec = spec_of(args)?;
            let planned = ops.plan_backfill(&spec, &actor).await?;
            if args.dry_run {
                return Ok(planned.lines());
            }
            ops.backfill(&planned, &actor).await?
        }
    };
    if done.refused {
        return Err(CliError::failed(done.message.trim_end()));
    }
    Ok(done.message)
}

fn spec_of(args: &BackfillArgs) -> Result<BackfillSpec, CliError> {
    let need = |v: &Option<String>, flag: &str| {
        v.clone().ok_or_else(|| {
            CliError::usage(format!(
                "backfill needs {flag} (or one of list, show, pause, resume, cancel)"
            ))
        })
    };
    let workflow = WorkflowName::parse(need(&args.workflow, "-w WORKFLOW")?)
        .map_err(|e| CliError::usage(e.to_string()))?;
    Ok(BackfillSpec {
        workflow,
        from: need(&args.from, "--from T1")?,
        to: need(&args.to, "--to T2")?,
        reprocess: Reprocess::parse(&args.reprocess).unwrap_or_default(),
        max_active: args.max_active,
        backward: args.order == "backward",
        params: params_of(&args.params)?,
        every: args.every.clone(),
    })
}

/// `backfill list`: one line per backfill.
fn list(all: &[Backfill]) -> String {
    if all.is_empty() {
        return "no backfills\n".into();
    }
    let mut out = String::new();
    for b in all {
        let c = b.counts();
        out.push_str(&format!(
            "{} {} {} {}..{} pending {} running {} done {} failed {} skipped {}{}\n",
            b.id,
            b.workflow,
            b.state.as_str(),
            zoned_text(b.from, b.timezone.as_deref()),
            zoned_text(b.to, b.timezone.as_deref()),
            c.pending,
            c.running,
            c.done,
            c.failed,
            c.skipped,
            if c.cancelled > 0 {
                format!(" cancelled {}", c.cancelled)
            } else {
                String::new()
            }
        ));
    }
    out
}

/// `backfill show ID`: the backfill, then a line per date.
fn show(b: &Backfill, runs: &std::collections::BTreeMap<i64, InstanceId>) -> String {
    let c = b.counts();
    let mut out = format!(
        "backfill {} of workflow {}: {} (max {} at once, reprocess {}, by {}); pending {} running {} done {} failed {} skipped {}\n",
        b.id,
        b.workflow,
        b.state.as_str(),
        b.max_active,
        b.reprocess.as_str(),
        b.created_by,
        c.pending,
        c.running,
        c.done,
        c.failed,
        c.skipped
    );
    if let Some(e) = &b.error {
        out.push_str(&format!("last error: {e}\n"));
    }
    for (i, t) in b.times.iter().enumerate() {
        let state = b.state_of(i);
        let run = b
            .run_of(i, runs)
            .map(|r| format!(" instance {r}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{} {} {}{run}\n",
            zoned_text(*t, b.timezone.as_deref()),
            state.word(),
            state.why()
        ));
    }
    out
}
