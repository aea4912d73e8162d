//! Logs of jobs that ran elsewhere: the worker sends them to the master while the job runs,
//! the UI reads them from the database, live and after the worker's host (its log files) is
//! gone, and says why when there is nothing to show.

use std::time::Duration;

use base64::Engine;
use pinball::master::logs::LogOptions;
use pinball::master::service::MasterOptions;
use pinball::master::{Master, MasterClient};
use pinball::storage::{self, LogKey};
use pinball::token::{LogRequest, ModifyRequest, Token};

use crate::helpers::*;

const LONG: Duration = Duration::from_secs(30);

/// A UI on the cluster's database whose own log directory is empty: whatever it shows of a
/// log came through the master.
async fn ui_elsewhere(c: &Cluster, logs: &std::path::Path) -> String {
    let mut config = c.config();
    config.local_logs_dir_prefix = Some(logs.display().to_string());
    crate::helpers::ui_server_with(c, config).await
}

/// The log through the UI's read API: (running, text).
async fn log(root: &str, w: &str, i: &str, job: &str, kind: &str) -> (bool, String) {
    let r = reqwest::get(format!(
        "{root}/api/v1/workflows/{w}/instances/{i}/jobs/{job}/executions/0/logs/{kind}"
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let running = r.headers()["x-log-running"] == "1";
    (running, r.text().await.unwrap())
}

#[tokio::test]
async fn a_log_written_elsewhere_is_shown_live_and_after_its_host_is_gone() {
    let gate = tempfile::tempdir().unwrap();
    let go = gate.path().join("go");
    let yaml = format!(
        "workflows:\n  w:\n    jobs:\n      talk: {{command: 'echo first; echo warming up >&2; while [ ! -e {} ]; do sleep 0.05; done; echo second'}}\n      quiet: {{command: 'true', depends_on: [talk]}}\n",
        go.display()
    );
    let c = cluster(&yaml, 2, 600).await;
    let empty = tempfile::tempdir().unwrap();
    let root = ui_elsewhere(&c, empty.path()).await;
    let i = c.start("w").await;
    c.wait_running("w", &i, "talk", LONG).await;
    // Live: what the job printed shows while it runs, before it ends.
    wait_until(LONG, "the first line shows while the job runs", || async {
        let (running, text) = log(&root, "w", &i, "talk", "stdout").await;
        running && text == "first\n"
    })
    .await;
    std::fs::write(&go, "").unwrap();
    c.wait_finished("w", &i, LONG).await;
    // The worker's host is gone: its log files with it.
    std::fs::remove_dir_all(c.logs.path().join("w")).unwrap();
    assert_eq!(
        log(&root, "w", &i, "talk", "stdout").await,
        (false, "first\nsecond\n".into())
    );
    assert_eq!(
        log(&root, "w", &i, "talk", "stderr").await.1,
        "warming up\n"
    );
    let page = reqwest::get(format!(
        "{root}/file/?workflow=w&instance={i}&job=talk&execution=0&log_type=stdout"
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(page.contains("first\nsecond"), "{page}");
    assert!(!page.contains("log-missing"), "{page}");

    // A job whose host never sent anything: the page says why, not just nothing.
    let jt = c.jobs("w", &i).await.remove("quiet").unwrap();
    let mut data: serde_json::Value =
        serde_json::from_str(jt.token.data.as_deref().unwrap()).unwrap();
    data["history"][0]["host"] = "gone-host".into();
    data["history"][0]["logs"]["stdout"] =
        format!("{}/w/{i}/quiet.1.stdout", c.logs.path().display()).into();
    c.client
        .modify(ModifyRequest::update(vec![Token {
            data: Some(data.to_string()),
            ..jt.token.clone()
        }]))
        .await
        .unwrap();
    let page = reqwest::get(format!(
        "{root}/file/?workflow=w&instance={i}&job=quiet&execution=0&log_type=stdout"
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(
        page.contains("id=\"log-missing\"") && page.contains("written on host gone-host"),
        "{page}"
    );
    c.stop().await;
}

#[tokio::test]
async fn a_log_of_several_chunks_printed_at_once_reaches_the_master_whole() {
    // Over two whole chunks (256 KiB each) and a part, printed faster than a tick: each is sent
    // after the job exits, before its end is committed, and no byte is left on the host.
    let yaml = "workflows:\n  w:\n    jobs:\n      loud: {command: 'head -c 600000 /dev/zero | tr \"\\\\000\" a; echo; echo done >&2'}\n";
    let c = cluster(yaml, 1, 600).await;
    let empty = tempfile::tempdir().unwrap();
    let root = ui_elsewhere(&c, empty.path()).await;
    let i = c.start("w").await;
    c.wait_finished("w", &i, LONG).await;
    std::fs::remove_dir_all(c.logs.path().join("w")).unwrap();
    let (running, text) = log(&root, "w", &i, "loud", "stdout").await;
    assert!(!running);
    assert_eq!(text.len(), 600_001, "the whole log is stored");
    assert!(text[..600_000].bytes().all(|b| b == b'a'));
    assert_eq!(log(&root, "w", &i, "loud", "stderr").await.1, "done\n");
    c.stop().await;
}

#[tokio::test]
async fn the_master_keeps_each_log_up_to_its_bound_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("pinball.db").display());
    let options = MasterOptions {
        logs: LogOptions {
            max_bytes: 1000,
            retention_days: 0,
        },
        ..MasterOptions::new(pinball::modes::naming())
    };
    let master = Master::start_with(storage::open(&url).unwrap(), "default", options).await;
    // A worker holds the job.
    master
        .modify(ModifyRequest {
            updates: vec![Token {
                owner: Some("b_1_100_0".into()),
                expiration_time: Some(now() + 600),
                ..Token::new("/workflow/w/1/job/runnable/loud", Some("{}".into()))
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    let send = |offset: u64, bytes: Vec<u8>| LogRequest {
        workflow: "w".into(),
        instance: "1".into(),
        job: "loud".into(),
        execution: 0,
        kind: "stdout".into(),
        offset,
        data: base64::engine::general_purpose::STANDARD.encode(bytes),
        host: "b".into(),
        owner: "b_1_100_0".into(),
    };
    let first = master.append_log(send(0, vec![b'x'; 600])).await.unwrap();
    assert_eq!(first.truncated_at, None);
    let second = master.append_log(send(600, vec![b'y'; 600])).await.unwrap();
    assert_eq!(
        second.truncated_at,
        Some(1000),
        "the worker is told to stop"
    );
    let store = storage::open(&url).unwrap();
    let key = LogKey {
        name: "/workflow/w/1/loud",
        execution: 0,
        kind: "stdout",
    };
    let extent = store.log_extent("default", key).await.unwrap().unwrap();
    assert_eq!((extent.size, extent.truncated_at), (1000, Some(1000)));
    let bad = master
        .append_log(LogRequest {
            job: "../../etc/passwd".into(),
            ..send(0, vec![b'z'])
        })
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("job"), "{bad}");

    // A resend after a lost answer stores nothing twice, and one that carries more than was
    // stored adds only the rest; other bytes where bytes are stored are refused, the first kept.
    let again = [vec![b'x'; 600], vec![b'y'; 600]].concat();
    master.append_log(send(0, again)).await.unwrap();
    let e = master
        .append_log(send(0, vec![b'q'; 600]))
        .await
        .unwrap_err();
    assert!(
        matches!(e, pinball::master::MasterError::VersionConflict(_)),
        "{e}"
    );
    let second = |offset: u64, bytes: Vec<u8>| LogRequest {
        execution: 1,
        ..send(offset, bytes)
    };
    master.append_log(second(0, vec![b'a'; 100])).await.unwrap();
    let longer = [vec![b'a'; 100], vec![b'b'; 50]].concat();
    master.append_log(second(0, longer.clone())).await.unwrap();
    let key1 = LogKey {
        execution: 1,
        ..key
    };
    let chunks = store.log_chunks("default", key1, 0, 10).await.unwrap();
    let stored: Vec<u8> = chunks
        .iter()
        .flat_map(|c| pinball::storage::decompress_log(&c.data, c.raw_len as usize).unwrap())
        .collect();
    assert_eq!(stored, longer, "each byte once, in order");
    let extent = store.log_extent("default", key).await.unwrap().unwrap();
    assert_eq!(extent.size, 1000, "the first bytes were kept");

    // Nobody but the holder writes the job's log: another worker, an execution of a job
    // nobody runs, a sender that names no worker.
    for forged in [
        LogRequest {
            owner: "c_1_200_0".into(),
            ..send(1000, vec![b'f'])
        },
        LogRequest {
            job: "nobody_runs_me".into(),
            ..send(0, vec![b'f'])
        },
        LogRequest {
            owner: String::new(),
            ..send(0, vec![b'f'])
        },
    ] {
        let e = master.append_log(forged.clone()).await.unwrap_err();
        assert!(
            matches!(e, pinball::master::MasterError::Forbidden(_)),
            "{forged:?}: {e}"
        );
        assert!(
            e.to_string().contains("only from the worker running it"),
            "{e}"
        );
    }
    let extent = store.log_extent("default", key).await.unwrap().unwrap();
    assert_eq!(extent.size, 1000, "nothing forged was stored");
}
