//! What the integration tests share: a master over real HTTP (`app`), a master with workers and
//! imported workflows (`cluster`), `pinball` processes (`process`), waiting on a condition
//! (`wait_until`), and names from test literals.

mod access;
mod app;
mod checks;
mod cluster;
mod lossy;
mod mariadb;
pub mod netns;
mod postgres;
mod process;
mod proxy;
mod real_smtp;
pub mod receiver;
pub mod smtp;
mod through;
mod tmpfs;
mod ui;
pub mod webdriver;

use std::time::{Duration, Instant};

use pinball::master::client::RetryPolicy;
use pinball::token::Token;
use pinball::token::name::{InstanceId, JobName, WorkflowName};
use tempfile::TempDir;

pub use access::*;
pub use app::*;
pub use checks::*;
pub use cluster::*;
pub use lossy::Lossy;
pub use mariadb::OwnMariaDb;
pub use postgres::OwnPostgres;
pub use through::{Through, Via};

/// A database server of a test's own, which the test stops, kills and starts again.
#[allow(async_fn_in_trait)]
pub trait OwnServer {
    /// Its name in what a test prints: `MariaDB`, `PostgreSQL`.
    const NAME: &'static str;
    /// Where Pinball finds it.
    fn url(&self) -> String;
    /// Starts it (again) and waits until it takes connections.
    async fn up(&mut self);
    /// Stops it cleanly and waits until it has exited.
    async fn stop(&mut self);
    /// Kills it (SIGKILL) and waits until it has exited.
    async fn kill(&mut self);
}

impl OwnServer for OwnMariaDb {
    const NAME: &'static str = "MariaDB";
    fn url(&self) -> String {
        OwnMariaDb::url(self)
    }
    async fn up(&mut self) {
        OwnMariaDb::up(self).await
    }
    async fn stop(&mut self) {
        OwnMariaDb::stop(self).await
    }
    async fn kill(&mut self) {
        OwnMariaDb::kill(self).await
    }
}

impl OwnServer for OwnPostgres {
    const NAME: &'static str = "PostgreSQL";
    fn url(&self) -> String {
        OwnPostgres::url(self)
    }
    async fn up(&mut self) {
        OwnPostgres::up(self).await
    }
    async fn stop(&mut self) {
        OwnPostgres::stop(self).await
    }
    async fn kill(&mut self) {
        OwnPostgres::kill(self).await
    }
}
pub use process::*;
pub use proxy::Proxy;
pub use real_smtp::{Parsed, RealSmtp, ServerOptions, ServerTls, well_formed};
pub use tmpfs::Tmpfs;
pub use ui::*;

/// The YAML of a workflow `w` with one job, `job` written as `name: {command: ...}`.
pub fn one_job(w: &str, job: &str) -> String {
    format!("workflows:\n  {w}:\n    jobs:\n      {job}\n")
}

/// A workflow name from a test literal.
pub fn wf(s: &str) -> WorkflowName {
    WorkflowName::parse(s).unwrap()
}

/// An instance id from a test literal.
pub fn inst(s: &str) -> InstanceId {
    InstanceId::parse(s).unwrap()
}

/// A job name from a test literal.
pub fn job(s: &str) -> JobName {
    JobName::parse(s).unwrap()
}

/// Waits until the master has at least `n` claims parked (idle workers, a waiting client).
pub async fn wait_parked(client: &dyn pinball::master::MasterClient, n: usize) {
    wait_until(
        Duration::from_secs(30),
        "claims parked in the master",
        || async { client.health().await.is_ok_and(|h| h.parked_claims >= n) },
    )
    .await;
}

/// Waits until `check` holds, looking every 100 ms; fails the test after `within`.
pub async fn wait_until<F: std::future::Future<Output = bool>>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The MariaDB URL tests may use, or `None` (with a visible message) when it is not set.
pub fn mysql_url(test: &str) -> Option<String> {
    match std::env::var("PINBALL_TEST_MYSQL_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            crate::helpers::skipped(&format!(
                "(MySQL part of {test}): PINBALL_TEST_MYSQL_URL is not set"
            ));
            None
        }
    }
}

/// The PostgreSQL URL tests may use, or `None` (with a visible message) when it is not set.
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("PINBALL_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            crate::helpers::skipped(&format!(
                "(PostgreSQL part of {test}): PINBALL_TEST_POSTGRES_URL is not set"
            ));
            None
        }
    }
}

/// The instance `util start` reports ("exported workflow W instance I.  Its tokens ...").
pub fn started_instance(out: &str) -> String {
    out.split(" instance ")
        .nth(1)
        .and_then(|s| s.split('.').next())
        .unwrap_or_else(|| panic!("util start said: {out}"))
        .to_owned()
}

/// The instances of workflow `w` in the master (live ones), by id.
pub async fn instances(
    client: &dyn pinball::master::MasterClient,
    w: &str,
) -> std::collections::BTreeSet<String> {
    client
        .query_prefix(&format!("/workflow/{w}/"))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|t| t.name.split('/').nth(3).map(str::to_owned))
        .filter(|i| !i.starts_with("__"))
        .collect()
}

/// A master name no other test uses, so tests can share one MariaDB database.
pub fn unique_master(prefix: &str) -> String {
    format!("{prefix}_{}_{}", std::process::id(), fastrand::u32(..))
}

