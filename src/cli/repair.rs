//! `util` commands that pause, replay or clean up instances: `pause`, `resume`, `redo`,
//! `poison` (PINBALL_SPEC §7.3), `retry` of an archived instance, and `cleanup`. Writes go
//! through `MasterClient`; the archive is read (and, for cleanup, pruned) through `storage`.

use std::collections::{BTreeMap, BTreeSet};

use super::CliError;
use super::util::UtilArgs;
use crate::config::Config;
use crate::master::MasterClient;
use crate::storage::{self, Storage, Table};
use crate::token::name::{self, JobState, Level, Name};
use crate::token::*;
use crate::workflow::instance::{JobToken, new_instance_id};
use crate::workflow::job::Event;
use crate::workflow::signal::Action;
use crate::workflow::{definition, progress};

fn open_store(config: &Config) -> Result<Box<dyn Storage>, CliError> {
    let url = config.database_url().map_err(CliError::usage)?;
    storage::open(&url).map_err(|e| CliError::failed(e.to_string()))
}

/// Archived tokens under `prefix`, read from the database.
async fn read_archived(config: &Config, prefix: &str) -> Result<Vec<Token>, CliError> {
    let store = open_store(config)?;
    store
        .read(&config.master_name, Table::Archived, prefix)
        .await
        .map_err(|e| CliError::failed(e.to_string()))
}

fn who() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let at = crate::clock::utc(crate::clock::now());
    format!(
        "workflow_util user {user} machine {} time {}",
        host.trim(),
        &at[..16]
    )
}

/// `pause`: every token of the instance becomes owned forever, so nothing of it runs (a running
/// job's worker loses its lease and stops it; `resume` lets it run again).
pub async fn pause(w: &str, i: &str, client: &dyn MasterClient) -> Result<String, CliError> {
    let owner = who();
    for attempt in 1..=10 {
        let tokens = client.query_prefix(&name::instance_prefix(w, i)).await?;
        if tokens.is_empty() {
            return Ok(format!("workflow {w} instance {i} not found\n"));
        }
        let n = tokens.len();
        let updates = tokens
            .into_iter()
            .map(|t| Token {
                owner: Some(owner.clone()),
                expiration_time: Some(NEVER),
                ..t
            })
            .collect();
        if client.modify(ModifyRequest::update(updates)).await.is_ok() {
            return Ok(format!("claimed {n} token(s) in {attempt} tries\n"));
        }
    }
    Ok("failed to claim token(s) in 10 tries\n".into())
}

/// `resume`: releases every token of the instance.
pub async fn resume(w: &str, i: &str, client: &dyn MasterClient) -> Result<String, CliError> {
    let tokens = client.query_prefix(&name::instance_prefix(w, i)).await?;
    if tokens.is_empty() {
        return Ok(format!("workflow {w} instance {i} not found\n"));
    }
    let n = tokens.len();
    let updates = tokens
        .into_iter()
        .map(|t| Token {
            owner: None,
            expiration_time: None,
            ..t
        })
        .collect();
    client.modify(ModifyRequest::update(updates)).await?;
    Ok(format!("released ownership of {n} token(s)\n"))
}

/// `redo`: runs a finished job again with the events of one of its executions.
pub async fn redo(
    args: &UtilArgs,
    w: &str,
    i: &str,
    client: &dyn MasterClient,
) -> Result<String, CliError> {
    let [job] = args.jobs.as_slice() else {
        return Err(CliError::usage("redo command takes a single job"));
    };
    let n = args
        .execution
        .ok_or_else(|| CliError::usage("redo needs -e EXECUTION"))?;
    let waiting = name::job_token(w, i, JobState::Waiting, job);
    let Some(token) = client.get(&waiting).await? else {
        return Ok(
            "workflow must be running, the job must be finished and it cannot be runnable\n".into(),
        );
    };
    let jt = JobToken::parse(token).map_err(CliError::failed)?;
    let Some(record) = jt.job.history.get(n) else {
        return Ok(format!("could not find execution {n} in job history\n"));
    };
    let mut next = jt.job.clone();
    next.events = record.events.clone();
    // The original dropped the priority here; `rewritten` keeps it.
    let req = ModifyRequest {
        updates: vec![jt.rewritten(JobState::Runnable, &next)],
        deletes: vec![jt.token.clone()],
    };
    client.modify(req).await?;
    Ok(format!(
        "redoing execution {n} of job {job} in workflow {w} instance {i}\n"
    ))
}

