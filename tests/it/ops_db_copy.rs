//! `pinball db copy` from the embedded SQLite file to MariaDB and to PostgreSQL, as an operator
//! moves a deployment: real history made by `pinball -m all`, a bulk of older history beside
//! it, the copy SIGKILLed midway and run again (it resumes, duplicating nothing), `db check` on
//! the result, and a master and UI started on the server that serve the same history; then
//! copies in every other direction among the three, each interrupted and resumed.

use std::path::Path;
use std::time::Duration;

use pinball::storage::copy::TABLES;
use pinball::storage::{CommitBatch, LogChunk, Storage, TokenRef};
use pinball::token::Token;
use serde_json::Value;

use crate::helpers::*;

const LONG: Duration = Duration::from_secs(60);

fn config(dir: &Path, name: &str, url: &str, master: &str, ports: (u16, u16)) -> String {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "database_url: {url}\nmaster_name: {master}\nmaster_port: {}\nui_port: {}\nworkers: 2\n\
             worker_poll_time_sec: 1\narchive_delay_sec: 0\nlocal_logs_dir_prefix: {logs}\n\
             parser_params: {{workflows_config: {wf}}}\n",
            ports.0,
            ports.1,
            logs = dir.join("logs").display(),
            wf = dir.join("wf.yaml").display(),
        ),
    )
    .unwrap();
    path.display().to_string()
}

