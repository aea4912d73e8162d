//! The durable outbox with real SMTP servers (aiosmtpd) and real workers: every email of
//! PINBALL_SPEC §10.1 at a STARTTLS server with AUTH, a server down for 20 s, a server that
//! never answers, three worker processes ending 25 instances at once, and a master (and the
//! worker) SIGKILLed between a job's failure and the send. Every message is read back with a
//! strict parser.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use pinball::config::Secret;
use pinball::email::{Mailer, Outgoing, Security};
use pinball::master::MasterClient;
use pinball::token::name::OUTBOX_PREFIX;
use pinball::workflow::worker::{WorkerSettings, run_workers};
use tokio::sync::watch;

use crate::helpers::*;

const UI: &str = "http://pinball.example.com:8080";

/// A local relay: no TLS, no AUTH.
fn plain() -> ServerOptions<'static> {
    ServerOptions {
        tls: ServerTls::None,
        auth: None,
        mechanisms: "PLAIN,LOGIN",
        reject: &[],
    }
}

/// A mailer for a local relay on `port` (no TLS, no credentials).
fn relay(port: u16) -> Mailer {
    Mailer {
        host: "127.0.0.1".into(),
        port,
        from: "Pinball <pinball@example.com>".into(),
        timeout: Duration::from_secs(2),
        ..Mailer::default()
    }
}

async fn outbox(client: &dyn MasterClient) -> Vec<Outgoing> {
    client
        .query_prefix(OUTBOX_PREFIX)
        .await
        .unwrap()
        .iter()
        .map(|t| Outgoing::from_token(t).expect("outbox tokens hold emails"))
        .collect()
}

