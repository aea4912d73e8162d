//! The durable outbox. Every notification email is a token under `/email/`, written in the same
//! `/modify` as the event that causes it (a job's final failure, an instance's end, ...), so a
//! crash between the event and the send loses nothing, and named after that event, so one event
//! records one email however many workers notice it. Senders (one per worker or scheduler
//! process with a mailer) claim outbox tokens with a lease, like jobs: one claim, one sender.
//! A delivered email's token is deleted; one the server did not take waits (held by its sender
//! until the retry time, so anyone may pick it up then) with backoff from 1 s to a minute, for
//! those recipients only, until `email_give_up_sec` after it was recorded. A sender that dies
//! mid-delivery leaves its lease to run out; the next sender delivers again, so an email may
//! arrive twice only when its sender died between the server's answer and the delete.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{MailError, Mailer};
use crate::master::MasterClient;
use crate::token::name::OUTBOX_PREFIX;
use crate::token::*;

/// How long one claim of an email lasts: longer than any delivery may take.
const LEASE: Duration = Duration::from_secs(60);
/// The longest one delivery (every recipient) may take before it counts as failed.
const DELIVERY_BOUND: Duration = Duration::from_secs(45);
/// Emails delivered at the same time by one sender.
const PARALLEL: usize = 8;
/// How long a claim waits at the master for an email to appear.
const CLAIM_WAIT: Duration = Duration::from_secs(30);
/// The longest wait between two tries of one email.
const MAX_BACKOFF: i64 = 60;
/// How long the sender keeps trying to write a delivery's outcome through a master outage.
const OUTCOME_PATIENCE: Duration = Duration::from_secs(60);

/// One email in the outbox (the token's data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outgoing {
    /// Recipients still owed the email.
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    /// The HTML alternative; text only without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// `<...@host>`, chosen when the email was recorded: every try carries the same one.
    pub message_id: String,
    /// When the email was recorded (seconds since the epoch): its give-up counts from here.
    pub created: i64,
    #[serde(default)]
    pub attempts: u32,
    /// Why the last try did not deliver it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Outgoing {
    /// A new email to `to`, recorded now.
    pub fn new(to: Vec<String>, subject: String, text: String, html: Option<String>) -> Outgoing {
        let host: String = crate::config::host_name()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
            .collect();
        let host = if host.is_empty() {
            "pinball".into()
        } else {
            host
        };
        Outgoing {
            to,
            subject,
            text,
            html,
            message_id: format!(
                "<{}.{:016x}@{host}>",
                crate::clock::now_ms(),
                fastrand::u64(..)
            ),
            created: crate::clock::now(),
            attempts: 0,
            last_error: None,
        }
    }

    /// The outbox token recording this email under `name` (one of `name::*_email_token`),
    /// to be inserted in the request that writes the event. `None` without recipients.
    pub fn token(&self, name: String) -> Option<Token> {
        if self.to.is_empty() {
            return None;
        }
        Some(Token::new(
            name,
            Some(serde_json::to_string(self).expect("emails serialize")),
        ))
    }

    pub fn from_token(t: &Token) -> Option<Outgoing> {
        serde_json::from_str(t.data.as_deref()?).ok()
    }
}

/// Delivers the outbox's emails until `shutdown` turns true. `owner` names this sender in the
/// claims (a worker or scheduler name).
pub async fn run_outbox(
    client: Arc<dyn MasterClient>,
    mailer: Mailer,
    owner: String,
    shutdown: watch::Receiver<bool>,
) {
    tracing::info!(sender = %owner, server = %mailer.server(), "email sender started");
    let sender = Sender {
        client: client.clone(),
        mailer: Arc::new(mailer),
        owner: owner.clone(),
    };
    run_channel(client, owner, OUTBOX_PREFIX, Arc::new(sender), shutdown).await;
    tracing::info!("email sender stopped");
}

/// One channel of the outbox: what it does with a token it claimed (deliver, then delete it,
/// or write it back for a later try; it is claimed with a lease, so a sender that dies leaves
/// it to the next).
#[async_trait::async_trait]
pub trait Channel: Send + Sync + 'static {
    async fn deliver(&self, token: Token);
}

