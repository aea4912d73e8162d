//! Who is calling a server, and what they may do (CONTRACT §7.1). With `api_tokens`
//! configured every call presents `Authorization: Bearer <token>`; the token is looked up by
//! its SHA-256 digest, compared in constant time against every entry, and never kept or logged
//! as text. Without tokens the master is open, which start-up allows on loopback only.

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ApiToken, Role};
use crate::token::MasterError;

/// The caller of one request, as authenticated.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's `name` from `api_tokens`, or `anonymous` on an open master.
    pub name: Arc<str>,
    pub role: Role,
    /// Whether the caller showed a token (false on an open master).
    pub authenticated: bool,
    /// What the token is bound to (`owner_prefix`, `pools`), if anything.
    pub binding: Option<Arc<Binding>>,
}

/// The owner names and pools an API token is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub owner_prefix: Option<String>,
    pub pools: Option<Vec<String>>,
}

impl Binding {
    /// Refuses `owner` unless it starts with the token's `owner_prefix`.
    pub fn check_owner(&self, token: &str, owner: &str) -> Result<(), MasterError> {
        match &self.owner_prefix {
            Some(p) if !owner.starts_with(p.as_str()) => Err(MasterError::Forbidden(format!(
                "the token `{token}` acts only as owners starting with `{p}` (owner_prefix), not as `{owner}`"
            ))),
            _ => Ok(()),
        }
    }

    /// The pools a claim may take: the claim's own, each of them the token's, or, when it
    /// names none, the token's.
    pub fn claim_pools(
        &self,
        token: &str,
        asked: Option<Vec<String>>,
    ) -> Result<Option<Vec<String>>, MasterError> {
        let Some(allowed) = &self.pools else {
            return Ok(asked);
        };
        match asked {
            None => Ok(Some(allowed.clone())),
            Some(asked) => match asked.iter().find(|p| !allowed.contains(p)) {
                Some(p) => Err(MasterError::Forbidden(format!(
                    "the token `{token}` claims only jobs of the pools {allowed:?}, not of `{p}`"
                ))),
                None => Ok(Some(asked)),
            },
        }
    }
}

impl Caller {
    /// Whoever calls an open master may do everything.
    pub fn anonymous() -> Caller {
        Caller {
            name: "anonymous".into(),
            role: Role::Operator,
            authenticated: false,
            binding: None,
        }
    }

    /// Refuses the call unless the caller's role is at least `needed`.
    pub fn require(&self, needed: Role, what: &str) -> Result<(), MasterError> {
        if self.role >= needed {
            return Ok(());
        }
        Err(MasterError::Forbidden(format!(
            "{what} needs the {needed} role; the token `{}` has the {} role",
            self.name, self.role
        )))
    }
}

struct Entry {
    name: Arc<str>,
    digest: [u8; 32],
    role: Role,
    binding: Option<Arc<Binding>>,
}

/// The master's API tokens; empty means open.
#[derive(Clone, Default)]
pub struct Access {
    entries: Arc<Vec<Entry>>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Access({} tokens)", self.entries.len())
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Access {
    pub fn new(tokens: &[ApiToken]) -> Access {
        let entries = tokens
            .iter()
            .map(|t| Entry {
                name: t.name.as_str().into(),
                digest: digest(t.token.0.as_bytes()),
                role: t.role,
                binding: (t.owner_prefix.is_some() || t.pools.is_some()).then(|| {
                    Arc::new(Binding {
                        owner_prefix: t.owner_prefix.clone(),
                        pools: t.pools.clone(),
                    })
                }),
            })
            .collect();
        Access {
            entries: Arc::new(entries),
        }
    }

    /// A master anyone may call.
    pub fn open() -> Access {
        Access::default()
    }

    pub fn is_open(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn token_count(&self) -> usize {
        self.entries.len()
    }

    /// The caller a request's headers name.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, MasterError> {
        if self.is_open() {
            return Ok(Caller::anonymous());
        }
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| {
                MasterError::Unauthorized(
                    "this master needs an API token: send `Authorization: Bearer <token>` (api_token in the configuration, or PINBALL_API_TOKEN)".into(),
                )
            })?;
        let d = digest(presented.as_bytes());
        // Every entry is compared, so the time taken says nothing about which one matched.
        let mut found: Option<&Entry> = None;
        for e in self.entries.iter() {
            if bool::from(e.digest.ct_eq(&d)) {
                found = Some(e);
            }
        }
        found
            .map(|e| Caller {
                name: e.name.clone(),
                role: e.role,
                authenticated: true,
                binding: e.binding.clone(),
            })
            .ok_or_else(|| {
                MasterError::Unauthorized("the API token is not one this master knows".into())
            })
    }
}

