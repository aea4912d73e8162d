//! Notification emails through a real SMTP conversation (PINBALL_SPEC §10.1, scenarios 27, 32).

use std::sync::Arc;
use std::time::{Duration, Instant};

use pinball::email::Mailer;
use pinball::workflow::worker::{WorkerSettings, run_workers};
use tokio::sync::watch;

use crate::helpers::smtp::{Mail, SmtpServer};
use crate::helpers::{cluster, settings};

fn mailer(port: u16) -> Mailer {
    Mailer {
        host: "127.0.0.1".into(),
        port,
        user: String::new(),
        pass: pinball::config::Secret::default(),
        from: "pinball@example.com".into(),
        ..Mailer::default()
    }
}

/// Waits for `n` emails and for the outbox to be empty: every envelope of each delivered.
async fn wait_for_mails(
    c: &crate::helpers::Cluster,
    smtp: &SmtpServer,
    n: usize,
    within: Duration,
) -> Vec<Mail> {
    use pinball::master::MasterClient;
    let started = Instant::now();
    loop {
        let mails = smtp.mails();
        let outbox = c
            .client
            .query_prefix(pinball::token::name::OUTBOX_PREFIX)
            .await
            .unwrap();
        if mails.len() >= n && outbox.is_empty() {
            return mails;
        }
        assert!(
            started.elapsed() < within,
            "expected {n} emails within {within:?}, got {:#?}",
            mails.iter().map(Mail::subject).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn final_failures_and_the_instance_end_are_emailed_to_the_right_people() {
    let smtp = SmtpServer::start().await;
    let yaml = "workflows:\n  em:\n    notify_emails: [owner@example.com]\n    jobs:\n      a: {command: 'exit 1', emails: [a@example.com]}\n      flaky: {command: 'exit 3', emails: [f@example.com], max_attempts: 2}\n      later: {command: 'sleep 1; exit 2', emails: [c@example.com]}\n";
    let c = cluster(yaml, 0, 30).await;
    let (stop, stopped) = watch::channel(false);
    let s = WorkerSettings {
        mailer: Some(mailer(smtp.port)),
        ..settings(c.logs.path(), 30)
    };
    let workers = tokio::spawn(run_workers(Arc::new(c.client.clone()), s, 3, stopped));
    let i = c.start("em").await;
    let mails = wait_for_mails(&c, &smtp, 4, Duration::from_secs(20)).await;
    // Stopped workers have sent every email they owed: nothing more can come.
    let _ = stop.send(true);
    workers.await.unwrap();
    let mails_now = smtp.mails();
    assert_eq!(
        mails_now.len(),
        4,
        "one email per final failure and one for the end: {:#?}",
        mails_now.iter().map(Mail::subject).collect::<Vec<_>>()
    );
    let by_subject = |s: &str| {
        mails
            .iter()
            .find(|m| m.subject() == s)
            .unwrap_or_else(|| panic!("no email {s:?}"))
            .clone()
    };
    // Emails may arrive in any order; exactly one failure email, the instance's first final
    // failure (a or flaky; `later` fails a second after them), also goes to the owners.
    let to_owner = mails
        .iter()
        .filter(|m| {
            m.subject().contains("finished with exit code")
                && m.to.contains(&"owner@example.com".to_string())
        })
        .count();
    assert_eq!(
        to_owner, 1,
        "only the first final failure also goes to the workflow's owners"
    );
    let later = by_subject("Workflow em's job later finished with exit code 2");
    assert_eq!(
        later.to,
        vec!["c@example.com".to_string()],
        "a later failure goes only to the job's own addresses"
    );
    let flaky = by_subject("Workflow em's job flaky finished with exit code 3");
    assert!(flaky.to.contains(&"f@example.com".to_string()));
    assert!(
        flaky.text().contains("&execution=1"),
        "sent once, after the last attempt, not for the retried one"
    );
    let end = by_subject("FAILURE for workflow em");
    assert_eq!(
        sorted(end.to.clone()),
        vec!["owner@example.com".to_string()]
    );
    assert!(
        end.text()
            .contains(&format!("Workflow em instance {i} started at")),
        "{}",
        end.data
    );
    assert_eq!(end.from, "pinball@example.com");
    c.stop().await;
}

#[tokio::test]
async fn the_workflows_addresses_hear_of_the_first_failure_even_when_it_ends_last() {
    // `ok` is a leaf: its success sets the instance's ARCHIVE signal before `bad` fails. The
    // failure is still the instance's first, so the workflow's addresses get it (they did not:
    // "first" meant "ARCHIVE not set yet").
    let smtp = SmtpServer::start().await;
    let yaml = "workflows:\n  last:\n    notify_emails: [owner@example.com]\n    jobs:\n      ok: {command: 'true'}\n      bad: {command: 'sleep 1; exit 3', emails: [bad@example.com]}\n";
    let c = cluster(yaml, 0, 0).await;
    let (stop, stopped) = watch::channel(false);
    let s = WorkerSettings {
        mailer: Some(mailer(smtp.port)),
        ..settings(c.logs.path(), 0)
    };
    let workers = tokio::spawn(run_workers(Arc::new(c.client.clone()), s, 2, stopped));
    let i = c.start("last").await;
    c.archived("last", &i, Duration::from_secs(20)).await;
    let jobs = c.jobs("last", &i).await;
    assert!(
        jobs["ok"].job.history[0].end_time < jobs["bad"].job.history[0].end_time,
        "the failing job ended last"
    );
    let failure = wait_for_mails(&c, &smtp, 2, Duration::from_secs(20))
        .await
        .into_iter()
        .find(|m| m.subject() == "Workflow last's job bad finished with exit code 3")
        .expect("the failure is emailed");
    assert_eq!(
        sorted(failure.to),
        vec![
            "bad@example.com".to_string(),
            "owner@example.com".to_string()
        ]
    );
    let _ = stop.send(true);
    workers.await.unwrap();
    c.stop().await;
}

#[tokio::test]
async fn a_job_past_its_warn_timeout_sends_one_warning() {
    let smtp = SmtpServer::start().await;
    let yaml = "workflows:\n  slow:\n    notify_emails: [owner@example.com]\n    jobs:\n      j: {command: 'sleep 2', warn_timeout_sec: 1, emails: [j@example.com]}\n";
    let c = cluster(yaml, 0, 30).await;
    let (stop, stopped) = watch::channel(false);
    let s = WorkerSettings {
        mailer: Some(mailer(smtp.port)),
        ..settings(c.logs.path(), 30)
    };
    let workers = tokio::spawn(run_workers(Arc::new(c.client.clone()), s, 1, stopped));
    c.start("slow").await;
    let mails = wait_for_mails(&c, &smtp, 2, Duration::from_secs(20)).await;
    let warning: Vec<&Mail> = mails
        .iter()
        .filter(|m| m.subject() == "Workflow slow's job j exceeded timeout")
        .collect();
    assert_eq!(warning.len(), 1);
    assert_eq!(
        sorted(warning[0].to.clone()),
        vec!["j@example.com".to_string(), "owner@example.com".to_string()]
    );
    assert!(
        mails
            .iter()
            .any(|m| m.subject() == "SUCCESS for workflow slow"),
        "the job still finished"
    );
    let _ = stop.send(true);
    workers.await.unwrap();
    c.stop().await;
}
