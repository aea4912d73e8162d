//! Three hosts on this machine: network namespaces joined to this one by veth pairs. Host A
//! (this namespace) runs the master, the UI and the database; hosts B and C (namespaces with
//! their own host names) run `-m workers` and reach the master only by A's address on their
//! link, with a worker's API token. A 300-job workflow runs on both; the UI on A shows the
//! logs of jobs that ran on B and C, live and after B is gone; C's worker is SIGKILLed mid-job
//! and the job completes on B; a `pool: heavy` job runs only on the host serving that pool.
//!
//! Needs root (namespaces, veth pairs, host names); `.ci/run` runs as root. Elsewhere the test
//! says why it is skipped.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use pinball::config::Secret;
use pinball::master::{HttpMasterClient, MasterClient};
use pinball::token::name;
use pinball::workflow::instance::JobToken;

use crate::helpers::netns::{Hosts, hosts_allowed, spawn_on, worker_config};
use crate::helpers::*;

const LONG: Duration = Duration::from_secs(120);

fn wide_workflows(gate: &Path) -> String {
    let mut y = format!(
        "workflows:\n  victim:\n    jobs:\n      v: {{command: 'echo started on $(hostname); while [ ! -e {} ]; do sleep 0.1; done; echo ended on $(hostname)'}}\n  wide:\n    jobs:\n      first: {{command: 'echo first on $(hostname)'}}\n      heavy: {{command: 'echo heavy on $(hostname)', pool: heavy, depends_on: [first]}}\n",
        gate.display()
    );
    let middle: Vec<String> = (0..297).map(|k| format!("j{k}")).collect();
    for j in &middle {
        y.push_str(&format!(
            "      {j}: {{command: 'echo {j} on $(hostname)', depends_on: [first]}}\n"
        ));
    }
    y.push_str(&format!(
        "      last: {{command: 'true', depends_on: [heavy, {}]}}\n",
        middle.join(", ")
    ));
    y
}

/// The jobs of an instance, live or archived, through the master.
async fn jobs(c: &HttpMasterClient, w: &str, i: &str) -> BTreeMap<String, JobToken> {
    c.query_prefix(&name::job_prefix(&wf(w), &inst(i)))
        .await
        .unwrap()
        .into_iter()
        .map(|t| JobToken::parse(t).unwrap())
        .map(|jt| (jt.job.name.to_string(), jt))
        .collect()
}

/// The log through the UI's read API: (running, text).
async fn ui_log(ui: &str, w: &str, i: &str, job: &str, n: usize) -> (bool, String) {
    let r = reqwest::get(format!(
        "{ui}/api/v1/workflows/{w}/instances/{i}/jobs/{job}/executions/{n}/logs/stdout"
    ))
    .await
    .unwrap();
    let running = r.headers().get("x-log-running").is_some_and(|v| v == "1");
    (running, r.text().await.unwrap_or_default())
}