/// Claims the outbox tokens under `prefix` with a lease, [`PARALLEL`] at a time, and hands each
/// to `channel`, until `shutdown` turns true; what is in hand is finished within
/// [`DELIVERY_BOUND`].
pub async fn run_channel(
    client: Arc<dyn MasterClient>,
    owner: String,
    prefix: &str,
    channel: Arc<dyn Channel>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut deliveries = JoinSet::new();
    while !*shutdown.borrow() {
        while deliveries.try_join_next().is_some() {}
        let room = PARALLEL - deliveries.len();
        if room == 0 {
            tokio::select! {
                _ = deliveries.join_next() => {}
                _ = shutdown.changed() => break,
            }
            continue;
        }
        let req = QueryAndOwnRequest {
            lease_sec: Some(LEASE.as_secs()),
            ..QueryAndOwnRequest::new(
                &owner,
                0,
                prefix,
                Some(room as u32),
                Some(CLAIM_WAIT.as_millis() as u64),
            )
        };
        let claimed = tokio::select! {
            r = client.query_and_own(req) => r,
            _ = shutdown.changed() => break,
        };
        match claimed {
            Ok(answer) => {
                for t in answer.tokens {
                    let channel = channel.clone();
                    deliveries.spawn(async move { channel.deliver(t).await });
                }
            }
            Err(e) => {
                tracing::warn!(sender = %owner, prefix, error = %e, "cannot claim from the outbox; trying again");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => break,
                }
            }
        }
    }
    // What is in hand is finished within its bound; anything cut short is delivered by the
    // next sender once its lease runs out.
    let _ = tokio::time::timeout(DELIVERY_BOUND, async {
        while deliveries.join_next().await.is_some() {}
    })
    .await;
}

/// What becomes of an email after one try.
#[derive(Debug, PartialEq)]
enum Next {
    /// Delivered to everyone it can be (or never can be): remove it.
    Done,
    /// These recipients did not get it yet, for this reason.
    Retry { to: Vec<String>, reason: String },
}

/// Decides an email's fate from the try's result, logging what is given up.
fn after_try(m: &Outgoing, key: &str, result: Result<usize, MailError>) -> Next {
    match result {
        Ok(sent) => {
            metrics::counter!(crate::metrics::EMAILS_SENT).increment(sent as u64);
            tracing::info!(
                email = key,
                subject = m.subject,
                recipients = sent,
                "sent email"
            );
            Next::Done
        }
        Err(MailError::Recipients { failed, sent }) => {
            metrics::counter!(crate::metrics::EMAILS_SENT).increment(sent as u64);
            for r in failed.iter().filter(|r| !r.transient) {
                metrics::counter!(crate::metrics::EMAILS_FAILED).increment(1);
                tracing::error!(
                    email = key,
                    subject = m.subject,
                    recipient = r.recipient,
                    reason = r.reason,
                    "the SMTP server refused a recipient for good; this email is not sent to it"
                );
            }
            if sent > 0 {
                tracing::info!(
                    email = key,
                    subject = m.subject,
                    recipients = sent,
                    "sent email"
                );
            }
            let later: Vec<_> = failed.into_iter().filter(|r| r.transient).collect();
            if later.is_empty() {
                return Next::Done;
            }
            Next::Retry {
                reason: later
                    .iter()
                    .map(|r| format!("{}: {}", r.recipient, r.reason))
                    .collect::<Vec<_>>()
                    .join("; "),
                to: later.into_iter().map(|r| r.recipient).collect(),
            }
        }
        Err(e @ MailError::Transport { .. }) => Next::Retry {
            to: m.to.clone(),
            reason: e.to_string(),
        },
        // The settings or the message itself: no later try can do better.
        Err(e) => {
            metrics::counter!(crate::metrics::EMAILS_FAILED).increment(m.to.len() as u64);
            tracing::error!(email = key, subject = m.subject, recipients = ?m.to, error = %e, "cannot send email; giving it up");
            Next::Done
        }
    }
}

