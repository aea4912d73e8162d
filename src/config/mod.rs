//! The typed configuration (CONTRACT §7): a YAML file with defaults for every key, the original
//! Pinball's key names, the Django-style `databases` block or a `database_url`. Unknown keys are
//! errors naming the key and the file; keys that no longer apply are accepted with a warning.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod access;
pub mod env;
pub mod webhooks;

pub use access::{ApiToken, Role, UiUser};
pub use webhooks::{http_client_builder, install_tls_provider};

/// The default database: an SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://pinball.db";
/// Default largest request body: 64 MiB (job histories make tokens large).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 64 << 20;
/// The most of one job log the master keeps (`log_max_bytes`).
pub const DEFAULT_LOG_MAX_BYTES: u64 = 16 << 20;
/// How long the master keeps job logs (`log_retention_days`).
pub const DEFAULT_LOG_RETENTION_DAYS: u64 = 30;

/// Keys of the original Pinball that this one does not use; accepted with a warning.
const OBSOLETE_KEYS: &[(&str, &str)] = &[
    ("debug", "a Django setting"),
    ("allowed_hosts", "a Django setting"),
    ("secret_key", "a Django setting"),
    ("aes_cbc_key", "Google OAuth cookie crypto"),
    ("hmac_key", "Google OAuth cookie crypto"),
    ("crypto_version", "Google OAuth cookie crypto"),
    ("authentication_domains", "Google OAuth"),
    ("google_client_id", "Google OAuth"),
    ("google_client_secret", "Google OAuth"),
    (
        "worker_creation_sleep_interval_sec",
        "unused in the original too",
    ),
    (
        "max_backoff_client_reconnet_sec",
        "a misspelt key the original never read",
    ),
    ("github_server", "the GitHub repository parser"),
    ("github_api_uri", "the GitHub repository parser"),
    ("github_oauth_token", "the GitHub repository parser"),
    ("github_http_timeout_sec", "the GitHub repository parser"),
    ("user", "the GitHub repository parser"),
    (
        "s3_logs_dir_prefix",
        "S3 job logs (logs stay under local_logs_dir_prefix)",
    ),
    ("aws_access_key_id", "S3 job logs"),
    ("aws_secret_access_key", "S3 job logs"),
];

/// This machine's host name (`/proc/sys/kernel/hostname`), or `localhost` when it cannot be
/// read: what links and names use when the configuration names no host.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// `smtp_starttls`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartTls {
    #[default]
    Opportunistic,
    Required,
    Off,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    /// A key's value is not allowed (the message names the key).
    #[error("{0}")]
    Value(String),
    /// The database keys do not name a usable database.
    #[error("{0}")]
    Database(String),
}