/// The roots and everything downstream of them (PINBALL_SPEC §7.3 step 1).
fn descendants(jobs: &BTreeMap<String, JobToken>, roots: &[String]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<String> = roots.to_vec();
    while let Some(j) = stack.pop() {
        if let Some(jt) = jobs.get(&j)
            && seen.insert(j)
        {
            stack.extend(jt.job.outputs.iter().cloned());
        }
    }
    seen
}

/// The poison events: for each job to run, one event on every input that no job to run feeds,
/// unless that input already holds one (§7.3 step 2).
fn poison_events(
    w: &str,
    i: &str,
    jobs: &BTreeMap<String, JobToken>,
    run: &BTreeSet<String>,
    existing: &[Token],
) -> Vec<Token> {
    let data = serde_json::to_string(&Event {
        creator: "analyzer".into(),
        attributes: Default::default(),
    })
    .expect("events serialize");
    let mut out = Vec::new();
    for j in run {
        for input in jobs[j].job.inputs.iter().filter(|x| !run.contains(*x)) {
            let prefix = name::input_prefix(w, i, j, input);
            if existing.iter().any(|t| t.name.starts_with(&prefix)) {
                continue;
            }
            out.push(Token::new(
                format!("{prefix}poison_{}", out.len()),
                Some(data.clone()),
            ));
        }
    }
    out
}

fn check_roots(jobs: &BTreeMap<String, JobToken>, roots: &[String]) -> Result<(), CliError> {
    if roots.is_empty() {
        return Err(CliError::usage("poison needs -j ROOT[,ROOT...]"));
    }
    let missing: Vec<&String> = roots.iter().filter(|r| !jobs.contains_key(*r)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "job(s) {} not found in the workflow",
            super::py_list(&missing)
        )))
    }
}

/// `poison`: runs the roots and everything downstream of them again, in the active instance
/// (`-i`), or in a new instance from the definition (no `-i`).
pub async fn poison(
    args: &UtilArgs,
    w: &str,
    config: &Config,
    client: &dyn MasterClient,
) -> Result<String, CliError> {
    let roots = &args.jobs;
    let Some(i) = args.instance.as_deref() else {
        let def = definition::read(client, w)
            .await?
            .ok_or_else(|| CliError::failed(format!("workflow {w} not found in the master")))?;
        let jobs = crate::workflow::instance::new_instance_tokens(w, "0", &def.graph())
            .into_iter()
            .map(|t| JobToken::parse(t).expect("fresh tokens parse"))
            .map(|jt| (jt.job.name.clone(), jt))
            .collect();
        return poison_into_new_instance(w, jobs, roots, client).await;
    };
    let tokens = progress::read_instance(client, w, i).await?;
    if tokens.all.is_empty() {
        return poison_archived(args, w, i, config, client).await;
    }
    let jobs: BTreeMap<String, JobToken> = tokens
        .waiting
        .iter()
        .map(|jt| (jt.job.name.clone(), jt.clone()))
        .collect();
    check_roots(&jobs, roots)?;
    let run = descendants(&jobs, roots);
    let mut req = ModifyRequest::update(poison_events(w, i, &jobs, &run, &tokens.all));
    let archive = name::signal_token(
        &Level::Instance(w.into(), i.into()),
        Action::ARCHIVE.as_str(),
    );
    req.deletes
        .extend(tokens.all.iter().filter(|t| t.name == archive).cloned());
    client.modify(req).await?;
    let tokens = progress::read_instance(client, w, i).await?;
    progress::make_runnable(client, w, i, &tokens).await?;
    Ok(format!(
        "poisoned workflow {w} instance {i} roots {}\n",
        super::py_list(roots)
    ))
}

