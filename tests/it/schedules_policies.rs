//! Schedule tokens (issue 4, first slice): `import -f reschedule` writes them, only when they
//! changed (scenario 53); `util unschedule` removes one; `util start` honours
//! `max_running_instances`.

use pinball::master::MasterClient;
use pinball::schedule::ScheduleData;

use crate::helpers::{action, cluster, one_job};
use pinball::ops::Command;

const TWO: &str = "workflows:\n  some_workflow:\n    notify_emails: [ops@example.com]\n    schedule: {recurrence: 10S, start: '2026-01-01T00:00:00Z', overrun_policy: START_NEW}\n    jobs:\n      a: {command: 'true'}\n  other:\n    schedule: {cron: '30 2 * * *', timezone: Europe/Paris}\n    jobs:\n      b: {command: 'true'}\n  unscheduled:\n    jobs:\n      c: {command: 'true'}\n";

async fn import(c: &crate::helpers::Cluster, yaml: &str) -> String {
    let file = c.logs.path().join("defs.yaml");
    std::fs::write(&file, yaml).unwrap();
    let mut config = c.config();
    config.parser_params.workflows_config = Some(file.display().to_string());
    c.apply_with(action(Command::Reschedule, None, None, &[]), &config)
        .await
        .unwrap()
}

#[tokio::test]
async fn reschedule_writes_only_the_schedules_that_changed() {
    let c = cluster(&one_job("x", "j: {command: 'true'}"), 0, 0).await;
    let out = import(&c, TWO).await;
    assert!(out.contains("rescheduled workflows ['other', 'some_workflow'].  Their schedule tokens are ['/schedule/workflow/other', '/schedule/workflow/some_workflow']\n"), "{out}");
    let tokens = c.client.query_prefix("/schedule/workflow/").await.unwrap();
    assert_eq!(
        tokens.len(),
        2,
        "a workflow without a schedule gets no schedule token"
    );
    let now = pinball::clock::now();
    for t in &tokens {
        let data = ScheduleData::from_token(t).unwrap();
        assert!(data.next_run_time > now, "the next run is in the future");
        assert_eq!(
            (t.owner.as_deref(), t.expiration_time),
            (Some("parser"), Some(data.next_run_time)),
            "claimable when due"
        );
    }
    let some = ScheduleData::from_token(
        tokens
            .iter()
            .find(|t| t.name.ends_with("some_workflow"))
            .unwrap(),
    )
    .unwrap();
    assert!(
        some.next_run_time - now <= 10,
        "a 10S recurrence runs within 10 s"
    );
    assert_eq!(some.emails, vec!["ops@example.com".to_string()]);
    let paris =
        ScheduleData::from_token(tokens.iter().find(|t| t.name.ends_with("other")).unwrap())
            .unwrap();
    let local = jiff::Timestamp::from_second(paris.next_run_time)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::get("Europe/Paris").unwrap());
    assert_eq!(
        (local.hour(), local.minute()),
        (2, 30),
        "cron runs at 02:30 Paris time"
    );

    let again = import(&c, TWO).await;
    assert!(
        again.contains("rescheduled workflows [].  Their schedule tokens are []\n"),
        "{again}"
    );
    assert_eq!(
        c.client.query_prefix("/schedule/workflow/").await.unwrap(),
        tokens,
        "nothing was rewritten"
    );

    let changed = import(&c, &TWO.replace("recurrence: 10S", "recurrence: 100S")).await;
    assert!(changed.contains("rescheduled workflows ['some_workflow'].  Their schedule tokens are ['/schedule/workflow/some_workflow']\n"), "{changed}");
    let after = c.client.query_prefix("/schedule/workflow/").await.unwrap();
    let old_other = tokens.iter().find(|t| t.name.ends_with("other")).unwrap();
    assert!(
        after.contains(old_other),
        "the unchanged schedule kept its version"
    );
    c.stop().await;
}

#[tokio::test]
async fn unschedule_removes_one_schedule() {
    let c = cluster(&one_job("x", "j: {command: 'true'}"), 0, 0).await;
    import(&c, TWO).await;
    assert_eq!(
        c.util(Command::Unschedule, Some("other"), None, &[]).await,
        "removed schedule for workflow other\n"
    );
    assert_eq!(
        c.util(Command::Unschedule, Some("other"), None, &[]).await,
        "schedule for workflow other not found\n"
    );
    let left: Vec<String> = c
        .client
        .query_prefix("/schedule/workflow/")
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(left, vec!["/schedule/workflow/some_workflow".to_string()]);
    c.stop().await;
}

