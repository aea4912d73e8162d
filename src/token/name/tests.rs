//! Names are built and split as CONTRACT §3 says, and names that are not words are refused.

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

#[test]
fn definitions_and_wide_signals_are_the_operator_s_to_write() {
    for n in [
        "/definition/workflow/wf",
        "/workflow/__SIGNAL__/EXIT",
        "/workflow/wf/__SIGNAL__/DRAIN",
        "/workflow/wf/__SIGNAL__/",
    ] {
        assert!(needs_operator(n), "{n}");
    }
    for n in [
        "/workflow/wf/1/__SIGNAL__/ABORT",
        "/workflow/wf/1/job/runnable/a",
        "/schedule/workflow/wf",
        "/workflow/wf",
        "/other",
        "",
    ] {
        assert!(!needs_operator(n), "{n}");
    }
}

#[test]
fn the_signal_segment_names_no_workflow_or_instance() {
    let err = WorkflowName::parse("__SIGNAL__").unwrap_err().to_string();
    assert!(err.contains("reserved"), "{err}");
    assert!(InstanceId::parse("__SIGNAL__").is_err());
    assert!(
        JobName::parse("__SIGNAL__").is_ok(),
        "a job's name never stands where a signal does"
    );
    let long = "w".repeat(MAX_WORD_BYTES + 1);
    let err = WorkflowName::parse(long).unwrap_err().to_string();
    assert!(err.contains("too long"), "{err}");
}
