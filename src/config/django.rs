//! The Django-style `databases` block of the original's settings, read as a database URL.

use serde::Deserialize;

use super::{ConfigError, Secret};

/// One entry of the Django-style `databases` block.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[allow(non_snake_case)]
pub struct DjangoDatabase {
    pub ENGINE: String,
    pub NAME: String,
    pub USER: String,
    pub PASSWORD: Secret,
    pub HOST: String,
    pub PORT: Option<serde_yaml::Value>,
    pub OPTIONS: Option<serde_yaml::Value>,
}

impl DjangoDatabase {
    pub(super) fn url(&self) -> Result<String, ConfigError> {
        let bad = |m: String| Err(ConfigError::Database(m));
        match self.ENGINE.as_str() {
            "django.db.backends.sqlite3" => {
                if self.NAME.is_empty() {
                    return bad("databases.default: NAME (the SQLite file) is missing".into());
                }
                Ok(format!("sqlite://{}", self.NAME))
            }
            engine @ ("django.db.backends.mysql" | "django.db.backends.postgresql") => {
                let (scheme, default_port) = if engine.ends_with("mysql") {
                    ("mysql", "3306")
                } else {
                    ("postgres", "5432")
                };
                let port = match &self.PORT {
                    None => default_port.to_owned(),
                    Some(serde_yaml::Value::Number(n)) => n.to_string(),
                    Some(serde_yaml::Value::String(s)) if s.is_empty() => default_port.to_owned(),
                    Some(serde_yaml::Value::String(s)) => s.clone(),
                    Some(other) => {
                        return bad(format!("databases.default: PORT {other:?} is not a port"));
                    }
                };
                let host = if self.HOST.is_empty() {
                    "127.0.0.1"
                } else {
                    &self.HOST
                };
                let creds = match (self.USER.is_empty(), self.PASSWORD.0.is_empty()) {
                    (true, _) => String::new(),
                    (false, true) => format!("{}@", encode(&self.USER)),
                    (false, false) => {
                        format!("{}:{}@", encode(&self.USER), encode(&self.PASSWORD.0))
                    }
                };
                Ok(format!(
                    "{scheme}://{creds}{host}:{port}/{}",
                    encode(&self.NAME)
                ))
            }
            other => bad(format!(
                "databases.default: ENGINE `{other}` is not supported; use django.db.backends.postgresql, django.db.backends.mysql or django.db.backends.sqlite3"
            )),
        }
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, which is safe in a URL's
/// user-info part.
fn encode(s: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    utf8_percent_encode(s, UNRESERVED).to_string()
}