/// The checks a guarded request passes, on the master's API and on every `/metrics`: a `Host`
/// this server answers to (`wrong_host` says why not), no page of another site, a known
/// token, and (when `needed` names one) a role that allows the call.
pub fn admit(
    access: &Access,
    host_names: &[String],
    headers: &HeaderMap,
    needed: Option<(Role, &str)>,
    wrong_host: &str,
) -> Result<Caller, MasterError> {
    if !host_allowed(headers, host_names) {
        return Err(MasterError::Forbidden(wrong_host.to_owned()));
    }
    if !same_origin(headers) {
        return Err(MasterError::Forbidden(
            "requests from web pages of other sites are refused".into(),
        ));
    }
    let caller = access.authenticate(headers)?;
    if let Some((role, what)) = needed {
        caller.require(role, what)?;
    }
    Ok(caller)
}

/// Whether the `Host` a request names is one of this server's: an IP address (a page cannot make
/// a browser send one with a name of its own), `localhost`, or one of `names` (the configured
/// host names). A page served as `evil.example`, resolved to this machine (DNS rebinding), sends
/// `Host: evil.example` and is refused.
pub fn host_allowed(headers: &HeaderMap, names: &[String]) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return true; // HTTP/1.0 without Host: no browser sends such a request
    };
    let bare = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    };
    let bare = bare.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>().is_ok()
        || bare.eq_ignore_ascii_case("localhost")
        || names.iter().any(|n| n.eq_ignore_ascii_case(bare))
}

/// The host names a server answers to beyond IP addresses and `localhost`.
pub fn host_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    names
        .into_iter()
        .filter(|n| !n.is_empty() && n.parse::<std::net::IpAddr>().is_err())
        .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
        .collect()
}

/// Whether a request may come from where it says: a browser names the page that sent it in
/// `Origin` and `Sec-Fetch-Site`; only the master's own origin is accepted (no page of another
/// site may drive it, with or without a token).
pub fn same_origin(headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v != "same-origin" && v != "none")
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin.to_str().ok().is_some_and(|o| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
            .is_some_and(|rest| !host.is_empty() && rest.eq_ignore_ascii_case(host))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn access() -> Access {
        Access::new(&[
            ApiToken {
                name: "ops".into(),
                token: Secret("operator-token-0123456789".into()),
                role: Role::Operator,
                owner_prefix: None,
                pools: None,
            },
            ApiToken {
                name: "grafana".into(),
                token: Secret("viewer-token-0123456789".into()),
                role: Role::Viewer,
                owner_prefix: None,
                pools: None,
            },
        ])
    }

    fn bearer(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn an_open_master_lets_anyone_do_everything() {
        let c = Access::open().authenticate(&HeaderMap::new()).unwrap();
        assert_eq!(c.role, Role::Operator);
        assert!(c.require(Role::Operator, "writing a definition").is_ok());
    }

    #[test]
    fn a_known_token_names_its_holder_and_role() {
        let c = access()
            .authenticate(&bearer("Bearer viewer-token-0123456789"))
            .unwrap();
        assert_eq!(&*c.name, "grafana");
        assert_eq!(c.role, Role::Viewer);
        let err = c.require(Role::Worker, "claiming").unwrap_err();
        assert!(matches!(err, MasterError::Forbidden(_)), "{err}");
        assert!(!err.to_string().contains("viewer-token"), "{err}");
    }

    #[test]
    fn a_missing_or_unknown_token_is_unauthorized() {
        let a = access();
        for h in [
            HeaderMap::new(),
            bearer("Bearer nope-nope-nope-nope"),
            bearer("Basic b3BzOm9wcw=="),
            bearer("Bearer"),
        ] {
            let err = a.authenticate(&h).unwrap_err();
            assert!(matches!(err, MasterError::Unauthorized(_)), "{err}");
        }
    }

    #[test]
    fn only_this_server_s_names_are_accepted_as_host() {
        let h = |host: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, host.parse().unwrap());
            h
        };
        let names = host_names(["pinball.example.com", "10.0.0.1"]);
        for ok in [
            "127.0.0.1:9090",
            "[::1]:8080",
            "localhost:8080",
            "10.1.2.3",
            "pinball.example.com:8080",
            "PINBALL.example.com",
        ] {
            assert!(host_allowed(&h(ok), &names), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:9090",
            "pinball.example.com.evil.example",
        ] {
            assert!(!host_allowed(&h(bad), &names), "{bad}");
        }
    }

    #[test]
    fn only_the_master_s_own_origin_may_call() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            h
        };
        assert!(same_origin(&h(&[("host", "m:9090")])));
        assert!(same_origin(&h(&[
            ("host", "m:9090"),
            ("origin", "http://m:9090")
        ])));
        assert!(!same_origin(&h(&[
            ("host", "m:9090"),
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&h(&[("host", "m:9090"), ("origin", "null")])));
        assert!(!same_origin(&h(&[
            ("host", "m:9090"),
            ("sec-fetch-site", "cross-site")
        ])));
    }
}
