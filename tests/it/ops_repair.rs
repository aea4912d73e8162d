//! The operator's repairs end to end (PINBALL_SPEC §7): retry, redo, poison, pause and resume,
//! stop, disable and enable, reload and cleanup, on live and archived instances, with the
//! messages `pinball util` prints.

use std::collections::BTreeMap;
use std::time::Duration;

use pinball::master::MasterClient;
use pinball::ops::Command;
use pinball::storage::{self, Table};
use pinball::token::name::{self};
use pinball::token::*;
use pinball::workflow::instance::JobToken;

use crate::helpers::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test]
async fn util_retry_reruns_the_failed_jobs_of_a_finished_instance() {
    let marker = tempfile::tempdir().unwrap();
    let flag = marker.path().join("ok");
    let yaml = format!(
        "workflows:\n  rt:\n    jobs:\n      a: {{command: 'true'}}\n      b: {{command: 'test -e {}', depends_on: [a]}}\n",
        flag.display()
    );
    let c = cluster(&yaml, 1, 60).await;
    let i = c.start("rt").await;
    c.wait_finished("rt", &i, secs(15)).await;
    std::fs::write(&flag, "").unwrap();
    assert_eq!(
        c.util(Command::Retry, Some("rt"), Some(&i), &[]).await,
        format!("retried 1 job(s) in workflow rt instance {i}\n")
    );
    c.wait_for("rt", &i, secs(15), "the retry succeeds", |ts| {
        ts.iter().any(|t| {
            t.name.ends_with("waiting/b")
                && t.data
                    .as_deref()
                    .is_some_and(|d| d.contains("\"exit_code\":0"))
        })
    })
    .await;
    let b = &c.jobs("rt", &i).await["b"].job.history;
    assert_eq!(
        b.iter().map(|r| r.exit_code.unwrap()).collect::<Vec<_>>(),
        vec![1, 0]
    );
    assert_eq!(
        c.jobs("rt", &i).await["a"].job.history.len(),
        1,
        "the successful job did not run again"
    );
    assert_eq!(
        c.util(Command::Retry, Some("rt"), Some(&i), &[]).await,
        format!("no failed jobs found in workflow rt instance {i}\n")
    );
    c.stop().await;
}

#[tokio::test]
async fn stop_disable_and_enable_report_what_they_did() {
    let c = cluster("workflows:\n  u:\n    jobs:\n      parent: {command: 'true'}\n      child: {command: 'true', depends_on: [parent]}\n", 0, 0).await;
    assert_eq!(
        c.util(Command::Stop, Some("does_not_exist"), Some("123"), &[])
            .await,
        "workflow does_not_exist instance 123 not found\n"
    );
    let i = c.start("u").await;
    assert_eq!(
        c.util(Command::Disable, Some("u"), Some(&i), &["parent", "child"])
            .await,
        "disabled 2 job(s) in 1 tries\n"
    );
    assert!(c.jobs("u", &i).await.values().all(|jt| jt.job.disabled));
    assert_eq!(
        c.util(Command::Disable, Some("u"), Some(&i), &["some_job"])
            .await,
        "job(s) ['some_job'] not found in the master.  Note that only jobs of a running workflow can be disabled\n"
    );
    assert_eq!(
        c.util(Command::Enable, Some("u"), Some(&i), &["child"])
            .await,
        "enabled 1 job(s) in 1 tries\n"
    );
    assert_eq!(
        c.util(Command::Stop, Some("u"), Some(&i), &[]).await,
        "removed 2 token(s) in 1 tries\n"
    );
    assert!(
        c.client
            .query_prefix(&name::instance_prefix(&wf("u"), &inst(&i)))
            .await
            .unwrap()
            .is_empty()
    );
    c.stop().await;
}

const CHAIN: &str = "workflows:\n  ch:\n    jobs:\n      a: {command: 'true'}\n      b: {command: 'true', depends_on: [a]}\n      c: {command: 'true', depends_on: [b]}\n";

fn ran(jobs: &BTreeMap<String, JobToken>) -> Vec<(String, usize)> {
    jobs.iter()
        .map(|(n, jt)| (n.clone(), jt.job.history.len()))
        .collect()
}

