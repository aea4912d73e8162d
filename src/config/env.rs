//! Pinball's secrets in the process environment, and the environment its children get.
//!
//! Secrets given through the environment (`PINBALL_API_TOKEN`, `PINBALL_DB_URL`,
//! `PINBALL_DB_FROM`, `PINBALL_DB_TO`) are taken out of it once, at the start of `main`
//! ([`take_secrets`]): kept in this process's memory, removed from its environment, and their
//! bytes overwritten in the environment block the kernel shows at `/proc/PID/environ`, which a
//! job (a child of the worker) could otherwise read. Every command Pinball starts (jobs,
//! cleanup commands, the `exec` parser) gets [`child_env`]: this process's environment less
//! those names, less every variable whose value holds one of the configuration's secrets, less
//! `env_deny`, and, when `env_allow` is given, only the names it allows.

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::OnceLock;

use super::Config;

/// The environment variables that carry Pinball's own secrets.
pub const SECRET_VARS: &[&str] = &[
    "PINBALL_API_TOKEN",
    "PINBALL_DB_URL",
    "PINBALL_DB_FROM",
    "PINBALL_DB_TO",
];

static TAKEN: OnceLock<HashMap<&'static str, String>> = OnceLock::new();

/// Takes [`SECRET_VARS`] out of the environment (see the module's header).
///
/// # Safety
/// Call it first in `main`, before any other thread exists: it changes the environment and
/// writes into the environment block.
pub unsafe fn take_secrets() {
    let mut taken = HashMap::new();
    for &name in SECRET_VARS {
        let Ok(value) = std::env::var(name) else {
            continue;
        };
        // SAFETY: single-threaded (the caller's promise).
        unsafe { overwrite_and_remove(name.as_ref()) };
        taken.insert(name, value);
    }
    let _ = TAKEN.set(taken);
}

/// Removes from this process's environment, and overwrites in its environment block, every
/// variable whose value holds one of `config`'s secrets (a token supplied under a name of the
/// deployment's choosing, as an `EnvironmentFile` might).
///
/// # Safety
/// As [`take_secrets`]: before any other thread exists.
pub unsafe fn scrub_secrets(config: &Config) {
    let secrets = config.secret_values();
    let holding: Vec<OsString> = std::env::vars_os()
        .filter(|(_, v)| holds_secret(&secrets, &v.to_string_lossy()))
        .map(|(k, _)| k)
        .collect();
    for name in holding {
        // SAFETY: the caller's promise, as in take_secrets.
        unsafe { overwrite_and_remove(&name) };
    }
}

/// Overwrites variable `name`'s value in the environment block, then removes the variable.
///
/// # Safety
/// Single-threaded only.
unsafe fn overwrite_and_remove(name: &std::ffi::OsStr) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(key) = std::ffi::CString::new(name.as_bytes()) else {
        return;
    };
    // SAFETY: getenv points into the environment block; the value's own bytes (up to its
    // NUL) are overwritten, nothing beyond them; the caller guarantees no other thread reads
    // the environment meanwhile.
    unsafe {
        let at = libc::getenv(key.as_ptr());
        if !at.is_null() {
            let len = libc::strlen(at);
            std::ptr::write_bytes(at, b'*', len);
        }
        std::env::remove_var(name);
    }
}

/// Secrets shorter than this are not looked for in values at all (a one-letter password
/// would withhold every `X=1`); they are still never passed by name.
const MATCH_MIN_LEN: usize = 4;

/// Whether `value` holds one of `secrets`.
fn holds_secret(secrets: &[String], value: &str) -> bool {
    secrets
        .iter()
        .filter(|s| s.len() >= MATCH_MIN_LEN)
        .any(|s| value == s || (s.len() >= SUBSTRING_MATCH_LEN && value.contains(s.as_str())))
}

/// A secret variable's value: as taken at start, or (in a process that did not take them,
/// such as a test) as the environment has it.
pub fn secret_var(name: &str) -> Option<String> {
    let value = match TAKEN.get() {
        Some(taken) => taken.get(name).cloned(),
        None => std::env::var(name).ok(),
    };
    value.filter(|v| !v.is_empty())
}

