//! A database that goes away. On MariaDB the master's connections are killed for real while
//! writes run; on SQLite a wrapper around the real store fails a commit at the boundary the
//! master must handle: before it happened (the caller gets UNAVAILABLE, memory is unchanged) or
//! after it happened with the outcome unknown (the master reloads before writing again).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use async_trait::async_trait;
use pinball::master::service::Stores;
use pinball::master::{Master, MasterClient, MasterError};
use pinball::storage::{self, CommitBatch, Loaded, Storage, StorageError, TokenStore};
use pinball::token::*;

use crate::helpers::*;

const OK: u8 = 0;
const FAIL_BEFORE: u8 = 1;
const FAIL_AFTER: u8 = 2;

/// The real SQLite store's tokens, with the next commit's fate set by the test: the master's
/// token port alone (its logs and retention use the real store).
struct Flaky {
    inner: Arc<dyn Storage>,
    next: Arc<AtomicU8>,
}

#[async_trait]
impl TokenStore for Flaky {
    fn kind(&self) -> &'static str {
        "sqlite"
    }
    async fn migrate(&self) -> Result<(), StorageError> {
        self.inner.migrate().await
    }
    async fn load_active(&self, master: &str) -> Result<Loaded, StorageError> {
        self.inner.load_active(master).await
    }
    async fn commit(&self, master: &str, batch: &CommitBatch<'_>) -> Result<(), StorageError> {
        match self.next.swap(OK, Ordering::SeqCst) {
            FAIL_BEFORE => Err(StorageError::unavailable(
                storage::Cause::DiskFull,
                "disk unplugged",
            )),
            FAIL_AFTER => {
                self.inner.commit(master, batch).await?;
                Err(StorageError::CommitUnknown {
                    cause: storage::Cause::Unreachable,
                    detail: "connection lost during COMMIT".into(),
                })
            }
            _ => self.inner.commit(master, batch).await,
        }
    }
    async fn ping(&self) -> Result<(), StorageError> {
        self.inner.ping().await
    }
    async fn take_lease(
        &self,
        master: &str,
        claim: &storage::LeaseClaim<'_>,
    ) -> Result<storage::LeaseOutcome, StorageError> {
        self.inner.take_lease(master, claim).await
    }
    async fn renew_lease(
        &self,
        master: &str,
        epoch: i64,
        lease_ms: i64,
    ) -> Result<bool, StorageError> {
        self.inner.renew_lease(master, epoch, lease_ms).await
    }
    async fn release_lease(&self, master: &str, epoch: i64) -> Result<(), StorageError> {
        self.inner.release_lease(master, epoch).await
    }
    async fn lease_holder(
        &self,
        master: &str,
    ) -> Result<Option<pinball::storage::LeaseHolder>, StorageError> {
        self.inner.lease_holder(master).await
    }
    async fn note_standby(
        &self,
        master: &str,
        address: &str,
        holder: &str,
        leading: bool,
    ) -> Result<(), StorageError> {
        self.inner
            .note_standby(master, address, holder, leading)
            .await
    }
    async fn standbys(&self, master: &str, within_ms: i64) -> Result<Vec<String>, StorageError> {
        self.inner.standbys(master, within_ms).await
    }
    async fn request_outcomes(
        &self,
        master: &str,
        since: i64,
    ) -> Result<Vec<storage::RequestOutcome>, StorageError> {
        self.inner.request_outcomes(master, since).await
    }
}