#[tokio::test]
async fn pause_owns_every_token_and_resume_releases_them() {
    let c = cluster(CHAIN, 0, 0).await;
    let i = c.start("ch").await;
    assert_eq!(
        c.util(Command::Pause, Some("ch"), Some(&i), &[]).await,
        "claimed 3 token(s) in 1 tries\n"
    );
    let live = c
        .client
        .query_prefix(&name::instance_prefix(&wf("ch"), &inst(&i)))
        .await
        .unwrap();
    assert!(live.iter().all(|t| {
        t.owner
            .as_deref()
            .is_some_and(|o| o.starts_with("workflow_util"))
            && t.expiration_time == Some(NEVER)
    }));
    assert_eq!(
        c.util(Command::Resume, Some("ch"), Some(&i), &[]).await,
        "released ownership of 3 token(s)\n"
    );
    let live = c
        .client
        .query_prefix(&name::instance_prefix(&wf("ch"), &inst(&i)))
        .await
        .unwrap();
    assert!(
        live.iter()
            .all(|t| t.owner.is_none() && t.expiration_time.is_none())
    );
    c.stop().await;
}

#[tokio::test]
async fn redo_runs_one_finished_job_again() {
    let c = cluster(CHAIN, 1, 60).await;
    let i = c.start("ch").await;
    c.wait_for("ch", &i, secs(15), "the instance finishes", finished)
        .await;
    let mut redo = action(Command::Redo, Some("ch"), Some(&i), &["b"]);
    redo.execution = Some(0);
    assert_eq!(
        c.apply(redo).await.unwrap(),
        format!("redoing execution 0 of job b in workflow ch instance {i}\n")
    );
    c.wait_for("ch", &i, secs(15), "b ran again", |ts| {
        ts.iter().any(|t| {
            t.name.ends_with("waiting/b")
                && t.data
                    .as_deref()
                    .is_some_and(|d| d.matches("start_time").count() == 2)
        })
    })
    .await;
    let mut redo = action(Command::Redo, Some("ch"), Some(&i), &["b"]);
    redo.execution = Some(7);
    assert_eq!(
        c.apply(redo).await.unwrap(),
        "could not find execution 7 in job history\n"
    );
    let mut redo = action(Command::Redo, Some("ch"), Some(&i), &["a", "b"]);
    redo.execution = Some(0);
    let err = c.apply(redo).await.unwrap_err();
    assert_eq!(err.to_string(), "redo command takes a single job");
    c.stop().await;
}

#[tokio::test]
async fn poison_reruns_the_roots_and_everything_downstream() {
    let c = cluster(CHAIN, 2, 60).await;
    let i = c.start("ch").await;
    c.wait_for("ch", &i, secs(15), "the instance finishes", finished)
        .await;
    assert_eq!(
        c.util(Command::Poison, Some("ch"), Some(&i), &["b"]).await,
        format!("poisoned workflow ch instance {i} roots ['b']\n")
    );
    c.wait_for("ch", &i, secs(15), "the poisoned jobs ran", |ts| {
        finished(ts)
            && ts
                .iter()
                .filter(|t| {
                    t.data
                        .as_deref()
                        .is_some_and(|d| d.matches("start_time").count() == 2)
                })
                .count()
                == 2
    })
    .await;
    assert_eq!(
        ran(&c.jobs("ch", &i).await),
        vec![("a".into(), 1), ("b".into(), 2), ("c".into(), 2)]
    );

    let out = c.util(Command::Poison, Some("ch"), None, &["b"]).await;
    let new = out
        .split("/workflow/ch/")
        .nth(1)
        .unwrap()
        .trim_end_matches("/\n")
        .to_owned();
    assert!(
        out.starts_with("poisoned workflow ch roots ['b'].  Tokens of the new instance are under"),
        "{out}"
    );
    c.wait_for("ch", &new, secs(15), "the new instance finishes", finished)
        .await;
    assert_eq!(
        ran(&c.jobs("ch", &new).await),
        vec![("a".into(), 0), ("b".into(), 1), ("c".into(), 1)],
        "only b and what follows ran"
    );
    c.stop().await;
}