/// `retry` of an archived instance: its jobs and events are copied into a new instance, the
/// failed jobs runnable (with their triggering events), the others waiting; signals stay behind.
pub async fn retry_archived(
    w: &str,
    i: &str,
    config: &Config,
    client: &dyn MasterClient,
) -> Result<String, CliError> {
    let archived = read_archived(config, &name::instance_prefix(w, i)).await?;
    if archived.is_empty() {
        return Ok(format!("workflow {w} instance {i} not found\n"));
    }
    let new = new_instance_id();
    let mut updates = Vec::new();
    for t in archived {
        match Name::parse(&t.name) {
            Some(Name::Job { .. }) => {
                let jt = JobToken::parse(t).map_err(CliError::failed)?;
                let failed = jt
                    .job
                    .history
                    .last()
                    .is_some_and(|r| r.exit_code != Some(0));
                let mut job = jt.job.clone();
                let state = if failed {
                    job.events = job
                        .history
                        .last()
                        .map(|r| r.events.clone())
                        .unwrap_or_default();
                    JobState::Runnable
                } else {
                    JobState::Waiting
                };
                let copy = JobToken {
                    instance: new.clone(),
                    state: JobState::Waiting,
                    ..jt
                };
                updates.push(Token {
                    version: None,
                    ..copy.rewritten(state, &job)
                });
            }
            Some(Name::Event {
                job, input, event, ..
            }) => {
                updates.push(Token {
                    version: None,
                    owner: None,
                    expiration_time: None,
                    ..Token {
                        name: name::event_token(w, &new, &job, &input, &event),
                        ..t
                    }
                });
            }
            _ => {}
        }
    }
    // A name archived twice (a retried instance archived again) keeps its latest copy.
    let mut by_name: BTreeMap<String, Token> = BTreeMap::new();
    for t in updates {
        by_name.insert(t.name.clone(), t);
    }
    client
        .modify(ModifyRequest::update(by_name.into_values().collect()))
        .await?;
    Ok(format!(
        "retried workflow {w} instance {i}.  Its tokens are under {}\n",
        name::instance_prefix(w, &new)
    ))
}

/// `cleanup -a DAYS`: deletes the archived tokens and log folders of instances that ended more
/// than DAYS days ago (the original spared ABORTED instances forever; they go too).
pub async fn cleanup(args: &UtilArgs, config: &Config) -> Result<String, CliError> {
    if args.age_days < 7 {
        return Err(CliError::usage(
            "age of instances to remove must be at least 7 days",
        ));
    }
    let store = open_store(config)?;
    let archived = store
        .read(&config.master_name, Table::Archived, name::WORKFLOW_PREFIX)
        .await
        .map_err(|e| CliError::failed(e.to_string()))?;
    let cutoff = (crate::clock::now() - i64::from(args.age_days) * 86_400) as f64;
    // Each archived instance's end: its latest job end, or its ABORT time.
    let mut ends: BTreeMap<(String, String), f64> = BTreeMap::new();
    for t in &archived {
        let (w, i, end) = match Name::parse(&t.name) {
            Some(Name::Job {
                workflow, instance, ..
            }) => {
                let end = JobToken::parse(t.clone()).ok().and_then(|jt| {
                    jt.job
                        .history
                        .iter()
                        .filter_map(|r| r.end_time)
                        .reduce(f64::max)
                });
                (workflow, instance, end.unwrap_or(0.0))
            }
            Some(Name::Signal {
                level: Level::Instance(workflow, instance),
                ..
            }) => {
                let ts = t
                    .data
                    .as_deref()
                    .and_then(|d| serde_json::from_str::<crate::workflow::signal::Signal>(d).ok())
                    .and_then(|s| s.attributes.timestamp);
                (workflow, instance, ts.unwrap_or(0.0))
            }
            _ => continue,
        };
        let slot = ends.entry((w, i)).or_insert(0.0);
        *slot = slot.max(end);
    }
    let old: Vec<(String, String)> = ends
        .into_iter()
        .filter(|(_, end)| *end < cutoff)
        .map(|(k, _)| k)
        .collect();
    if old.is_empty() {
        return Ok("no tokens need to be cleaned up\n".into());
    }
    let logs = crate::workflow::worker::WorkerSettings::from_config(config).logs_dir;
    let (mut tokens, mut dirs) = (0, 0);
    for (w, i) in &old {
        tokens += store
            .delete_archived(&config.master_name, &name::instance_prefix(w, i))
            .await
            .map_err(|e| CliError::failed(e.to_string()))?;
        let dir = logs.join(w).join(i);
        if dir.exists() && std::fs::remove_dir_all(&dir).is_ok() {
            dirs += 1;
        }
    }
    Ok(format!(
        "removed {tokens} token(s) and {dirs} directory(ies)\n"
    ))
}