/// Every token the master holds.
async fn everything(master: &Master) -> Vec<Token> {
    master
        .query(QueryRequest {
            queries: vec![Query {
                name_prefix: "/".into(),
                max_tokens: None,
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .tokens
        .remove(0)
}

fn insert(name: &str) -> ModifyRequest {
    ModifyRequest::update(vec![Token::new(name, Some("x".into()))])
}

#[tokio::test]
async fn a_failed_commit_changes_nothing_and_an_unknown_one_is_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("f.db").display());
    let next = Arc::new(AtomicU8::new(OK));
    let real: Arc<dyn Storage> = Arc::from(storage::open(&url).unwrap());
    let stores = Stores {
        tokens: Arc::new(Flaky {
            inner: real.clone(),
            next: next.clone(),
        }),
        ..Stores::from(real)
    };
    let master = Master::start(stores, "default", pinball::modes::naming()).await;
    master.modify(insert("/kept")).await.unwrap();

    next.store(FAIL_BEFORE, Ordering::SeqCst);
    let err = master.modify(insert("/lost")).await.unwrap_err();
    assert!(
        matches!(err, MasterError::Held(ref m) if m.contains("not committed")),
        "{err:?}"
    );
    let all = everything(&master).await;
    let names: Vec<&str> = all
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| !n.starts_with("/__"))
        .collect();
    assert_eq!(names, vec!["/kept"], "memory is as the database has it");
    master
        .modify(insert("/after"))
        .await
        .expect("the master goes on serving");

    next.store(FAIL_AFTER, Ordering::SeqCst);
    let err = master.modify(insert("/maybe")).await.unwrap_err();
    assert!(matches!(err, MasterError::Held(_)), "{err:?}");
    // The master reloads before it takes another write (refusing writes until then, as a
    // client retrying sees): the change the database did keep is there.
    let started = std::time::Instant::now();
    let t = loop {
        match master.modify(insert("/next")).await {
            Ok(mut r) => break r.updates.remove(0),
            Err(MasterError::Held(m) | MasterError::Unavailable(m)) => {
                assert!(started.elapsed() < std::time::Duration::from_secs(5), "{m}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    let all = everything(&master).await;
    let names: Vec<&str> = all
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| !n.starts_with("/__"))
        .collect();
    assert_eq!(names, vec!["/after", "/kept", "/maybe", "/next"]);
    let maybe = all.iter().find(|t| t.name == "/maybe").unwrap();
    assert!(
        t.version > maybe.version,
        "versions stay above everything the database holds"
    );
}

#[tokio::test]
async fn killing_the_masters_mariadb_connections_loses_no_acknowledged_write() {
    let Some(url) =
        mysql_url("killing_the_masters_mariadb_connections_loses_no_acknowledged_write")
    else {
        return;
    };
    let app = spawn_app_on(
        &url,
        &unique_master("kill"),
        pinball::master::api::DEFAULT_MAX_REQUEST_BYTES,
    )
    .await;
    let killer = sqlx::MySqlPool::connect(&url).await.unwrap();
    let kill = || async {
        // Kill every other connection of this database: the master's pool among them.
        let ids: Vec<(i64,)> = sqlx::query_as("SELECT CAST(id AS SIGNED) FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID()")
            .fetch_all(&killer)
            .await
            .unwrap();
        for (id,) in ids {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("KILL {id}")))
                .execute(&killer)
                .await;
        }
    };
    kills_lose_no_acknowledged_write(app, kill).await;
}

#[tokio::test]
async fn killing_the_masters_postgresql_connections_loses_no_acknowledged_write() {
    // A server of the test's own: every other connection to it is the master's.
    let Some(db) = OwnPostgres::start("killing_the_masters_postgresql_connections").await else {
        return;
    };
    let url = db.url();
    let app = spawn_app_on(
        &url,
        &unique_master("kill"),
        pinball::master::api::DEFAULT_MAX_REQUEST_BYTES,
    )
    .await;
    let killer = sqlx::PgPool::connect(&url).await.unwrap();
    let kill = || async {
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            .execute(&killer)
            .await
            .unwrap();
    };
    kills_lose_no_acknowledged_write(app, kill).await;
}

/// Writes 60 tokens one by one through `app`, running `kill` (which cuts the master's database
/// connections) before the 5th, 20th, 35th and 50th: the master goes on serving, and every
/// write it acknowledged is there after a restart.
async fn kills_lose_no_acknowledged_write<F: std::future::Future<Output = ()>>(
    app: TestApp,
    kill: impl Fn() -> F,
) {
    let mut acked = Vec::new();
    let mut unavailable = 0;
    for i in 0..60 {
        if i % 15 == 5 {
            kill().await;
        }
        match app.client.modify(insert(&format!("/k/{i}"))).await {
            Ok(r) => acked.push(r.updates[0].clone()),
            Err(
                MasterError::Held(_) | MasterError::Unavailable(_) | MasterError::Unreachable(_),
            ) => unavailable += 1,
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert!(
        acked.len() >= 50,
        "the master recovered and went on serving ({} acknowledged, {unavailable} unavailable)",
        acked.len()
    );
    let app = app.restart().await;
    let stored = app.all("/k/").await;
    for t in &acked {
        assert!(
            stored.contains(t),
            "{} was acknowledged and must survive",
            t.name
        );
    }
    app.stop().await;
}