#[tokio::test]
async fn retry_of_an_archived_instance_copies_it_and_reruns_only_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("fixed");
    let yaml = format!(
        "workflows:\n  ar:\n    jobs:\n      ok: {{command: 'true'}}\n      bad: {{command: 'test -e {}', depends_on: [ok]}}\n",
        flag.display()
    );
    let c = cluster(&yaml, 1, 0).await;
    let i = c.start("ar").await;
    c.archived("ar", &i, secs(15)).await;
    std::fs::write(&flag, "").unwrap();
    let out = c.util(Command::Retry, Some("ar"), Some(&i), &[]).await;
    assert!(
        out.starts_with(&format!(
            "retried workflow ar instance {i}.  Its tokens are under /workflow/ar/"
        )),
        "{out}"
    );
    let new = out
        .split("/workflow/ar/")
        .nth(1)
        .unwrap()
        .trim_end_matches("/\n")
        .to_owned();
    assert_ne!(new, i);
    c.archived("ar", &new, secs(15)).await;
    let jobs = c.jobs("ar", &new).await;
    assert_eq!(
        jobs["ok"].job.history.len(),
        1,
        "the job that succeeded did not run again (its history was copied)"
    );
    let bad: Vec<i32> = jobs["bad"]
        .job
        .history
        .iter()
        .map(|r| r.exit_code.unwrap())
        .collect();
    assert_eq!(bad, vec![1, 0]);
    c.stop().await;
}

#[tokio::test]
async fn cleanup_removes_only_instances_older_than_the_age() {
    let c = cluster(CHAIN, 1, 0).await;
    let recent = c.start("ch").await;
    c.archived("ch", &recent, secs(15)).await;
    // An instance that ended long ago, with a log folder.
    let store = storage::open(&c.app.url).unwrap();
    let mut old_job = c.jobs("ch", &recent).await["a"].clone();
    for r in &mut old_job.job.history {
        r.start_time = 10.0;
        r.end_time = Some(20.0);
    }
    let old = Token {
        name: name::job_token(&wf("ch"), &inst("1"), name::JobState::Waiting, &job("a")),
        version: Some(1),
        data: Some(old_job.job.to_data()),
        ..old_job.token.clone()
    };
    // Instance 2 was aborted long ago before any job ran; instance 3 was aborted just now.
    use pinball::workflow::signal::{Attributes, Signal};
    let aborted = |i: &str, at: f64| {
        let level = name::Level::Instance(wf("ch"), inst(i));
        let attributes = Attributes {
            timestamp: Some(at),
            ..Attributes::default()
        };
        Token {
            version: Some(1),
            ..Signal::new(name::Action::ABORT, attributes).token(&level)
        }
    };
    let (long_ago, just_now) = (aborted("2", 30.0), aborted("3", now() as f64));
    let batch = pinball::storage::CommitBatch {
        archived: vec![(&old).into(), (&long_ago).into(), (&just_now).into()],
        version_floor: 0,
        ..Default::default()
    }
    .grouped(pinball::token::name::archive_prefix);
    store.commit(&c.app.master_name, &batch).await.unwrap();
    std::fs::create_dir_all(c.logs.path().join("ch").join("1")).unwrap();
    let mut cleanup = action(Command::Cleanup, None, None, &[]);
    cleanup.age_days = 6;
    let err = c.apply(cleanup.clone()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "age of instances to remove must be at least 7 days"
    );
    cleanup.age_days = 10;
    assert_eq!(
        c.apply(cleanup).await.unwrap(),
        "removed 2 token(s) and 1 directory(ies)\n"
    );
    for (i, kept) in [("1", false), ("2", false), ("3", true)] {
        let left = store
            .read(
                &c.app.master_name,
                Table::Archived,
                &format!("/workflow/ch/{i}/"),
            )
            .await
            .unwrap();
        assert_eq!(!left.is_empty(), kept, "instance {i}: {left:?}");
    }
    assert!(
        !store
            .read(
                &c.app.master_name,
                Table::Archived,
                &name::instance_prefix(&wf("ch"), &inst(&recent))
            )
            .await
            .unwrap()
            .is_empty(),
        "the recent instance stays"
    );
    c.stop().await;
}

