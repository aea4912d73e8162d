//! The truth while the database is broken, on a MariaDB and a PostgreSQL server of the test's
//! own: stopped for 30 s and killed -9 under a steady load of writes, with a master and a UI as
//! real processes. While it is down, `/ready` says so within a second, health, reads and the UI
//! answer at once (the timings are printed; reads are served from memory until the master's
//! lease has gone unrenewed past 0.7 of its length, then refused, since another master could
//! take over), and writes are refused with UNAVAILABLE; when it is back the master takes writes
//! again by itself, and every acknowledged write is there, in memory and in the database.

use std::time::{Duration, Instant};

use pinball::master::client::RetryPolicy;
use pinball::master::{HttpMasterClient, MasterClient, MasterError};
use pinball::token::*;
use tokio::sync::watch;

use crate::helpers::*;

/// One try per call, so a test sees the master's own answer and its time.
fn one_try(port: u16) -> HttpMasterClient {
    let policy = RetryPolicy {
        attempts: 1,
        timeout: Duration::from_secs(30),
        ..Default::default()
    };
    HttpMasterClient::new("127.0.0.1", port, policy)
}

/// Writes `/load/N` tokens one after another until told to stop; returns the names the master
/// acknowledged and the names it said were not committed (an unknown outcome is in neither).
struct Load {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<(Vec<String>, Vec<String>)>,
}

impl Load {
    fn start(port: u16, tag: &'static str) -> Load {
        let (stop, mut stopped) = watch::channel(false);
        let client = one_try(port);
        let task = tokio::spawn(async move {
            let (mut acked, mut refused) = (Vec::new(), Vec::new());
            for n in 0.. {
                if *stopped.borrow_and_update() {
                    break;
                }
                let name = format!("/load/{tag}/{n:06}");
                let req = ModifyRequest {
                    updates: vec![Token::new(&name, Some("x".repeat(200)))],
                    ..Default::default()
                };
                match client.modify(req).await {
                    Ok(_) => acked.push(name),
                    Err(
                        MasterError::Held(m)
                        | MasterError::Unavailable(m)
                        | MasterError::Unreachable(m),
                    ) => {
                        if m.contains("not committed") {
                            refused.push(name);
                        }
                        let _ = tokio::time::timeout(Duration::from_millis(50), stopped.changed())
                            .await;
                    }
                    Err(e) => panic!("a write got {e}"),
                }
            }
            (acked, refused)
        });
        Load { stop, task }
    }

    async fn finish(self) -> (Vec<String>, Vec<String>) {
        let _ = self.stop.send(true);
        self.task.await.unwrap()
    }
}

#[derive(Default)]
struct Worst {
    health: Duration,
    query: Duration,
    write: Duration,
    ui: Duration,
    /// The worst UI page after the first (which may wait before the UI's monitor notices).
    ui_later: Duration,
    pages: usize,
}

#[tokio::test]
async fn a_mariadb_stopped_for_30_s_then_killed_is_told_at_once_and_healed_without_a_restart() {
    if let Some(db) = OwnMariaDb::start("outages::a_mariadb_stopped_for_30_s").await {
        outage(db).await;
    }
}

#[tokio::test]
async fn a_postgresql_stopped_for_30_s_then_killed_is_told_at_once_and_healed_without_a_restart() {
    if let Some(db) = OwnPostgres::start("outages::a_postgresql_stopped_for_30_s").await {
        outage(db).await;
    }
}

