//! `pinball status` and `pinball logs`: what runs and why it failed, read from the database
//! through the dashboard's read model (`ops::read`), so they answer with the master down and
//! show archived runs too. Not found exits 1; answers go to stdout.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::CliError;
use crate::config::Config;
use crate::ops::read::logs::{LogError, LogReader};
use crate::ops::read::{DataLayer, InstanceRow, JobRow, WorkflowRow, job_row};
use crate::token::name::{InstanceId, JobName, WorkflowName};

/// `pinball status [-w WF] [-i INSTANCE|latest]`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The workflow whose runs to list.
    #[arg(short = 'w', long = "workflow")]
    pub workflow: Option<String>,
    /// The run whose jobs to list (`latest`: the newest run); needs -w.
    #[arg(short = 'i', long = "instance", requires = "workflow")]
    pub instance: Option<String>,
    /// How many of a workflow's runs to list, newest first.
    #[arg(short = 'n', long = "limit", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Print JSON (the dashboard's read API rows) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `pinball logs -w WF -i INSTANCE|latest -j JOB [-e N] [--stderr] [--follow]`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    #[arg(short = 'w', long = "workflow")]
    pub workflow: String,
    /// The run (`latest`: the newest run).
    #[arg(short = 'i', long = "instance")]
    pub instance: String,
    #[arg(short = 'j', long = "job")]
    pub job: String,
    /// The execution, counted from 0 (default: the job's last).
    #[arg(short = 'e', long = "execution")]
    pub execution: Option<usize>,
    /// Print the stderr log instead of stdout.
    #[arg(long)]
    pub stderr: bool,
    /// While the execution runs, keep printing what it writes.
    #[arg(short = 'f', long)]
    pub follow: bool,
}

/// The read model on the configured database; refused when a SQLite file is not there (no
/// master has run with this configuration).
fn read_model(config: &Config) -> Result<DataLayer, CliError> {
    let url = config
        .database_url()
        .map_err(|e| CliError::usage(e.to_string()))?;
    if let Some(path) = crate::storage::sqlite_path(&url)
        && !std::path::Path::new(path).exists()
    {
        return Err(CliError::failed(format!(
            "no database at {path}: no master has run with this configuration (database_url)"
        )));
    }
    let store = crate::storage::open(&url).map_err(|e| CliError::failed(e.to_string()))?;
    Ok(DataLayer::new(
        Arc::from(store),
        config.master_name.clone(),
        config.default_max_workflow_running_instances,
    ))
}

fn parsed<N>(what: &str, text: &str) -> Result<N, CliError>
where
    N: std::str::FromStr<Err = crate::token::name::NameError>,
{
    text.parse()
        .map_err(|e| CliError::usage(format!("{what} {text:?}: {e}")))
}

fn read_error(e: impl std::fmt::Display) -> CliError {
    CliError::failed(format!("the database cannot be read: {e}"))
}

/// The run `-i` names: `latest` is the workflow's newest.
async fn instance_of(
    data: &DataLayer,
    w: &WorkflowName,
    text: &str,
) -> Result<InstanceId, CliError> {
    if text != "latest" {
        return parsed("instance", text);
    }
    data.latest_instance(w)
        .await
        .map_err(read_error)?
        .ok_or_else(|| CliError::failed(format!("workflow {w} has no runs")))
}

fn time(t: Option<f64>) -> String {
    t.map_or_else(|| "-".into(), |t| crate::clock::utc(t as i64))
}

fn ran(start: Option<f64>, end: Option<f64>) -> String {
    start.map_or_else(
        || "-".into(),
        |s| crate::clock::duration(end.unwrap_or_else(crate::clock::now_f64) - s),
    )
}

