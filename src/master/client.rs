//! `MasterClient`: how every other component (workers, scheduler, CLI, UI actions) reaches the
//! master. `HttpMasterClient` speaks the JSON API and retries transient failures with capped,
//! jittered backoff (safe: each write carries one idempotency key on every try, so a replay
//! gets the first answer and is never applied twice);
//! `LocalMasterClient` calls a master in the same process.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::answers::{Failure, error_of};
pub use super::retry::RetryPolicy;
use crate::config::{Config, Secret};
use crate::token::MasterError;
use crate::token::*;

/// The longest a renewing worker's call waits between tries of a master that is away.
pub const RENEWING_BACKOFF: Duration = Duration::from_millis(250);

#[async_trait]
pub trait MasterClient: Send + Sync {
    async fn modify(&self, req: ModifyRequest) -> Result<ModifyResponse, MasterError>;
    /// A `/modify` that renews a lease: retried like any write, except that a master that
    /// holds its leases for want of a database ([`MasterError::Held`]) is answered at once,
    /// since that answer is what the renewing worker needs to know.
    async fn renew(&self, req: ModifyRequest) -> Result<ModifyResponse, MasterError> {
        self.modify(req).await
    }
    async fn query(&self, req: QueryRequest) -> Result<QueryResponse, MasterError>;
    /// A `/query` answered at once, like [`MasterClient::renew`], when the master holds its
    /// leases ([`MasterError::Held`]): what a renewing worker reads.
    async fn query_held(&self, req: QueryRequest) -> Result<QueryResponse, MasterError> {
        self.query(req).await
    }
    async fn query_and_own(
        &self,
        req: QueryAndOwnRequest,
    ) -> Result<QueryAndOwnResponse, MasterError>;
    async fn group(&self, req: GroupRequest) -> Result<GroupResponse, MasterError>;
    async fn archive(&self, req: ArchiveRequest) -> Result<ArchiveResponse, MasterError>;
    async fn health(&self) -> Result<Health, MasterError>;
    /// Records an operator action in the audit log.
    async fn audit(&self, req: AuditRequest) -> Result<AuditResponse, MasterError>;
    /// Sends a piece of a job's log to be stored beside the tokens.
    async fn append_log(&self, req: LogRequest) -> Result<LogResponse, MasterError>;

    /// The token named exactly `name`, if there is one.
    async fn get(&self, name: &str) -> Result<Option<Token>, MasterError> {
        Ok(self
            .query_prefix(name)
            .await?
            .into_iter()
            .find(|t| t.name == name))
    }

    /// Answers any number of queries, in requests of at most
    /// [`MAX_QUERIES_PER_REQUEST`](crate::token::MAX_QUERIES_PER_REQUEST) queries each: each
    /// request is one consistent read, the whole is not (callers' writes are version-checked).
    async fn query_many(&self, queries: Vec<Query>) -> Result<Vec<Vec<Token>>, MasterError> {
        let mut out = Vec::with_capacity(queries.len());
        for chunk in queries.chunks(crate::token::MAX_QUERIES_PER_REQUEST) {
            out.extend(self.query(QueryRequest::new(chunk.to_vec())).await?.tokens);
        }
        Ok(out)
    }

    /// Every token whose name starts with `prefix`, in name order.
    async fn query_prefix(&self, prefix: &str) -> Result<Vec<Token>, MasterError> {
        let req = QueryRequest::new(vec![Query {
            name_prefix: prefix.to_owned(),
            max_tokens: None,
        }]);
        Ok(self.query(req).await?.tokens.pop().unwrap_or_default())
    }
}

#[derive(Clone)]
pub struct HttpMasterClient {
    http: reqwest::Client,
    /// Every master's `HOST:PORT` (`master_hosts`): the leader and its standbys.
    hosts: Arc<Vec<String>>,
    /// The one calls go to: the last that answered, or the one a standby named.
    current: Arc<AtomicUsize>,
    /// The one that answered last, plus one (0: none yet), to log a change once.
    answered: Arc<AtomicUsize>,
    /// When each was last found unreachable (milliseconds since the epoch; 0: never): a
    /// standby's word that one leads is not followed back to it meanwhile.
    unreachable_ms: Arc<[std::sync::atomic::AtomicI64]>,
    policy: RetryPolicy,
    /// `Authorization: Bearer ...`, when this process has a token (marked sensitive, so it
    /// never shows in reqwest's `Debug`).
    auth: Option<reqwest::header::HeaderValue>,
}

impl HttpMasterClient {
    /// A client of the master at `host:port`.
    pub fn new(host: &str, port: u16, policy: RetryPolicy) -> Self {
        Self::of_hosts(vec![format!("{host}:{port}")], policy)
    }

    /// A client of the masters at `hosts` (`HOST:PORT` each, at least one): calls go to the
    /// one that leads, found by trying the others when one does not answer or stands by.
    pub fn of_hosts(hosts: Vec<String>, policy: RetryPolicy) -> Self {
        assert!(!hosts.is_empty(), "a client needs a master's address");
        let http = crate::config::http_client_builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client without TLS always builds");
        HttpMasterClient {
            http,
            unreachable_ms: hosts.iter().map(|_| Default::default()).collect(),
            hosts: Arc::new(hosts),
            current: Arc::default(),
            answered: Arc::default(),
            policy,
            auth: None,
        }
    }