async fn outage<S: OwnServer>(mut db: S) {
    let dir = tempfile::tempdir().unwrap();
    let (port, ui_port) = (free_port(), free_port());
    let cfg = dir.path().join("pinball.yaml");
    std::fs::write(
        &cfg,
        format!(
            "database_url: {}\nmaster_port: {port}\nui_port: {ui_port}\nmaster_name: outage\n",
            db.url()
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let mut master = spawn_pinball(&["-c", cfg, "-m", "master"], dir.path());
    let _ui = spawn_pinball(&["-c", cfg, "-m", "ui"], dir.path());
    let client = one_try(port);
    wait_until(secs(60), "the master is ready", || is_ready(port)).await;
    wait_until(secs(60), "the UI is ready", || is_ready(ui_port)).await;

    // 1. Stopped cleanly, for 30 s, under a steady load.
    let steady: Vec<Token> = (0..10)
        .map(|n| Token::new(format!("/steady/{n}"), Some("s".into())))
        .collect();
    client
        .modify(ModifyRequest {
            updates: steady,
            ..Default::default()
        })
        .await
        .unwrap();
    let load = Load::start(port, "stop");
    wait_until(secs(10), "some writes landed", || async {
        client.query_prefix("/load/stop/").await.unwrap().len() > 20
    })
    .await;
    db.stop().await;
    let down = Instant::now();
    wait_until(secs(5), "/ready says the database is gone", || async {
        ready(port).await.0 == 503
    })
    .await;
    let told = down.elapsed();
    let (_, why) = ready(port).await;
    assert!(
        why["reason"].as_str().unwrap().contains("database"),
        "{why}"
    );
    let mut worst = Worst::default();
    let (mut served, mut lapsed) = (0, 0);
    let http = reqwest::Client::new();
    while down.elapsed() < secs(30) {
        let t = Instant::now();
        let h = client.health().await.unwrap();
        worst.health = worst.health.max(t.elapsed());
        assert_eq!(h.status, "degraded");
        assert_eq!(h.database, "unreachable", "{h:?}");
        let t = Instant::now();
        let read = client.query_prefix("/steady/").await;
        worst.query = worst.query.max(t.elapsed());
        // Reads are served from memory until the master's lease goes unrenewed past 0.7 of
        // its length (7 s here): then another master could take over, and it refuses them.
        match read {
            Ok(tokens) => {
                assert_eq!(tokens.len(), 10, "reads are served from memory");
                served += 1;
            }
            Err(MasterError::Held(m)) => {
                assert!(m.contains("could not renew its lease"), "{m}");
                assert!(
                    down.elapsed() >= secs(6),
                    "refused after {:?}",
                    down.elapsed()
                );
                lapsed += 1;
            }
            Err(e) => panic!("{e}"),
        }
        // A write cut off during its commit may or may not be in the database: reads of it
        // wait for the database, and say so.
        match client.query_prefix("/load/stop/").await {
            Ok(tokens) => assert!(!tokens.is_empty()),
            Err(MasterError::Unavailable(m)) => assert!(m.contains("unknown"), "{m}"),
            Err(MasterError::Held(m)) => assert!(m.contains("renew its lease"), "{m}"),
            Err(e) => panic!("{e}"),
        }
        let t = Instant::now();
        let write = client
            .modify(ModifyRequest {
                updates: vec![Token::new("/probe", None)],
                ..Default::default()
            })
            .await;
        worst.write = worst.write.max(t.elapsed());
        let Err(MasterError::Held(m)) = write else {
            panic!("a write during the outage got {write:?}")
        };
        assert!(
            m.contains("not committed") || m.contains("nothing was committed"),
            "{m}"
        );
        let t = Instant::now();
        let page = http
            .get(format!("http://127.0.0.1:{ui_port}/workflows/"))
            .send()
            .await
            .unwrap();
        worst.ui = worst.ui.max(t.elapsed());
        if worst.pages > 0 {
            worst.ui_later = worst.ui_later.max(t.elapsed());
        }
        worst.pages += 1;
        assert_eq!(page.status(), 503);
        assert!(page.text().await.unwrap().contains("database"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "{} stopped for 30 s: /ready told in {told:?}; worst health {:?}, query {:?}, refused write {:?}, UI page {:?} (the first), {:?} (later ones)",
        S::NAME,
        worst.health,
        worst.query,
        worst.write,
        worst.ui,
        worst.ui_later
    );
    // What the issue measured before: 8-10 s reads, 10-25 s UI pages. Under a second (and
    // the UI's 2 s bound) shows nothing waits for the database.
    assert!(
        served > 0 && lapsed > 0,
        "reads were served, then refused once the lease lapsed ({served} served, {lapsed} refused)"
    );
    assert!(told < secs(3), "/ready took {told:?}");
    assert!(worst.health < secs(1), "health took {:?}", worst.health);
    assert!(worst.query < secs(1), "a read took {:?}", worst.query);
    assert!(
        worst.write < secs(1),
        "a refused write took {:?}",
        worst.write
    );
    assert!(worst.ui < secs(3), "the UI took {:?}", worst.ui);
    db.up().await;
    let up = Instant::now();
    wait_until(secs(30), "the master takes writes again", || is_ready(port)).await;
    eprintln!(
        "{} back: the master was ready again {:?} after it",
        S::NAME,
        up.elapsed()
    );
    let (acked, refused) = load.finish().await;
    assert!(!refused.is_empty(), "the load met the outage");
    assert_writes_kept(&client, "/load/", &acked, &refused).await;

    // 2. Killed -9 under load, and started again.
    let load = Load::start(port, "kill");
    wait_until(secs(10), "some writes landed", || async {
        client.query_prefix("/load/kill/").await.unwrap().len() > 20
    })
    .await;
    db.kill().await;
    wait_until(secs(5), "/ready says the database is gone", || async {
        ready(port).await.0 == 503
    })
    .await;
    db.up().await;
    wait_until(secs(30), "the master takes writes again", || is_ready(port)).await;
    let healed_writes = {
        let mut ok = 0;
        for n in 0..20 {
            let req = ModifyRequest {
                updates: vec![Token::new(format!("/after/{n}"), None)],
                ..Default::default()
            };
            ok += usize::from(client.modify(req).await.is_ok());
        }
        ok
    };
    assert_eq!(healed_writes, 20, "every write after the outage lands");
    let (acked_kill, refused_kill) = load.finish().await;
    // The master reloaded from the database after the kill's unknown commit: the writes it
    // acknowledged before the kill are there too.
    let both: Vec<String> = acked.iter().chain(&acked_kill).cloned().collect();
    assert_writes_kept(&client, "/load/", &both, &refused_kill).await;

    // 3. What memory holds is what the database holds: a master started afresh reads it.
    let _master = restart_master(&mut master, cfg, dir.path(), port).await;
    // A client of its own: what is checked is what the restarted master holds, not whether
    // the old client's connections noticed the old process go.
    let fresh = HttpMasterClient::new("127.0.0.1", port, RetryPolicy::default());
    let refused_both: Vec<String> = refused.iter().chain(&refused_kill).cloned().collect();
    assert_writes_kept(&fresh, "/load/", &both, &refused_both).await;
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
