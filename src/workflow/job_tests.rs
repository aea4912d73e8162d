use super::*;

fn record(instance: &str, exit: i32) -> ExecutionRecord {
    ExecutionRecord {
        exit_code: Some(exit),
        ..ExecutionRecord::new(InstanceId::parse(instance).unwrap(), "", 0.0)
    }
}

fn job(max_attempts: u32, history: Vec<ExecutionRecord>) -> Job {
    Job {
        max_attempts,
        history,
        ..Job::shell(JobName::parse("j").unwrap(), "true")
    }
}

#[test]
fn the_retry_rule_counts_failures_of_the_newest_instance() {
    assert!(!job(1, vec![record("1234", 1)]).can_retry());
    assert!(job(2, vec![record("1234", 1)]).can_retry());
    assert!(
        job(
            2,
            vec![record("1234", 1), record("1234", 1), record("12345", 1)]
        )
        .can_retry()
    );
    assert!(!job(2, vec![]).can_retry());
    assert!(
        !job(2, vec![record("1", 1), record("1", 0), record("1", 1)]).can_retry(),
        "a success between failures does not reset"
    );
}

#[test]
fn a_lost_execution_is_not_an_attempt() {
    let lost = |i: &str| ExecutionRecord {
        end_time: Some(1.0),
        lost: Some("worker w stopped renewing its lease".into()),
        counted: false,
        ..ExecutionRecord::new(InstanceId::parse(i).unwrap(), "", 0.0)
    };
    assert!(!job(1, vec![lost("1"), record("1", 1)]).can_retry());
    assert!(job(2, vec![lost("1"), lost("1"), record("1", 1)]).can_retry());
    let j = job(1, vec![record("1", 1), lost("1"), lost("1")]);
    assert_eq!(j.lost_in_a_row(), 2);
    assert_eq!(job(1, vec![lost("1"), record("1", 1)]).lost_in_a_row(), 0);
    assert_eq!(job(1, vec![lost("1"), lost("2")]).lost_in_a_row(), 1);
}

#[test]
fn a_paused_execution_is_neither_an_attempt_nor_a_lost_one() {
    let paused = ExecutionRecord {
        end_time: Some(1.0),
        lost: Some("paused by carol".into()),
        paused: true,
        ..ExecutionRecord::new(InstanceId::parse("1").unwrap(), "", 0.0)
    };
    let lost = ExecutionRecord {
        lost: Some("worker w died".into()),
        ..paused.clone()
    };
    let lost = ExecutionRecord {
        paused: false,
        ..lost
    };
    let j = job(1, vec![lost.clone(), paused.clone(), paused.clone()]);
    assert_eq!(j.lost_in_a_row(), 1, "the pauses neither add nor break");
    assert!(j.can_retry(), "no attempt failed");
    assert_eq!(paused.cut_short().as_deref(), Some("paused by carol"));
    assert_eq!(lost.cut_short().as_deref(), Some("lost: worker w died"));
}

#[test]
fn commands_are_customized_from_merged_event_attributes() {
    let events = vec![
        Event {
            creator: "a".into(),
            attributes: [("some_attr".to_string(), "some_value".to_string())].into(),
        },
        Event {
            creator: "b".into(),
            attributes: [
                ("some_attr".to_string(), "some_other_value".to_string()),
                (
                    "yet_another_attr".to_string(),
                    "yet_another_value".to_string(),
                ),
            ]
            .into(),
        },
    ];
    let attrs = merged_attributes(&events);
    assert_eq!(attrs["some_attr"], "some_value,some_other_value");
    let s = crate::parser::template::substitute(
        "printf '[%%s]' %(non_existent_attr)s %(some_attr)s %(yet_another_attr)s",
        &attrs,
    )
    .unwrap();
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&s.command)
        .envs(s.env)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "[some_value,some_other_value][yet_another_value]"
    );
}

#[test]
fn event_attributes_come_from_event_attr_properties_joined_with_commas() {
    let mut r = record("1", 0);
    r.properties
        .insert("EVENT_ATTR:akey".into(), vec!["aval".into(), "b".into()]);
    r.properties.insert("kill_id".into(), vec!["x".into()]);
    assert_eq!(
        r.event_attributes(),
        [("akey".to_string(), "aval,b".to_string())].into()
    );
}

#[test]
fn job_data_is_readable_json_that_round_trips() {
    let j = job(3, vec![record("1", 0)]);
    let data = j.to_data();
    assert!(
        data.starts_with("{\"type\":\"ShellJob\",\"name\":\"j\""),
        "{data}"
    );
    assert_eq!(Job::from_data(&data).unwrap(), j);
}
