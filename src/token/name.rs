//! The only place workflow token names are built and parsed (CONTRACT §3, PINBALL_SPEC §2).
//! Components match `\w+`; everything else in the crate goes through these functions.

use std::fmt;

/// The input of a job with no upstream job.
pub const WORKFLOW_START_INPUT: &str = "__WORKFLOW_START__";
/// The path segment that marks signal tokens.
pub const SIGNAL_SEGMENT: &str = "__SIGNAL__";
pub const WORKFLOW_PREFIX: &str = "/workflow/";
pub const SCHEDULE_PREFIX: &str = "/schedule/workflow/";
/// Every runnable job of every instance: the pattern workers claim with.
pub const ALL_RUNNABLE_JOBS: &str = "/workflow/*/*/job/runnable/";

/// Whether `s` is a valid name component: `\w+` (ASCII letters, digits, underscore).
pub fn is_word(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Checks a component, naming what it is in the error.
pub fn check_word(what: &str, s: &str) -> Result<(), String> {
    if is_word(s) {
        Ok(())
    } else {
        Err(format!(
            "{what} name {s:?} is invalid: use letters, digits and _ only"
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    Waiting,
    Runnable,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "waiting",
            JobState::Runnable => "runnable",
        }
    }
}

pub fn workflow_prefix(wf: &str) -> String {
    format!("/workflow/{wf}/")
}

pub fn instance_prefix(wf: &str, instance: &str) -> String {
    format!("/workflow/{wf}/{instance}/")
}

pub fn job_prefix(wf: &str, instance: &str) -> String {
    format!("/workflow/{wf}/{instance}/job/")
}

pub fn job_state_prefix(wf: &str, instance: &str, state: JobState) -> String {
    format!("/workflow/{wf}/{instance}/job/{}/", state.as_str())
}

pub fn job_token(wf: &str, instance: &str, state: JobState, job: &str) -> String {
    format!("/workflow/{wf}/{instance}/job/{}/{job}", state.as_str())
}

/// The events posted to one input of a job.
pub fn input_prefix(wf: &str, instance: &str, job: &str, input: &str) -> String {
    format!("/workflow/{wf}/{instance}/input/{job}/{input}/")
}

pub fn event_token(wf: &str, instance: &str, job: &str, input: &str, event: &str) -> String {
    format!("/workflow/{wf}/{instance}/input/{job}/{input}/{event}")
}

pub fn schedule_token(wf: &str) -> String {
    format!("{SCHEDULE_PREFIX}{wf}")
}

/// Where a signal applies: everywhere, one workflow, or one instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Level {
    Global,
    Workflow(String),
    Instance(String, String),
}

impl Level {
    pub fn signal_prefix(&self) -> String {
        match self {
            Level::Global => format!("/workflow/{SIGNAL_SEGMENT}/"),
            Level::Workflow(w) => format!("/workflow/{w}/{SIGNAL_SEGMENT}/"),
            Level::Instance(w, i) => format!("/workflow/{w}/{i}/{SIGNAL_SEGMENT}/"),
        }
    }

    /// The levels whose signals apply here, least specific first.
    pub fn visible_levels(&self) -> Vec<Level> {
        match self {
            Level::Global => vec![Level::Global],
            Level::Workflow(w) => vec![Level::Global, Level::Workflow(w.clone())],
            Level::Instance(w, _) => vec![Level::Global, Level::Workflow(w.clone()), self.clone()],
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Level::Global => f.write_str("global"),
            Level::Workflow(w) => write!(f, "workflow {w}"),
            Level::Instance(w, i) => write!(f, "workflow {w} instance {i}"),
        }
    }
}

pub fn signal_token(level: &Level, action: &str) -> String {
    format!("{}{action}", level.signal_prefix())
}

/// A parsed token name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    Job {
        workflow: String,
        instance: String,
        state: JobState,
        job: String,
    },
    Event {
        workflow: String,
        instance: String,
        job: String,
        input: String,
        event: String,
    },
    Signal {
        level: Level,
        action: String,
    },
    Schedule {
        workflow: String,
    },
}