#[tokio::test]
async fn reload_applies_an_edited_definition_to_a_running_instance() {
    let c = cluster(&one_job("rl", "j: {command: 'echo v1'}"), 0, 0).await;
    let i = c.start("rl").await;
    let file = c.logs.path().join("defs.yaml");
    std::fs::write(&file, "workflows:\n  rl:\n    jobs:\n      j: {command: 'echo v2', priority: 7, emails: [j@example.com]}\n").unwrap();
    let mut config = c.config();
    config.parser_params.workflows_config = Some(file.display().to_string());
    let run = |jobs: &[&str]| {
        let reload = action(Command::Reload, Some("rl"), Some(&i), jobs);
        let (c, config) = (&c, config.clone());
        async move { c.apply_with(reload, &config).await.unwrap() }
    };
    assert_eq!(
        run(&["nope"]).await,
        "jobs ['nope'] not found in workflow rl defined in the configured definitions\n"
    );
    assert_eq!(
        run(&[]).await,
        format!("reloaded all jobs in workflow rl instance {i}\n")
    );
    let j = &c.jobs("rl", &i).await["j"];
    assert_eq!((j.job.command.as_str(), j.token.priority), ("echo v2", 7.0));
    assert_eq!(j.job.emails, vec!["j@example.com".to_string()]);
    let workers = c.add_workers(1, 0);
    c.archived("rl", &i, secs(15)).await;
    assert_eq!(
        c.log(&c.jobs("rl", &i).await["j"].job.history[0], "stdout"),
        "v2\n",
        "the reloaded command ran"
    );
    workers.stop().await;
    c.stop().await;
}

#[tokio::test]
async fn poison_of_an_archived_instance_starts_a_new_one_from_its_jobs() {
    let c = cluster(CHAIN, 2, 0).await;
    let i = c.start("ch").await;
    c.archived("ch", &i, secs(15)).await;
    let out = c.util(Command::Poison, Some("ch"), Some(&i), &["c"]).await;
    assert!(
        out.starts_with(
            "poisoned workflow ch roots ['c'].  Tokens of the new instance are under /workflow/ch/"
        ),
        "{out}"
    );
    let new = out
        .split("/workflow/ch/")
        .nth(1)
        .unwrap()
        .trim_end_matches("/\n")
        .to_owned();
    c.archived("ch", &new, secs(15)).await;
    assert_eq!(
        ran(&c.jobs("ch", &new).await),
        vec![("a".into(), 0), ("b".into(), 0), ("c".into(), 1)]
    );
    c.stop().await;
}

/// `pause` of a running job stops it at once and says so: its record is closed as paused by the
/// operator (not lost, not an attempt), its processes end, and `resume` runs it again.
#[tokio::test]
async fn pause_stops_a_running_job_as_paused_and_resume_runs_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let (pid, second) = (dir.path().join("pid"), dir.path().join("second"));
    let yaml = format!(
        "workflows:\n  p:\n    jobs:\n      a: {{command: 'if [ -e {s} ]; then exit 0; fi; touch {s}; echo $$ > {pid}; exec sleep 120'}}\n",
        s = second.display(),
        pid = pid.display()
    );
    let c = cluster(&yaml, 1, 60).await;
    let i = c.start("p").await;
    c.wait_running("p", &i, "a", secs(30)).await;
    wait_until(secs(30), "the job wrote its pid", || async {
        std::fs::read_to_string(&pid).is_ok_and(|s| s.ends_with('\n'))
    })
    .await;
    let process: i32 = std::fs::read_to_string(&pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let said = c.util(Command::Pause, Some("p"), Some(&i), &[]).await;
    assert_eq!(
        said,
        "claimed 1 token(s) in 1 tries\nstopped running job(s) ['a']: their workers end them at their next lease renewal; resume runs them again (not counted as attempts)\n"
    );
    // The worker's next renewal fails: it ends the job's processes.
    wait_until(secs(30), "the paused job's process ends", || async {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(process, 0) != 0 }
    })
    .await;
    let a = &c.jobs("p", &i).await["a"];
    let record = &a.job.history[0];
    assert!(record.paused && record.end_time.is_some(), "{record:?}");
    assert_eq!(record.lost.as_deref(), Some("paused by tests"));
    assert_eq!(record.exit_code, None);
    assert_eq!(
        pinball::workflow::status::attempts_this_try(a),
        0,
        "a paused execution is not an attempt"
    );
    assert_eq!(a.job.history.len(), 1, "nothing runs while paused");

    let said = c.util(Command::Resume, Some("p"), Some(&i), &[]).await;
    assert_eq!(
        said,
        "released ownership of 1 token(s)\njob(s) ['a'] stopped by the pause run again\n"
    );
    c.wait_for("p", &i, secs(30), "the instance finishes", finished)
        .await;
    let a = &c.jobs("p", &i).await["a"];
    assert_eq!(a.job.history.len(), 2, "{:?}", a.job.history);
    assert_eq!(a.job.history[1].exit_code, Some(0));
    c.stop().await;
}