    /// A client that presents `token` (none: calls go without one).
    pub fn with_token(mut self, token: Option<&Secret>) -> Self {
        self.auth = token.and_then(|t| {
            let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", t.0)).ok()?;
            v.set_sensitive(true);
            Some(v)
        });
        self
    }

    /// The client the configuration describes: `master_host`, `master_port`, the `client_*`
    /// retry keys and the token this process presents.
    pub fn from_config(c: &Config) -> Self {
        Self::of_hosts(c.master_addresses(), RetryPolicy::from_config(c))
            .with_token(c.presented_token().as_ref())
    }

    /// The call went to `hosts[i]`, which did not answer or stands by (naming `leader`): the
    /// next call goes to the leader it named when that is one of `hosts`, else to the next.
    fn move_on(&self, i: usize, leader: Option<&str>) -> usize {
        let recently = self.policy.timeout.min(self.policy.failover_timeout) * 2;
        let fresh = |j: usize| {
            let at = self.unreachable_ms[j].load(Ordering::Relaxed);
            crate::clock::now_ms() - at > recently.as_millis() as i64
        };
        let named = leader.and_then(|l| self.hosts.iter().position(|h| h == l));
        let n = self.hosts.len();
        let next = match named {
            Some(j) if j != i && fresh(j) => j,
            // The leader it names did not answer just now: this standby takes its lease over
            // soon; ask it again rather than the silent one.
            Some(j) if j != i => i,
            // A standby naming no leader (its lease ran out: it takes it now) is asked again
            // unless another address did not fail just now.
            _ if leader == Some("") => (1..n).map(|k| (i + k) % n).find(|&j| fresh(j)).unwrap_or(i),
            _ => (i + 1) % n,
        };
        self.current.store(next, Ordering::Relaxed);
        next
    }

    /// Notes that `hosts[i]` answered; says so (info) when another one answered before.
    fn answered_by(&self, i: usize) {
        if self.answered.swap(i + 1, Ordering::Relaxed) != i + 1 {
            tracing::info!(master = %self.hosts[i], "the master at this address answered");
        }
    }

    async fn once<Req: Serialize + Sync, Resp: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&Req>,
        extra_wait: Duration,
        key: Option<&str>,
    ) -> Result<Resp, Failure> {
        let at = self.current.load(Ordering::Relaxed) % self.hosts.len();
        let result = self.once_at(at, path, body, extra_wait, key).await;
        match &result {
            Ok(_) => self.answered_by(at),
            Err(f) if f.elsewhere() => {
                if matches!(f.error, MasterError::Unreachable(_)) {
                    self.unreachable_ms[at].store(crate::clock::now_ms(), Ordering::Relaxed);
                }
                if self.hosts.len() > 1 {
                    let next = self.move_on(at, f.standby.as_deref());
                    tracing::info!(from = %self.hosts[at], to = %self.hosts[next], error = %f.error, "the master did not serve the call; trying another address");
                }
            }
            Err(_) => {}
        }
        result
    }

    async fn once_at<Req: Serialize + Sync, Resp: DeserializeOwned>(
        &self,
        at: usize,
        path: &str,
        body: Option<&Req>,
        extra_wait: Duration,
        key: Option<&str>,
    ) -> Result<Resp, Failure> {
        let url = format!("http://{}/api/v1/{path}", self.hosts[at]);
        let mut request = match body {
            Some(b) => self.http.post(&url).json(b),
            None => self.http.get(&url),
        };
        if let Some(key) = key {
            request = request.header(super::api::IDEMPOTENCY_KEY, key);
        }
        if let Some(auth) = &self.auth {
            request = request.header(reqwest::header::AUTHORIZATION, auth.clone());
        }
        let limit = match self.hosts.len() {
            1 => self.policy.timeout,
            _ => self.policy.timeout.min(self.policy.failover_timeout),
        };
        let response = request
            .timeout(limit + extra_wait)
            .send()
            .await
            .map_err(|e| MasterError::Unreachable(format!("{url}: {e}")))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| MasterError::Unreachable(format!("{url}: {e}")))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                MasterError::Unavailable(format!("{url} answered with an unreadable body: {e}"))
                    .into()
            });
        }
        Err(error_of(&url, status, &bytes))
    }

    /// Calls `path`, retrying transient failures. A write (`keyed`) carries one
    /// `Idempotency-Key` on every try: if an answer is lost after the master committed, the
    /// retry gets that answer instead of being applied again (or refused as a conflict).
    async fn call<Req: Serialize + Sync, Resp: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&Req>,
        extra_wait: Duration,
        keyed: bool,
    ) -> Result<Resp, MasterError> {
        self.call_with(path, body, extra_wait, keyed, false).await
    }

    /// [`HttpMasterClient::call`], for a renewing worker when `renewing`: a master that holds
    /// its leases answers at once, and a master away is tried again at least every
    /// [`RENEWING_BACKOFF`], so a job frozen for want of a renewal goes on within that of its
    /// master's return (not after a backoff grown through the outage).
    async fn call_with<Req: Serialize + Sync, Resp: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&Req>,
        extra_wait: Duration,
        keyed: bool,
        renewing: bool,
    ) -> Result<Resp, MasterError> {
        let key = keyed.then(new_key);
        let max_backoff = match renewing {
            true => self.policy.max_backoff.min(RENEWING_BACKOFF),
            false => self.policy.max_backoff,
        };
        let mut backoff = self.policy.initial_backoff.min(max_backoff);
        let mut attempt = 1;
        // Addresses tried in a row without waiting: each master once, before any backoff.
        let mut moved = 0;
        loop {
            // A standby that answered last says when it may lead: no backoff goes past that.
            let mut hint = None;
            let answer = match self.once(path, body, extra_wait, key.as_deref()).await {
                Err(f) if f.elsewhere() => {
                    moved += 1;
                    if moved < self.hosts.len() {
                        continue;
                    }
                    moved = 0;
                    hint = f.retry_after;
                    Err(f.error)
                }
                other => other.map_err(|f| f.error),
            };
            match answer {
                Err(e @ MasterError::Held(_)) if renewing => return Err(e),
                Err(e) if e.is_transient() && attempt < self.policy.attempts => {
                    // The hint only shortens the wait: a standby takes the lease of a dead
                    // process of its host at once, before the lease it read runs out.
                    let sleep = backoff
                        .mul_f64(0.5 + fastrand::f64())
                        .min(hint.map_or(Duration::MAX, |h| h.max(Duration::from_millis(20))))
                        .min(max_backoff);
                    tracing::warn!(path, attempt, error = %e, retry_in_ms = sleep.as_millis() as u64, "waiting for the master: the call failed; retrying");
                    tokio::time::sleep(sleep).await;
                    backoff = (backoff * 2).min(max_backoff);
                    attempt += 1;
                }
                result => return result,
            }
        }
    }
}

