//! A master protected by API tokens: one token of each role, and the master itself as a
//! process.

use std::path::Path;

use super::{Process, start_master_process};

pub const OPERATOR: &str = "operator-token-0123456789abcdef";

pub const WORKER: &str = "worker-token-0123456789abcdef";

pub const VIEWER: &str = "viewer-token-0123456789abcdef";

/// The `api_tokens` block of a protected master: one token of each role.
pub fn api_tokens_yaml() -> String {
    format!(
        "api_tokens:\n  - {{name: ops, token: {OPERATOR}, role: operator}}\n  - {{name: workers, token: {WORKER}, role: worker}}\n  - {{name: grafana, token: {VIEWER}, role: viewer}}\n"
    )
}

/// Starts `pinball -m master` on a fresh SQLite file with `extra` configuration.
pub async fn master_with(dir: &Path, extra: &str) -> Process {
    let path = dir.join("protected.yaml");
    std::fs::write(
        &path,
        format!(
            "database_url: sqlite://{}\nmaster_port: 0\n{extra}",
            dir.join("pinball.db").display()
        ),
    )
    .unwrap();
    start_master_process(&path).await
}