/// Every envelope the server took, as (recipient, message), each message checked by a strict
/// parser.
fn delivered(server: &RealSmtp) -> Vec<(String, Parsed)> {
    server
        .received()
        .iter()
        .flat_map(|r| {
            let parsed = well_formed(&r.raw);
            r.to.iter()
                .map(move |to| (to.clone(), parsed.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// No recipient got one message (Message-ID) twice.
fn assert_no_duplicates(got: &[(String, Parsed)]) {
    let mut seen = BTreeSet::new();
    for (to, m) in got {
        assert!(
            seen.insert((to.clone(), m.message_id.clone())),
            "{to} got {} ({}) twice",
            m.subject,
            m.message_id
        );
    }
}

/// The server got, each exactly once, the failure of `job` (to dev@ and, as the instance's first,
/// ops@) and the instance's end (to ops@).
fn assert_failure_and_end_once(server: &RealSmtp, w: &str, job: &str, code: i32) {
    let got = delivered(server);
    assert_no_duplicates(&got);
    let mut subjects: Vec<(String, String)> = got
        .iter()
        .map(|(to, m)| (to.clone(), m.subject.clone()))
        .collect();
    subjects.sort();
    let failure = format!("Workflow {w}'s job {job} finished with exit code {code}");
    let pair = |to: &str, s: &str| (to.to_owned(), s.to_owned());
    assert_eq!(
        subjects,
        [
            pair("dev@example.com", &failure),
            pair("ops@example.com", &format!("FAILURE for workflow {w}")),
            pair("ops@example.com", &failure),
        ]
    );
}

/// Starts an instance of `w` with `pinball util` as a process.
async fn util_start(cfg: &str, w: &str, dir: &std::path::Path) -> String {
    let out = pinball_out(&["-c", cfg, "util", "-f", "-w", w, "start"], dir).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    started_instance(&stdout)
}

#[tokio::test]
async fn every_email_of_the_spec_arrives_at_a_starttls_server_with_its_table_and_links() {
    let Some(server) = RealSmtp::start(
        "outbox::every_email_of_the_spec",
        ServerOptions {
            tls: ServerTls::StartTls,
            auth: Some(("pinball", "s3cret")),
            mechanisms: "PLAIN,LOGIN",
            reject: &[],
        },
    )
    .await
    else {
        return;
    };
    let mailer = Mailer {
        host: "localhost".into(),
        port: server.port,
        user: "pinball".into(),
        pass: Secret("s3cret".into()),
        from: "Pinball <pinball@example.com>".into(),
        security: Security::Required,
        ca_file: Some(server.cert()),
        ..Mailer::default()
    };
    // Scheduled every second with one instance at a time: the second occurrence finds one
    // running (too many); the job runs past its warn timeout, then fails.
    let yaml = "workflows:\n  tls:\n    notify_emails: ['Ops Team <ops@example.com>']\n    schedule: {recurrence: 1S, overrun_policy: START_NEW, max_running_instances: 1}\n    jobs:\n      slow: {command: 'echo working; sleep 3; exit 4', warn_timeout_sec: 1, emails: [dev@example.com]}\n";
    let c = cluster(yaml, 0, 0).await;
    let (stop, stopped) = watch::channel(false);
    let s = WorkerSettings {
        mailer: Some(mailer.clone()),
        ui_link: UI.into(),
        ..settings(c.logs.path(), 0)
    };
    let workers = tokio::spawn(run_workers(
        Arc::new(c.client.clone()),
        s,
        2,
        stopped.clone(),
    ));
    let scheduler = tokio::spawn(scheduler_for(&c, Some(mailer), UI).run(stopped));
    let subjects = [
        "Workflow tls's job slow exceeded timeout",
        "Workflow tls's job slow finished with exit code 4",
        "FAILURE for workflow tls",
        "Too many (1) instances running for workflow tls !",
    ];
    wait_until(
        Duration::from_secs(60),
        "each email of §10.1 arrives",
        || async {
            let got = delivered(&server);
            subjects
                .iter()
                .all(|s| got.iter().any(|(_, m)| m.subject == *s))
        },
    )
    .await;
    let _ = stop.send(true);
    workers.await.unwrap();
    scheduler.await.unwrap();
    for r in server.received() {
        assert!(r.tls && r.auth, "over TLS, authenticated: {:?}", r.to);
    }
    let got = delivered(&server);
    assert_no_duplicates(&got);
    let first = |subject: &str| {
        got.iter()
            .find(|(_, m)| m.subject == subject)
            .map(|(_, m)| m.clone())
            .unwrap()
    };
    let to_of = |subject: &str, text: &str| -> BTreeSet<String> {
        got.iter()
            .filter(|(_, m)| m.subject == subject && m.text == text)
            .map(|(to, _)| to.clone())
            .collect()
    };
    let recipients = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();

    let failure = first(subjects[1]);
    assert_eq!(
        to_of(subjects[1], &failure.text),
        recipients(&["dev@example.com", "ops@example.com"]),
        "the job's addresses and, for the instance's first failure, the workflow's"
    );
    let html = failure.html.as_deref().expect("an HTML alternative");
    for needed in [
        "<th align=\"left\">Exit code</th>",
        "color:#cf222e\">4</strong>",
        "log_type=stdout",
        "log_type=stderr",
        "echo working; sleep 3; exit 4",
        &format!("{UI}/instances/?workflow=tls"),
        &format!("{UI}/executions/?workflow=tls&#38;instance="),
    ] {
        assert!(html.contains(needed), "{needed:?} in {html}");
    }
    assert!(
        failure.text.contains("with exit code 4"),
        "{}",
        failure.text
    );
    assert!(
        failure
            .text
            .contains(&format!("{UI}/file/?workflow=tls&instance="))
    );

    let warning = first(subjects[0]);
    assert_eq!(
        to_of(subjects[0], &warning.text),
        recipients(&["dev@example.com", "ops@example.com"])
    );
    assert!(warning.text.contains("past its warn timeout of 1 s"));
    assert!(
        !warning.html.unwrap().contains("Exit code"),
        "no exit code yet"
    );

    let end = first(subjects[2]);
    assert_eq!(
        to_of(subjects[2], &end.text),
        recipients(&["ops@example.com"])
    );
    let end_html = end.html.expect("an HTML alternative");
    assert!(end_html.contains("<th align=\"left\">Last start</th>"));
    assert!(end_html.contains("color:#cf222e\">FAILURE</strong>"));
    assert!(end.text.contains("with status FAILURE."));

    let too_many = first(subjects[3]);
    assert!(too_many.html.is_none(), "text only, as the spec has it");
    assert!(too_many.text.contains("reaching the limit of 1"));
    assert!(
        too_many
            .text
            .contains(&format!("{UI}/instances/?workflow=tls"))
    );
    c.stop().await;
}

#[tokio::test]
async fn an_email_recorded_while_the_server_is_down_for_20_s_arrives_once_it_is_up() {
    if std::env::var("PINBALL_AIOSMTPD_PYTHON").is_err() {
        crate::helpers::skipped("(outbox::down_for_20_s): PINBALL_AIOSMTPD_PYTHON is not set");
        return;
    }
    let port = free_port(); // nothing listens there yet: every try is refused
    let yaml =
        "workflows:\n  down:\n    jobs:\n      a: {command: 'exit 5', emails: [dev@example.com]}\n";
    let c = cluster(yaml, 0, 0).await;
    let (stop, stopped) = watch::channel(false);
    let s = WorkerSettings {
        mailer: Some(relay(port)),
        ..settings(c.logs.path(), 0)
    };
    let workers = tokio::spawn(run_workers(Arc::new(c.client.clone()), s, 1, stopped));
    let i = c.start("down").await;
    c.archived("down", &i, Duration::from_secs(20)).await;
    wait_until(
        Duration::from_secs(20),
        "a try found the server down",
        || async {
            outbox(&c.client)
                .await
                .iter()
                .any(|m| m.attempts >= 1 && m.last_error.is_some())
        },
    )
    .await;
    let down_since = tokio::time::Instant::now();
    let pending = outbox(&c.client).await;
    assert_eq!(pending.len(), 1, "kept in the outbox: {pending:?}");
    assert_eq!(
        c.client.health().await.unwrap().emails_waiting,
        1,
        "health counts it"
    );
    // The outage under test: the server stays down for 20 s.
    tokio::time::sleep_until(down_since + Duration::from_secs(20)).await;
    let server = RealSmtp::start_on("outbox::down_for_20_s", plain(), port)
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(90),
        "the email arrives and leaves the outbox",
        || async { !server.received().is_empty() && outbox(&c.client).await.is_empty() },
    )
    .await;
    let got = delivered(&server);
    assert_eq!(got.len(), 1, "delivered once");
    assert_eq!(c.client.health().await.unwrap().emails_waiting, 0);
    assert_eq!(got[0].0, "dev@example.com");
    assert_eq!(
        got[0].1.subject,
        "Workflow down's job a finished with exit code 5"
    );
    let _ = stop.send(true);
    workers.await.unwrap();
    c.stop().await;
}

#[tokio::test]
async fn a_server_that_never_answers_holds_up_no_job_and_the_email_arrives_from_its_replacement() {
    if std::env::var("PINBALL_AIOSMTPD_PYTHON").is_err() {
        crate::helpers::skipped("(outbox::never_answers): PINBALL_AIOSMTPD_PYTHON is not set");
        return;
    }
    // Takes connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let tries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counting = tries.clone();
    let hang = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            counting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(conn);
        }
    });
    let yaml = "workflows:\n  hung:\n    notify_emails: [ops@example.com]\n    jobs:\n      bad: {command: 'exit 5', emails: [dev@example.com]}\n      one: {command: 'true'}\n      two: {command: 'true', depends_on: [one]}\n      three: {command: 'true', depends_on: [two]}\n";
    let c = cluster(yaml, 0, 0).await;
    let (stop, stopped) = watch::channel(false);
    let s = WorkerSettings {
        mailer: Some(relay(port)),
        ..settings(c.logs.path(), 0)
    };
    let workers = tokio::spawn(run_workers(Arc::new(c.client.clone()), s, 2, stopped));
    let i = c.start("hung").await;
    c.archived("hung", &i, Duration::from_secs(30)).await;
    let jobs = c.jobs("hung", &i).await;
    for j in ["one", "two", "three"] {
        assert_eq!(
            jobs[j].job.history[0].exit_code,
            Some(0),
            "{j} ran to its end"
        );
    }
    // The instance ended while its emails still wait: no job waited for the SMTP server.
    let pending = outbox(&c.client).await;
    assert_eq!(
        pending.len(),
        2,
        "the failure and the end wait: {pending:?}"
    );
    wait_until(
        Duration::from_secs(30),
        "a try timed out against the silent server",
        || async {
            outbox(&c.client)
                .await
                .iter()
                .any(|m| m.last_error.is_some())
        },
    )
    .await;
    assert!(tries.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    hang.abort();
    let _ = hang.await;
    let server = RealSmtp::start_on("outbox::never_answers", plain(), port)
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(120),
        "both emails arrive from the healthy server",
        || async { outbox(&c.client).await.is_empty() },
    )
    .await;
    assert_failure_and_end_once(&server, "hung", "bad", 5);
    let _ = stop.send(true);
    workers.await.unwrap();
    c.stop().await;
}

/// A worker process's configuration: the master at `master_port`, `slots` workers, emails
/// through the relay on `smtp_port`.
fn worker_config(dir: &std::path::Path, master_port: u16, slots: usize, smtp_port: u16) -> String {
    let path = dir.join(format!("workers-{master_port}.yaml"));
    std::fs::write(
        &path,
        format!(
            "master_port: {master_port}\nworkers: {slots}\nlease_sec: 3\nworker_poll_time_sec: 1\narchive_delay_sec: 0\nlocal_logs_dir_prefix: {}\ndefault_email: pinball@example.com\nsmtp_host: 127.0.0.1\nsmtp_port: {smtp_port}\nsmtp_timeout_sec: 2\nui_host: pinball.example.com\n",
            dir.display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn three_worker_processes_ending_25_instances_at_once_email_each_event_exactly_once() {
    let Some(server) = RealSmtp::start("outbox::three_worker_processes", plain()).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    // Both jobs of every instance wait for `go`, then fail at the same moment.
    let wait = format!("until [ -e {} ]; do sleep 0.2; done; exit 3", go.display());
    let yaml = format!(
        "workflows:\n  many:\n    notify_emails: [ops@example.com]\n    jobs:\n      a: {{command: '{wait}', emails: [a@example.com]}}\n      b: {{command: '{wait}', emails: [b@example.com]}}\n"
    );
    let c = cluster(&yaml, 0, 0).await;
    let cfg = worker_config(dir.path(), c.app.addr.port(), 17, server.port);
    let _workers: Vec<_> = (0..3)
        .map(|_| spawn_pinball(&["-c", &cfg, "-m", "workers"], dir.path()))
        .collect();
    let mut instances = BTreeSet::new();
    for _ in 0..25 {
        instances.insert(c.start("many").await);
    }
    wait_until(Duration::from_secs(90), "all 50 jobs run", || async {
        let runnable = c
            .client
            .query_prefix("/workflow/many/")
            .await
            .unwrap()
            .into_iter()
            .filter(|t| t.name.contains("/job/runnable/") && t.owner.is_some())
            .count();
        runnable == 50
    })
    .await;
    std::fs::write(&go, "").unwrap();
    let released = std::time::Instant::now();
    wait_until(
        Duration::from_secs(120),
        "every instance archived and every email sent",
        || async {
            c.client
                .query_prefix("/workflow/many/")
                .await
                .unwrap()
                .is_empty()
                && outbox(&c.client).await.is_empty()
        },
    )
    .await;
    eprintln!(
        "figure: 50 failures in 25 instances, their 100 envelopes delivered {:.1} s after the release",
        released.elapsed().as_secs_f64()
    );
    let got = delivered(&server);
    assert_no_duplicates(&got);
    // (recipient, subject) -> the instances it was about.
    let mut about: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (to, m) in &got {
        let instance = m
            .text
            .split_whitespace()
            .skip_while(|w| *w != "instance")
            .nth(1)
            .unwrap_or_else(|| panic!("no instance in {}", m.text))
            .trim_end_matches(':')
            .to_owned();
        about
            .entry((to.clone(), m.subject.clone()))
            .or_default()
            .push(instance);
    }
    let every = |to: &str, subject: &str| {
        let mut seen = about
            .get(&(to.to_owned(), subject.to_owned()))
            .cloned()
            .unwrap_or_default();
        seen.sort();
        seen
    };
    let all: Vec<String> = instances.iter().cloned().collect();
    let failure = |j: &str| format!("Workflow many's job {j} finished with exit code 3");
    assert_eq!(
        every("a@example.com", &failure("a")),
        all,
        "a's owner: each instance once"
    );
    assert_eq!(
        every("b@example.com", &failure("b")),
        all,
        "b's owner: each instance once"
    );
    assert_eq!(every("ops@example.com", "FAILURE for workflow many"), all);
    // The workflow's addresses get each instance's first failure, a's or b's, once.
    let mut first = every("ops@example.com", &failure("a"));
    first.extend(every("ops@example.com", &failure("b")));
    first.sort();
    assert_eq!(
        first, all,
        "one first-failure email per instance to the workflow's owners"
    );
    assert_eq!(got.len(), 100, "nothing else was sent");
    c.stop().await;
}

#[tokio::test]
async fn a_master_killed_between_a_failure_and_its_send_still_delivers_the_email_once() {
    if std::env::var("PINBALL_AIOSMTPD_PYTHON").is_err() {
        crate::helpers::skipped("(outbox::master_killed): PINBALL_AIOSMTPD_PYTHON is not set");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (master_port, smtp_port) = (free_port(), free_port());
    let master_cfg = dir.path().join("master.yaml");
    std::fs::write(
        &master_cfg,
        format!(
            "database_url: sqlite://{}\nmaster_port: {master_port}\n",
            dir.path().join("pinball.db").display()
        ),
    )
    .unwrap();
    let master_cfg = master_cfg.display().to_string();
    let mut master = spawn_pinball(&["-c", &master_cfg, "-m", "master"], dir.path());
    wait_until(Duration::from_secs(60), "the master is ready", || {
        is_ready(master_port)
    })
    .await;
    let client = pinball::master::HttpMasterClient::new("127.0.0.1", master_port, quick_policy());
    let yaml = "workflows:\n  crash:\n    notify_emails: [ops@example.com]\n    jobs:\n      a: {command: 'exit 6', emails: [dev@example.com]}\n";
    pinball::workflow::definition::import(
        &client,
        &pinball::parser::parse_yaml(yaml, "t.yaml").unwrap(),
        None,
        false,
    )
    .await
    .unwrap();
    // Nothing listens on smtp_port yet: the email stays in the outbox.
    let workers_cfg = worker_config(dir.path(), master_port, 1, smtp_port);
    let mut worker = spawn_pinball(&["-c", &workers_cfg, "-m", "workers"], dir.path());
    util_start(&workers_cfg, "crash", dir.path()).await;
    wait_until(
        Duration::from_secs(30),
        "the failure and the end are in the outbox",
        || async { outbox(&client).await.len() == 2 },
    )
    .await;
    // Both die: the master that holds the outbox and the worker that would send it.
    worker.start_kill().unwrap();
    worker.wait().await.unwrap();
    let _master = restart_master(&mut master, &master_cfg, dir.path(), master_port).await;
    assert_eq!(
        outbox(&client).await.len(),
        2,
        "the outbox survived the master"
    );
    let server = RealSmtp::start_on("outbox::master_killed", plain(), smtp_port)
        .await
        .unwrap();
    let _worker = spawn_pinball(&["-c", &workers_cfg, "-m", "workers"], dir.path());
    wait_until(
        Duration::from_secs(150),
        "a new worker delivers both emails",
        || async { outbox(&client).await.is_empty() },
    )
    .await;
    assert_failure_and_end_once(&server, "crash", "a", 6);
}

#[tokio::test]
async fn an_email_the_server_never_takes_is_given_up_after_email_give_up_sec() {
    if std::env::var("PINBALL_AIOSMTPD_PYTHON").is_err() {
        crate::helpers::skipped("(outbox::given_up): PINBALL_AIOSMTPD_PYTHON is not set");
        return;
    }
    let port = free_port(); // refused, every try
    let yaml =
        "workflows:\n  gone:\n    jobs:\n      a: {command: 'exit 7', emails: [dev@example.com]}\n";
    let c = cluster(yaml, 0, 0).await;
    let (stop, stopped) = watch::channel(false);
    let s = WorkerSettings {
        mailer: Some(Mailer {
            give_up: Duration::from_secs(2),
            ..relay(port)
        }),
        ..settings(c.logs.path(), 0)
    };
    let workers = tokio::spawn(run_workers(Arc::new(c.client.clone()), s, 1, stopped));
    let i = c.start("gone").await;
    c.archived("gone", &i, Duration::from_secs(20)).await;
    wait_until(
        Duration::from_secs(30),
        "the email is given up and leaves the outbox",
        || async { outbox(&c.client).await.is_empty() },
    )
    .await;
    // A server now would get nothing: the email is gone for good, not waiting.
    let server = RealSmtp::start_on("outbox::given_up", plain(), port)
        .await
        .unwrap();
    let _ = stop.send(true);
    workers.await.unwrap();
    assert!(
        server.received().is_empty(),
        "nothing was sent after the give-up"
    );
    c.stop().await;
}

#[tokio::test]
async fn the_outbox_writes_only_to_addresses_the_workflow_names() {
    if std::env::var("PINBALL_AIOSMTPD_PYTHON").is_err() {
        crate::helpers::skipped("(outbox::named_only): PINBALL_AIOSMTPD_PYTHON is not set");
        return;
    }
    let server = RealSmtp::start("outbox::named_only", plain())
        .await
        .unwrap();
    let yaml = "workflows:\n  named:\n    notify_emails: [ops@example.com]\n    jobs:\n      a: {command: 'true', emails: [dev@example.com]}\n";
    let c = cluster(yaml, 0, 0).await;
    // Emails forged into the outbox (a worker's token may write tokens): one to the
    // workflow's own addresses and a stranger, one for a workflow with no definition.
    let forged = |to: &[&str]| {
        Outgoing::new(
            to.iter().map(|s| s.to_string()).collect(),
            "Your password expired".into(),
            "Sign in at https://phish.example/".into(),
            None,
        )
    };
    c.client
        .modify(pinball::token::ModifyRequest::update(vec![
            forged(&[
                "ops@example.com",
                "victim@elsewhere.example",
                "DEV@example.com",
            ])
            .token(format!("{OUTBOX_PREFIX}failure/named/1/a/0"))
            .unwrap(),
            forged(&["victim@elsewhere.example"])
                .token(format!("{OUTBOX_PREFIX}end/undefined/1/1700000000000"))
                .unwrap(),
        ]))
        .await
        .unwrap();
    let (stop, stopped) = watch::channel(false);
    let s = WorkerSettings {
        mailer: Some(relay(server.port)),
        ..settings(c.logs.path(), 0)
    };
    let workers = tokio::spawn(run_workers(Arc::new(c.client.clone()), s, 1, stopped));
    wait_until(Duration::from_secs(30), "the outbox is empty", || async {
        outbox(&c.client).await.is_empty()
    })
    .await;
    let _ = stop.send(true);
    workers.await.unwrap();
    let to: BTreeSet<String> = delivered(&server).into_iter().map(|(r, _)| r).collect();
    assert_eq!(
        to,
        BTreeSet::from(["ops@example.com".to_string(), "DEV@example.com".to_string()]),
        "only the workflow's own addresses got mail"
    );
    c.stop().await;
}
