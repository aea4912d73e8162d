//! The original Pinball's UI fixture (PINBALL_SPEC §12, scenarios 57-59) through the read model:
//! active and archived workflows give the original's statuses, on every backend.

use std::sync::Arc;

use pinball::master::MasterClient;
use pinball::ops::read::DataLayer;
use pinball::parser;
use pinball::storage;
use pinball::token::name::{self, JobState, Level};
use pinball::token::{ArchiveRequest, ModifyRequest, Token};
use pinball::workflow::instance::{JobToken, new_instance_tokens};
use pinball::workflow::job::ExecutionRecord;
use pinball::workflow::signal::{Action, Attributes, Signal};

use crate::helpers::{backends, inst, spawn_app_on, unique_master, wf};

/// A job token of the original's fixture: two executions with exit (w + i + e) mod 2.
fn fixture_job(w: usize, i: usize, job: &str, base: f64) -> Token {
    let def = parser::parse_yaml(
        "workflows:\n  w:\n    jobs:\n      job_0: {command: 'true'}\n      job_1: {command: 'true'}\n",
        "fixture",
    )
    .unwrap();
    let (wf, inst) = (
        crate::helpers::wf(&format!("workflow_{w}")),
        crate::helpers::inst(&format!("instance_{i}")),
    );
    let t = new_instance_tokens(&wf, &inst, &def["w"].graph())
        .into_iter()
        .find(|t| t.name.ends_with(&format!("/{job}")))
        .unwrap();
    let mut jt = JobToken::parse(t).unwrap();
    jt.token.name = name::job_token(&wf, &inst, JobState::Waiting, &crate::helpers::job(job));
    jt.job.history = (0..2)
        .map(|e| ExecutionRecord {
            info: "true".into(),
            instance: inst.clone(),
            start_time: base + 10.0 * e as f64,
            end_time: Some(base + 10.0 * e as f64 + 5.0),
            exit_code: Some(((w + i + e) % 2) as i32),
            cleanup_exit_code: None,
            events: vec![],
            worker: "w".into(),
            host: "h".into(),
            properties: Default::default(),
            logs: Default::default(),
            lost: None,
            counted: false,
            log_trouble: Default::default(),
            killed: None,
            paused: false,
        })
        .collect();
    Token::new(&jt.token.name, Some(jt.job.to_data()))
}

#[tokio::test]
async fn the_originals_fixture_gives_the_originals_statuses() {
    // PINBALL_SPEC §12, scenarios 57-59: 2 active and 2 archived workflows × 2 instances ×
    // 2 jobs × 2 executions. On every backend: the summaries are SQL of their own.
    let dir = tempfile::tempdir().unwrap();
    for url in backends(&dir, "the_originals_fixture_gives_the_originals_statuses") {
        fixture_statuses_on(&url).await;
    }
}

async fn fixture_statuses_on(url: &str) {
    let app = spawn_app_on(
        url,
        &unique_master("ui"),
        pinball::master::api::DEFAULT_MAX_REQUEST_BYTES,
    )
    .await;
    for w in 0..4 {
        for i in 0..2 {
            let base = 1000.0 + 100.0 * i as f64;
            let mut tokens = vec![
                fixture_job(w, i, "job_0", base),
                fixture_job(w, i, "job_1", base + 20.0),
            ];
            let level =
                Level::Instance(wf(&format!("workflow_{w}")), inst(&format!("instance_{i}")));
            let archive = Signal {
                action: Action::ARCHIVE,
                attributes: Attributes::default(),
            };
            tokens.push(Token::new(
                name::signal_token(&level, Action::ARCHIVE),
                Some(archive.to_data()),
            ));
            let stored = app
                .client
                .modify(ModifyRequest::update(tokens))
                .await
                .unwrap()
                .updates;
            if w >= 2 {
                app.client
                    .archive(ArchiveRequest { tokens: stored })
                    .await
                    .unwrap();
            }
        }
    }
    let data = DataLayer::new(
        Arc::from(storage::open(&app.url).unwrap()),
        app.master_name.clone(),
        3,
    );
    let rows = data.workflows().await.unwrap();
    let statuses: Vec<(&str, &str, Option<&str>)> = rows
        .iter()
        .map(|r| {
            (
                r.workflow.as_str(),
                r.status.as_str(),
                r.last_instance.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("workflow_0", "RUNNING", Some("instance_1")),
            ("workflow_1", "RUNNING", Some("instance_1")),
            ("workflow_2", "SUCCESS", Some("instance_1")),
            ("workflow_3", "FAILURE", Some("instance_1")),
        ]
    );
    // Only archived instances are summarised.
    for w in 0..4 {
        let (_, n) = data
            .store
            .summaries(&app.master_name, &format!("workflow_{w}"), 0, 10)
            .await
            .unwrap();
        assert_eq!(n, if w >= 2 { 2 } else { 0 }, "workflow_{w}");
    }
    // Pages of instances, newest first.
    let first = data
        .instances(&wf("workflow_2"), 0, 1)
        .await
        .unwrap()
        .unwrap();
    let second = data
        .instances(&wf("workflow_2"), 1, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.total, 2);
    assert_eq!(first.rows[0].instance, "instance_1");
    assert_eq!(second.rows[0].instance, "instance_0");
    assert_eq!(second.rows[0].status.as_str(), "FAILURE");
    // Scenario 59: token paths.
    let paths = data
        .token_paths("/workflow/workflow_0/instance_0/job/waiting/")
        .await
        .unwrap();
    assert_eq!(paths.len(), 2);
    assert!(paths.iter().all(|p| p.count == 1));
    // Cleaning up an archived instance removes its summary too.
    data.store
        .delete_archived(&app.master_name, "/workflow/workflow_3/instance_1/")
        .await
        .unwrap();
    let rows = data.workflows().await.unwrap();
    let w3 = rows.iter().find(|r| r.workflow == "workflow_3").unwrap();
    assert_eq!(w3.last_instance.as_deref(), Some("instance_0"));
}