impl HttpMasterClient {
    /// Asks the leader (found by a read: a standby names it) to hand its lease over, once: a
    /// retry after a lost answer would reach the new leader and hand the lease back.
    pub async fn hand_over(
        &self,
        req: &super::api::handover::HandoverRequest,
    ) -> Result<super::api::handover::HandoverResponse, MasterError> {
        // Only a leader's health answers 200: the call ends at the leader, or fails.
        self.health().await?;
        self.once("master/handover", Some(req), Duration::ZERO, None)
            .await
            .map_err(|f| f.error)
    }
}

/// A fresh idempotency key: 128 random bits, hex.
fn new_key() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        bytes = fastrand::u128(..).to_le_bytes();
    }
    crate::token::hex(&bytes)
}

#[async_trait]
impl MasterClient for HttpMasterClient {
    async fn modify(&self, req: ModifyRequest) -> Result<ModifyResponse, MasterError> {
        self.call("modify", Some(&req), Duration::ZERO, true).await
    }
    async fn renew(&self, req: ModifyRequest) -> Result<ModifyResponse, MasterError> {
        self.call_with("modify", Some(&req), Duration::ZERO, true, true)
            .await
    }
    async fn query(&self, req: QueryRequest) -> Result<QueryResponse, MasterError> {
        let wait = Duration::from_millis(req.wait_ms.unwrap_or(0));
        self.call("query", Some(&req), wait, false).await
    }
    async fn query_held(&self, req: QueryRequest) -> Result<QueryResponse, MasterError> {
        let wait = Duration::from_millis(req.wait_ms.unwrap_or(0));
        self.call_with("query", Some(&req), wait, false, true).await
    }
    async fn query_and_own(
        &self,
        req: QueryAndOwnRequest,
    ) -> Result<QueryAndOwnResponse, MasterError> {
        let wait = Duration::from_millis(req.wait_ms.unwrap_or(0));
        self.call("query_and_own", Some(&req), wait, true).await
    }
    async fn group(&self, req: GroupRequest) -> Result<GroupResponse, MasterError> {
        self.call("group", Some(&req), Duration::ZERO, false).await
    }
    async fn archive(&self, req: ArchiveRequest) -> Result<ArchiveResponse, MasterError> {
        self.call("archive", Some(&req), Duration::ZERO, true).await
    }
    async fn health(&self) -> Result<Health, MasterError> {
        self.call::<(), Health>("health", None, Duration::ZERO, false)
            .await
    }
    async fn audit(&self, req: AuditRequest) -> Result<AuditResponse, MasterError> {
        self.call("audit", Some(&req), Duration::ZERO, true).await
    }
    async fn append_log(&self, req: LogRequest) -> Result<LogResponse, MasterError> {
        // Chunks are stored once by their place in the log: a resend changes nothing.
        self.call("logs", Some(&req), Duration::ZERO, false).await
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
