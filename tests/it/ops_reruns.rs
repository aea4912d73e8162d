//! No run without a way to end: a retry of an instance with nothing failed is refused (it left a
//! run that never ended), `rerun` runs a finished instance again from the start, and an
//! instance in which nothing can run any more is finished and archived whatever made it so.

use std::collections::BTreeMap;
use std::time::Duration;

use pinball::master::MasterClient;
use pinball::ops::Command;
use pinball::token::name::{self, JobState, Name};
use pinball::token::{ModifyRequest, Token};
use pinball::workflow::instance::JobToken;

use crate::helpers::*;

const CHAIN: &str = "workflows:\n  ch:\n    jobs:\n      a: {command: 'true'}\n      b: {command: 'true', depends_on: [a]}\n";

#[tokio::test]
async fn a_retry_of_a_successful_instance_is_refused_and_rerun_runs_it_from_the_start() {
    let c = cluster(CHAIN, 1, 0).await;
    let i = c.start("ch").await;
    c.archived("ch", &i, Duration::from_secs(30)).await;
    let retry = c
        .done(action(Command::Retry, Some("ch"), Some(&i), &[]))
        .await
        .unwrap();
    assert!(retry.refused, "{retry:?}");
    assert!(
        retry
            .message
            .starts_with(&format!("no failed jobs found in workflow ch instance {i}")),
        "{}",
        retry.message
    );
    assert_eq!(
        instances(&c.client, "ch").await.len(),
        0,
        "a refused retry leaves no instance behind"
    );
    let rerun = c
        .done(action(Command::Rerun, Some("ch"), Some(&i), &[]))
        .await
        .unwrap();
    let (_, new) = rerun.created.clone().expect("rerun creates an instance");
    assert_eq!(
        rerun.message,
        format!(
            "reran workflow ch instance {i} as instance {new}.  Its tokens are under /workflow/ch/{new}/\n"
        )
    );
    let again = c
        .archived("ch", new.as_str(), Duration::from_secs(30))
        .await;
    let ran: Vec<JobToken> = again
        .into_iter()
        .filter_map(|t| JobToken::parse(t).ok())
        .collect();
    assert_eq!(ran.len(), 2);
    assert!(
        ran.iter().all(|jt| jt.job.history.len() == 1),
        "every job ran once, from the start: {ran:?}"
    );
    let running = c
        .done(action(Command::Rerun, Some("ch"), Some("1"), &[]))
        .await
        .unwrap();
    assert!(
        running.refused && running.message.contains("not found"),
        "{running:?}"
    );
    c.stop().await;
}

#[tokio::test]
async fn an_instance_in_which_nothing_can_run_is_finished_and_archived() {
    let c = cluster(CHAIN, 1, 0).await;
    let i = c.start("ch").await;
    let archived = c.archived("ch", &i, Duration::from_secs(30)).await;
    // By hand (as the old retry of a successful instance did): every job copied into a new
    // instance, all waiting and all succeeded, no event to make one runnable, no ARCHIVE signal.
    let stuck = "1700000000000";
    let mut copies: BTreeMap<String, Token> = BTreeMap::new();
    for t in archived {
        if let Some(Name::Job { .. }) = Name::parse(&t.name) {
            let jt = JobToken::parse(t).unwrap();
            let copy = jt.copied_into(&inst(stuck), JobState::Waiting, &jt.job);
            copies.insert(copy.name.clone(), copy);
        }
    }
    assert_eq!(copies.len(), 2);
    c.client
        .modify(ModifyRequest::update(copies.into_values().collect()))
        .await
        .unwrap();
    // The workers' sweep finds it: nothing runnable, nothing can become runnable.
    let ended = c.archived("ch", stuck, Duration::from_secs(30)).await;
    let archive = name::signal_token(
        &name::Level::Instance(wf("ch"), inst(stuck)),
        pinball::workflow::signal::Action::ARCHIVE,
    );
    assert!(
        ended.iter().any(|t| t.name == archive),
        "it ended with an ARCHIVE signal of its own: {:?}",
        ended.iter().map(|t| &t.name).collect::<Vec<_>>()
    );
    c.stop().await;
}

/// Poison is another way in: it takes the finished instance's ARCHIVE signal away and runs the
/// roots again; when they are done the instance ends again, with a signal of its own.
#[tokio::test]
async fn a_poisoned_finished_instance_ends_again() {
    let c = cluster(CHAIN, 1, 3600).await;
    let i = c.start("ch").await;
    c.wait_finished("ch", &i, Duration::from_secs(30)).await;
    c.util(Command::Poison, Some("ch"), Some(&i), &["b"]).await;
    let ended = c
        .wait_for(
            "ch",
            &i,
            Duration::from_secs(30),
            "b ran again and the instance ended",
            |ts| {
                finished(ts)
                    && ts.iter().any(|t| {
                        t.name.ends_with("waiting/b")
                            && JobToken::parse(t.clone()).is_ok_and(|jt| jt.job.history.len() == 2)
                    })
            },
        )
        .await;
    let jobs = c.jobs("ch", &i).await;
    assert_eq!(
        jobs["a"].job.history.len(),
        1,
        "only the root and its downstream ran"
    );
    assert!(finished(&ended));
    c.stop().await;
}

