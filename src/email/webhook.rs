//! Webhook notices (CONTRACT §4.5): one POST of a body fixed when the notice was recorded, to a
//! target of the configuration's `webhooks`, signed with its `secret`
//! (`X-Pinball-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` beside
//! `X-Pinball-Timestamp`) and carrying `X-Pinball-Delivery`, the same on every try, so a
//! receiver can drop a repeat. HTTPS through rustls with the system's roots plus the target's
//! `ca_file`; redirects are never followed (a notice goes where the configuration says, not
//! where an answer points); an answer is read up to [`MAX_ANSWER_BYTES`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};

use crate::config::webhooks::{Webhook, WebhookFormat};
use crate::config::{Config, Secret};

/// The most bytes of a target's answer read (and kept for the log and the dashboard).
pub const MAX_ANSWER_BYTES: usize = 4096;

/// One notice in the outbox (the token's data): the event's facts, fixed when it was
/// recorded, so every try posts the same body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notice {
    /// The configured webhook it goes to.
    pub target: String,
    /// The JSON document of CONTRACT §4.5 without `delivery` (added when posted): `event`,
    /// `workflow`, `instance`, `job`, `status`, `exit_code`, `attempt`, `logical_time`,
    /// `params`, `links`.
    pub event: serde_json::Value,
    /// `X-Pinball-Delivery`: chosen when recorded, the same on every try.
    pub delivery: String,
    /// When it was recorded (seconds since the epoch): its give-up counts from here.
    pub created: i64,
    #[serde(default)]
    pub attempts: u32,
    /// Why the last try did not deliver it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// The last delivery of a workflow's notices to one target (`name::delivery_record`), for the
/// dashboard: when, and what the target answered (or why it was given up).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastDelivery {
    pub at: i64,
    pub event: String,
    pub delivery: String,
    /// Whether the target took it.
    pub taken: bool,
    /// `HTTP 200: ok`, or why it was given up (at most 300 characters).
    pub answer: String,
}

/// What became of one try.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PostError {
    /// A later try may do better (no connection, a timeout, 429, 5xx); `retry_after` is the
    /// target's `Retry-After` in seconds, when it gave one.
    #[error("{reason}")]
    Later {
        reason: String,
        retry_after: Option<u64>,
    },
    /// No later try can do better (a 4xx, a redirect, an unknown target).
    #[error("{0}")]
    Never(String),
}

/// A target's answer that took the notice: its status and the start of its body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

struct Target {
    url: reqwest::Url,
    format: WebhookFormat,
    secret: Option<Secret>,
    headers: reqwest::header::HeaderMap,
    client: reqwest::Client,
}

/// The configured targets, each with its own HTTP client (its TLS roots and timeout).
#[derive(Clone)]
pub struct Webhooks {
    targets: Arc<BTreeMap<String, Target>>,
    /// `notify_give_up_sec`.
    pub give_up: Duration,
}

impl std::fmt::Debug for Webhooks {
    /// Names only: targets carry secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.targets.keys()).finish()
    }
}

impl Webhooks {
    /// The configuration's targets; `None` when it names none. An unreadable `ca_file` is an
    /// error naming it.
    pub fn from_config(c: &Config) -> Result<Option<Webhooks>, String> {
        if c.webhooks.is_empty() {
            return Ok(None);
        }
        crate::config::install_tls_provider();
        let mut targets = BTreeMap::new();
        for (name, w) in &c.webhooks {
            targets.insert(name.clone(), target(name, w)?);
        }
        Ok(Some(Webhooks {
            targets: Arc::new(targets),
            give_up: Duration::from_secs(c.notify_give_up_sec),
        }))
    }

    pub fn knows(&self, name: &str) -> bool {
        self.targets.contains_key(name)
    }

