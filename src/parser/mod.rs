//! Workflow definitions (CONTRACT §4): YAML files (or a folder of them, or the JSON an `exec`
//! program prints) read (`read`) into typed definitions (`def`), checked (`validate`) and
//! resolved into job graphs (`graph`). Errors name the file, the workflow and the job. Used by
//! `import` and `util reload`; the definitions themselves travel to every component through
//! the master (see `workflow::definition`).

pub mod deadline;
mod def;
mod graph;
pub mod notify;
pub mod params;
mod read;
mod shell_scan;
pub mod template;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use def::{JobDef, WorkflowDef};
pub use graph::{Graph, GraphJob};
pub use read::{check_paths, load_from_config, load_path, parse_json, parse_yaml, source_of};
pub use validate::Invalid;

use crate::token::name::WorkflowName;

/// Definitions by workflow.
pub type Definitions = BTreeMap<WorkflowName, WorkflowDef>;

/// Why definitions could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Syntax { origin: String, message: String },
    #[error("{origin}: workflow {workflow} is defined twice")]
    DefinedTwice {
        origin: String,
        workflow: WorkflowName,
    },
    #[error("{origin}: workflow {workflow}: {problem}")]
    Invalid {
        origin: String,
        workflow: WorkflowName,
        problem: Invalid,
    },
    #[error("{0}")]
    Config(&'static str),
    #[error("cannot run parser command {command:?}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("parser command {command:?} failed with {status}: {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("parser command {command:?} {limit}; it was stopped")]
    Limit { command: String, limit: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::name::JobName;
    use std::path::Path;

    fn job(s: &str) -> JobName {
        JobName::parse(s).unwrap()
    }

    fn parse(text: &str) -> Result<Definitions, ParseError> {
        parse_yaml(text, "test.yaml")
    }

    /// A command as long as `MAX_COMMAND_BYTES` runs (with the worker's wrapping); one longer
    /// than the operating system takes is refused at import, naming the job and the bound.
    #[test]
    fn a_command_longer_than_the_os_runs_is_refused_at_import() {
        let max = validate::MAX_COMMAND_BYTES;
        let command = |len: usize| format!("true #{}", "x".repeat(len - 7));
        let yaml =
            |c: &str| format!("workflows:\n  wf:\n    jobs:\n      big: {{command: '{c}'}}\n");
        assert!(parse(&yaml(&command(max))).is_ok());
        // As long as the worker's start gate makes it (`read -r _ || exit 97; exec </dev/null; `).
        let wrapped = format!("true; {:<38}{}", "", command(max));
        let ran = std::process::Command::new("/bin/sh")
            .args(["-c", &format!("{wrapped}\n")])
            .stdin(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(ran.success(), "the longest command runs");
        let err = parse(&yaml(&command(1 << 20))).unwrap_err().to_string();
        assert!(
            err.contains("big") && err.contains(&max.to_string()),
            "{err}"
        );
        let too_long = std::process::Command::new("/bin/sh")
            .args(["-c", &command(1 << 20)])
            .status();
        assert!(
            too_long.is_err(),
            "the operating system refuses 1 MiB in one argument"
        );
    }

    #[test]
    fn a_workflow_with_a_final_job_gets_a_final_job_depending_on_every_leaf() {
        let wfs = parse(
            "workflows:\n  wf:\n    jobs:\n      a: {command: 'true'}\n      b: {command: 'true', depends_on: [a]}\n      c: {command: 'true'}\n    final_job: {command: echo done}\n",
        )
        .unwrap();
        let g = wfs["wf"].graph();
        assert_eq!(g.jobs.len(), 4);
        assert_eq!(g.jobs["final"].depends_on, vec![job("b"), job("c")]);
        assert_eq!(g.jobs["a"].outputs, vec![job("b")]);
    }

    #[test]
    fn emails_are_mailboxes_and_a_bad_one_is_named_with_its_workflow_and_job() {
        let ok = parse(
            "workflows:\n  wf:\n    notify_emails: ['Ops Team <ops@example.com>']\n    jobs:\n      a: {command: x, emails: [a@example.com]}\n",
        );
        assert!(ok.is_ok(), "{ok:?}");
        let injected = parse(
            "workflows:\n  wf:\n    jobs:\n      a: {command: x, emails: [\"a@example.com\\r\\nRCPT TO:<evil@example.com>\"]}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            injected.contains("test.yaml")
                && injected.contains("wf")
                && injected.contains("job a")
                && injected.contains("emails")
                && injected.contains("line break"),
            "{injected}"
        );
        let plain = parse(
            "workflows:\n  wf:\n    notify_emails: [nobody]\n    jobs:\n      a: {command: x}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            plain.contains("notify_emails") && plain.contains("\"nobody\" is not an email address"),
            "{plain}"
        );
    }

    #[test]
    fn priority_is_own_plus_everything_downstream() {
        let wfs = parse("workflows:\n  wf:\n    jobs:\n      parent: {command: x}\n      child: {command: x, depends_on: [parent], priority: 30}\n").unwrap();
        let g = wfs["wf"].graph();
        assert_eq!(g.jobs["child"].priority, 30.0);
        assert_eq!(g.jobs["parent"].priority, 31.0);
    }

    #[test]
    fn errors_name_the_file_the_workflow_and_the_job() {
        let cases = [
            (
                "workflows:\n  wf:\n    jobs:\n      a: {command: x, depends_on: [nope]}\n",
                "test.yaml: workflow wf: job a: depends on unknown job nope",
            ),
            (
                "workflows:\n  wf:\n    jobs:\n      a: {command: x, colour: red}\n",
                "colour",
            ),
            (
                "workflows:\n  wf:\n    jobs:\n      a: {command: x, depends_on: [b]}\n      b: {command: x, depends_on: [a]}\n",
                "part of a cycle",
            ),
            (
                "workflows:\n  wf:\n    jobs:\n      a: {command: x, max_attempts: 0}\n",
                "job a: max_attempts must be at least 1",
            ),
            (
                "workflows:\n  wf:\n    jobs:\n      a: {command: x, pool: 'big one'}\n",
                "test.yaml: workflow wf: job a: pool `big one` is not a pool name",
            ),
            (
                "workflows:\n  wf-1:\n    jobs:\n      a: {command: x}\n",
                "workflow name \"wf-1\" is invalid",
            ),
            (
                "workflows:\n  wf:\n    jobs:\n      a b: {command: x}\n",
                "job name \"a b\" is invalid",
            ),
            (
                "workflows:\n  wf:\n    jobs:\n      a: {command: x}\n      a: {command: y}\n",
                "duplicate",
            ),
            (
                "workflows:\n  wf:\n    jobs:\n      c: {command: x, condition: true, depends_on: [a]}\n      a: {command: x}\n",
                "condition",
            ),
            ("workflows:\n  wf:\n    jobs: {}\n", "has no jobs"),
            (
                "workflows:\n  wf:\n    schedule: {recurrence: 5X}\n    jobs:\n      a: {command: x}\n",
                "test.yaml: workflow wf: schedule.recurrence `5X`",
            ),
            (
                "workflows:\n  wf:\n    schedule: {cron: '99 * * * *'}\n    jobs:\n      a: {command: x}\n",
                "workflow wf: schedule.cron: minute value 99",
            ),
            (
                "workflows:\n  wf:\n    jobs:\n      final: {command: x}\n    final_job: {command: y}\n",
                "job final already exists",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn a_folder_of_files_is_read_whole_and_a_workflow_defined_twice_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "workflows:\n  one:\n    jobs:\n      j: {command: x}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.yml"),
            "workflows:\n  two:\n    jobs:\n      j: {command: x}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not yaml").unwrap();
        let wfs = load_path(dir.path()).unwrap();
        assert_eq!(wfs.keys().collect::<Vec<_>>(), vec!["one", "two"]);
        std::fs::write(
            dir.path().join("c.yaml"),
            "workflows:\n  one:\n    jobs:\n      k: {command: x}\n",
        )
        .unwrap();
        let err = load_path(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("c.yaml") && err.contains("workflow one is defined twice"),
            "{err}"
        );
    }

    #[test]
    fn the_example_workflows_parse() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/workflows.yaml");
        let wfs = load_path(&path).unwrap();
        assert!(!wfs.is_empty());
    }
}
