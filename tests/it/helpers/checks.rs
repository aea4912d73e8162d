//! What the fault tests check the same way: readiness probes, acknowledged writes kept, and a
//! master process killed and started again.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use pinball::master::MasterClient;

use super::{spawn_pinball, wait_until};

/// `GET /ready` of the listener on `port`: its status (0 when nothing answers) and body.
pub async fn ready(port: u16) -> (u16, serde_json::Value) {
    match reqwest::get(format!("http://127.0.0.1:{port}/ready")).await {
        Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or_default()),
        Err(_) => (0, serde_json::Value::Null),
    }
}

pub async fn is_ready(port: u16) -> bool {
    ready(port).await.0 == 200
}

/// Every name in `acked` is among the master's tokens under `prefix`, and none in `refused`
/// (writes the master said were not committed).
pub async fn assert_writes_kept(
    client: &dyn MasterClient,
    prefix: &str,
    acked: &[String],
    refused: &[String],
) {
    let have: BTreeSet<String> = client
        .query_prefix(prefix)
        .await
        .unwrap_or_else(|e| panic!("reading the tokens under {prefix} to check the writes: {e}"))
        .into_iter()
        .map(|t| t.name)
        .collect();
    let missing: Vec<&String> = acked.iter().filter(|n| !have.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged writes are missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let phantoms: Vec<&String> = refused.iter().filter(|n| have.contains(*n)).collect();
    assert!(
        phantoms.is_empty(),
        "writes the master called not committed are there: {phantoms:?}"
    );
}

/// Kills the master process (SIGKILL) and starts `pinball -c CFG -m master` again in `dir`,
/// waiting until it is ready on `port`.
pub async fn restart_master(
    master: &mut tokio::process::Child,
    cfg: &str,
    dir: &Path,
    port: u16,
) -> tokio::process::Child {
    master.start_kill().unwrap();
    master.wait().await.unwrap();
    let fresh = spawn_pinball(&["-c", cfg, "-m", "master"], dir);
    wait_until(
        Duration::from_secs(60),
        "the restarted master is ready",
        || is_ready(port),
    )
    .await;
    fresh
}
