//! `webhooks:` (CONTRACT §4.5): the HTTP targets notices may be posted to, by name. Workflow
//! definitions name them in their `notify` rules; the definitions travel through the master,
//! the targets (with their secrets) stay in each process's configuration. Checked when the
//! file is read: a target that would send a notice in the clear to another machine, or that
//! names no usable URL, stops start-up with a message that names it.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{ConfigError, Secret};

/// The body a target is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// Pinball's JSON document (docs/notifications.md).
    #[default]
    Json,
    /// Slack's incoming-webhook body: `text` and `blocks`.
    Slack,
}

/// One webhook target.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// `https://...` (or `http://` to a loopback address, or anywhere with `allow_http`).
    pub url: String,
    #[serde(default)]
    pub format: WebhookFormat,
    /// With one, each request is signed: `X-Pinball-Signature: sha256=<HMAC of
    /// timestamp.body>`.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Extra request headers (an authorization header, say): names and values, never logged.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// The longest one request may take (default 10 s, at most 120).
    #[serde(default = "default_timeout")]
    pub timeout_sec: u64,
    /// A PEM file of certificates trusted for this target beyond the system's roots; a
    /// self-signed server certificate named here is pinned.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Allow `http://` to hosts other than loopback (the notice and its signature cross the
    /// network in the clear).
    #[serde(default)]
    pub allow_http: bool,
}

/// The URL's scheme and host only: a webhook's path is often its secret (Slack's are).
impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = reqwest::Url::parse(&self.url)
            .map(|u| format!("{}://{}/***", u.scheme(), u.host_str().unwrap_or("")))
            .unwrap_or_else(|_| "***".into());
        f.debug_struct("Webhook")
            .field("url", &shown)
            .field("format", &self.format)
            .field("secret", &self.secret)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout_sec", &self.timeout_sec)
            .finish_non_exhaustive()
    }
}

fn default_timeout() -> u64 {
    10
}

/// The most targets one configuration may name.
pub const MAX_WEBHOOKS: usize = 100;

/// Whether `name` may name a webhook: 1-64 of `A-Z a-z 0-9 _ -`, not an email address.
pub fn is_webhook_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The checks serde cannot make, naming the webhook and the key.
pub fn validate(webhooks: &BTreeMap<String, Webhook>) -> Result<(), ConfigError> {
    let bad = |m: String| Err(ConfigError::Value(m));
    if webhooks.len() > MAX_WEBHOOKS {
        return bad(format!(
            "webhooks: at most {MAX_WEBHOOKS} targets, not {}",
            webhooks.len()
        ));
    }
    for (name, w) in webhooks {
        if !is_webhook_name(name) {
            return bad(format!(
                "webhooks: `{name}` is not a webhook name (1-64 of A-Z a-z 0-9 _ -)"
            ));
        }
        let url = match reqwest::Url::parse(&w.url) {
            Ok(u) => u,
            Err(e) => return bad(format!("webhooks.{name}.url: {e}")),
        };
        match url.scheme() {
            "https" => {}
            "http" if w.allow_http || is_loopback(&url) => {}
            "http" => {
                return bad(format!(
                    "webhooks.{name}.url: http:// to {} would send notices and their signatures in the clear; use https://, or set allow_http: true",
                    url.host_str().unwrap_or("")
                ));
            }
            other => {
                return bad(format!(
                    "webhooks.{name}.url: `{other}` is not http or https"
                ));
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return bad(format!(
                "webhooks.{name}.url: put credentials in headers, not in the URL (URLs get logged)"
            ));
        }
        if !(1..=120).contains(&w.timeout_sec) {
            return bad(format!(
                "webhooks.{name}.timeout_sec must be between 1 and 120"
            ));
        }
        for header in w.headers.keys() {
            if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err()
                || header.to_ascii_lowercase().starts_with("x-pinball-")
            {
                return bad(format!(
                    "webhooks.{name}.headers: `{header}` is not a header name Pinball may set"
                ));
            }
        }
    }
    Ok(())
}

/// Makes rustls' ring provider the process's default (once; later calls do nothing). Every
/// HTTP client of the process takes its TLS from it: reqwest is built without a provider of
/// its own (no second crypto library to compile), so this runs before the first client is
/// built (`master::client`, `main`, the test harness).
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client builder for plain HTTP (the master's API): TLS preconfigured with no roots, so a
/// client costs no certificate loading (about 4 ms each with the platform's roots).
pub fn http_client_builder() -> reqwest::ClientBuilder {
    install_tls_provider();
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    reqwest::Client::builder().tls_backend_preconfigured(tls)
}

/// Whether `url` names this machine (`localhost`, 127.0.0.0/8, ::1).
pub fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(yaml: &str) -> Result<(), ConfigError> {
        let hooks: BTreeMap<String, Webhook> = serde_yaml::from_str(yaml).unwrap();
        validate(&hooks)
    }

    #[test]
    fn a_target_s_secrets_stay_out_of_debug_output() {
        let hooks: BTreeMap<String, Webhook> = serde_yaml::from_str(
            "s: {url: 'https://hooks.slack.com/services/T0/B0/sekrit', secret: hush, headers: {Authorization: 'Bearer tok'}}",
        )
        .unwrap();
        let shown = format!("{hooks:?}");
        assert!(shown.contains("https://hooks.slack.com/***"), "{shown}");
        for secret in ["sekrit", "hush", "Bearer tok"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn targets_are_https_or_loopback_and_say_what_is_wrong() {
        assert!(one("ops: {url: 'https://hooks.example.com/x', format: slack}").is_ok());
        assert!(one("local: {url: 'http://127.0.0.1:9000/hook'}").is_ok());
        assert!(one("local: {url: 'http://localhost:9000/hook'}").is_ok());
        assert!(one("lan: {url: 'http://10.0.0.5/hook', allow_http: true}").is_ok());
        for (yaml, says) in [
            ("lan: {url: 'http://10.0.0.5/hook'}", "in the clear"),
            ("x: {url: 'ftp://example.com/'}", "not http or https"),
            ("x: {url: 'not a url'}", "webhooks.x.url"),
            (
                "x: {url: 'https://u:p@example.com/'}",
                "credentials in headers",
            ),
            (
                "x: {url: 'https://example.com/', timeout_sec: 0}",
                "timeout_sec",
            ),
            ("'a b': {url: 'https://example.com/'}", "not a webhook name"),
            (
                "x: {url: 'https://example.com/', headers: {X-Pinball-Signature: y}}",
                "not a header name",
            ),
        ] {
            let e = one(yaml).unwrap_err().to_string();
            assert!(e.contains(says), "{yaml}: {e}");
        }
    }
}
