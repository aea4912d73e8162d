//! A token name split into what it names ([`Name::parse`]).

use super::*;

/// A parsed token name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    Job {
        workflow: WorkflowName,
        instance: InstanceId,
        state: JobState,
        job: JobName,
    },
    Event {
        workflow: WorkflowName,
        instance: InstanceId,
        job: JobName,
        input: JobName,
        event: String,
    },
    Signal {
        level: Level,
        action: String,
    },
    Schedule {
        workflow: WorkflowName,
    },
    Definition {
        workflow: WorkflowName,
    },
}

impl Name {
    /// Parses a full token name; `None` when it is none of the kinds above.
    pub fn parse(name: &str) -> Option<Name> {
        if let Some(wf) = name.strip_prefix(SCHEDULE_PREFIX) {
            return Some(Name::Schedule {
                workflow: WorkflowName::parse(wf).ok()?,
            });
        }
        if let Some(wf) = name.strip_prefix(DEFINITION_PREFIX) {
            return Some(Name::Definition {
                workflow: WorkflowName::parse(wf).ok()?,
            });
        }
        let rest = name.strip_prefix(WORKFLOW_PREFIX)?;
        let parts: Vec<&str> = rest.split('/').collect();
        if !parts.iter().all(|p| is_word(p)) {
            return None;
        }
        let w = |s: &str| WorkflowName::parse(s).ok();
        let i = |s: &str| InstanceId::parse(s).ok();
        let j = |s: &str| JobName::parse(s).ok();
        match parts.as_slice() {
            [SIGNAL_SEGMENT, action] => Some(Name::Signal {
                level: Level::Global,
                action: action.to_string(),
            }),
            [wf, SIGNAL_SEGMENT, action] => Some(Name::Signal {
                level: Level::Workflow(w(wf)?),
                action: action.to_string(),
            }),
            [wf, inst, SIGNAL_SEGMENT, action] => Some(Name::Signal {
                level: Level::Instance(w(wf)?, i(inst)?),
                action: action.to_string(),
            }),
            [wf, inst, "job", state, job] => {
                let state = match *state {
                    "waiting" => JobState::Waiting,
                    "runnable" => JobState::Runnable,
                    _ => return None,
                };
                Some(Name::Job {
                    workflow: w(wf)?,
                    instance: i(inst)?,
                    state,
                    job: j(job)?,
                })
            }
            [wf, inst, "input", job, input, event] => Some(Name::Event {
                workflow: w(wf)?,
                instance: i(inst)?,
                job: j(job)?,
                input: j(input)?,
                event: event.to_string(),
            }),
            _ => None,
        }
    }

    pub fn format(&self) -> String {
        match self {
            Name::Job {
                workflow,
                instance,
                state,
                job,
            } => job_token(workflow, instance, *state, job),
            Name::Event {
                workflow,
                instance,
                job,
                input,
                event,
            } => event_token(workflow, instance, job, input, event),
            Name::Signal { level, action } => format!("{}{action}", level.signal_prefix()),
            Name::Schedule { workflow } => schedule_token(workflow),
            Name::Definition { workflow } => definition_token(workflow),
        }
    }
}