async fn get_json(port: u16, path: &str) -> Value {
    reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A read of the UI's API that must succeed: asked again while the UI answers 503 (a database
/// busy under the whole suite's load says "try again in a moment"), any other failure shown.
async fn read_ok(port: u16, path: &str) -> Value {
    let url = format!("http://127.0.0.1:{port}{path}");
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let r = reqwest::get(&url).await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        if status.is_success() {
            return body;
        }
        assert!(
            status == 503 && std::time::Instant::now() < deadline,
            "{path}: {status} {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// What the UI's read API shows of workflow `w`: its instances and each one's jobs.
async fn history(ui: u16) -> Value {
    let instances = read_ok(ui, "/api/v1/workflows/w/instances").await;
    let mut jobs = Vec::new();
    for i in instances.as_array().unwrap() {
        let id = i["instance"].as_str().unwrap();
        jobs.push(read_ok(ui, &format!("/api/v1/workflows/w/instances/{id}/jobs")).await);
    }
    serde_json::json!({"instances": instances, "jobs": jobs})
}

/// Older history written straight into the source: 4,000 archived instances of 10 tokens
/// and 300 stored log chunks of 16 KiB, so the copy takes long enough to interrupt.
async fn bulk(store: &dyn Storage, master: &str) {
    let tokens: Vec<Token> = (0..40_000)
        .map(|k| Token {
            version: Some(1),
            ..Token::new(
                format!("/workflow/bulk/{:05}/job/waiting/j{}", k / 10, k % 10),
                Some(format!("{{\"n\": {k}}}")),
            )
        })
        .collect();
    for part in tokens.chunks(2_000) {
        let batch = CommitBatch {
            archived: part.iter().map(TokenRef::from).collect(),
            archived_at: Some(now() - 90 * 86_400),
            ..Default::default()
        }
        .grouped(pinball::token::name::archive_prefix);
        store.commit(master, &batch).await.unwrap();
    }
    let chunks: Vec<LogChunk> = (0..300)
        .map(|k| LogChunk {
            name: format!("/workflow/bulk/{:05}/j0", k),
            execution: 0,
            kind: "stdout".into(),
            start: 0,
            raw_len: 16_384,
            data: vec![b'x'; 16_384],
            host: "old-host".into(),
            truncated_at: None,
            created_at: now(),
        })
        .collect();
    store.write_logs(master, &chunks).await.unwrap();
}

async fn counts(store: &dyn Storage, master: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for spec in TABLES {
        out.push(store.copy_count(spec, master).await.unwrap());
    }
    out
}

/// `pinball db copy` from `from` to `to`, SIGKILLed midway through the archive and run again:
/// it resumes, the target holds `expected` rows per table, and `db check` on it says the
/// schema is current. Both databases are given the way the README says, in the environment:
/// neither `ps` (the command line) nor the process's own environment (what /proc shows) holds
/// a password while it runs.
async fn copy_interrupted(from: &str, to: &str, master: &str, expected: &[u64], d: &Path) {
    let mut first = tokio::process::Command::new(env!("CARGO_BIN_EXE_pinball"))
        .args(["db", "copy"])
        .env("PINBALL_DB_FROM", from)
        .env("PINBALL_DB_TO", to)
        // The servers' URLs of the tests (one may share the password) are not this copy's.
        .env_remove("PINBALL_TEST_MYSQL_URL")
        .env_remove("PINBALL_TEST_POSTGRES_URL")
        .current_dir(d)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let target = pinball::storage::open(to).unwrap();
    let archived = &TABLES[2];
    assert_eq!(archived.name, "archived_tokens");
    wait_until(LONG, "the copy has started on the archive", || async {
        target.copy_count(archived, master).await.unwrap_or(0) > 0
    })
    .await;
    for password in [password_of(from), password_of(to)].into_iter().flatten() {
        let pid = first.id().unwrap();
        for shown in ["cmdline", "environ"] {
            let text = std::fs::read(format!("/proc/{pid}/{shown}")).unwrap();
            let text = String::from_utf8_lossy(&text);
            assert!(
                !text.contains(&format!(":{password}@")),
                "/proc/{pid}/{shown} shows the password: {text}"
            );
        }
    }
    first.kill().await.unwrap();
    first.wait().await.unwrap();
    let partial = target.copy_count(archived, master).await.unwrap();
    assert!(
        partial < expected[2],
        "{from} to {to}: the copy was interrupted midway ({partial} of {} archived rows)",
        expected[2]
    );

    // Run again: it resumes after what is there, and verifies every count.
    let out = pinball_out(&["db", "copy", "--from", from, "--to", to], d).await;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("resumed after"), "{said}");
    assert!(
        said.contains("every table holds as many rows as the source"),
        "{said}"
    );
    assert_eq!(
        counts(target.as_ref(), master).await,
        expected,
        "{from} to {to}"
    );
    // Each archived token once, with its own archive time.
    let again = target
        .expired_archives(
            master,
            now() - 60 * 86_400,
            5,
            pinball::token::name::archive_prefix,
        )
        .await
        .unwrap();
    assert_eq!(again.len(), 5, "the bulk history kept its archive time");

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pinball"))
        .args(["db", "check"])
        .env("PINBALL_DB_URL", to)
        .current_dir(d)
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    // The migrations' last number: 0008 (the fence's epoch) at this writing.
    let latest = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .unwrap()
        .count();
    assert!(
        said.contains(&format!("schema version {latest} (current)")),
        "{said}"
    );
    assert!(said.contains("archived_tokens"), "{said}");
}

#[tokio::test]
async fn a_copy_to_mariadb_or_postgresql_survives_an_interruption_and_serves_the_same_history() {
    let servers: Vec<(String, &str)> = [
        mysql_url("db_copy").map(|u| (u, "mysql")),
        postgres_url("db_copy").map(|u| (u, "postgres")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if servers.is_empty() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("wf.yaml"),
        "workflows:\n  w:\n    jobs:\n      a: {command: 'echo from a'}\n      b: {command: 'echo from b', depends_on: [a]}\n      c: {command: 'echo failing >&2; exit 4', depends_on: [a]}\n",
    )
    .unwrap();
    let master = unique_master("copy");
    let sqlite = format!("sqlite://{}", d.join("pinball.db").display());

    // Real history on SQLite: three instances run and archived by `-m all`.
    let ports = (free_port(), free_port());
    let source = config(d, "source", &sqlite, &master, ports);
    let mut all = spawn_pinball(&["-c", &source, "-m", "all"], d);
    wait_until(LONG, "the source master is ready", || is_ready(ports.0)).await;
    for _ in 0..3 {
        let out = pinball_out(&["-c", &source, "util", "-f", "-w", "w", "start"], d).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    wait_until(
        LONG,
        "three instances are archived and summarized",
        || async {
            let v = get_json(ports.1, "/api/v1/workflows/w/instances").await;
            v.as_array()
                .is_some_and(|a| a.len() == 3 && a.iter().all(|i| i["status"] == "FAILURE"))
        },
    )
    .await;
    let before = history(ports.1).await;
    let pid = all.id().unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    all.wait().await.unwrap();
    let src = pinball::storage::open(&sqlite).unwrap();
    bulk(src.as_ref(), &master).await;
    let expected = counts(src.as_ref(), &master).await;

    for (server, kind) in &servers {
        copy_interrupted(&sqlite, server, &master, &expected, d).await;

        // A master and UI on the server serve the same history.
        let ports = (free_port(), free_port());
        let moved = config(d, &format!("moved-{kind}"), server, &master, ports);
        let mut front = spawn_pinball(&["-c", &moved, "-m", "master,ui"], d);
        wait_until(LONG, "the master on the server is ready", || {
            is_ready(ports.0)
        })
        .await;
        wait_until(
            LONG,
            "the UI on the server shows the three instances",
            || async {
                get_json(ports.1, "/api/v1/workflows/w/instances")
                    .await
                    .as_array()
                    .is_some_and(|a| a.len() == 3)
            },
        )
        .await;
        assert_eq!(history(ports.1).await, before, "{kind}");
        let health = get_json(ports.0, "/api/v1/health").await;
        assert_eq!(health["storage"], *kind);
        assert_eq!(health["tokens"].as_u64(), Some(expected[1]));
        front.kill().await.unwrap();

        // A copy into a database holding another master of the same name is refused.
        let other = format!("sqlite://{}", d.join(format!("other-{kind}.db")).display());
        let o = pinball::storage::open(&other).unwrap();
        o.migrate().await.unwrap();
        o.load_active(&master).await.unwrap();
        drop(o);
        let out = pinball_out(&["db", "copy", "--from", &other, "--to", server], d).await;
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("already holds a master"), "{err}");
    }
}

#[tokio::test]
async fn copies_run_in_every_direction_among_sqlite_mariadb_and_postgresql() {
    // SQLite to PostgreSQL to MariaDB to SQLite, and SQLite to MariaDB to PostgreSQL to
    // SQLite: with the test above, every direction, each interrupted and resumed. A copy takes
    // every master of its source, so the servers are the test's own (the shared ones hold
    // other tests' masters, changing as they run).
    let test = "db_copy::every_direction";
    let (Some(own_mariadb), Some(own_postgres)) = (
        OwnMariaDb::start(test).await,
        OwnPostgres::start(test).await,
    ) else {
        return;
    };
    let (mysql, postgres) = (own_mariadb.url(), own_postgres.url());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (n, chain) in [[&postgres, &mysql], [&mysql, &postgres]]
        .iter()
        .enumerate()
    {
        let master = unique_master("chain");
        let first = format!("sqlite://{}", d.join(format!("first-{n}.db")).display());
        let last = format!("sqlite://{}", d.join(format!("last-{n}.db")).display());
        let src = pinball::storage::open(&first).unwrap();
        src.migrate().await.unwrap();
        src.load_active(&master).await.unwrap();
        bulk(src.as_ref(), &master).await;
        let expected = counts(src.as_ref(), &master).await;
        let hops = [
            first.as_str(),
            chain[0].as_str(),
            chain[1].as_str(),
            last.as_str(),
        ];
        for hop in hops.windows(2) {
            copy_interrupted(hop[0], hop[1], &master, &expected, d).await;
        }
        let back = pinball::storage::open(&last).unwrap();
        let master = &master;
        let archive = |store: Box<dyn Storage>| async move {
            let table = pinball::storage::Table::Archived;
            let mut tokens = store.read(master, table, "/workflow/bulk/").await.unwrap();
            tokens.sort_by(|x, y| x.name.cmp(&y.name));
            tokens
        };
        assert!(
            archive(src).await == archive(back).await,
            "the archive came back the same through {chain:?}"
        );
    }
}

/// The password of a `scheme://user:password@host/db` URL, if it has one.
fn password_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.rsplit_once('@')?.0;
    Some(userinfo.split_once(':')?.1.to_owned())
}

#[tokio::test]
async fn db_check_of_a_missing_file_says_so_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("never.db");
    let url = format!("sqlite://{}", missing.display());
    let out = pinball_out(&["db", "check", "--url", &url], dir.path()).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no such database file"), "{err}");
    assert!(!missing.exists(), "db check created {}", missing.display());
}