#[tokio::test]
async fn start_refuses_to_exceed_max_running_instances() {
    let c = cluster("workflows:\n  m:\n    schedule: {recurrence: 1D, max_running_instances: 1}\n    jobs:\n      j: {command: 'sleep 60'}\n", 0, 0).await;
    let first = c.start("m").await;
    let err = c
        .apply(action(Command::Start, Some("m"), None, &[]))
        .await
        .unwrap_err();
    assert!(
        !err.is_input(),
        "a failure of the system, not of the request: {err}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with(
            "failed to start a new instance for workflow m due to too many instances running!"
        ),
        "{message}"
    );
    // A poison into a new instance is a start too.
    let err = c
        .apply(action(Command::Poison, Some("m"), None, &["j"]))
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with(
            "failed to start a new instance for workflow m due to too many instances running!"
        ),
        "{err}"
    );
    // Once the running instance is gone, a new one may start.
    assert_eq!(
        c.util(Command::Stop, Some("m"), Some(&first), &[]).await,
        "removed 1 token(s) in 1 tries\n"
    );
    c.start("m").await;
    c.stop().await;
}

#[tokio::test]
async fn a_workflow_that_left_the_files_is_retired_and_comes_back_when_it_returns() {
    let both = "workflows:\n  kept:\n    jobs:\n      j: {command: 'true'}\n  gone:\n    schedule: {recurrence: 1H}\n    jobs:\n      j: {command: 'true'}\n";
    let c = cluster(both, 0, 0).await;
    let file = c.logs.path().join("defs.yaml");
    let out = import(
        &c,
        "workflows:\n  kept:\n    jobs:\n      j: {command: 'true'}\n",
    )
    .await;
    assert!(
        out.contains(&format!(
            "retired workflows ['gone']: they are no longer in {}, so their schedules are removed",
            file.display()
        )),
        "{out}"
    );
    assert!(
        c.client
            .get("/schedule/workflow/gone")
            .await
            .unwrap()
            .is_none(),
        "its schedule is removed"
    );
    let refused = c
        .apply(action(Command::Start, Some("gone"), None, &[]))
        .await
        .unwrap_err();
    assert!(!refused.is_input(), "{refused}");
    assert!(
        refused.to_string().starts_with(&format!(
            "workflow gone is no longer defined in {} (retired by the import of",
            file.display()
        )),
        "{refused}"
    );
    // Imported again, it is back: it starts and has its schedule.
    let out = import(&c, both).await;
    assert!(!out.contains("retired"), "{out}");
    assert!(
        c.client
            .get("/schedule/workflow/gone")
            .await
            .unwrap()
            .is_some()
    );
    c.start("gone").await;
    c.stop().await;
}

#[tokio::test]
async fn import_dry_run_says_what_would_change_and_writes_nothing() {
    let both = "workflows:\n  kept:\n    jobs:\n      j: {command: 'true'}\n  gone:\n    schedule: {recurrence: 1H}\n    jobs:\n      j: {command: 'true'}\n";
    let c = cluster(both, 0, 0).await;
    let file = c.logs.path().join("defs.yaml");
    std::fs::write(
        &file,
        "workflows:\n  kept:\n    jobs:\n      j: {command: 'false', priority: 5}\n      k: {command: 'true', depends_on: [j]}\n  fresh:\n    jobs:\n      j: {command: 'true'}\n",
    )
    .unwrap();
    let mut config = c.config();
    config.parser_params.workflows_config = Some(file.display().to_string());
    // Every token but the master's own (whose version the audit entry's commit moves).
    let tokens = || async {
        let all = c.client.query_prefix("/").await.unwrap();
        all.into_iter()
            .filter(|t| !t.name.starts_with("/__"))
            .collect::<Vec<_>>()
    };
    let before = tokens().await;
    let mut dry = action(Command::Import, None, None, &[]);
    dry.dry_run = true;
    let out = c.apply_with(dry, &config).await.unwrap();
    assert_eq!(
        out,
        format!(
            "would add workflows ['fresh']\nwould change workflow kept: job j: command, priority changed\nwould change workflow kept: job k added\nwould retire workflows ['gone']: they are no longer in {}\nnothing was written (--dry-run)\n",
            file.display()
        )
    );
    assert_eq!(before, tokens().await, "a dry run writes nothing");
    c.stop().await;
}