#[tokio::test]
async fn a_retried_job_gets_its_whole_budget_again_or_the_attempts_asked_for() {
    let c = cluster(
        "workflows:\n  f:\n    jobs:\n      j: {command: 'false', max_attempts: 2}\n",
        1,
        3600,
    )
    .await;
    let i = c.start("f").await;
    let runs = |n: usize| {
        move |ts: &[Token]| {
            ts.iter().any(|t| {
                t.name.ends_with("/job/waiting/j")
                    && JobToken::parse(t.clone()).is_ok_and(|jt| jt.job.history.len() == n)
            })
        }
    };
    c.wait_for("f", &i, Duration::from_secs(30), "two attempts", runs(2))
        .await;
    c.wait_finished("f", &i, Duration::from_secs(30)).await;
    c.util(Command::Retry, Some("f"), Some(&i), &[]).await;
    c.wait_for(
        "f",
        &i,
        Duration::from_secs(30),
        "two attempts more",
        runs(4),
    )
    .await;
    c.wait_finished("f", &i, Duration::from_secs(30)).await;
    let mut three = action(Command::Retry, Some("f"), Some(&i), &[]);
    three.attempts = Some(3);
    c.apply(three).await.unwrap();
    c.wait_for(
        "f",
        &i,
        Duration::from_secs(30),
        "three attempts more",
        runs(7),
    )
    .await;
    c.wait_finished("f", &i, Duration::from_secs(30)).await;
    let jobs = c.jobs("f", &i).await;
    assert_eq!(jobs["j"].job.history.len(), 7, "and no more");
    // The dashboard shows the attempts of this try, and in all.
    let root = ui_server(&c).await;
    let page = reqwest::get(format!("{root}/jobs/?workflow=f&instance={i}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(r#"<td data-sort="3">3 <small>(7 in all)</small>"#),
        "{page}"
    );
    c.stop().await;
}

#[tokio::test]
async fn latest_names_the_newest_instance_wherever_an_instance_is_taken() {
    let c = cluster(CHAIN, 0, 0).await;
    let first = c.start("ch").await;
    let second = c.start("ch").await;
    assert!(second > first, "ids grow: {first} {second}");
    let said = c.util(Command::Stop, Some("ch"), Some("latest"), &[]).await;
    assert!(said.starts_with("removed "), "{said}");
    let left = instances(&c.client, "ch").await;
    assert_eq!(left.into_iter().collect::<Vec<_>>(), [first]);
    c.util(Command::Stop, Some("ch"), Some("latest"), &[]).await;
    let none = c
        .apply(action(Command::Stop, Some("ch"), Some("latest"), &[]))
        .await
        .unwrap_err();
    assert_eq!(
        none.to_string(),
        "workflow ch has no instance, so none is the latest"
    );
    c.stop().await;
}

#[tokio::test]
async fn a_skipped_failed_job_lets_its_downstream_jobs_run_and_disable_says_to_skip() {
    let c = cluster(
        "workflows:\n  sk:\n    jobs:\n      a: {command: 'false'}\n      b: {command: 'true', depends_on: [a]}\n",
        1,
        3600,
    )
    .await;
    let i = c.start("sk").await;
    c.wait_finished("sk", &i, Duration::from_secs(30)).await;
    let disable = c
        .done(action(Command::Disable, Some("sk"), Some(&i), &["a"]))
        .await
        .unwrap();
    assert!(disable.refused, "{disable:?}");
    assert!(
        disable
            .message
            .contains(&format!("use `pinball util -w sk -i {i} -j a skip`")),
        "{}",
        disable.message
    );
    let said = c.util(Command::Skip, Some("sk"), Some(&i), &["a"]).await;
    assert_eq!(
        said,
        format!("skipped job(s) ['a'] in workflow sk instance {i}: their downstream jobs run\n")
    );
    c.wait_for("sk", &i, Duration::from_secs(30), "b ran", |ts| {
        ts.iter().any(|t| {
            t.name.ends_with("/job/waiting/b")
                && JobToken::parse(t.clone()).is_ok_and(|jt| jt.job.history.len() == 1)
        })
    })
    .await;
    let tokens = c.wait_finished("sk", &i, Duration::from_secs(30)).await;
    let jobs: Vec<JobToken> = tokens
        .into_iter()
        .filter_map(|t| JobToken::parse(t).ok())
        .collect();
    use pinball::workflow::status::{Look, Status, instance_status, job_look};
    let a = jobs.iter().find(|jt| jt.job.name.as_str() == "a").unwrap();
    assert_eq!(job_look(a), Look::SKIPPED);
    assert_eq!(a.job.history.len(), 1, "a did not run again");
    let status = instance_status(&jobs, false, false, true);
    assert_eq!(
        status.status,
        Status::SUCCESS,
        "b succeeded and a was skipped"
    );
    c.stop().await;
}