/// A string that never appears in logs or `Debug` output.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Software generation, for the EXIT signal: older workers exit, newer ones stay.
    pub generation: u32,
    pub master_host: String,
    pub master_port: u16,
    /// Every master's `HOST:PORT` (a leader and its standbys): clients follow the leader among
    /// them. Empty: `master_host:master_port` alone.
    pub master_hosts: Vec<String>,
    /// Several masters can share one database; each keeps its tokens under its own name.
    pub master_name: String,
    /// Concurrent workers per `-m workers` process.
    pub workers: u32,
    pub worker_poll_time_sec: u64,
    pub ui_host: Option<String>,
    pub ui_port: u16,
    pub default_max_workflow_running_instances: u32,
    pub local_logs_dir_prefix: Option<String>,
    pub job_log_path_prefix: String,
    /// How long a finished instance stays in the master (retry in place) before archiving.
    pub archive_delay_sec: u64,
    /// A running job's ownership lease, renewed while it runs.
    pub lease_sec: u64,
    /// How long a master's hold on its database (`master_lease`) outlives its last renewal:
    /// a second master on the same database and name waits this long for a hung one.
    pub master_lease_sec: u64,
    /// How long the oldest job waiting for a pool's slots may be passed by smaller ones.
    pub pool_starvation_sec: u64,
    /// On SIGTERM, how long workers let running jobs go on before handing them back.
    pub worker_shutdown_grace_sec: u64,
    /// How long a worker keeps a running job, and keeps trying to commit its end, while the
    /// master is unreachable or cannot commit, before it gives the job up.
    pub master_outage_grace_sec: u64,
    /// How many times a job whose worker died (stopped renewing its lease) runs again without
    /// the lost execution counting as an attempt.
    pub lost_lease_retries: u32,
    /// The pools a `-m workers` process serves; a job names its pool with `pool:`.
    pub pools: Vec<String>,
    /// The most bytes of one job log the master stores (the rest stays on the worker's disk).
    pub log_max_bytes: u64,
    /// Job logs stored longer than this are deleted (0 keeps them).
    pub log_retention_days: u64,
    pub parser: String,
    pub parser_params: ParserParams,
    pub default_email: Option<String>,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub smtp_user: String,
    pub smtp_pass: Secret,
    /// TLS from the first byte (port 465).
    pub smtp_ssl: bool,
    /// STARTTLS: `opportunistic` (when offered), `required`, or `off`.
    pub smtp_starttls: StartTls,
    /// PEM file of extra certificate authorities trusted for the SMTP server.
    pub smtp_ca_file: Option<String>,
    /// Whether `smtp_user`'s password may be sent without TLS (a trusted local relay).
    pub smtp_allow_plaintext_auth: bool,
    /// How long an email the SMTP server does not take is tried again before it is given up.
    pub email_give_up_sec: u64,
    /// The longest one SMTP conversation step may take before the try counts as failed.
    pub smtp_timeout_sec: u64,
    pub databases: Option<BTreeMap<String, DjangoDatabase>>,
    pub database_url: Option<Secret>,
    /// Largest request body the master accepts.
    pub max_request_bytes: usize,
    /// Largest answer of one `/query`, in bytes of names and data.
    pub max_answer_bytes: usize,
    /// The most tokens one `/query` may look at.
    pub max_query_visits: usize,
    /// The most bytes of answers the master holds at once, all requests together; a request
    /// beyond it is answered UNAVAILABLE at once.
    pub max_answers_bytes_total: usize,
    /// Longest a claim waits for a claimable token, whatever its `wait_ms` asks.
    pub max_claim_wait_ms: u64,
    pub client_connect_attempts: u32,
    pub client_timeout_sec: u64,
    pub max_backoff_client_reconnect_sec: u64,
    /// How long the master and the UI wait for a request's headers (and close idle
    /// connections after).
    pub client_header_timeout_sec: u64,
    /// How long the master and the UI wait for a request's whole body.
    pub client_body_timeout_sec: u64,
    /// Connections the master and the UI each serve at once; more wait. A quarter is kept
    /// for authenticated callers.
    pub max_connections: usize,
    /// Requests one API token may have waiting at the master at once (default: half of
    /// `max_connections`).
    pub max_parked_per_token: Option<usize>,
    /// Where the master listens; `master_host` is where clients find it.
    pub master_bind: String,
    /// Where the UI listens; `ui_host` is the name used in links.
    pub ui_bind: String,
    /// Without `api_tokens` (or `ui_users` for the UI), a bind beyond loopback is refused
    /// unless this is set.
    pub allow_unauthenticated: bool,
    /// With entries, every master API call needs `Authorization: Bearer <token>`.
    pub api_tokens: Vec<ApiToken>,
    /// What this process presents to the master (`PINBALL_API_TOKEN` overrides it).
    pub api_token: Option<Secret>,
    /// With entries, the UI needs a sign-in.
    pub ui_users: Vec<UiUser>,
    /// Session cookies carry `Secure` (set when the UI is behind TLS).
    pub ui_cookie_secure: bool,
    /// How long a UI session lasts without use, in minutes.
    pub ui_session_minutes: u64,
    /// `HOST:PORT` where `-m workers` and `-m scheduler` serve `/metrics`, `/health` and
    /// `/ready` (none by default).
    pub metrics_bind: Option<String>,
    /// `text` (default) or `json`: one JSON object per log line.
    pub log_format: LogFormat,
    /// Archived instances that ended longer ago than this are deleted in the background, with
    /// their summaries and logs (none by default: history is kept).
    pub retention_days: Option<u32>,
    /// Environment variables (names, or prefixes ending in `*`) that jobs, cleanup commands
    /// and the `exec` parser may get; empty: all but Pinball's secrets and `env_deny`.
    pub env_allow: Vec<String>,
    /// Environment variables (names, or prefixes ending in `*`) they never get.
    pub env_deny: Vec<String>,
    /// The OS user that jobs and cleanup commands run as (the workers must run as root);
    /// none: the workers' own user.
    pub job_user: Option<String>,
    /// How long processes a job left running may outlive its shell before they are ended.
    pub job_linger_sec: u64,
    /// HTTP targets for notices, by name (`notify` rules name them).
    pub webhooks: BTreeMap<String, webhooks::Webhook>,
    /// How long a notice a target does not take is tried again before it is given up.
    pub notify_give_up_sec: u64,
}

