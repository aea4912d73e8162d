//! Which master leads, under which epoch, and its standbys, as the dashboard's footer shows
//! them: read from the database's lease rows every five seconds (never for a page).

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use crate::storage::Storage;

/// What the footer says: `master NAME: leader HOST:PORT (epoch E); standbys: HOST:PORT, ...`.
pub type Shown = Arc<RwLock<String>>;

/// Reads the lease of `master` and its standbys every 5 s into `shown` while the UI lives.
pub fn follow(shown: Weak<RwLock<String>>, store: Arc<dyn Storage>, master: String) {
    tokio::spawn(async move {
        loop {
            let line = line(store.as_ref(), &master).await;
            let Some(shown) = shown.upgrade() else {
                return;
            };
            if let (Some(line), Ok(mut s)) = (line, shown.write()) {
                *s = line;
            }
            drop(shown);
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
}

async fn line(store: &dyn Storage, master: &str) -> Option<String> {
    let held = store.lease_holder(master).await.ok()??;
    let standbys = store
        .standbys(master, crate::master::standby::STANDBY_SEEN_MS)
        .await
        .unwrap_or_default();
    let leader = if held.expires_in_ms > 0 && !held.address.is_empty() {
        format!("leader {} (epoch {})", held.address, held.epoch)
    } else {
        format!("no leader now (last epoch {})", held.epoch)
    };
    Some(match standbys.is_empty() {
        true => format!("master {master}: {leader}"),
        false => format!(
            "master {master}: {leader}; standbys: {}",
            standbys.join(", ")
        ),
    })
}