/// Seconds to wait after the `attempts`-th failed try: 1, 2, 4, ... up to a minute.
pub fn backoff(attempts: u32) -> i64 {
    1i64.checked_shl(attempts.saturating_sub(1).min(30))
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

struct Sender {
    client: Arc<dyn MasterClient>,
    mailer: Arc<Mailer>,
    owner: String,
}

#[async_trait::async_trait]
impl Channel for Sender {
    async fn deliver(&self, token: Token) {
        let key = token.name.clone();
        let Some(mut m) = Outgoing::from_token(&token) else {
            tracing::error!(email = key, "unreadable email in the outbox; removing it");
            self.write(ModifyRequest::delete(vec![token])).await;
            return;
        };
        // Only to the addresses the workflow's definition names (see `recipients`).
        let allowed = match super::recipients::allowed(self.client.as_ref(), &key).await {
            Ok(a) => a,
            Err(e) => {
                // Its lease runs out and it is tried again then.
                tracing::warn!(email = key, error = %e, "cannot read the workflow's definition to check an email's recipients; trying again later");
                return;
            }
        };
        let (to, refused) = super::recipients::split(std::mem::take(&mut m.to), &allowed);
        if !refused.is_empty() {
            metrics::counter!(crate::metrics::EMAILS_FAILED).increment(refused.len() as u64);
            tracing::error!(email = key, recipients = ?refused, "dropped recipients that the workflow's definition does not name");
        }
        if to.is_empty() {
            self.write(ModifyRequest::delete(vec![token])).await;
            return;
        }
        m.to = to;
        let result = match tokio::time::timeout(DELIVERY_BOUND, self.mailer.send(&m)).await {
            Ok(r) => r.map(|sent| sent.len()),
            Err(_) => Err(MailError::Transport {
                server: self.mailer.server(),
                reason: format!("no delivery within {} s", DELIVERY_BOUND.as_secs()),
            }),
        };
        let (to, reason) = match after_try(&m, &key, result) {
            Next::Done => {
                self.write(ModifyRequest::delete(vec![token])).await;
                return;
            }
            Next::Retry { to, reason } => (to, reason),
        };
        let now = crate::clock::now();
        let wait = backoff(m.attempts + 1);
        if now + wait > m.created + self.mailer.give_up.as_secs() as i64 {
            metrics::counter!(crate::metrics::EMAILS_FAILED).increment(to.len() as u64);
            tracing::error!(email = key, subject = m.subject, recipients = ?to, reason,
                attempts = m.attempts + 1, give_up_sec = self.mailer.give_up.as_secs(),
                "giving up an email the SMTP server did not take in time");
            self.write(ModifyRequest::delete(vec![token])).await;
            return;
        }
        metrics::counter!(crate::metrics::EMAIL_RETRIES).increment(1);
        tracing::warn!(email = key, subject = m.subject, recipients = ?to, reason, retry_in_sec = wait,
            "email not sent yet; trying again");
        m.to = to;
        m.attempts += 1;
        m.last_error = Some(reason);
        let retry = Token {
            owner: Some(self.owner.clone()),
            expiration_time: Some(now + wait),
            data: Some(serde_json::to_string(&m).expect("emails serialize")),
            ..token
        };
        // The wait counted by the master's clock, like every lease.
        self.write(ModifyRequest {
            lease_sec: Some(wait as u64),
            ..ModifyRequest::update(vec![retry])
        })
        .await;
    }
}

impl Sender {
    async fn write(&self, req: ModifyRequest) {
        write_outcome(self.client.as_ref(), &self.owner, req).await
    }
}

/// Writes a delivery's outcome (version-checked against the claim), through a master outage
/// of up to a minute. A conflict means the lease ran out and another sender has it.
pub async fn write_outcome(client: &dyn MasterClient, owner: &str, req: ModifyRequest) {
    let started = tokio::time::Instant::now();
    loop {
        match client.modify(req.clone()).await {
            Ok(_) => return,
            Err(
                e @ (MasterError::Unavailable(_)
                | MasterError::Held(_)
                | MasterError::Unreachable(_)),
            ) if started.elapsed() < OUTCOME_PATIENCE => {
                tracing::debug!(sender = %owner, error = %e, "cannot record a delivery's outcome yet");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => {
                tracing::warn!(sender = %owner, error = %e, "cannot record a delivery's outcome; its lease decides");
                return;
            }
        }
    }
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
