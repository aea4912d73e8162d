//! Commands that hold or replay part of an instance: `pause`, `resume` and `poison`
//! (PINBALL_SPEC §7.3), in the active instance or in a new one built from an archived instance
//! or from the definition.

use std::collections::{BTreeMap, BTreeSet};

use super::{Done, Ops, OpsError, py_list};
use crate::token::name::{self, InstanceId, JobName, JobState, Level, WorkflowName};
use crate::token::{ModifyRequest, NEVER, Token};
use crate::workflow::instance::{JobToken, new_instance_id, new_instance_tokens};
use crate::workflow::job::Event;
use crate::workflow::signal::Action;
use crate::workflow::{definition, progress};

/// How the owner field of a paused instance's tokens starts.
const PAUSED_BY: &str = "workflow_util ";

/// A running job's token (runnable, its last record open) with that record closed as paused
/// by `actor`, and the job's name; the events that started it go back to the job, so it runs
/// again as it would have.
fn stop_running(t: &Token, now: f64, actor: &str) -> Option<(JobName, Token)> {
    let jt = JobToken::parse(t.clone()).ok()?;
    if jt.state != JobState::Runnable {
        return None;
    }
    let mut job = jt.job;
    let record = job.history.last_mut().filter(|r| r.end_time.is_none())?;
    record.end_time = Some(now);
    record.lost = Some(format!("paused by {actor}"));
    record.paused = true;
    job.events = record.events.clone();
    let token = Token {
        data: Some(job.to_data()),
        ..t.clone()
    };
    Some((job.name, token))
}

/// Who paused an instance, as the original wrote it into the owner field.
fn who() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = crate::config::host_name();
    let at = crate::clock::utc(crate::clock::now());
    format!(
        "{PAUSED_BY}user {user} machine {} time {}",
        host.trim(),
        &at[..16]
    )
}

/// The tokens with their ownership set to `owner` until `until` (both `None`: released).
fn leased(tokens: Vec<Token>, owner: Option<&str>, until: Option<i64>) -> Vec<Token> {
    tokens
        .into_iter()
        .map(|t| Token {
            owner: owner.map(str::to_owned),
            expiration_time: until,
            ..t
        })
        .collect()
}

/// The roots and everything downstream of them (PINBALL_SPEC §7.3 step 1).
fn descendants(jobs: &BTreeMap<JobName, JobToken>, roots: &[JobName]) -> BTreeSet<JobName> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<JobName> = roots.to_vec();
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
    w: &WorkflowName,
    i: &InstanceId,
    jobs: &BTreeMap<JobName, JobToken>,
    run: &BTreeSet<JobName>,
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
            let event = format!("poison_{}", out.len());
            out.push(Token::new(
                name::event_token(w, i, j, input, &event),
                Some(data.clone()),
            ));
        }
    }
    out
}

fn check_roots(jobs: &BTreeMap<JobName, JobToken>, roots: &[JobName]) -> Result<(), OpsError> {
    if roots.is_empty() {
        return Err(OpsError::Input("poison needs -j ROOT[,ROOT...]".into()));
    }
    let missing: Vec<&JobName> = roots.iter().filter(|r| !jobs.contains_key(*r)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(OpsError::Input(format!(
            "job(s) {} not found in the workflow",
            py_list(&missing)
        )))
    }
}

