//! Commands on an instance's jobs: `retry` (in place, or of an archived instance into a new
//! one), `redo`, `disable`/`enable` and `reload`.

use std::collections::BTreeMap;

use super::{Done, Ops, OpsError, py_list};
use crate::parser::{Definitions, GraphJob};
use crate::storage::Table;
use crate::token::name::{self, InstanceId, JobName, JobState, Level, Name, WorkflowName};
use crate::token::{ModifyRequest, Token};
use crate::workflow::instance::{JobToken, new_instance_id};
use crate::workflow::progress;
use crate::workflow::run_info::RunKind;
use crate::workflow::signal::Action;

/// A job token with what `reload` takes from the definition's job: command, emails,
/// max_attempts, cleanup template and priority (history, events and the graph stay).
fn reloaded(jt: &JobToken, new: &GraphJob) -> Token {
    let mut job = jt.job.clone();
    job.command = new.def.command.clone();
    job.emails = new.def.emails.clone();
    job.max_attempts = new.def.max_attempts.unwrap_or(job.max_attempts);
    job.cleanup_template = new.def.cleanup_template.clone();
    Token {
        priority: new.priority,
        data: Some(job.to_data()),
        ..jt.token.clone()
    }
}

impl Ops<'_> {
    /// `retry`: failed jobs run again with their triggering events, and the ARCHIVE signal goes,
    /// in one request. An archived instance is copied into a new one instead.
    pub async fn retry(
        &self,
        w: &WorkflowName,
        i: &InstanceId,
        attempts: Option<u32>,
    ) -> Result<Done, OpsError> {
        let c = self.client();
        let tokens = progress::read_instance(c, w, i).await?;
        if tokens.all.is_empty() {
            return self.retry_archived(w, i, attempts).await;
        }
        let failed: Vec<&JobToken> = tokens
            .waiting
            .iter()
            .filter(|jt| jt.last_failed())
            .collect();
        if failed.is_empty() {
            return Ok(Done::refuse(format!(
                "no failed jobs found in workflow {w} instance {i}\n"
            )));
        }
        let mut req = ModifyRequest::default();
        for jt in &failed {
            let mut job = jt.job.clone();
            job.events = jt.last_events();
            job.retried_by_hand(attempts);
            req.updates.push(jt.rewritten(JobState::Runnable, &job));
            req.deletes.push(jt.token.clone());
        }
        let archive = name::signal_token(&Level::Instance(w.clone(), i.clone()), Action::ARCHIVE);
        req.deletes
            .extend(tokens.all.iter().filter(|t| t.name == archive).cloned());
        c.modify(req).await?;
        Ok(Done::say(format!(
            "retried {} job(s) in workflow {w} instance {i}\n",
            failed.len()
        )))
    }

    /// Archived tokens under `prefix`, from the database.
    pub(super) async fn archived(&self, prefix: &str) -> Result<Vec<Token>, OpsError> {
        let store = self.store()?;
        Ok(store
            .read(&self.settings.master_name, Table::Archived, prefix)
            .await?)
    }

    /// `retry` of an archived instance: its jobs and events are copied into a new instance, the
    /// failed jobs runnable (with their triggering events), the others waiting; signals stay
    /// behind.
    async fn retry_archived(
        &self,
        w: &WorkflowName,
        i: &InstanceId,
        attempts: Option<u32>,
    ) -> Result<Done, OpsError> {
        let archived = self.archived(&name::instance_prefix(w, i)).await?;
        if archived.is_empty() {
            return Ok(Done::refuse(format!(
                "workflow {w} instance {i} not found\n"
            )));
        }
        if !archived
            .iter()
            .filter_map(|t| JobToken::parse(t.clone()).ok())
            .any(|jt| jt.last_failed())
        {
            return Ok(Done::refuse(format!(
                "no failed jobs found in workflow {w} instance {i}; `pinball util -w {w} -i {i} rerun` runs it again from the start\n"
            )));
        }
        if let Some(def) = crate::workflow::definition::read(self.client(), w).await? {
            self.check_room(w, &def).await?;
        }
        let new = new_instance_id();
        // A name archived twice (a retried instance archived again) keeps its latest copy.
        let mut by_name: BTreeMap<String, Token> = BTreeMap::new();
        for t in archived {
            let copy = match Name::parse(&t.name) {
                Some(Name::Job { .. }) => {
                    let Ok(jt) = JobToken::parse(t) else { continue };
                    let mut job = jt.job.clone();
                    job.run = job.run.map(|r| r.again(RunKind::Retry));
                    let state = if jt.last_failed() {
                        job.events = jt.last_events();
                        job.retried_by_hand(attempts);
                        JobState::Runnable
                    } else {
                        JobState::Waiting
                    };
                    jt.copied_into(&new, state, &job)
                }
                Some(Name::Event {
                    job, input, event, ..
                }) => Token {
                    version: None,
                    owner: None,
                    expiration_time: None,
                    name: name::event_token(w, &new, &job, &input, &event),
                    ..t
                },
                _ => continue,
            };
            by_name.insert(copy.name.clone(), copy);
        }
        self.client()
            .modify(ModifyRequest::update(by_name.into_values().collect()))
            .await?;
        let message = format!(
            "retried workflow {w} instance {i}.  Its tokens are under {}\n",
            name::instance_prefix(w, &new)
        );
        Ok(Done::created(message, w, &new))
    }

    /// `redo`: runs a finished job again with the events of its execution `n` (its priority
    /// kept, which the original dropped).
    pub async fn redo(
        &self,
        w: &WorkflowName,
        i: &InstanceId,
        job: &JobName,
        n: usize,
    ) -> Result<Done, OpsError> {
        self.refuse_history("redo", w, i, false).await?;
        let c = self.client();
        let waiting = name::job_token(w, i, JobState::Waiting, job);
        let Some(token) = c.get(&waiting).await? else {
            return Ok(Done::refuse(
                "workflow must be running, the job must be finished and it cannot be runnable\n",
            ));
        };
        let jt = JobToken::parse(token).map_err(|e| OpsError::Failed(e.to_string()))?;
        let Some(record) = jt.job.history.get(n) else {
            return Ok(Done::refuse(format!(
                "could not find execution {n} in job history\n"
            )));
        };
        let mut next = jt.job.clone();
        next.events = record.events.clone();
        let req = ModifyRequest {
            updates: vec![jt.rewritten(JobState::Runnable, &next)],
            deletes: vec![jt.token.clone()],
            ..ModifyRequest::default()
        };
        c.modify(req).await?;
        Ok(Done::say(format!(
            "redoing execution {n} of job {job} in workflow {w} instance {i}\n"
        )))
    }

    /// `disable`/`enable`: the jobs succeed without running from now on / run again. Waits for
    /// jobs that are running to finish first, trying up to ten times.
    pub async fn set_disabled(
        &self,
        w: &WorkflowName,
        i: &InstanceId,
        jobs: &[JobName],
        disabled: bool,
    ) -> Result<Done, OpsError> {
        let c = self.client();
        if jobs.is_empty() {
            return Err(OpsError::Input("this command needs -j JOB[,JOB...]".into()));
        }
        let verb = if disabled { "disable" } else { "enable" };
        self.refuse_history(verb, w, i, false).await?;
        let now = crate::clock::now();
        for attempt in 1..=10 {
            let all = c.query_prefix(&name::job_prefix(w, i)).await?;
            // A job's first token in name order (runnable before waiting, mid-move).
            let mut by_job: BTreeMap<JobName, &Token> = BTreeMap::new();
            for t in &all {
                if let Some(Name::Job { job, .. }) = Name::parse(&t.name) {
                    by_job.entry(job).or_insert(t);
                }
            }
            let missing: Vec<&JobName> = jobs.iter().filter(|j| !by_job.contains_key(*j)).collect();
            if !missing.is_empty() {
                return Ok(Done::refuse(format!(
                    "job(s) {} not found in the master.  Note that only jobs of a running workflow can be {verb}d\n",
                    py_list(&missing)
                )));
            }
            let found = jobs
                .iter()
                .map(|j| JobToken::parse(by_job[j].clone()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| OpsError::Failed(e.to_string()))?;
            if disabled && let Some(jt) = found.iter().find(|jt| jt.last_failed()) {
                let j = &jt.job.name;
                return Ok(Done::refuse(format!(
                    "job {j} of workflow {w} instance {i} failed: disabling it would count the instance a success though its downstream jobs never ran; use `pinball util -w {w} -i {i} -j {j} skip` to go on without it\n"
                )));
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
            if c.modify(ModifyRequest::update(updates)).await.is_ok() {
                return Ok(Done::say(format!(
                    "{verb}d {} job(s) in {attempt} tries\n",
                    found.len()
                )));
            }
        }
        Ok(Done::refuse(format!(
            "failed to {verb} job(s) in 10 tries\n"
        )))
    }

    /// `reload`: applies the definition of W in `defs` to jobs of a running instance: their
    /// command, emails, max_attempts, cleanup template and priority (history, events and the
    /// graph stay). Every selected job (all without `jobs`) must be idle, and all are written
    /// at once.
    pub async fn reload(
        &self,
        w: &WorkflowName,
        i: &InstanceId,
        jobs: &[JobName],
        defs: &Definitions,
    ) -> Result<Done, OpsError> {
        let Some(def) = defs.get(w) else {
            return Ok(Done::refuse(format!(
                "workflow {w} not found in the configured definitions\n"
            )));
        };
        let graph = def.graph();
        let unknown: Vec<&JobName> = jobs
            .iter()
            .filter(|j| !graph.jobs.contains_key(*j))
            .collect();
        if !unknown.is_empty() {
            return Ok(Done::refuse(format!(
                "jobs {} not found in workflow {w} defined in the configured definitions\n",
                py_list(&unknown)
            )));
        }
        let tokens = self.client().query_prefix(&name::job_prefix(w, i)).await?;
        if tokens.is_empty() {
            return Ok(Done::refuse(format!(
                "workflow {w} instance {i} not found or already archived\n"
            )));
        }
        let selected: Vec<JobToken> = tokens
            .into_iter()
            .filter_map(|t| JobToken::parse(t).ok())
            .filter(|jt| jobs.is_empty() || jobs.contains(&jt.job.name))
            .collect();
        let now = crate::clock::now();
        let idle = selected.iter().filter(|jt| !jt.token.is_owned(now)).count();
        if idle < selected.len() || (!jobs.is_empty() && selected.len() < jobs.len()) {
            return Ok(Done::refuse(format!(
                "only {idle} out of {} job tokens in workflow {w} instance {i} could be claimed\n",
                jobs.len().max(selected.len())
            )));
        }
        let updates = selected
            .iter()
            .filter_map(|jt| Some(reloaded(jt, graph.jobs.get(&jt.job.name)?)))
            .collect();
        self.client().modify(ModifyRequest::update(updates)).await?;
        Ok(Done::say(if jobs.is_empty() {
            format!("reloaded all jobs in workflow {w} instance {i}\n")
        } else {
            format!(
                "reloaded jobs {} in workflow {w} instance {i}\n",
                py_list(jobs)
            )
        }))
    }

    /// `skip`: failed or waiting jobs of a live instance count as done: each is marked skipped
    /// and posts its events (without attributes) downstream, so its downstream jobs run, in one
    /// request that also takes a finished instance's ARCHIVE signal away (it goes on).
    pub async fn skip(
        &self,
        w: &WorkflowName,
        i: &InstanceId,
        jobs: &[JobName],
    ) -> Result<Done, OpsError> {
        if jobs.is_empty() {
            return Err(OpsError::Input("skip needs -j JOB[,JOB...]".into()));
        }
        self.refuse_history("skip", w, i, false).await?;
        let c = self.client();
        let tokens = progress::read_instance(c, w, i).await?;
        let mut req = ModifyRequest::default();
        for j in jobs {
            let Some(jt) = tokens.waiting.iter().find(|jt| &jt.job.name == j) else {
                let runnable = name::job_token(w, i, JobState::Runnable, j);
                let running = tokens.runnable.iter().any(|t| t.name == runnable);
                return Ok(Done::refuse(if running {
                    format!(
                        "job {j} of workflow {w} instance {i} is runnable or running; only a failed or waiting job can be skipped\n"
                    )
                } else {
                    format!("job {j} not found in workflow {w} instance {i}\n")
                }));
            };
            if jt.job.history.last().is_some_and(|r| r.succeeded()) {
                return Ok(Done::refuse(format!(
                    "job {j} of workflow {w} instance {i} succeeded; only a failed or waiting job can be skipped\n"
                )));
            }
            let mut job = jt.job.clone();
            job.skipped = true;
            let event = crate::workflow::job::Event {
                creator: "skip".into(),
                attributes: Default::default(),
            };
            for to in &job.outputs {
                req.updates.push(crate::workflow::plan::event_token(
                    jt,
                    to,
                    j,
                    &event,
                    fastrand::u64(..),
                ));
            }
            req.updates.push(crate::token::Token {
                data: Some(job.to_data()),
                ..jt.token.clone()
            });
        }
        let archive = name::signal_token(&Level::Instance(w.clone(), i.clone()), Action::ARCHIVE);
        req.deletes
            .extend(tokens.all.iter().filter(|t| t.name == archive).cloned());
        c.modify(req).await?;
        Ok(Done::say(format!(
            "skipped job(s) {} in workflow {w} instance {i}: their downstream jobs run\n",
            py_list(jobs)
        )))
    }
}