/// Puts waiting copies of `jobs` (histories cleared) and their poison events into a new
/// instance, then makes the roots runnable. Returns the `util` message.
async fn poison_into_new_instance(
    w: &str,
    jobs: BTreeMap<String, JobToken>,
    roots: &[String],
    client: &dyn MasterClient,
) -> Result<String, CliError> {
    check_roots(&jobs, roots)?;
    let new = new_instance_id();
    let jobs: BTreeMap<String, JobToken> = jobs
        .into_iter()
        .map(|(n, jt)| {
            let mut job = jt.job.clone();
            job.history.clear();
            job.events.clear();
            let copy = JobToken {
                instance: new.clone(),
                state: JobState::Waiting,
                ..jt
            };
            let token = Token {
                version: None,
                ..copy.rewritten(JobState::Waiting, &job)
            };
            (n, JobToken { token, job, ..copy })
        })
        .collect();
    let run = descendants(&jobs, roots);
    let mut updates: Vec<Token> = jobs.values().map(|jt| jt.token.clone()).collect();
    updates.extend(poison_events(w, &new, &jobs, &run, &[]));
    client.modify(ModifyRequest::update(updates)).await?;
    let tokens = progress::read_instance(client, w, &new).await?;
    progress::make_runnable(client, w, &new, &tokens).await?;
    Ok(format!(
        "poisoned workflow {w} roots {}.  Tokens of the new instance are under {}\n",
        super::py_list(roots),
        name::instance_prefix(w, &new)
    ))
}

/// `poison` of an archived instance: its jobs, histories cleared, in a new instance.
async fn poison_archived(
    args: &UtilArgs,
    w: &str,
    i: &str,
    config: &Config,
    client: &dyn MasterClient,
) -> Result<String, CliError> {
    let archived = read_archived(config, &name::job_prefix(w, i)).await?;
    if archived.is_empty() {
        return Ok(format!("workflow {w} instance {i} not found\n"));
    }
    let jobs: BTreeMap<String, JobToken> = archived
        .into_iter()
        .filter_map(|t| JobToken::parse(t).ok())
        .map(|jt| (jt.job.name.clone(), jt))
        .collect();
    poison_into_new_instance(w, jobs, &args.jobs, client).await
}

/// `reload`: applies the configured definition of W to jobs of a running instance: their
/// command, emails, max_attempts, cleanup template and priority (history, events and the
/// graph stay). Every selected job must be idle (not running), and all are written at once.
pub async fn reload(
    args: &UtilArgs,
    w: &str,
    i: &str,
    config: &Config,
    client: &dyn MasterClient,
) -> Result<String, CliError> {
    let defs = definition::load_from_config(config).map_err(|e| CliError::usage(e.0))?;
    let Some(def) = defs.get(w) else {
        return Ok(format!(
            "workflow {w} not found in the configured definitions\n"
        ));
    };
    let graph = def.graph();
    let unknown: Vec<&String> = args
        .jobs
        .iter()
        .filter(|j| !graph.jobs.contains_key(*j))
        .collect();
    if !unknown.is_empty() {
        return Ok(format!(
            "jobs {} not found in workflow {w} defined in the configured definitions\n",
            super::py_list(&unknown)
        ));
    }
    let tokens = client.query_prefix(&name::job_prefix(w, i)).await?;
    if tokens.is_empty() {
        return Ok(format!(
            "workflow {w} instance {i} not found or already archived\n"
        ));
    }
    let selected: Vec<JobToken> = tokens
        .into_iter()
        .filter_map(|t| JobToken::parse(t).ok())
        .filter(|jt| args.jobs.is_empty() || args.jobs.contains(&jt.job.name))
        .collect();
    let now = crate::clock::now();
    let idle = selected.iter().filter(|jt| !jt.token.is_owned(now)).count();
    if idle < selected.len() || (!args.jobs.is_empty() && selected.len() < args.jobs.len()) {
        return Ok(format!(
            "only {idle} out of {} job tokens in workflow {w} instance {i} could be claimed\n",
            args.jobs.len().max(selected.len())
        ));
    }
    let updates = selected
        .iter()
        .filter_map(|jt| {
            let new = graph.jobs.get(&jt.job.name)?;
            let mut job = jt.job.clone();
            job.command = new.def.command.clone();
            job.emails = new.def.emails.clone();
            job.max_attempts = new.def.max_attempts.unwrap_or(job.max_attempts);
            job.cleanup_template = new.def.cleanup_template.clone();
            Some(Token {
                priority: new.priority,
                data: Some(job.to_data()),
                ..jt.token.clone()
            })
        })
        .collect();
    client.modify(ModifyRequest::update(updates)).await?;
    Ok(if args.jobs.is_empty() {
        format!("reloaded all jobs in workflow {w} instance {i}\n")
    } else {
        format!(
            "reloaded jobs {} in workflow {w} instance {i}\n",
            super::py_list(&args.jobs)
        )
    })
}