    /// Posts `n` once: the target's answer when it took it (2xx).
    pub async fn post(&self, n: &Notice) -> Result<Answer, PostError> {
        let Some(t) = self.targets.get(&n.target) else {
            return Err(PostError::Never(format!(
                "webhook `{}` is not in this process's configuration",
                n.target
            )));
        };
        let now = crate::clock::now().to_string();
        let body = match t.format {
            WebhookFormat::Json => json_body(n),
            WebhookFormat::Slack => super::slack::body(&n.event),
        };
        let mut req = t
            .client
            .post(t.url.clone())
            .headers(t.headers.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Pinball-Delivery", &n.delivery)
            .header("X-Pinball-Timestamp", &now);
        if let Some(secret) = &t.secret {
            req = req.header(
                "X-Pinball-Signature",
                format!("sha256={}", sign(&secret.0, &now, &body)),
            );
        }
        let ca_file = format!("webhooks.{}.ca_file", n.target);
        let resp = req.body(body).send().await.map_err(|e| PostError::Later {
            reason: super::tls_words(&without_url(&e), &ca_file),
            retry_after: None,
        })?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_bounded(resp).await;
        let said = format!("HTTP {}: {}", status.as_u16(), body.trim());
        match status.as_u16() {
            200..=299 => Ok(Answer {
                status: status.as_u16(),
                body,
            }),
            300..=399 => Err(PostError::Never(format!(
                "{said}; it redirects to {}, and notices do not follow redirects: put the final URL in the configuration",
                location.as_deref().unwrap_or("nowhere")
            ))),
            408 | 425 | 429 | 500..=599 => Err(PostError::Later {
                reason: said,
                retry_after,
            }),
            _ => Err(PostError::Never(said)),
        }
    }
}

/// The JSON document: the event's facts and the delivery id.
pub fn json_body(n: &Notice) -> String {
    let mut doc = n.event.clone();
    if let Some(o) = doc.as_object_mut() {
        o.insert("delivery".into(), n.delivery.clone().into());
    }
    doc.to_string()
}

/// The hex HMAC-SHA256 of `timestamp.body` under `secret` (what `X-Pinball-Signature`
/// carries after `sha256=`).
pub fn sign(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    crate::token::hex(&mac.finalize().into_bytes())
}

/// The error in words, without the URL (which may carry a token in its path).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "no answer in time"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "the request failed"
    };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut why = String::new();
    while let Some(s) = source {
        why = s.to_string();
        source = s.source();
    }
    match why.is_empty() {
        true => kind.to_owned(),
        false => format!("{kind}: {why}"),
    }
}

/// The first [`MAX_ANSWER_BYTES`] of an answer's body, as text.
async fn read_bounded(mut resp: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_ANSWER_BYTES {
        match resp.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(MAX_ANSWER_BYTES);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A target's client: rustls (ring) trusting the system's roots and `ca_file` (its certificates
/// pinned too: [`super::trust`]), its timeout, no redirects, no proxy from the environment.
fn target(name: &str, w: &Webhook) -> Result<Target, String> {
    let url = reqwest::Url::parse(&w.url).map_err(|e| format!("webhooks.{name}.url: {e}"))?;
    let tls = super::trust::Trust::new(w.ca_file.as_deref())
        .map_err(|e| format!("webhooks.{name}.ca_file {e}"))?
        .client_config()?;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(w.timeout_sec))
        .user_agent(concat!("pinball/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("webhooks.{name}: {e}"))?;
    let mut headers = reqwest::header::HeaderMap::new();
    for (k, v) in &w.headers {
        let name_ok = reqwest::header::HeaderName::from_bytes(k.as_bytes());
        let value_ok = reqwest::header::HeaderValue::from_str(&v.0);
        match (name_ok, value_ok) {
            (Ok(k), Ok(mut v)) => {
                v.set_sensitive(true);
                headers.insert(k, v);
            }
            _ => return Err(format!("webhooks.{name}.headers.{k}: not a header")),
        }
    }
    Ok(Target {
        url,
        format: w.format,
        secret: w.secret.clone(),
        headers,
        client,
    })
}

/// The certificates of a PEM file.
pub fn read_pem(path: &str) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| e.to_string())?
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body() {
        // RFC 4231-style check against a value computed independently (Python's hmac module:
        // hmac.new(b"s3cret", b"1767225600.{}", hashlib.sha256).hexdigest()).
        assert_eq!(
            sign("s3cret", "1767225600", "{}"),
            "29ee05578fef21788e25d00ee3270df92a9e454a1fb82bc2c22d2269c729892b"
        );
    }
}
