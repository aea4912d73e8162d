//! The access-control keys (CONTRACT §7.1): where the master and the UI listen, the master's API
//! tokens and their roles, the token this process presents, and the UI's users. Checked when
//! the file is read, so a weak token or a malformed password hash stops start-up with a message
//! that names it.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::{ConfigError, Secret};

/// What a caller may do. Ordered: each role may do everything the ones below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Starts runs (`POST /api/v1/workflows/{wf}/runs`) and nothing else: least privilege for
    /// a CI system or another scheduler. Below every other role, so it reads nothing.
    Trigger,
    /// Reads: query, group, health, metrics.
    Viewer,
    /// Token operations: claims, updates, archiving; not definitions nor global or
    /// workflow-wide signals.
    Worker,
    /// Everything.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Trigger => "trigger",
            Role::Viewer => "viewer",
            Role::Worker => "worker",
            Role::Operator => "operator",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `api_tokens`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// Who holds it: shown in logs and the audit log instead of the token.
    pub name: String,
    pub token: Secret,
    pub role: Role,
    /// Owner names this token may claim and write as must start with this (a worker host's
    /// name, say): its claims, the owners it sets, the jobs it may rewrite while another
    /// owner holds them, the logs it sends.
    #[serde(default)]
    pub owner_prefix: Option<String>,
    /// The pools whose jobs this token may claim.
    #[serde(default)]
    pub pools: Option<Vec<String>>,
}

/// One entry of `ui_users`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiUser {
    pub username: String,
    /// An argon2id PHC string, as `pinball hash-password` prints it.
    pub password_hash: Secret,
    pub role: Role,
}

/// Shortest API token accepted: 16 characters (`openssl rand -hex 32` gives 64).
pub const MIN_TOKEN_LEN: usize = 16;

fn is_label(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'))
}

/// A token travels in an HTTP header: visible ASCII, no spaces.
fn is_header_safe(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic())
}

pub(super) fn validate_tokens(tokens: &[ApiToken]) -> Result<(), ConfigError> {
    let bad = |m: String| Err(ConfigError::Value(m));
    let mut names = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    for t in tokens {
        if !is_label(&t.name) {
            return bad(format!(
                "api_tokens: name `{}` must be 1-64 characters of A-Z a-z 0-9 _ - . @",
                t.name
            ));
        }
        if !names.insert(t.name.as_str()) {
            return bad(format!("api_tokens: name `{}` appears twice", t.name));
        }
        if t.token.0.len() < MIN_TOKEN_LEN || !is_header_safe(&t.token.0) {
            return bad(format!(
                "api_tokens: the token of `{}` must be at least {MIN_TOKEN_LEN} visible ASCII characters without spaces (make one with `openssl rand -hex 32`)",
                t.name
            ));
        }
        if let Some(p) = &t.owner_prefix
            && (p.is_empty()
                || p.len() > 64
                || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            return bad(format!(
                "api_tokens: the owner_prefix of `{}` must be 1-64 letters, digits or _ (owner names are `<host>_<generation>_...`)",
                t.name
            ));
        }
        if let Some(pools) = &t.pools
            && (pools.is_empty() || pools.iter().any(|p| !crate::token::is_pool_name(p)))
        {
            return bad(format!(
                "api_tokens: the pools of `{}` must be one or more pool names (letters, digits, _ and -)",
                t.name
            ));
        }
        if !secrets.insert(t.token.0.as_str()) {
            return bad(format!(
                "api_tokens: `{}` has the same token as another entry; give each its own",
                t.name
            ));
        }
    }
    Ok(())
}

pub(super) fn validate_users(users: &[UiUser]) -> Result<(), ConfigError> {
    use argon2::password_hash::phc::PasswordHash;
    let bad = |m: String| Err(ConfigError::Value(m));
    let mut names = BTreeSet::new();
    for u in users {
        if !is_label(&u.username) {
            return bad(format!(
                "ui_users: username `{}` must be 1-64 characters of A-Z a-z 0-9 _ - . @",
                u.username
            ));
        }
        if !names.insert(u.username.as_str()) {
            return bad(format!("ui_users: username `{}` appears twice", u.username));
        }
        if u.role == Role::Worker {
            return bad(format!(
                "ui_users: `{}` has role worker; a UI user is a viewer or an operator",
                u.username
            ));
        }
        let parsed = PasswordHash::new(&u.password_hash.0).ok();
        if parsed.is_none_or(|h| h.algorithm.as_str() != "argon2id") {
            return bad(format!(
                "ui_users: the password_hash of `{}` is not an argon2id hash; make one with `pinball hash-password`",
                u.username
            ));
        }
    }
    Ok(())
}

pub(super) fn validate_api_token(token: &Option<Secret>) -> Result<(), ConfigError> {
    match token {
        Some(t) if !is_header_safe(&t.0) || t.0.is_empty() => Err(ConfigError::Value(
            "api_token must be visible ASCII characters without spaces".into(),
        )),
        _ => Ok(()),
    }
}

/// An argon2id hash of `password`, as `pinball hash-password` prints it.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Whether `host` names this machine only: a loopback address, or `localhost`.
pub fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_checks_against_its_own_hash_only() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("battery staple", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn loopback_is_only_this_machine() {
        for h in ["127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["0.0.0.0", "::", "10.0.0.1", "pinball.example.com", ""] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