#[tokio::test]
async fn workers_on_two_other_hosts_run_a_workflow_whose_logs_the_ui_shows() {
    if let Err(why) = hosts_allowed() {
        crate::helpers::skipped(&format!(
            "the three-host test cannot build hosts here: {why}"
        ));
        return;
    }
    let mut hosts = Hosts::default();
    let b = hosts.add(1).unwrap();
    let c = hosts.add(2).unwrap();
    let top = tempfile::tempdir().unwrap();
    let (a_dir, b_dir, c_dir) = (
        top.path().join("a"),
        top.path().join("b"),
        top.path().join("c"),
    );
    for d in [&a_dir, &b_dir, &c_dir] {
        std::fs::create_dir_all(d).unwrap();
    }
    let gate = top.path().join("go");
    std::fs::write(a_dir.join("workflows.yaml"), wide_workflows(&gate)).unwrap();
    let database = match mysql_url("the three-host test") {
        Some(url) => url,
        None => format!("sqlite://{}", a_dir.join("pinball.db").display()),
    };
    let (port, ui_port) = (free_port(), free_port());
    std::fs::write(
        a_dir.join("pinball.yaml"),
        format!(
            "database_url: {database}\nmaster_name: {}\nmaster_bind: 0.0.0.0\nmaster_port: {port}\nui_port: {ui_port}\napi_token: {OPERATOR}\nlease_sec: 3\narchive_delay_sec: 600\nlocal_logs_dir_prefix: {}\nparser_params:\n  workflows_config: workflows.yaml\n{}",
            unique_master("hosts"),
            a_dir.join("logs").display(),
            api_tokens_yaml()
        ),
    )
    .unwrap();
    // Host A: master and UI.
    let _master = spawn_pinball(&["-m", "master"], &a_dir);
    let _ui = spawn_pinball(&["-m", "ui"], &a_dir);
    let client = HttpMasterClient::new("127.0.0.1", port, quick_policy())
        .with_token(Some(&Secret(OPERATOR.into())));
    wait_until(LONG, "the master on A serves", || async {
        client.health().await.is_ok()
    })
    .await;
    let import = pinball_out(&["import", "-f", "reschedule"], &a_dir).await;
    assert_eq!(import.status.code(), Some(0), "{import:?}");
    let ui = format!("http://127.0.0.1:{ui_port}");
    let start = |w: &'static str| {
        let a_dir = a_dir.clone();
        async move {
            let out = pinball_out(&["util", "-f", "-w", w, "start"], &a_dir).await;
            started_instance(&String::from_utf8_lossy(&out.stdout))
        }
    };

    // C serves default and heavy; B only default. Each reaches A by its own link only.
    let quick = "lease_sec: 3\nworker_poll_time_sec: 1\n";
    let b_cfg = worker_config(
        &b_dir,
        (&b.a_addr, port, WORKER),
        4,
        &format!("{quick}pools: [default]\n"),
    );
    let c_cfg = worker_config(
        &c_dir,
        (&c.a_addr, port, WORKER),
        4,
        &format!("{quick}pools: [default, heavy]\n"),
    );
    let c_args = ["-c", c_cfg.as_str(), "-m", "workers"];
    let b_args = ["-c", b_cfg.as_str(), "-m", "workers"];
    let mut c_proc = spawn_on(&c, "host-c", &c_dir, &c_args);

    // A job running on C: its log is live in the UI on A.
    let victim = start("victim").await;
    wait_until(LONG, "the victim job runs on C", || async {
        jobs(&client, "victim", &victim).await["v"]
            .job
            .history
            .last()
            .is_some_and(|r| r.host == "host-c" && r.end_time.is_none())
    })
    .await;
    wait_until(LONG, "the UI on A shows C's log while it runs", || async {
        ui_log(&ui, "victim", &victim, "v", 0).await == (true, "started on host-c\n".into())
    })
    .await;
    // C dies mid-job; B comes up and completes it once C's lease has run out.
    c_proc.start_kill().unwrap();
    c_proc.wait().await.unwrap();
    let mut b_proc = spawn_on(&b, "host-b", &b_dir, &b_args);
    std::fs::write(&gate, "").unwrap();
    wait_until(LONG, "the victim job completes on B", || async {
        jobs(&client, "victim", &victim).await["v"]
            .job
            .history
            .last()
            .is_some_and(|r| r.host == "host-b" && r.exit_code == Some(0))
    })
    .await;
    let v = jobs(&client, "victim", &victim)
        .await
        .remove("v")
        .unwrap()
        .job;
    assert!(
        v.history[0].lost.is_some() && v.history[0].host == "host-c",
        "the execution on C is recorded as lost: {:?}",
        v.history[0]
    );

    // 300 jobs on both hosts; the heavy one on C alone.
    let mut c_proc = spawn_on(&c, "host-c", &c_dir, &c_args);
    let wide = start("wide").await;
    wait_until(LONG, "the 300 jobs end", || async {
        let js = jobs(&client, "wide", &wide).await;
        js.len() == 300
            && js
                .values()
                .all(|j| j.job.history.last().is_some_and(|r| r.exit_code.is_some()))
    })
    .await;
    let js = jobs(&client, "wide", &wide).await;
    let mut by_host: BTreeMap<String, usize> = BTreeMap::new();
    for (j, jt) in &js {
        let r = jt.job.history.last().unwrap();
        assert_eq!(r.exit_code, Some(0), "{j}: {r:?}");
        *by_host.entry(r.host.clone()).or_default() += 1;
    }
    eprintln!("jobs by host: {by_host:?}");
    assert!(
        by_host.get("host-b").is_some_and(|n| *n > 0)
            && by_host.get("host-c").is_some_and(|n| *n > 0),
        "both worker hosts ran jobs: {by_host:?}"
    );
    assert_eq!(
        js["heavy"].job.history.last().unwrap().host,
        "host-c",
        "the heavy job ran on the host serving its pool"
    );
    let on = |host: &str| {
        js.iter()
            .find(|(j, jt)| j.starts_with('j') && jt.job.history.last().unwrap().host == host)
            .map(|(j, _)| j.clone())
            .unwrap()
    };
    let (on_b, on_c) = (on("host-b"), on("host-c"));
    for (j, host) in [(&on_b, "host-b"), (&on_c, "host-c")] {
        assert_eq!(
            ui_log(&ui, "wide", &wide, j, 0).await,
            (false, format!("{j} on {host}\n")),
            "the UI on A shows the log of a job that ran on {host}"
        );
    }
    // B is gone, with its disk: the UI still shows what ran there.
    b_proc.start_kill().unwrap();
    b_proc.wait().await.unwrap();
    std::fs::remove_dir_all(b_dir.join("logs")).unwrap();
    assert_eq!(
        ui_log(&ui, "wide", &wide, &on_b, 0).await,
        (false, format!("{on_b} on host-b\n"))
    );
    assert_eq!(
        ui_log(&ui, "victim", &victim, "v", 1).await.1,
        "started on host-b\nended on host-b\n"
    );
    let _ = c_proc.start_kill();
    drop(hosts);
}
