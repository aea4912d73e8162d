//! A workflow instance's tokens: the tokens of a fresh instance from a definition's graph, and
//! job tokens as typed values (name parsed, data read). Pure: nothing here reaches the master.

use std::collections::BTreeMap;

use super::job::{Event, Job, JobType};
use crate::parser::{Graph, GraphJob};
use crate::token::Token;
use crate::token::name::{self, InstanceId, JobName, JobState, Name, WorkflowName};

/// Creator of the start events of a new instance.
pub const PARSER_CREATOR: &str = "parser";

/// A new instance id: the time in milliseconds, as the original.
pub fn new_instance_id() -> InstanceId {
    instance_id_after(0)
}

/// The last instance id this process handed out, as a number.
static LAST_INSTANCE_ID: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// An instance id: the current millisecond, or one past the last id this process handed out
/// when that is later (so one process never hands out an id twice), plus `skip`. After a
/// collision with another process's start (the master refuses the second insert of a name),
/// a random `skip` spreads the contenders over the next milliseconds.
pub fn instance_id_after(skip: i64) -> InstanceId {
    use std::sync::atomic::Ordering;
    let now = crate::clock::now_ms();
    let mut prev = LAST_INSTANCE_ID.load(Ordering::Relaxed);
    loop {
        let id = now.max(prev + 1) + skip;
        match LAST_INSTANCE_ID.compare_exchange(prev, id, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return InstanceId::parse(id.to_string()).expect("digits are a word"),
            Err(seen) => prev = seen,
        }
    }
}

/// The job data of one job of the graph, with no history.
pub fn job_from_graph(job_name: &JobName, g: &GraphJob) -> Job {
    let condition = g.def.condition;
    Job {
        job_type: if condition {
            JobType::ShellConditionJob
        } else {
            JobType::ShellJob
        },
        pool: g
            .def
            .pool
            .clone()
            .filter(|p| p != crate::token::DEFAULT_POOL),
        pool_slots: g.def.pool_slots.filter(|k| *k > 1),
        name: job_name.clone(),
        inputs: if g.depends_on.is_empty() {
            vec![JobName::workflow_start()]
        } else {
            g.depends_on.clone()
        },
        outputs: g.outputs.clone(),
        emails: g.def.emails.clone(),
        notify: g.def.notify.clone(),
        max_attempts: g.def.max_attempts.unwrap_or(if condition { 10 } else { 1 }),
        retry_delay_sec: g
            .def
            .retry_delay_sec
            .unwrap_or(if condition { 300 } else { 0 }),
        warn_timeout_sec: g.def.warn_timeout_sec,
        abort_timeout_sec: g.def.abort_timeout_sec,
        disabled: g.def.disabled,
        command: g.def.command.clone(),
        cleanup_template: g.def.cleanup_template.clone(),
        events: vec![],
        history: vec![],
        attempts_from: 0,
        skipped: false,
        run: None,
        grant: None,
        recorded_grant: 0,
    }
}

/// The tokens of a fresh instance: top-level jobs runnable (their start event already inside
/// them, so they can be claimed at once), every other job waiting.
pub fn new_instance_tokens(
    workflow: &WorkflowName,
    instance: &InstanceId,
    graph: &Graph,
) -> Vec<Token> {
    graph
        .jobs
        .iter()
        .map(|(job_name, g)| {
            let mut job = job_from_graph(job_name, g);
            let state = if g.depends_on.is_empty() {
                job.events = vec![Event {
                    creator: PARSER_CREATOR.into(),
                    attributes: BTreeMap::new(),
                }];
                JobState::Runnable
            } else {
                JobState::Waiting
            };
            Token {
                priority: g.priority,
                ..Token::new(
                    name::job_token(workflow, instance, state, job_name),
                    Some(job.to_data()),
                )
            }
        })
        .collect()
}

/// Why a token could not be read as a job.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobTokenError {
    #[error("{0} is not a job token")]
    NotAJob(String),
    #[error("job token {0} has no data")]
    NoData(String),
    #[error("job token {name} holds unreadable data: {reason}")]
    Unreadable { name: String, reason: String },
    #[error("job token {name} holds the data of job {inside}")]
    WrongJob { name: String, inside: JobName },
}

/// A job token with its parsed name and data.
#[derive(Debug, Clone)]
pub struct JobToken {
    pub token: Token,
    pub workflow: WorkflowName,
    pub instance: InstanceId,
    pub state: JobState,
    pub job: Job,
}