impl Name {
    /// Parses a full token name; `None` when it is none of the kinds above.
    pub fn parse(name: &str) -> Option<Name> {
        if let Some(wf) = name.strip_prefix(SCHEDULE_PREFIX) {
            return is_word(wf).then(|| Name::Schedule {
                workflow: wf.to_owned(),
            });
        }
        let rest = name.strip_prefix(WORKFLOW_PREFIX)?;
        let parts: Vec<&str> = rest.split('/').collect();
        if !parts.iter().all(|p| is_word(p)) {
            return None;
        }
        let s = |x: &str| x.to_owned();
        match parts.as_slice() {
            [SIGNAL_SEGMENT, action] => Some(Name::Signal {
                level: Level::Global,
                action: s(action),
            }),
            [w, SIGNAL_SEGMENT, action] => Some(Name::Signal {
                level: Level::Workflow(s(w)),
                action: s(action),
            }),
            [w, i, SIGNAL_SEGMENT, action] => Some(Name::Signal {
                level: Level::Instance(s(w), s(i)),
                action: s(action),
            }),
            [w, i, "job", state, job] => {
                let state = match *state {
                    "waiting" => JobState::Waiting,
                    "runnable" => JobState::Runnable,
                    _ => return None,
                };
                Some(Name::Job {
                    workflow: s(w),
                    instance: s(i),
                    state,
                    job: s(job),
                })
            }
            [w, i, "input", job, input, event] => Some(Name::Event {
                workflow: s(w),
                instance: s(i),
                job: s(job),
                input: s(input),
                event: s(event),
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
            Name::Signal { level, action } => signal_token(level, action),
            Name::Schedule { workflow } => schedule_token(workflow),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_name_round_trips() {
        for name in [
            "/workflow/some_workflow/some_instance/job/waiting/some_job",
            "/workflow/w/i/job/runnable/j",
            "/workflow/w/i/input/j/in/ev",
            "/workflow/w/i/input/j/__WORKFLOW_START__/workflow_start_event",
            "/schedule/workflow/w",
            "/workflow/__SIGNAL__/DRAIN",
            "/workflow/w/__SIGNAL__/ABORT",
            "/workflow/w/i/__SIGNAL__/ARCHIVE",
        ] {
            let parsed = Name::parse(name).unwrap_or_else(|| panic!("{name} parses"));
            assert_eq!(parsed.format(), name);
        }
    }

    #[test]
    fn parsed_parts_are_the_right_ones() {
        assert_eq!(
            Name::parse("/workflow/some_workflow/some_instance/job/waiting/some_job"),
            Some(Name::Job {
                workflow: "some_workflow".into(),
                instance: "some_instance".into(),
                state: JobState::Waiting,
                job: "some_job".into()
            })
        );
        assert_eq!(
            Name::parse("/schedule/workflow/w"),
            Some(Name::Schedule {
                workflow: "w".into()
            })
        );
        let levels: Vec<Level> = [
            "/workflow/__SIGNAL__/s",
            "/workflow/w/__SIGNAL__/s",
            "/workflow/w/i/__SIGNAL__/s",
        ]
        .iter()
        .map(|n| match Name::parse(n) {
            Some(Name::Signal { level, .. }) => level,
            other => panic!("{n}: {other:?}"),
        })
        .collect();
        assert_eq!(
            levels,
            vec![
                Level::Global,
                Level::Workflow("w".into()),
                Level::Instance("w".into(), "i".into())
            ]
        );
    }

    #[test]
    fn names_of_no_known_kind_do_not_parse() {
        for name in [
            "/workflow/w/i/job/done/j",
            "/workflow/w-x/i/job/waiting/j",
            "/other/x",
            "/workflow/w/i/job/waiting/",
        ] {
            assert_eq!(Name::parse(name), None, "{name}");
        }
    }
}
