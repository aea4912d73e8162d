//! Logs of jobs that ran elsewhere: the worker sends them to the master while the job runs,
//! the UI reads them from the database, live and after the worker's host (its log files) is
//! gone, and says why when there is nothing to show.

use std::sync::Arc;
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

/// Runs workflow `w` once to its end, then removes the worker host's log files: the UI that
/// answers (its root, with the instance and the empty folder it keeps its own logs in) shows
/// only what reached the master.
async fn ran_and_host_gone(c: &Cluster) -> (String, String, tempfile::TempDir) {
    let empty = tempfile::tempdir().unwrap();
    let root = ui_elsewhere(c, empty.path()).await;
    let i = c.start("w").await;
    c.wait_finished("w", &i, LONG).await;
    std::fs::remove_dir_all(c.logs.path().join("w")).unwrap();
    (root, i, empty)
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
    let (root, i, _empty) = ran_and_host_gone(&c).await;
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

/// The master as workers reach it, with each `/modify` that carried logs recorded; `older`
/// answers such a `/modify` as a master from before `logs` did (its body reader refuses a
/// field it does not know, in serde's words).
struct Recording {
    inner: pinball::master::HttpMasterClient,
    older: bool,
    /// Loses the answer of each `/logs` request that does not carry a `b` (it lands, the
    /// worker hears nothing).
    lose: bool,
    /// The logs each `/modify` carried (refused ones included).
    ends: std::sync::Mutex<Vec<Vec<LogRequest>>>,
    /// The `/logs` requests.
    sent: std::sync::Mutex<Vec<LogRequest>>,
}

/// A `/modify` body as a master before `logs` read it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct OlderModify {
    #[serde(default)]
    updates: Vec<Token>,
    #[serde(default)]
    deletes: Vec<Token>,
    #[serde(default)]
    lease_sec: Option<u64>,
}

use pinball::master::MasterError;
use pinball::token::*;

#[async_trait::async_trait]
impl Through for Recording {
    fn inner(&self) -> &pinball::master::HttpMasterClient {
        &self.inner
    }
    async fn modify(&self, req: ModifyRequest) -> Result<ModifyResponse, MasterError> {
        if !req.logs.is_empty() {
            self.ends.lock().unwrap().push(req.logs.clone());
            let body = serde_json::to_vec(&req).unwrap();
            let de = &mut serde_json::Deserializer::from_slice(&body);
            if let (true, Err(e)) = (
                self.older,
                serde_path_to_error::deserialize::<_, OlderModify>(de),
            ) {
                return Err(MasterError::input(format!("invalid request body: {e}")));
            }
        }
        self.inner.modify(req).await
    }
    async fn append_log(&self, req: LogRequest) -> Result<LogResponse, MasterError> {
        self.sent.lock().unwrap().push(req.clone());
        let lost = self.lose && !text(std::slice::from_ref(&req), &req.kind).contains('b');
        let answer = self.inner.append_log(req).await;
        match lost {
            true => Err(MasterError::Unavailable("the answer was lost".into())),
            false => answer,
        }
    }
}

/// A cluster of one worker that reaches its master through a [`Recording`].
async fn recorded_cluster(yaml: &str, older: bool, lose: bool) -> (Cluster, Arc<Via<Recording>>) {
    let mut c = cluster(yaml, 0, 600).await;
    let client = Arc::new(Via(Recording {
        inner: c.client.clone(),
        older,
        lose,
        ends: Default::default(),
        sent: Default::default(),
    }));
    let s = settings(c.logs.path(), 600);
    let workers = pinball::workflow::worker::run_workers(client.clone(), s, 1, c.stop.subscribe());
    c.workers = Some(tokio::spawn(workers));
    (c, client)
}