/// `HOST:PORT` (an IPv6 host in brackets) split into its parts.
pub fn split_host_port(text: &str) -> Option<(&str, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then_some(())?;
    Some((host, port.parse().ok()?))
}

/// `log_format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            generation: 1,
            master_host: "127.0.0.1".into(),
            master_port: 9090,
            master_hosts: Vec::new(),
            master_name: "default".into(),
            workers: 5,
            worker_poll_time_sec: 10,
            ui_host: None,
            ui_port: 8080,
            default_max_workflow_running_instances: 3,
            local_logs_dir_prefix: None,
            job_log_path_prefix: "pinball_job_logs/".into(),
            archive_delay_sec: 12 * 3600,
            lease_sec: 30,
            master_lease_sec: 10,
            pool_starvation_sec: 60,
            worker_shutdown_grace_sec: 30,
            master_outage_grace_sec: 600,
            lost_lease_retries: 1,
            pools: vec![crate::token::DEFAULT_POOL.into()],
            log_max_bytes: DEFAULT_LOG_MAX_BYTES,
            log_retention_days: DEFAULT_LOG_RETENTION_DAYS,
            parser: "yaml".into(),
            parser_params: ParserParams::default(),
            default_email: None,
            smtp_host: "localhost".into(),
            smtp_port: 25,
            smtp_user: String::new(),
            smtp_pass: Secret::default(),
            smtp_ssl: false,
            smtp_starttls: StartTls::Opportunistic,
            smtp_ca_file: None,
            smtp_allow_plaintext_auth: false,
            email_give_up_sec: 3600,
            smtp_timeout_sec: 20,
            databases: None,
            database_url: None,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_answer_bytes: crate::token::DEFAULT_MAX_ANSWER_BYTES,
            max_query_visits: crate::token::DEFAULT_MAX_QUERY_VISITS,
            max_answers_bytes_total: crate::token::DEFAULT_MAX_ANSWERS_BYTES_TOTAL,
            max_claim_wait_ms: crate::token::MAX_WAIT_MS,
            client_connect_attempts: 10,
            client_timeout_sec: 60,
            max_backoff_client_reconnect_sec: 5,
            client_header_timeout_sec: 30,
            client_body_timeout_sec: 60,
            max_connections: 1000,
            max_parked_per_token: None,
            master_bind: "127.0.0.1".into(),
            ui_bind: "127.0.0.1".into(),
            allow_unauthenticated: false,
            api_tokens: Vec::new(),
            api_token: None,
            ui_users: Vec::new(),
            ui_cookie_secure: false,
            ui_session_minutes: 8 * 60,
            metrics_bind: None,
            log_format: LogFormat::Text,
            retention_days: None,
            env_allow: Vec::new(),
            env_deny: Vec::new(),
            job_user: None,
            job_linger_sec: 0,
            webhooks: BTreeMap::new(),
            notify_give_up_sec: 3600,
        }
    }
}

