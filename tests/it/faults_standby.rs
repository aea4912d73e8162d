//! A standby master (issue 30), with real processes on MariaDB and PostgreSQL: a 300-job fan-out
//! and a schedule firing every two seconds go on while the leader is SIGKILLed three times (each
//! job's side record exactly once, each due time once, each write in flight either landed or
//! refused, never both); a leader cut off from its database stops serving and the standby takes
//! over without a moment of two leaders, and the old one never serves again; a leader cut off
//! from its clients keeps its lease (no flapping); two masters started at the same moment make
//! one leader.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pinball::master::client::RetryPolicy;
use pinball::master::{HttpMasterClient, MasterClient};
use pinball::token::{ModifyRequest, Token};

use crate::helpers::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A master's configuration: `url`, master `name`, listening on `port`, lease of 3 s.
fn master_config(dir: &Path, file: &str, url: &str, name: &str, port: u16) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(
        &path,
        format!(
            "database_url: {url}\nmaster_name: {name}\nmaster_port: {port}\nmaster_lease_sec: 3\n"
        ),
    )
    .unwrap();
    path
}

/// `/api/v1/health`'s `role` at `port` (`None`: no answer).
async fn role(port: u16) -> Option<String> {
    let answer = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/health"))
        .timeout(secs(2))
        .send()
        .await
        .ok()?;
    let health: serde_json::Value = answer.json().await.ok()?;
    health["role"].as_str().map(str::to_owned)
}

/// Which of `ports` is ready to serve (`/ready` 200), each checked once.
async fn ready_ones(ports: &[u16]) -> Vec<u16> {
    let mut out = Vec::new();
    for &p in ports {
        if ready(p).await.0 == 200 {
            out.push(p);
        }
    }
    out
}

