//! Every workflow token name (CONTRACT §3, PINBALL_SPEC §2), and the only place one is built or
//! split. Workflow, instance and job names are `\w+` newtypes ([`WorkflowName`],
//! [`InstanceId`], [`JobName`]) parsed once where they enter (serde, clap's `FromStr`, the UI's
//! query strings) and carried as types from there; a function that takes one cannot be handed
//! a path fragment, a `..` or an empty string.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The input of a job with no upstream job.
pub const WORKFLOW_START_INPUT: &str = "__WORKFLOW_START__";
/// The path segment that marks signal tokens.
pub const SIGNAL_SEGMENT: &str = "__SIGNAL__";
pub const WORKFLOW_PREFIX: &str = "/workflow/";
pub const SCHEDULE_PREFIX: &str = "/schedule/workflow/";
/// Workflow definitions kept in the master: `/definition/workflow/<wf>`.
pub const DEFINITION_PREFIX: &str = "/definition/workflow/";
/// Every runnable job of every instance: the pattern workers claim with.
pub const ALL_RUNNABLE_JOBS: &str = "/workflow/*/*/job/runnable/";
/// Every schedule token: the pattern the scheduler claims with.
pub const ALL_SCHEDULES: &str = "/schedule/workflow/*";

/// Whether `s` is a valid name component: `\w+` (ASCII letters, digits, underscore).
pub fn is_word(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A name that is not `\w+`, with what it was meant to name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} name {value:?} is invalid: use letters, digits and _ only")]
pub struct NameError {
    pub what: &'static str,
    pub value: String,
}

