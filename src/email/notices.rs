//! The outbox's webhook channel: claims notices under `/webhook/` with a lease (as the email
//! sender claims emails), posts each to its target, and deletes it once taken. A try that may
//! do better later (no connection, a timeout, 429, 5xx) writes the notice back, held until its
//! next try: the target's `Retry-After` when it gave one, else 1, 2, 4 ... 60 s; after
//! `notify_give_up_sec` from its recording it is given up with an error log and a metric. A
//! notice goes only to a target its workflow's stored definition names in a `notify` rule (a
//! worker's token may write outbox tokens; it may not aim them elsewhere). A notice reaches
//! its target once, except when its sender dies between the target's answer and the delete:
//! the next sender posts it again, with the same `X-Pinball-Delivery`.

use std::sync::Arc;

use tokio::sync::watch;

use super::outbox::{Channel, backoff, run_channel, write_outcome};
use super::webhook::{LastDelivery, Notice, PostError, Webhooks};
use crate::master::MasterClient;
use crate::token::name::{self, WEBHOOK_PREFIX};
use crate::token::*;

/// The longest one post may take before it counts as failed (every target's timeout is at most
/// 120 s; the claim's lease is longer).
const POST_BOUND: std::time::Duration = std::time::Duration::from_secs(45);

/// Posts the outbox's webhook notices until `shutdown` turns true.
pub async fn run_notices(
    client: Arc<dyn MasterClient>,
    hooks: Webhooks,
    owner: String,
    shutdown: watch::Receiver<bool>,
) {
    tracing::info!(sender = %owner, "webhook sender started");
    let channel = Notices {
        client: client.clone(),
        hooks,
        owner: owner.clone(),
    };
    run_channel(client, owner, WEBHOOK_PREFIX, Arc::new(channel), shutdown).await;
    tracing::info!("webhook sender stopped");
}

struct Notices {
    client: Arc<dyn MasterClient>,
    hooks: Webhooks,
    owner: String,
}

/// Whether a definition (as stored, JSON) names `target` in a rule of the workflow's or of a
/// job's `notify`.
pub fn named_in(definition: &str, target: &str) -> bool {
    let Ok(def) = serde_json::from_str::<serde_json::Value>(definition) else {
        return false;
    };
    let names = |rules: &serde_json::Value| {
        rules.as_array().is_some_and(|rules| {
            rules.iter().any(|r| {
                r["to"]
                    .as_array()
                    .is_some_and(|to| to.iter().any(|t| t.as_str() == Some(target)))
            })
        })
    };
    names(&def["notify"])
        || def["jobs"]
            .as_object()
            .is_some_and(|jobs| jobs.values().any(|j| names(&j["notify"])))
}

fn count(outcome: &'static str) {
    metrics::counter!(crate::metrics::WEBHOOK_NOTICES, "outcome" => outcome).increment(1);
}

impl Notices {
    /// Ends notice `token`: deletes it (version-checked against the claim), then records the
    /// last delivery to `n`'s target for the dashboard (best effort: a record two senders
    /// race for keeps one of them).
    async fn finish(&self, token: Token, n: &Notice, taken: bool, answer: String) {
        let key = token.name.clone();
        write_outcome(
            self.client.as_ref(),
            &self.owner,
            ModifyRequest::delete(vec![token]),
        )
        .await;
        let Some(w) = name::webhook_workflow_of(&key) else {
            return;
        };
        let record = LastDelivery {
            at: crate::clock::now(),
            event: n.event["event"].as_str().unwrap_or("").to_owned(),
            delivery: n.delivery.clone(),
            taken,
            answer: answer.chars().take(300).collect(),
        };
        let name = name::delivery_record(&w, &n.target);
        let c = self.client.as_ref();
        let version = match c.get(&name).await {
            Ok(t) => t.and_then(|t| t.version),
            Err(_) => return,
        };
        let token = Token {
            version,
            ..Token::new(name, serde_json::to_string(&record).ok())
        };
        if let Err(e) = c.modify(ModifyRequest::update(vec![token])).await {
            tracing::debug!(notice = key, error = %e, "the last delivery was not recorded");
        }
    }