/// Waits until exactly one of `ports` leads and is ready; its index.
async fn leader_of(ports: &[u16]) -> usize {
    let started = Instant::now();
    loop {
        let ready = ready_ones(ports).await;
        if let Some(i) = ports.iter().position(|p| ready == [*p]) {
            return i;
        }
        assert!(started.elapsed() < secs(30), "one master leads: {ready:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_fan_out_and_a_schedule_go_on_through_three_killed_leaders_on_mariadb() {
    if let Some(url) = mysql_url("standby::killed_leaders") {
        killed_leaders(&url).await;
    }
}

#[tokio::test]
async fn a_fan_out_and_a_schedule_go_on_through_three_killed_leaders_on_postgresql() {
    if let Some(url) = postgres_url("standby::killed_leaders") {
        killed_leaders(&url).await;
    }
}

/// The fan-out `fan` (`a`, 300 jobs after it, `z` after them) and `tick`, every second (each
/// occurrence run, even one a takeover delays past the next: `catchup`); each
/// job appends its name (a tick its logical time) to a file as its last act.
fn workflows(runs: &Path, ticks: &Path) -> String {
    let bs: Vec<String> = (1..=300).map(|k| format!("b{k:03}")).collect();
    let mut y = format!(
        "workflows:\n  fan:\n    jobs:\n      a: {{command: 'echo a >> {r}'}}\n",
        r = runs.display()
    );
    for b in &bs {
        y += &format!(
            "      {b}: {{command: 'sleep 0.3; echo $PINBALL_JOB >> {r}', depends_on: [a]}}\n",
            r = runs.display()
        );
    }
    y += &format!(
        "      z: {{command: 'echo z >> {r}', depends_on: [{}]}}\n",
        bs.join(", "),
        r = runs.display()
    );
    y += &format!(
        "  tick:\n    schedule: {{recurrence: 1S, overrun_policy: START_NEW, max_running_instances: 100, catchup: true}}\n    jobs:\n      t: {{command: 'echo $PINBALL_LOGICAL_TIME >> {}'}}\n",
        ticks.display()
    );
    y
}

async fn killed_leaders(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (runs, ticks) = (d.join("runs.txt"), d.join("ticks.txt"));
    std::fs::write(d.join("wf.yaml"), workflows(&runs, &ticks)).unwrap();
    let name = unique_master("standby");
    let ports = [free_port(), free_port()];
    let configs = [
        master_config(d, "a.yaml", url, &name, ports[0]),
        master_config(d, "b.yaml", url, &name, ports[1]),
    ];
    let shared = d.join("shared.yaml");
    std::fs::write(
        &shared,
        format!(
            "database_url: {url}\nmaster_name: {name}\nmaster_hosts: ['127.0.0.1:{}', '127.0.0.1:{}']\n\
             workers: 8\nworker_poll_time_sec: 1\nlease_sec: 4\narchive_delay_sec: 0\n\
             local_logs_dir_prefix: {}\nparser_params: {{workflows_config: {}}}\n",
            ports[0],
            ports[1],
            d.join("logs").display(),
            d.join("wf.yaml").display(),
        ),
    )
    .unwrap();
    let s = shared.to_str().unwrap();
    let mut masters = [Some(start_master_process(&configs[0]).await), None];
    masters[1] = Some(start_master_process(&configs[1]).await);
    assert_eq!(leader_of(&ports).await, 0, "the first master leads");
    assert_eq!(role(ports[1]).await.as_deref(), Some("standby"));
    let out = pinball_out(&["-c", s, "import", "-f"], d).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _workers = spawn_pinball(&["-c", s, "-m", "workers"], d);
    let mut scheduler = spawn_pinball(&["-c", s, "-m", "scheduler"], d);
    let out = pinball_out(&["-c", s, "util", "-f", "-w", "fan", "start"], d).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Three times: the leader is killed once the fan-out is under way; the standby takes over,
    // and the killed one comes back as the standby.
    let client = HttpMasterClient::of_hosts(
        ports.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
        RetryPolicy::default(),
    );
    // Writes in flight through the takeovers: each lands once or is refused, never both.
    let (stop_writes, stopped) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(in_flight(client.clone(), stopped));
    let mut takeovers = Vec::new();
    for round in 0..3 {
        let lines = |n: usize| {
            let runs = runs.clone();
            async move { std::fs::read_to_string(&runs).map_or(0, |t| t.lines().count()) > n }
        };
        wait_until(secs(60), "jobs run", || lines(20 + 80 * round)).await;
        // The schedule fires a few times under each leader.
        tokio::time::sleep(secs(2)).await;
        let was = leader_of(&ports).await;
        let mut killed = masters[was].take().unwrap();
        killed.child.kill().await.unwrap();
        let at = Instant::now();
        let now = leader_of(&ports).await;
        assert_ne!(now, was);
        let write = client
            .modify(ModifyRequest {
                updates: vec![Token::new(format!("/standby/round{round}"), None)],
                ..Default::default()
            })
            .await;
        takeovers.push(at.elapsed());
        write.expect("the new leader takes writes");
        masters[was] = Some(start_master_process(&configs[was]).await);
    }
    eprintln!("SIGKILL of the leader to the first acknowledged write by the next: {takeovers:?}");
    let _ = stop_writes.send(true);
    let (acked, refused) = writer.await.unwrap();
    let stored: std::collections::BTreeSet<String> = client
        .query_prefix("/inflight/")
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(
        acked.len() > 50,
        "writes went on ({} acknowledged)",
        acked.len()
    );
    for name in &acked {
        assert!(stored.contains(name), "{name} was acknowledged and is gone");
    }
    for name in &refused {
        assert!(!stored.contains(name), "{name} was refused and is there");
    }

    wait_until(secs(120), "the fan-out ends", || async {
        std::fs::read_to_string(&runs).is_ok_and(|t| t.lines().any(|l| l == "z"))
    })
    .await;
    scheduler.kill().await.unwrap();
    // Every tick started has run (a later one may have run before an earlier one).
    wait_until(secs(60), "the ticks started have run", || async {
        pinball::workflow::settle::running_instances(&client, &crate::helpers::wf("tick"))
            .await
            .is_ok_and(|r| r.is_empty())
    })
    .await;
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for line in std::fs::read_to_string(&runs).unwrap().lines() {
        *count.entry(line.to_owned()).or_default() += 1;
    }
    assert_eq!(count.len(), 302, "every job ran: {count:?}");
    let twice: Vec<_> = count.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "jobs run other than once: {twice:?}");
    // Every due time of the schedule once: the logical times a second apart, none twice, none
    // missed, across the takeovers.
    let ticks = std::fs::read_to_string(&ticks).unwrap_or_default();
    let mut due: Vec<jiff::Timestamp> = ticks.lines().map(|l| l.parse().unwrap()).collect();
    due.sort();
    assert!(
        due.len() >= 10,
        "the schedule fired through the takeovers: {ticks}"
    );
    for pair in due.windows(2) {
        assert_eq!(
            (pair[1] - pair[0]).get_seconds(),
            1,
            "due times twice or missed: {ticks}"
        );
    }
}

/// Inserts `/inflight/N` one after another through `client` until told to stop: the names
/// acknowledged, and those refused as not committed.
async fn in_flight(
    client: HttpMasterClient,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> (Vec<String>, Vec<String>) {
    let (mut acked, mut refused) = (Vec::new(), Vec::new());
    for n in 0.. {
        if *stop.borrow_and_update() {
            break;
        }
        let name = format!("/inflight/{n:06}");
        let req = ModifyRequest {
            updates: vec![Token::new(&name, None)],
            ..Default::default()
        };
        match client.modify(req).await {
            Ok(_) => acked.push(name),
            Err(e) if e.to_string().contains("not committed") => refused.push(name),
            Err(_) => {}
        }
    }
    (acked, refused)
}

#[tokio::test]
async fn one_leader_at_a_time_when_the_leader_loses_its_database_or_its_clients_on_mariadb() {
    if let Some(url) = mysql_url("standby::cut_off") {
        cut_off(&url).await;
    }
}

#[tokio::test]
async fn one_leader_at_a_time_when_the_leader_loses_its_database_or_its_clients_on_postgresql() {
    if let Some(url) = postgres_url("standby::cut_off") {
        cut_off(&url).await;
    }
}

/// `url` with its `host:port` replaced by `127.0.0.1:port`.
fn through(url: &str, port: u16) -> String {
    let (head, rest) = url.split_once('@').unwrap();
    let db = rest.split_once('/').unwrap().1;
    format!("{head}@127.0.0.1:{port}/{db}")
}

async fn cut_off(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let name = unique_master("cut");
    // Master A reaches the database through a proxy the test cuts; B directly.
    let host = url.split_once('@').unwrap().1.split_once('/').unwrap().0;
    let target = tokio::net::lookup_host(host).await.unwrap().next().unwrap();
    let db_proxy = Proxy::start(target).await;
    let ports = [free_port(), free_port()];
    let a_cfg = master_config(d, "a.yaml", &through(url, db_proxy.port), &name, ports[0]);
    let b_cfg = master_config(d, "b.yaml", url, &name, ports[1]);
    let mut a = start_master_process(&a_cfg).await;
    let _b = start_master_process(&b_cfg).await;
    assert_eq!(leader_of(&ports).await, 0);

    // The reverse first: A cut off from its clients (they reach it through a proxy), not from
    // the database. It keeps its lease: B stands by all along.
    let a_addr = tokio::net::lookup_host(("127.0.0.1", ports[0]))
        .await
        .unwrap()
        .next()
        .unwrap();
    let client_proxy = Proxy::start(a_addr).await;
    let client = HttpMasterClient::of_hosts(
        vec![
            format!("127.0.0.1:{}", client_proxy.port),
            format!("127.0.0.1:{}", ports[1]),
        ],
        RetryPolicy {
            attempts: 1,
            timeout: secs(5),
            ..Default::default()
        },
    );
    let write = |n: &str| {
        client.modify(ModifyRequest {
            updates: vec![Token::new(format!("/cut/{n}"), None)],
            ..Default::default()
        })
    };
    write("before").await.unwrap();
    client_proxy.cut();
    let cut = Instant::now();
    while cut.elapsed() < secs(7) {
        assert!(
            write("lost").await.is_err(),
            "no master serves the cut-off client"
        );
        assert_eq!(
            role(ports[1]).await.as_deref(),
            Some("standby"),
            "no flapping"
        );
        assert_eq!(ready_ones(&ports).await, [ports[0]]);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    client_proxy.restore();
    write("after_clients").await.unwrap();

    // A cut off from its database: it stops serving within 0.7 of its lease, and B takes over
    // when the lease has run out; never both at once.
    db_proxy.cut();
    let cut = Instant::now();
    let mut seen_none = false;
    loop {
        let ready = ready_ones(&ports).await;
        assert!(ready.len() <= 1, "two masters served at once: {ready:?}");
        seen_none |= ready.is_empty();
        if ready == [ports[1]] {
            break;
        }
        assert!(cut.elapsed() < secs(30), "B never took over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "a leader cut off from its database: the standby served {:?} after the cut",
        cut.elapsed()
    );
    assert!(seen_none, "A stopped serving before B began");
    write("after_takeover").await.unwrap();
    // A gets its database back: its lease is gone, and it stands by again in the same
    // process (a `-m master` alone), naming B.
    db_proxy.restore();
    let standing = format!("standby; the leader is 127.0.0.1:{}", ports[1]);
    wait_until(secs(30), "the deposed master stands by again", || async {
        ready(ports[0]).await.1["reason"] == standing.as_str()
    })
    .await;
    assert!(
        a.child.try_wait().unwrap().is_none(),
        "it stands by, it did not exit"
    );
    assert_eq!(ready_ones(&ports).await, [ports[1]]);
    let kept: Vec<String> = client
        .query_prefix("/cut/")
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(
        kept,
        ["/cut/after_clients", "/cut/after_takeover", "/cut/before"]
    );
}

#[tokio::test]
async fn two_masters_started_at_the_same_moment_make_one_leader() {
    for url in [
        mysql_url("standby::same_moment"),
        postgres_url("standby::same_moment"),
    ]
    .into_iter()
    .flatten()
    {
        let dir = tempfile::tempdir().unwrap();
        let name = unique_master("twin");
        let ports = [free_port(), free_port()];
        let a = master_config(dir.path(), "a.yaml", &url, &name, ports[0]);
        let b = master_config(dir.path(), "b.yaml", &url, &name, ports[1]);
        let (a, b) = tokio::join!(start_master_process(&a), start_master_process(&b));
        let first = leader_of(&ports).await;
        let other = ports[1 - first];
        assert_eq!(role(other).await.as_deref(), Some("standby"), "{url}");
        drop((a, b));
    }
}