fn text(reqs: &[LogRequest], kind: &str) -> String {
    reqs.iter()
        .filter(|r| r.kind == kind)
        .map(|r| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&r.data)
                .unwrap();
            String::from_utf8(bytes).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn a_runs_end_carries_the_last_bytes_of_its_logs_in_its_own_commit() {
    // Printed as the job exits, after the tick that sends a running job's output: the end
    // carries it, and the log is whole in the master once the end is.
    let yaml = "workflows:\n  w:\n    jobs:\n      say: {command: 'sleep 0.4; echo hello; echo careful >&2'}\n      fail: {command: 'echo why; exit 3', depends_on: [say]}\n";
    let (c, client) = recorded_cluster(yaml, false, false).await;
    let (root, i, _empty) = ran_and_host_gone(&c).await;
    assert_eq!(log(&root, "w", &i, "say", "stdout").await.1, "hello\n");
    assert_eq!(log(&root, "w", &i, "say", "stderr").await.1, "careful\n");
    assert_eq!(log(&root, "w", &i, "fail", "stdout").await.1, "why\n");
    let ends = client.0.ends.lock().unwrap().clone();
    let sent = client.0.sent.lock().unwrap().clone();
    // The ends (a success and a failure) carried the tails of their logs (a tail a tick sent
    // while the job was exiting went alone); nothing was sent twice.
    assert!((1..=2).contains(&ends.len()), "{ends:?}");
    let carried: Vec<LogRequest> = ends.concat();
    for (job, kind, printed) in [
        ("say", "stdout", "hello\n"),
        ("say", "stderr", "careful\n"),
        ("fail", "stdout", "why\n"),
    ] {
        let of = |r: &&LogRequest| r.job == job && r.kind == kind;
        let by_end = text(
            &carried.iter().filter(of).cloned().collect::<Vec<_>>(),
            kind,
        );
        let alone = text(&sent.iter().filter(of).cloned().collect::<Vec<_>>(), kind);
        assert_eq!(format!("{alone}{by_end}"), printed, "{job} {kind}");
    }
    assert!(
        !text(&carried, "stdout").is_empty(),
        "the ends carried the last bytes of the logs: {ends:?}"
    );
    c.stop().await;
}

#[tokio::test]
async fn a_master_that_takes_no_logs_with_an_end_gets_them_on_their_own() {
    let yaml = "workflows:\n  w:\n    jobs:\n      a: {command: 'echo first'}\n      b: {command: 'echo second', depends_on: [a]}\n";
    let (c, client) = recorded_cluster(yaml, true, false).await;
    let (root, i, _empty) = ran_and_host_gone(&c).await;
    assert_eq!(log(&root, "w", &i, "a", "stdout").await.1, "first\n");
    assert_eq!(log(&root, "w", &i, "b", "stdout").await.1, "second\n");
    // Refused once; the worker remembers, and the next end goes without them.
    let ends = client.0.ends.lock().unwrap().clone();
    assert_eq!(ends.len(), 1, "{ends:?}");
    c.stop().await;
}

#[tokio::test]
async fn a_log_whose_sending_went_unanswered_ends_with_a_chunk_of_its_own() {
    // The first line is sent while the job sleeps, and lands, but its answer is lost: the
    // master may hold more than the worker knows, so the log's end goes alone (the master
    // adds what is new), not with the run's end (whose commit would leave it out whole).
    let yaml = "workflows:\n  w:\n    jobs:\n      say: {command: 'echo a; sleep 1.2; echo b'}\n";
    let (c, client) = recorded_cluster(yaml, false, true).await;
    let (root, i, _empty) = ran_and_host_gone(&c).await;
    assert_eq!(log(&root, "w", &i, "say", "stdout").await.1, "a\nb\n");
    let sent = client.0.sent.lock().unwrap().clone();
    assert!(
        sent.iter()
            .any(|r| text(std::slice::from_ref(r), "stdout") == "a\n"),
        "a sending went unanswered: {sent:?}"
    );
    let ends = client.0.ends.lock().unwrap().concat();
    assert!(
        text(&ends, "stdout").is_empty(),
        "the end carried none of that log: {ends:?}"
    );
    c.stop().await;
}

#[tokio::test]
async fn the_master_stores_an_ends_logs_only_with_the_end_of_the_job_they_belong_to() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("pinball.db").display());
    let options = MasterOptions::new(pinball::modes::naming());
    let master = Master::start_with(storage::open(&url).unwrap(), "default", options).await;
    let held = |name: &str| Token {
        owner: Some("b_1_100_0".into()),
        expiration_time: Some(now() + 600),
        ..Token::new(name, Some("{}".into()))
    };
    let job = "/workflow/w/1/job/runnable/say";
    let token = master
        .modify(ModifyRequest::update(vec![
            held(job),
            held("/workflow/w/1/job/runnable/other"),
        ]))
        .await
        .unwrap()
        .updates
        .remove(0);
    let tail = |kind: &str, bytes: &[u8]| LogRequest {
        workflow: "w".into(),
        instance: "1".into(),
        job: "say".into(),
        execution: 0,
        kind: kind.into(),
        offset: 0,
        data: base64::engine::general_purpose::STANDARD.encode(bytes),
        host: "b".into(),
        owner: "b_1_100_0".into(),
    };
    let end = |version: Option<i64>, logs: Vec<LogRequest>| ModifyRequest {
        updates: vec![Token {
            version,
            owner: None,
            expiration_time: None,
            ..token.clone()
        }],
        logs,
        ..Default::default()
    };
    let store = storage::open(&url).unwrap();
    let stored = |kind: &'static str| {
        let store = &store;
        async move {
            let key = LogKey {
                name: "/workflow/w/1/say",
                execution: 0,
                kind,
            };
            store
                .log_extent("default", key)
                .await
                .unwrap()
                .map(|e| e.size)
        }
    };
    let v = token.version;
    let refused = [
        // Another job's end.
        ModifyRequest {
            logs: vec![LogRequest {
                job: "other".into(),
                ..tail("stdout", b"x")
            }],
            ..end(v, vec![])
        },
        // An end that lost its race: none of its logs is stored.
        end(v.map(|v| v - 1), vec![tail("stdout", b"x")]),
        // Sent as another worker.
        end(
            v,
            vec![LogRequest {
                owner: "c_1_200_0".into(),
                ..tail("stdout", b"x")
            }],
        ),
        // Over the bound, or a log named twice.
        end(v, vec![tail("stdout", &vec![b'x'; 64 * 1024 + 1])]),
        end(v, vec![tail("stdout", b"x"), tail("stdout", b"y")]),
    ];
    for req in refused {
        let e = master.modify(req.clone()).await.unwrap_err();
        assert!(
            matches!(
                e,
                MasterError::InputError(_)
                    | MasterError::VersionConflict(_)
                    | MasterError::Forbidden(_)
            ),
            "{e}"
        );
        assert_eq!(stored("stdout").await, None, "{e}: nothing stored");
    }
    // A sending of the log whose answer was lost: the end carries the same bytes again.
    master.append_log(tail("stdout", b"hello\n")).await.unwrap();
    let answer = master
        .modify(end(
            v,
            vec![tail("stdout", b"hello\n"), tail("stderr", b"careful\n")],
        ))
        .await
        .unwrap();
    assert_eq!(answer.updates[0].owner, None, "the end is committed");
    assert_eq!(
        (stored("stdout").await, stored("stderr").await),
        (Some(6), Some(8)),
        "each byte once"
    );
}