/// Secrets shorter than this are matched against a variable's whole value only (a short
/// password would otherwise withhold every variable that happens to contain it).
const SUBSTRING_MATCH_LEN: usize = 8;

/// Whether `name` matches one of `patterns`: a name, or a prefix ending in `*`.
fn listed(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => p == name,
    })
}

impl Config {
    /// The configuration's secret values: API tokens, the SMTP password, the database URL.
    fn secret_values(&self) -> Vec<String> {
        let mut v: Vec<String> = self.api_tokens.iter().map(|t| t.token.0.clone()).collect();
        v.extend(self.api_token.iter().map(|t| t.0.clone()));
        v.extend(self.presented_token().map(|t| t.0));
        v.push(self.smtp_pass.0.clone());
        if let Ok(url) = self.database_url() {
            v.push(url);
        }
        for name in SECRET_VARS {
            v.extend(secret_var(name));
        }
        v.retain(|s| !s.is_empty());
        v
    }

    /// The environment of every command Pinball starts (see the module's header).
    pub fn child_env(&self) -> Vec<(OsString, OsString)> {
        child_env_from(self, std::env::vars_os())
    }
}

fn child_env_from(
    c: &Config,
    vars: impl Iterator<Item = (OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    let secrets = c.secret_values();
    vars.filter(|(k, v)| {
        let name = k.to_string_lossy();
        let value = v.to_string_lossy();
        !SECRET_VARS.contains(&name.as_ref())
            && !holds_secret(&secrets, &value)
            && !listed(&c.env_deny, &name)
            && (c.env_allow.is_empty() || listed(&c.env_allow, &name))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ApiToken, Role, Secret};

    fn vars(pairs: &[(&str, &str)]) -> impl Iterator<Item = (OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect::<Vec<_>>()
            .into_iter()
    }

    fn names(env: &[(OsString, OsString)]) -> Vec<String> {
        env.iter()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_child_gets_no_secret_by_name_or_by_value() {
        let c = Config {
            api_tokens: vec![ApiToken {
                name: "w".into(),
                token: Secret("worker-token-0123456789".into()),
                role: Role::Worker,
                owner_prefix: None,
                pools: None,
            }],
            smtp_pass: Secret("hunter2".into()),
            database_url: Some(Secret("mysql://u:dbpass-987654@h/p".into())),
            ..Config::default()
        };
        let env = child_env_from(
            &c,
            vars(&[
                ("PATH", "/usr/bin"),
                ("PINBALL_API_TOKEN", "anything"),
                ("MY_TOKEN", "worker-token-0123456789"),
                ("AUTH_HEADER", "Bearer worker-token-0123456789"),
                ("SMTP", "hunter2"),
                ("NOT_SMTP", "hunter2 is short, kept"),
                ("DB", "mysql://u:dbpass-987654@h/p"),
            ]),
        );
        assert_eq!(names(&env), ["PATH", "NOT_SMTP"]);
    }

    #[test]
    fn a_very_short_password_withholds_nothing_by_value() {
        let c = Config {
            smtp_pass: Secret("1".into()),
            ..Config::default()
        };
        let env = child_env_from(&c, vars(&[("PYTHONUNBUFFERED", "1")]));
        assert_eq!(names(&env), ["PYTHONUNBUFFERED"]);
    }

    #[test]
    fn env_deny_and_env_allow_take_names_and_prefixes() {
        let c = Config {
            env_deny: vec!["AWS_*".into(), "SECRET".into()],
            ..Config::default()
        };
        let env = child_env_from(
            &c,
            vars(&[
                ("PATH", "/bin"),
                ("AWS_KEY", "k"),
                ("SECRET", "s"),
                ("HOME", "/h"),
            ]),
        );
        assert_eq!(names(&env), ["PATH", "HOME"]);
        let c = Config {
            env_allow: vec!["PATH".into(), "LC_*".into()],
            ..Config::default()
        };
        let env = child_env_from(
            &c,
            vars(&[("PATH", "/bin"), ("LC_ALL", "C"), ("HOME", "/h")]),
        );
        assert_eq!(names(&env), ["PATH", "LC_ALL"]);
    }
}