/// Passed to the workflow parser. Keys beyond the known ones are kept for it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ParserParams {
    /// A YAML file, or a folder of them, holding `workflows:` (parser `yaml`).
    pub workflows_config: Option<String>,
    /// A program printing the definitions as JSON (parser `exec`).
    pub command: Option<String>,
    /// How long that program may run (default 60 s).
    pub timeout_sec: Option<u64>,
    /// How much it may print (default 64 MiB).
    pub max_output_bytes: Option<usize>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml::Value>,
}

impl Config {
    /// Loads `path`; without one, `pinball.yaml` in the working directory if it exists, else
    /// the defaults. Returns the warnings to log once tracing is up.
    pub fn load(path: Option<&Path>) -> Result<(Config, Vec<String>), ConfigError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new("pinball.yaml").exists() => PathBuf::from("pinball.yaml"),
            None => return Ok((Config::default(), Vec::new())),
        };
        let text = crate::yaml::read_file(&path)
            .map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?
            .map_err(|e| ConfigError::Invalid {
                path: path.clone(),
                message: e.to_string(),
            })?;
        let (mut config, warnings) = Config::parse(&text, &path)?;
        // A relative workflows_config means: next to the configuration file.
        if let (Some(dir), Some(wc)) = (
            path.parent(),
            config.parser_params.workflows_config.as_mut(),
        ) && Path::new(wc.as_str()).is_relative()
        {
            *wc = dir.join(&*wc).display().to_string();
        }
        Ok((config, warnings))
    }

    /// Parses configuration text; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let value: serde_yaml::Value =
            crate::yaml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut map = match value {
            serde_yaml::Value::Mapping(m) => m,
            serde_yaml::Value::Null => serde_yaml::Mapping::new(),
            _ => {
                return Err(invalid(
                    "the top level must be a mapping of keys to values".into(),
                ));
            }
        };
        let mut warnings = Vec::new();
        for (key, what) in OBSOLETE_KEYS {
            if map.remove(*key).is_some() {
                warnings.push(format!(
                    "{}: key `{key}` ({what}) no longer applies and is ignored",
                    path.display()
                ));
            }
        }
        let config: Config = serde_yaml::from_value(serde_yaml::Value::Mapping(map))
            .map_err(|e| invalid(e.to_string()))?;
        config.validate().map_err(|e| invalid(e.to_string()))?;
        Ok((config, warnings))
    }

    /// The checks serde cannot make; the message names the key.
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Value(m));
        if !crate::token::name::is_word(&self.master_name) || self.master_name.len() > 64 {
            return bad(format!(
                "master_name `{}` must be 1-64 characters of A-Z a-z 0-9 _",
                self.master_name
            ));
        }
        if self.master_hosts.len() > 16 {
            return bad("master_hosts lists at most 16 masters".into());
        }
        for h in &self.master_hosts {
            let port = h.rsplit_once(':').and_then(|(host, p)| {
                (!host.is_empty() && !host.contains(['/', '@', ' ']))
                    .then(|| p.parse::<u16>().ok())
                    .flatten()
            });
            if port.is_none_or(|p| p == 0) {
                return bad(format!(
                    "master_hosts entry `{h}` is not HOST:PORT (for example master-b.example.com:9090)"
                ));
            }
        }
        if self.lease_sec < 2 {
            return bad(format!(
                "lease_sec {} is too short; it must be at least 2",
                self.lease_sec
            ));
        }
        if !(2..=3600).contains(&self.master_lease_sec) {
            return bad(format!(
                "master_lease_sec {} must be between 2 and 3600",
                self.master_lease_sec
            ));
        }
        if self.workers == 0 {
            return bad("workers must be at least 1".into());
        }
        if self.max_request_bytes < 1024 {
            return bad(format!(
                "max_request_bytes {} is below the minimum of 1024",
                self.max_request_bytes
            ));
        }
        if self.max_answer_bytes < self.max_request_bytes {
            return bad(format!(
                "max_answer_bytes {} is below max_request_bytes {}: a token the master accepts could not be read back",
                self.max_answer_bytes, self.max_request_bytes
            ));
        }
        if self.client_connect_attempts == 0 {
            return bad("client_connect_attempts must be at least 1".into());
        }
        if !self.smtp_user.is_empty()
            && !self.smtp_ssl
            && self.smtp_starttls == StartTls::Off
            && !self.smtp_allow_plaintext_auth
        {
            return bad("smtp_user is set but smtp_starttls is off: the password would cross the network in the clear; use smtp_starttls: required or smtp_ssl: true, or smtp_allow_plaintext_auth: true for a trusted local relay".into());
        }
        self.validate_workers()?;
        if self.retention_days == Some(0) {
            return bad("retention_days must be at least 1 (leave it out to keep history)".into());
        }
        if self.ui_session_minutes == 0 {
            return bad("ui_session_minutes must be at least 1".into());
        }
        access::validate_tokens(&self.api_tokens)?;
        access::validate_users(&self.ui_users)?;
        access::validate_api_token(&self.api_token)?;
        webhooks::validate(&self.webhooks)?;
        self.database_url().map(|_| ())
    }

    /// The worker-side checks: the parser, the pools and the metrics listener.
    fn validate_workers(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Value(m));
        if !matches!(self.parser.as_str(), "yaml" | "exec") {
            return bad(format!(
                "parser `{}` is unknown; use `yaml` or `exec`",
                self.parser
            ));
        }
        if self.pools.is_empty() || self.pools.len() > crate::token::MAX_POOLS {
            return bad(format!(
                "pools names {} pools; a worker serves between 1 and {} (default: [default])",
                self.pools.len(),
                crate::token::MAX_POOLS
            ));
        }
        if let Some(p) = self.pools.iter().find(|p| !crate::token::is_pool_name(p)) {
            return bad(format!(
                "pools: `{p}` is not a pool name: letters, digits, _ and - only, at most 64"
            ));
        }
        if let Some(bind) = &self.metrics_bind
            && split_host_port(bind).is_none()
        {
            return bad(format!(
                "metrics_bind `{bind}` must be HOST:PORT, e.g. 127.0.0.1:9100"
            ));
        }
        Ok(())
    }

    /// Where clients find the masters: `master_hosts`, else `master_host:master_port`.
    pub fn master_addresses(&self) -> Vec<String> {
        if self.master_hosts.is_empty() {
            vec![format!("{}:{}", self.master_host, self.master_port)]
        } else {
            self.master_hosts.clone()
        }
    }

    /// The token this process presents to the master: `PINBALL_API_TOKEN`, else `api_token`.
    pub fn presented_token(&self) -> Option<Secret> {
        env::secret_var("PINBALL_API_TOKEN")
            .map(Secret)
            .or_else(|| self.api_token.clone())
    }

    /// The database to use: `database_url`, else `databases.default`, else the SQLite default.
    pub fn database_url(&self) -> Result<String, ConfigError> {
        let bad = |m: &str| ConfigError::Database(m.to_owned());
        match (&self.database_url, &self.databases) {
            (Some(_), Some(_)) => Err(bad("give either database_url or databases, not both")),
            (Some(url), None) => Ok(url.0.clone()),
            (None, Some(dbs)) => {
                let db = dbs
                    .get("default")
                    .ok_or_else(|| bad("databases has no `default` entry"))?;
                db.url()
            }
            (None, None) => Ok(DEFAULT_DATABASE_URL.into()),
        }
    }

    /// Where job logs go: `<local_logs_dir_prefix>/<job_log_path_prefix>`; without a prefix,
    /// under the working directory (like the default database), never the shared temporary
    /// directory, where another user could plant links.
    pub fn logs_dir(&self) -> PathBuf {
        let root = self.local_logs_dir_prefix.as_ref().map_or_else(
            || std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            PathBuf::from,
        );
        root.join(&self.job_log_path_prefix)
    }
}

mod django;
pub use django::DjangoDatabase;

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