/// Rows as columns, each as wide as its widest cell.
fn table(head: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(head.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}

/// `pinball status`: every workflow, a workflow's runs, or a run's jobs.
pub async fn status(args: &StatusArgs, config: &Config) -> Result<String, CliError> {
    let data = read_model(config)?;
    let Some(w) = &args.workflow else {
        let rows = data.workflows().await.map_err(read_error)?;
        return Ok(if args.json {
            json(&rows)
        } else {
            workflows_table(rows)
        });
    };
    let w: WorkflowName = parsed("workflow", w)?;
    let Some(i) = &args.instance else {
        let page = data
            .instances(&w, 0, args.limit)
            .await
            .map_err(read_error)?
            .ok_or_else(|| CliError::failed(format!("workflow {w} has no runs")))?;
        return Ok(if args.json {
            json(&page.rows)
        } else {
            runs_table(page.rows, page.total)
        });
    };
    let i = instance_of(&data, &w, i).await?;
    let inst = data
        .instance(&w, &i)
        .await
        .map_err(read_error)?
        .ok_or_else(|| CliError::failed(format!("workflow {w} has no instance {i}")))?;
    let run = crate::ops::read::run_of(&inst).cloned();
    let jobs: Vec<(JobRow, Option<i32>)> = inst
        .jobs
        .iter()
        .map(|jt| (job_row(jt), jt.job.history.last().and_then(|r| r.exit_code)))
        .collect();
    if args.json {
        let rows: Vec<serde_json::Value> = jobs
            .iter()
            .map(|(row, code)| {
                let mut v = serde_json::to_value(row).unwrap_or_default();
                v["exit_code"] = serde_json::json!(code);
                v
            })
            .collect();
        return Ok(json(&serde_json::json!({
            "workflow": w, "instance": i, "status": inst.status().status, "jobs": rows,
            "kind": run.as_ref().map(|r| r.kind),
            "logical_time": run.as_ref().map(|r| r.logical_time),
            "params": run.as_ref().map(|r| &r.params),
        })));
    }
    let s = inst.status();
    let run = match &run {
        Some(r) => {
            let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!(
                "{} run for {}{}\n",
                r.kind.as_str(),
                r.logical_date(),
                match params.is_empty() {
                    true => String::new(),
                    false => format!(", params {}", params.join(" ")),
                }
            )
        }
        None => String::new(),
    };
    Ok(format!(
        "workflow {w} instance {i}: {} (started {}, ran {})\n{run}{}",
        s.status.as_str(),
        time(s.start_time),
        ran(s.start_time, s.end_time),
        jobs_table(jobs)
    ))
}

fn workflows_table(rows: Vec<WorkflowRow>) -> String {
    if rows.is_empty() {
        return "no workflows: import some with `pinball import -f reschedule`\n".into();
    }
    let cells = rows
        .into_iter()
        .map(|r| {
            vec![
                r.workflow.to_string(),
                r.status.as_str().to_owned(),
                r.last_instance
                    .map_or_else(|| "-".into(), |i| i.to_string()),
                time(r.last_start_time),
                ran(r.last_start_time, r.last_end_time),
                r.running_instances.to_string(),
                time(r.next_run_time.map(|t| t as f64)),
            ]
        })
        .collect();
    let head = [
        "WORKFLOW", "STATUS", "LAST RUN", "STARTED", "RAN", "RUNNING", "NEXT RUN",
    ];
    table(&head, cells)
}

fn runs_table(rows: Vec<InstanceRow>, total: u64) -> String {
    let shown = rows.len();
    let cells = rows
        .into_iter()
        .map(|r| {
            vec![
                r.instance.to_string(),
                r.status.as_str().to_owned(),
                time(r.start_time),
                time(r.end_time),
                ran(r.start_time, r.end_time),
            ]
        })
        .collect();
    let mut out = table(&["INSTANCE", "STATUS", "STARTED", "ENDED", "RAN"], cells);
    if total > shown as u64 {
        out.push_str(&format!("({shown} newest of {total} runs; -n for more)\n"));
    }
    out
}

fn jobs_table(jobs: Vec<(JobRow, Option<i32>)>) -> String {
    let cells = jobs
        .into_iter()
        .map(|(r, code)| {
            vec![
                r.job.to_string(),
                r.state.as_str().to_owned(),
                match r.attempts_this_try == r.attempts {
                    true => r.attempts.to_string(),
                    false => format!("{} ({} in all)", r.attempts_this_try, r.attempts),
                },
                time(r.last_start_time),
                ran(r.last_start_time, r.last_end_time),
                code.map_or_else(|| "-".into(), |c| c.to_string()),
            ]
        })
        .collect();
    table(
        &["JOB", "STATE", "ATTEMPTS", "STARTED", "RAN", "EXIT"],
        cells,
    )
}

/// How often `--follow` looks for more of a running job's log.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// `pinball logs`: an execution's stdout (or stderr) log, written to `out` as it is read;
/// with `--follow`, until the execution ends.
pub async fn logs(args: &LogsArgs, config: &Config, out: &mut dyn Write) -> Result<(), CliError> {
    let data = read_model(config)?;
    let w: WorkflowName = parsed("workflow", &args.workflow)?;
    let job: JobName = parsed("job", &args.job)?;
    let i = instance_of(&data, &w, &args.instance).await?;
    let reader = LogReader {
        data: &data,
        config,
    };
    let kind = if args.stderr { "stderr" } else { "stdout" };
    let mut jt = data
        .job(&w, &i, &job)
        .await
        .map_err(read_error)?
        .ok_or_else(|| {
            CliError::failed(format!("job {job} of workflow {w} instance {i} not found"))
        })?;
    // A run whose start only its claim recorded writes its record within a second (or ends):
    // the latest execution is that one, once it is there.
    for _ in 0..10 {
        if args.execution.is_some() || !jt.runs_unwritten() {
            break;
        }
        tokio::time::sleep(FOLLOW_EVERY / 2).await;
        match data.job(&w, &i, &job).await.map_err(read_error)? {
            Some(again) => jt = again,
            None => break,
        }
    }
    let n = match args.execution {
        Some(n) => n,
        None => jt.job.history.len().checked_sub(1).ok_or_else(|| {
            CliError::failed(format!(
                "job {job} of workflow {w} instance {i} has not run"
            ))
        })?,
    };
    let mut printed = 0u64;
    loop {
        let log = reader
            .open_job_log(&jt, n, kind)
            .await
            .map_err(|e| match e {
                LogError::Database(e) => read_error(e),
                e => CliError::failed(e.to_string()),
            })?;
        if printed == 0
            && log.size == 0
            && let Some(why) = &log.missing
        {
            return Err(CliError::failed(why.clone()));
        }
        let running = log.running;
        let mut chunks = std::pin::pin!(log.chunks_from(printed));
        while let Some(part) = chunks.next().await {
            let part =
                part.map_err(|e| CliError::failed(format!("the log cannot be read: {e}")))?;
            printed += part.len() as u64;
            match out.write_all(&part).and_then(|()| out.flush()) {
                Ok(()) => {}
                // A reader that went away (`| head`) has what it wanted.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(CliError::failed(format!("cannot write the log: {e}"))),
            }
        }
        if !(args.follow && running) {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
        match data.job(&w, &i, &job).await.map_err(read_error)? {
            Some(again) => jt = again,
            None => return Ok(()),
        }
    }
}