macro_rules! word_name {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// What this kind of name names, as errors say it.
            pub const WHAT: &'static str = $what;

            pub fn parse(s: impl Into<String>) -> Result<Self, NameError> {
                let s = s.into();
                if is_word(&s) {
                    Ok($name(s))
                } else {
                    Err(NameError { what: $what, value: s })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                $name::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                $name::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

word_name!(
    /// A workflow's name: `\w+`.
    WorkflowName,
    "workflow"
);
word_name!(
    /// An instance's id: `\w+` (a millisecond stamp for instances Pinball starts).
    InstanceId,
    "instance"
);
word_name!(
    /// A job's name inside its workflow: `\w+`. Inputs are named by their upstream job, or
    /// [`WORKFLOW_START_INPUT`].
    JobName,
    "job"
);

impl JobName {
    /// The input of a job that has no upstream job.
    pub fn workflow_start() -> JobName {
        JobName(WORKFLOW_START_INPUT.to_owned())
    }

    /// The job a workflow's `final_job:` becomes.
    pub fn final_job() -> JobName {
        JobName("final".to_owned())
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

/// A signal's action: the last segment of a signal token's name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Action {
    DRAIN,
    ABORT,
    ARCHIVE,
    EXIT,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::DRAIN => "DRAIN",
            Action::ABORT => "ABORT",
            Action::ARCHIVE => "ARCHIVE",
            Action::EXIT => "EXIT",
        }
    }
}

pub fn workflow_prefix(wf: &WorkflowName) -> String {
    format!("{WORKFLOW_PREFIX}{wf}/")
}

pub fn instance_prefix(wf: &WorkflowName, instance: &InstanceId) -> String {
    format!("{WORKFLOW_PREFIX}{wf}/{instance}/")
}

pub fn job_prefix(wf: &WorkflowName, instance: &InstanceId) -> String {
    format!("{WORKFLOW_PREFIX}{wf}/{instance}/job/")
}

pub fn job_state_prefix(wf: &WorkflowName, instance: &InstanceId, state: JobState) -> String {
    format!("{WORKFLOW_PREFIX}{wf}/{instance}/job/{}/", state.as_str())
}

pub fn job_token(
    wf: &WorkflowName,
    instance: &InstanceId,
    state: JobState,
    job: &JobName,
) -> String {
    format!(
        "{WORKFLOW_PREFIX}{wf}/{instance}/job/{}/{job}",
        state.as_str()
    )
}

/// The events posted to every input of a job: group them by input with `group_suffix: "/"`.
pub fn inputs_prefix(wf: &WorkflowName, instance: &InstanceId, job: &JobName) -> String {
    format!("{WORKFLOW_PREFIX}{wf}/{instance}/input/{job}/")
}

/// The events posted to one input of a job.
pub fn input_prefix(
    wf: &WorkflowName,
    instance: &InstanceId,
    job: &JobName,
    input: &JobName,
) -> String {
    format!("{WORKFLOW_PREFIX}{wf}/{instance}/input/{job}/{input}/")
}

/// One event. `event` is made a `\w+` run here: any character outside it becomes `_`.
pub fn event_token(
    wf: &WorkflowName,
    instance: &InstanceId,
    job: &JobName,
    input: &JobName,
    event: &str,
) -> String {
    let event: String = event
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{WORKFLOW_PREFIX}{wf}/{instance}/input/{job}/{input}/{event}")
}

pub fn schedule_token(wf: &WorkflowName) -> String {
    format!("{SCHEDULE_PREFIX}{wf}")
}

pub fn definition_token(wf: &WorkflowName) -> String {
    format!("{DEFINITION_PREFIX}{wf}")
}

/// Where a signal applies: everywhere, one workflow, or one instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Level {
    Global,
    Workflow(WorkflowName),
    Instance(WorkflowName, InstanceId),
}

impl Level {
    pub fn signal_prefix(&self) -> String {
        match self {
            Level::Global => format!("{WORKFLOW_PREFIX}{SIGNAL_SEGMENT}/"),
            Level::Workflow(w) => format!("{WORKFLOW_PREFIX}{w}/{SIGNAL_SEGMENT}/"),
            Level::Instance(w, i) => format!("{WORKFLOW_PREFIX}{w}/{i}/{SIGNAL_SEGMENT}/"),
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

pub fn signal_token(level: &Level, action: Action) -> String {
    format!("{}{}", level.signal_prefix(), action.as_str())
}

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
        let word = |s: &str| is_word(s).then(|| s.to_owned());
        if let Some(wf) = name.strip_prefix(SCHEDULE_PREFIX) {
            return Some(Name::Schedule {
                workflow: WorkflowName(word(wf)?),
            });
        }
        if let Some(wf) = name.strip_prefix(DEFINITION_PREFIX) {
            return Some(Name::Definition {
                workflow: WorkflowName(word(wf)?),
            });
        }
        let rest = name.strip_prefix(WORKFLOW_PREFIX)?;
        let parts: Vec<&str> = rest.split('/').collect();
        if !parts.iter().all(|p| is_word(p)) {
            return None;
        }
        let w = |s: &str| WorkflowName(s.to_owned());
        let i = |s: &str| InstanceId(s.to_owned());
        let j = |s: &str| JobName(s.to_owned());
        match parts.as_slice() {
            [SIGNAL_SEGMENT, action] => Some(Name::Signal {
                level: Level::Global,
                action: action.to_string(),
            }),
            [wf, SIGNAL_SEGMENT, action] => Some(Name::Signal {
                level: Level::Workflow(w(wf)),
                action: action.to_string(),
            }),
            [wf, inst, SIGNAL_SEGMENT, action] => Some(Name::Signal {
                level: Level::Instance(w(wf), i(inst)),
                action: action.to_string(),
            }),
            [wf, inst, "job", state, job] => {
                let state = match *state {
                    "waiting" => JobState::Waiting,
                    "runnable" => JobState::Runnable,
                    _ => return None,
                };
                Some(Name::Job {
                    workflow: w(wf),
                    instance: i(inst),
                    state,
                    job: j(job),
                })
            }
            [wf, inst, "input", job, input, event] => Some(Name::Event {
                workflow: w(wf),
                instance: i(inst),
                job: j(job),
                input: j(input),
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

/// The workflow and instance a token under `/workflow/W/I/` belongs to (signal segments are
/// neither); `None` for any other name.
pub fn instance_of(name: &str) -> Option<(WorkflowName, InstanceId)> {
    let rest = name.strip_prefix(WORKFLOW_PREFIX)?;
    let mut parts = rest.split('/');
    let (w, i) = (parts.next()?, parts.next()?);
    (is_word(w) && is_word(i) && w != SIGNAL_SEGMENT && i != SIGNAL_SEGMENT)
        .then(|| (WorkflowName(w.to_owned()), InstanceId(i.to_owned())))
}

/// `/workflow/W/I/` (exactly an instance's prefix) -> (W, I).
pub fn instance_of_prefix(prefix: &str) -> Option<(WorkflowName, InstanceId)> {
    let rest = prefix.strip_prefix(WORKFLOW_PREFIX)?.strip_suffix('/')?;
    if rest.split('/').count() != 2 {
        return None;
    }
    instance_of(prefix)
}

/// What the archive queue records for an archived name: its first three path segments
/// (`/workflow/W/I/` for an instance's tokens), or the whole name when it is shorter.
pub fn archive_prefix(name: &str) -> &str {
    match name.match_indices('/').nth(3) {
        Some((at, _)) => &name[..=at],
        None => name,
    }
}

/// The part of a `/group` key after `prefix` (a key is a name cut before a `/`): the child's
/// own segment, such as the workflow of a key under `/workflow/`.
pub fn group_child<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    key.strip_prefix(prefix).filter(|s| !s.is_empty())
}

/// The workflows whose `/group` keys under `/workflow/` are given (signals left out).
pub fn workflows_of_groups<'a>(keys: impl IntoIterator<Item = &'a String>) -> Vec<WorkflowName> {
    keys.into_iter()
        .filter_map(|k| group_child(WORKFLOW_PREFIX, k))
        .filter(|w| *w != SIGNAL_SEGMENT)
        .filter_map(|w| WorkflowName::parse(w).ok())
        .collect()
}

/// The instances of `wf` whose `/group` keys under its prefix are given (signals left out).
pub fn instances_of_groups<'a>(
    wf: &WorkflowName,
    keys: impl IntoIterator<Item = &'a String>,
) -> Vec<InstanceId> {
    let prefix = workflow_prefix(wf);
    keys.into_iter()
        .filter_map(|k| group_child(&prefix, k))
        .filter(|i| *i != SIGNAL_SEGMENT)
        .filter_map(|i| InstanceId::parse(i).ok())
        .collect()
}

/// Every `/`-ended prefix of a token path, the root first: `/a/b/c` -> `/`, `/a/`, `/a/b/`.
pub fn path_prefixes(path: &str) -> Vec<&str> {
    let mut out = vec!["/"];
    out.extend(path.match_indices('/').skip(1).map(|(at, _)| &path[..=at]));
    out
}

/// The child of `path` that `name` lies under: the name up to and including the next `/` after
/// `path`, or the whole name (the token explorer's rows).
pub fn path_child<'a>(path: &str, name: &'a str) -> &'a str {
    match name.get(path.len()..).and_then(|rest| rest.find('/')) {
        Some(at) => &name[..path.len() + at + 1],
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> WorkflowName {
        WorkflowName::parse(s).unwrap()
    }

    #[test]
    fn every_kind_of_name_round_trips() {
        for name in [
            "/workflow/some_workflow/some_instance/job/waiting/some_job",
            "/workflow/w/i/job/runnable/j",
            "/workflow/w/i/input/j/in/ev",
            "/workflow/w/i/input/j/__WORKFLOW_START__/workflow_start_event",
            "/schedule/workflow/w",
            "/definition/workflow/w",
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
                workflow: w("some_workflow"),
                instance: InstanceId::parse("some_instance").unwrap(),
                state: JobState::Waiting,
                job: JobName::parse("some_job").unwrap(),
            })
        );
        assert_eq!(
            Name::parse("/schedule/workflow/w"),
            Some(Name::Schedule { workflow: w("w") })
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
                Level::Workflow(w("w")),
                Level::Instance(w("w"), InstanceId::parse("i").unwrap())
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
            "/workflow/../i/job/waiting/j",
        ] {
            assert_eq!(Name::parse(name), None, "{name}");
        }
    }

    #[test]
    fn word_names_refuse_anything_but_word_characters() {
        for bad in ["", "a b", "../x", "a/b", "wf-1", "é"] {
            let err = WorkflowName::parse(bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("workflow name {bad:?} is invalid: use letters, digits and _ only")
            );
        }
        assert_eq!(JobName::parse("a_1").unwrap().as_str(), "a_1");
        let parsed: Result<JobName, _> = serde_json::from_str("\"x/y\"");
        assert!(parsed.unwrap_err().to_string().contains("job name \"x/y\""));
        assert_eq!(serde_json::to_string(&w("wf")).unwrap(), "\"wf\"");
    }

    #[test]
    fn instance_names_and_prefixes_split_in_one_place() {
        let wi = |a: &str, b: &str| Some((w(a), InstanceId::parse(b).unwrap()));
        assert_eq!(instance_of("/workflow/w/123/job/waiting/a"), wi("w", "123"));
        assert_eq!(instance_of("/workflow/w/__SIGNAL__/ABORT"), None);
        assert_eq!(instance_of_prefix("/workflow/w/123/"), wi("w", "123"));
        assert_eq!(instance_of_prefix("/workflow/w/123/job/"), None);
        assert_eq!(instance_of_prefix("/workflow/__SIGNAL__/ABORT"), None);
        assert_eq!(instance_of_prefix("/schedule/workflow/w"), None);
        assert_eq!(
            archive_prefix("/workflow/w/123/job/waiting/a"),
            "/workflow/w/123/"
        );
        assert_eq!(archive_prefix("/workflow/w/123/"), "/workflow/w/123/");
        assert_eq!(
            archive_prefix("/schedule/workflow/w"),
            "/schedule/workflow/w"
        );
    }

    #[test]
    fn group_keys_and_paths_split_in_one_place() {
        let keys: Vec<String> = ["/workflow/a", "/workflow/__SIGNAL__", "/workflow/b"]
            .map(String::from)
            .to_vec();
        assert_eq!(workflows_of_groups(&keys), vec![w("a"), w("b")]);
        let keys: Vec<String> = ["/workflow/a/1", "/workflow/a/__SIGNAL__"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            instances_of_groups(&w("a"), &keys),
            vec![InstanceId::parse("1").unwrap()]
        );
        assert_eq!(
            path_prefixes("/workflow/w/1/"),
            ["/", "/workflow/", "/workflow/w/", "/workflow/w/1/"]
        );
        assert_eq!(
            path_child("/workflow/", "/workflow/w/1/job"),
            "/workflow/w/"
        );
        assert_eq!(path_child("/workflow/w/", "/workflow/w/x"), "/workflow/w/x");
    }
}
