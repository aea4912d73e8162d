//! How a master comes up: its lease taken and its tokens read (retried while the database does
//! not answer), then every job lease given its full length again.

use std::time::{Duration, Instant};

use super::lease::Refused;
use super::options::MasterOptions;
use super::service::{MAX_RETRY_DELAY, build_state};
use super::state::State;
use crate::storage::{Loaded, TokenStore};

/// Takes the master's lease (with `hold`) and loads its tokens, retrying with backoff while
/// the database is unreachable. `Err` says which master holds the lease.
pub(super) async fn load_with_retry(
    storage: &dyn TokenStore,
    name: &str,
    hold: Option<&super::lease::HoldSpec>,
) -> Result<(Loaded, Vec<crate::storage::RequestOutcome>, Option<i64>), Refused> {
    let mut delay = Duration::from_millis(200);
    loop {
        let result: Result<Result<_, Refused>, crate::storage::StorageError> = async {
            storage.migrate().await?;
            let epoch = match hold {
                Some(spec) => match super::lease::take(storage, name, spec).await? {
                    Ok(epoch) => Some(epoch),
                    Err(refused) => return Ok(Err(refused)),
                },
                None => None,
            };
            let loaded = storage.load_active(name).await?;
            let since = crate::clock::now() - super::requests::WINDOW_SEC;
            let requests = storage.request_outcomes(name, since).await?;
            Ok(Ok((loaded, requests, epoch)))
        }
        .await;
        match result {
            Ok(loaded) => return loaded,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot load the master's tokens; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
        }
    }
}

/// The state `loaded` holds, every lease given its full length again (the master was down, or
/// another held it: the workers could not renew meanwhile), logged.
pub(super) fn restored(
    loaded: Loaded,
    options: &MasterOptions,
    name: &str,
    kind: &str,
    started: Instant,
) -> State {
    let read_ms = started.elapsed().as_millis() as u64;
    let mut state = build_state(loaded, options);
    let extended = state.extend_leases(
        &options.naming.leased_prefix,
        crate::clock::now(),
        options.lease_sec as i64,
    );
    tracing::info!(
        master = name,
        storage = kind,
        tokens = state.len(),
        last_version = state.last_version(),
        read_ms,
        leases_extended = extended,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "master loaded its tokens"
    );
    state
}