impl Ops<'_> {
    /// `pause`: every token of the instance becomes owned forever, so nothing of it starts. A
    /// running job is stopped: its open record is closed as paused by `actor` (not an attempt)
    /// in the same write, so its worker's next renewal fails and it ends the job's processes
    /// (SIGTERM, then SIGKILL after the grace); `resume` runs it again.
    pub async fn pause(
        &self,
        w: &WorkflowName,
        i: &InstanceId,
        actor: &str,
    ) -> Result<Done, OpsError> {
        let c = self.client();
        let owner = who();
        for attempt in 1..=10 {
            let tokens = c.query_prefix(&name::instance_prefix(w, i)).await?;
            if tokens.is_empty() {
                return Ok(Done::refuse(format!(
                    "workflow {w} instance {i} not found\n"
                )));
            }
            let n = tokens.len();
            let now = crate::clock::now_f64();
            let mut stopped = Vec::new();
            let tokens: Vec<Token> = tokens
                .into_iter()
                .map(|t| match stop_running(&t, now, actor) {
                    Some((job, stopped_token)) => {
                        stopped.push(job);
                        stopped_token
                    }
                    None => t,
                })
                .collect();
            let updates = leased(tokens, Some(&owner), Some(NEVER));
            if c.modify(ModifyRequest::update(updates)).await.is_ok() {
                let mut said = format!("claimed {n} token(s) in {attempt} tries\n");
                if !stopped.is_empty() {
                    said.push_str(&format!(
                        "stopped running job(s) {}: their workers end them at their next lease renewal; resume runs them again (not counted as attempts)\n",
                        py_list(&stopped)
                    ));
                }
                return Ok(Done::say(said));
            }
        }
        Ok(Done::refuse("failed to claim token(s) in 10 tries\n"))
    }

    /// `resume`: releases every token of the instance, and says which jobs the pause stopped
    /// (they run again).
    pub async fn resume(&self, w: &WorkflowName, i: &InstanceId) -> Result<Done, OpsError> {
        let c = self.client();
        let tokens = c.query_prefix(&name::instance_prefix(w, i)).await?;
        if tokens.is_empty() {
            return Ok(Done::refuse(format!(
                "workflow {w} instance {i} not found\n"
            )));
        }
        let n = tokens.len();
        let again: Vec<JobName> = tokens
            .iter()
            .filter(|t| t.owner.as_deref().is_some_and(|o| o.starts_with(PAUSED_BY)))
            .filter_map(|t| JobToken::parse(t.clone()).ok())
            .filter(|jt| jt.state == JobState::Runnable)
            .filter(|jt| jt.job.history.last().is_some_and(|r| r.paused))
            .map(|jt| jt.job.name)
            .collect();
        let updates = leased(tokens, None, None);
        c.modify(ModifyRequest::update(updates)).await?;
        let mut said = format!("released ownership of {n} token(s)\n");
        if !again.is_empty() {
            said.push_str(&format!(
                "job(s) {} stopped by the pause run again\n",
                py_list(&again)
            ));
        }
        Ok(Done::say(said))
    }

    /// `poison`: runs the roots and everything downstream of them again, in the active
    /// instance `i`, in a new instance built from `i` when it is archived, or in a new
    /// instance from the definition without `i`.
    pub async fn poison(
        &self,
        w: &WorkflowName,
        i: Option<&InstanceId>,
        roots: &[JobName],
    ) -> Result<Done, OpsError> {
        let c = self.client();
        let Some(i) = i else {
            let def = definition::read(c, w)
                .await?
                .ok_or_else(|| OpsError::Failed(format!("workflow {w} not found in the master")))?;
            let template = InstanceId::parse("0").expect("a word");
            let jobs = new_instance_tokens(w, &template, &def.graph())
                .into_iter()
                .filter_map(|t| JobToken::parse(t).ok())
                .map(|jt| (jt.job.name.clone(), jt))
                .collect();
            return self.poison_into_new_instance(w, jobs, roots).await;
        };
        let tokens = progress::read_instance(c, w, i).await?;
        if tokens.all.is_empty() {
            return self.poison_archived(w, i, roots).await;
        }
        let jobs: BTreeMap<JobName, JobToken> = tokens
            .waiting
            .iter()
            .map(|jt| (jt.job.name.clone(), jt.clone()))
            .collect();
        check_roots(&jobs, roots)?;
        let run = descendants(&jobs, roots);
        let mut req = ModifyRequest::update(poison_events(w, i, &jobs, &run, &tokens.all));
        let archive = name::signal_token(&Level::Instance(w.clone(), i.clone()), Action::ARCHIVE);
        req.deletes
            .extend(tokens.all.iter().filter(|t| t.name == archive).cloned());
        c.modify(req).await?;
        let tokens = progress::read_instance(c, w, i).await?;
        progress::make_runnable(c, w, i, &tokens).await?;
        Ok(Done::say(format!(
            "poisoned workflow {w} instance {i} roots {}\n",
            py_list(roots)
        )))
    }

    /// Puts waiting copies of `jobs` (histories cleared) and their poison events into a new
    /// instance, then makes the roots runnable.
    async fn poison_into_new_instance(
        &self,
        w: &WorkflowName,
        jobs: BTreeMap<JobName, JobToken>,
        roots: &[JobName],
    ) -> Result<Done, OpsError> {
        check_roots(&jobs, roots)?;
        let c = self.client();
        if let Some(def) = definition::read(c, w).await? {
            self.check_room(w, &def).await?;
        }
        let new = new_instance_id();
        let jobs: BTreeMap<JobName, JobToken> = jobs
            .into_iter()
            .map(|(n, jt)| {
                let mut job = jt.job.clone();
                job.history.clear();
                job.events.clear();
                let token = jt.copied_into(&new, JobState::Waiting, &job);
                let copy = JobToken {
                    token,
                    instance: new.clone(),
                    state: JobState::Waiting,
                    job,
                    ..jt
                };
                (n, copy)
            })
            .collect();
        let run = descendants(&jobs, roots);
        let mut updates: Vec<Token> = jobs.values().map(|jt| jt.token.clone()).collect();
        updates.extend(poison_events(w, &new, &jobs, &run, &[]));
        c.modify(ModifyRequest::update(updates)).await?;
        let tokens = progress::read_instance(c, w, &new).await?;
        progress::make_runnable(c, w, &new, &tokens).await?;
        let message = format!(
            "poisoned workflow {w} roots {}.  Tokens of the new instance are under {}\n",
            py_list(roots),
            name::instance_prefix(w, &new)
        );
        Ok(Done::created(message, w, &new))
    }

    /// `poison` of an archived instance: its jobs, histories cleared, in a new instance.
    async fn poison_archived(
        &self,
        w: &WorkflowName,
        i: &InstanceId,
        roots: &[JobName],
    ) -> Result<Done, OpsError> {
        let archived = self.archived(&name::job_prefix(w, i)).await?;
        if archived.is_empty() {
            return Ok(Done::refuse(format!(
                "workflow {w} instance {i} not found\n"
            )));
        }
        let jobs: BTreeMap<JobName, JobToken> = archived
            .into_iter()
            .filter_map(|t| JobToken::parse(t).ok())
            .map(|jt| (jt.job.name.clone(), jt))
            .collect();
        self.poison_into_new_instance(w, jobs, roots).await
    }
}