impl JobToken {
    /// Whether a worker's claim holds the job and has written nothing yet: the master
    /// recorded the grant, so its run has started (a job shorter than a second shows only
    /// so; a longer one writes its open record).
    pub fn runs_unwritten(&self) -> bool {
        self.state == JobState::Runnable
            && self.token.owner.is_some()
            && self
                .job
                .grant
                .as_ref()
                .is_some_and(|g| g.n > self.job.recorded_grant)
    }

    pub fn parse(token: Token) -> Result<JobToken, JobTokenError> {
        let Some(Name::Job {
            workflow,
            instance,
            state,
            job: job_name,
        }) = Name::parse(&token.name)
        else {
            return Err(JobTokenError::NotAJob(token.name));
        };
        let data = token
            .data
            .as_deref()
            .ok_or_else(|| JobTokenError::NoData(token.name.clone()))?;
        let job = Job::from_data(data).map_err(|e| JobTokenError::Unreadable {
            name: token.name.clone(),
            reason: e.to_string(),
        })?;
        if job.name != job_name {
            return Err(JobTokenError::WrongJob {
                name: token.name,
                inside: job.name,
            });
        }
        Ok(JobToken {
            token,
            workflow,
            instance,
            state,
            job,
        })
    }

    /// The same job with new data, moved to `state` (a new name when the state changes).
    pub fn rewritten(&self, state: JobState, job: &Job) -> Token {
        let name = name::job_token(&self.workflow, &self.instance, state, &job.name);
        let version = if state == self.state {
            self.token.version
        } else {
            None
        };
        Token {
            name,
            version,
            owner: None,
            expiration_time: None,
            priority: self.token.priority,
            data: Some(job.to_data()),
        }
    }

    /// This job's token copied into `instance` in `state`, as an insert.
    pub fn copied_into(&self, instance: &InstanceId, state: JobState, job: &Job) -> Token {
        Token {
            priority: self.token.priority,
            ..Token::new(
                name::job_token(&self.workflow, instance, state, &job.name),
                Some(job.to_data()),
            )
        }
    }

    /// The triggering events of its last execution: what a retry or a redo runs with.
    pub fn last_events(&self) -> Vec<Event> {
        self.job.last_events()
    }

    /// Whether its last run failed.
    pub fn last_failed(&self) -> bool {
        self.job.last_failed()
    }
}

/// Adds attributes to the start events of a new instance's top-level jobs (the scheduler puts
/// `scheduled_time` there, so jobs can use `%(scheduled_time)s`).
pub fn with_start_attributes(
    tokens: Vec<Token>,
    attributes: &BTreeMap<String, String>,
) -> Vec<Token> {
    tokens
        .into_iter()
        .map(|t| match JobToken::parse(t.clone()) {
            Ok(jt) if jt.state == JobState::Runnable => {
                let mut job = jt.job.clone();
                for e in &mut job.events {
                    e.attributes.extend(attributes.clone());
                }
                Token {
                    data: Some(job.to_data()),
                    ..t
                }
            }
            _ => t,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse_yaml;

    #[test]
    fn a_new_instance_has_runnable_roots_and_waiting_dependents() {
        let wfs = parse_yaml(
            "workflows:\n  wf:\n    jobs:\n      parent: {command: x}\n      child: {command: y, depends_on: [parent]}\n",
            "t",
        )
        .unwrap();
        let wf = WorkflowName::parse("wf").unwrap();
        let one = InstanceId::parse("1").unwrap();
        let tokens = new_instance_tokens(&wf, &one, &wfs["wf"].graph());
        let names: Vec<&str> = tokens.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "/workflow/wf/1/job/waiting/child",
                "/workflow/wf/1/job/runnable/parent"
            ]
        );
        let parent = JobToken::parse(tokens[1].clone()).unwrap();
        assert_eq!(parent.job.inputs, vec![JobName::workflow_start()]);
        assert_eq!(parent.job.events.len(), 1);
        assert_eq!(parent.token.priority, 2.0);
        let child = JobToken::parse(tokens[0].clone()).unwrap();
        assert_eq!(child.job.inputs, vec![JobName::parse("parent").unwrap()]);
        assert!(child.job.events.is_empty());
    }

    #[test]
    fn a_token_whose_data_names_another_job_is_not_that_job() {
        let wfs = parse_yaml("workflows:\n  wf:\n    jobs:\n      a: {command: x}\n", "t").unwrap();
        let wf = WorkflowName::parse("wf").unwrap();
        let one = InstanceId::parse("1").unwrap();
        let mut t = new_instance_tokens(&wf, &one, &wfs["wf"].graph()).remove(0);
        t.name = t.name.replace("/a", "/b");
        let err = JobToken::parse(t).unwrap_err();
        assert!(matches!(err, JobTokenError::WrongJob { .. }), "{err}");
    }
}