    /// Whether the definition of the workflow of notice `key` names `target`; `None` when it
    /// cannot be read now.
    async fn named(&self, key: &str, target: &str) -> Option<bool> {
        let Some(w) = name::webhook_workflow_of(key) else {
            return Some(false);
        };
        match self.client.get(&name::definition_token(&w)).await {
            Ok(def) => Some(
                def.and_then(|t| t.data)
                    .is_some_and(|d| named_in(&d, target)),
            ),
            Err(e) => {
                tracing::warn!(notice = key, error = %e, "cannot read the workflow's definition to check a notice's target; trying again later");
                None
            }
        }
    }
}

#[async_trait::async_trait]
impl Channel for Notices {
    async fn deliver(&self, token: Token) {
        let key = token.name.clone();
        let c = self.client.as_ref();
        let Some(n) = Notice::from_token(&token) else {
            tracing::error!(
                notice = key,
                "unreadable webhook notice in the outbox; removing it"
            );
            write_outcome(c, &self.owner, ModifyRequest::delete(vec![token])).await;
            return;
        };
        let Some(named) = self.named(&key, &n.target).await else {
            return; // its lease runs out and it is tried again then
        };
        if !named {
            count("failed");
            tracing::error!(
                notice = key,
                target = n.target,
                "dropped a notice to a webhook its workflow's definition does not name"
            );
            write_outcome(c, &self.owner, ModifyRequest::delete(vec![token])).await;
            return;
        }
        let result = match tokio::time::timeout(POST_BOUND, self.hooks.post(&n)).await {
            Ok(r) => r,
            Err(_) => Err(PostError::Later {
                reason: format!("no answer within {} s", POST_BOUND.as_secs()),
                retry_after: None,
            }),
        };
        let (reason, retry_after) = match result {
            Ok(answer) => {
                count("sent");
                tracing::info!(
                    notice = key,
                    target = n.target,
                    delivery = n.delivery,
                    status = answer.status,
                    "posted webhook notice"
                );
                let said = format!("HTTP {}: {}", answer.status, answer.body.trim());
                self.finish(token, &n, true, said).await;
                return;
            }
            Err(PostError::Never(reason)) => {
                count("failed");
                tracing::error!(
                    notice = key,
                    target = n.target,
                    delivery = n.delivery,
                    reason,
                    "the webhook refused a notice for good; giving it up"
                );
                self.finish(token, &n, false, reason).await;
                return;
            }
            Err(PostError::Later {
                reason,
                retry_after,
            }) => (reason, retry_after),
        };
        self.write_back(token, n, reason, retry_after).await;
    }
}

impl Notices {
    /// A notice its target did not take yet: held until its next try (the target's
    /// `Retry-After`, else the backoff), or given up past `notify_give_up_sec`.
    async fn write_back(
        &self,
        token: Token,
        mut n: Notice,
        reason: String,
        retry_after: Option<u64>,
    ) {
        let c = self.client.as_ref();
        let key = token.name.clone();
        let now = crate::clock::now();
        let wait = retry_after
            .map(|s| s.min(3600) as i64)
            .unwrap_or_else(|| backoff(n.attempts + 1))
            .max(1);
        if now + wait > n.created + self.hooks.give_up.as_secs() as i64 {
            count("failed");
            tracing::error!(
                notice = key,
                target = n.target,
                delivery = n.delivery,
                reason,
                attempts = n.attempts + 1,
                give_up_sec = self.hooks.give_up.as_secs(),
                "giving up a webhook notice its target did not take in time"
            );
            self.finish(token, &n, false, reason).await;
            return;
        }
        count("retried");
        tracing::warn!(
            notice = key,
            target = n.target,
            delivery = n.delivery,
            reason,
            retry_in_sec = wait,
            "webhook notice not taken yet; trying again"
        );
        n.attempts += 1;
        n.last_error = Some(reason);
        let retry = Token {
            owner: Some(self.owner.clone()),
            expiration_time: Some(now + wait),
            data: Some(serde_json::to_string(&n).expect("notices serialize")),
            ..token
        };
        let req = ModifyRequest {
            lease_sec: Some(wait as u64),
            ..ModifyRequest::update(vec![retry])
        };
        write_outcome(c, &self.owner, req).await;
    }
}

impl Notice {
    pub fn from_token(t: &Token) -> Option<Notice> {
        serde_json::from_str(t.data.as_deref()?).ok()
    }

    /// Its outbox token under `name` (`name::webhook_notice`), unowned: claimable at once.
    pub fn token(&self, name: String) -> Token {
        Token::new(
            name,
            Some(serde_json::to_string(self).expect("notices serialize")),
        )
    }
}