/// The database URLs a backend-independent test runs against: a fresh SQLite file always,
/// MariaDB and PostgreSQL when configured.
pub fn backends(dir: &TempDir, test: &str) -> Vec<String> {
    let mut urls = vec![format!(
        "sqlite://{}",
        dir.path().join("pinball.db").display()
    )];
    urls.extend(mysql_url(test));
    urls.extend(postgres_url(test));
    urls
}

pub fn quick_policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        initial_backoff: Duration::from_millis(20),
        ..Default::default()
    }
}

/// Whether an instance's tokens show it finished: its ARCHIVE signal carries the archive time.
pub fn finished(ts: &[Token]) -> bool {
    ts.iter().any(|t| {
        t.name.ends_with("__SIGNAL__/ARCHIVE")
            && t.data.as_deref().is_some_and(|d| d.contains("TIMESTAMP"))
    })
}

/// A claim of up to `max` tokens under `prefix` for `owner` until `exp`.
pub fn claim(
    prefix: &str,
    max: Option<u32>,
    owner: &str,
    exp: i64,
    wait_ms: Option<u64>,
) -> pinball::token::QueryAndOwnRequest {
    pinball::token::QueryAndOwnRequest::new(owner, exp, prefix, max, wait_ms)
}

pub fn token(name: &str) -> Token {
    Token::new(name, Some(format!("data of {name}")))
}

/// POSTs a raw body and returns the status and the parsed JSON answer.
pub async fn post_raw(url: &str, body: impl Into<reqwest::Body>) -> (u16, serde_json::Value) {
    let response = pinball::config::http_client_builder()
        .build()
        .unwrap()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let json = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, json)
}

pub fn now() -> i64 {
    pinball::clock::now()
}

/// Says a test (or a part of one) cannot run here, and why. With `PINBALL_TEST_NO_SKIP=1`
/// (`.ci/run` sets it) it fails instead, so a CI machine that lost MariaDB, chromium or a
/// checker turns red rather than passing what it did not run.
pub fn skipped(what: &str) {
    if std::env::var("PINBALL_TEST_NO_SKIP").is_ok_and(|v| v == "1") {
        panic!("PINBALL_TEST_NO_SKIP=1, and this would be skipped: {what}");
    }
    eprintln!("SKIPPED {what}");
    let mut skips = SKIPS.lock().unwrap_or_else(|e| e.into_inner());
    if skips.is_empty() {
        // SAFETY: `count_skips` is an `extern "C" fn()` that stays valid for the process's
        // life; atexit only stores it.
        unsafe { libc::atexit(count_skips) };
    }
    skips.push(what.to_owned());
}

/// What [`skipped`] was told, for the line printed as the test process exits.
static SKIPS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// The line that ends a run in which tests skipped: how many, and what would run them.
/// `cargo test` hides what passing tests print, so without it a run that skipped half its
/// MariaDB and browser tests would look like a full pass.
extern "C" fn count_skips() {
    let skips = SKIPS.lock().unwrap_or_else(|e| e.into_inner());
    eprintln!("{}", skip_line(&skips));
}

/// `N tests (or parts) SKIPPED, for want of: ...` with each missing thing named once.
fn skip_line(skips: &[String]) -> String {
    let mut wants: Vec<&str> = skips
        .iter()
        .map(|s| s.rsplit_once("): ").map_or(s.as_str(), |(_, why)| why))
        .collect();
    wants.sort_unstable();
    wants.dedup();
    format!(
        "{} tests (or parts of tests) SKIPPED, for want of: {}. .ci/run provides all of it (as root); see README.md, \"Running the tests\".",
        skips.len(),
        wants.join("; ")
    )
}

/// Run only by [`a_planted_skip_fails_under_no_skip`]: a test that always skips.
#[test]
#[ignore = "run by a_planted_skip_fails_under_no_skip, in a process of its own"]
fn planted_skip() {
    skipped("(helpers::planted_skip): planted by the test of PINBALL_TEST_NO_SKIP");
}

#[test]
fn a_planted_skip_fails_under_no_skip() {
    let run = |no_skip: &str| {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "helpers::planted_skip",
                "--ignored",
                "--nocapture",
            ])
            .env("PINBALL_TEST_NO_SKIP", no_skip)
            .output()
            .unwrap()
    };
    let strict = run("1");
    let said = String::from_utf8_lossy(&strict.stdout).into_owned()
        + &String::from_utf8_lossy(&strict.stderr);
    assert!(!strict.status.success(), "{said}");
    assert!(
        said.contains("would be skipped: (helpers::planted_skip)"),
        "{said}"
    );
    let lenient = run("0");
    let said = String::from_utf8_lossy(&lenient.stderr);
    assert!(lenient.status.success(), "{said}");
    assert!(said.contains("SKIPPED (helpers::planted_skip)"), "{said}");
    assert!(
        said.contains(
            "1 tests (or parts of tests) SKIPPED, for want of: planted by the test of PINBALL_TEST_NO_SKIP."
        ),
        "the run ends with the count of what it skipped: {said}"
    );
}

#[test]
fn the_skip_line_names_each_missing_thing_once() {
    let line = skip_line(&[
        "(a): PINBALL_AIOSMTPD_PYTHON is not set".into(),
        "(b): PINBALL_AIOSMTPD_PYTHON is not set".into(),
        "chromedriver is not installed".into(),
    ]);
    assert!(
        line.starts_with("3 tests (or parts of tests) SKIPPED, for want of: PINBALL_AIOSMTPD_PYTHON is not set; chromedriver is not installed."),
        "{line}"
    );
}
