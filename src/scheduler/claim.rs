//! The claim each loop of the scheduler process makes (backfills, queued runs, deadline
//! watches): a long-polled `query_and_own` on a prefix with a lease, given up at shutdown, and
//! tried again a second later when the master does not answer.

use std::time::Duration;

use tokio::sync::watch;

use crate::master::MasterClient;
use crate::token::{QueryAndOwnRequest, Token};

/// What one claim asks for: the prefix, the lease, how many, how long to wait.
pub(super) struct Ask<'a> {
    pub owner: &'a str,
    pub prefix: &'a str,
    pub lease_sec: u64,
    pub max: u32,
    pub wait: Duration,
}

/// The tokens claimed (none after a failure, once a second has passed); `None` when the loop
/// is told to stop.
pub(super) async fn claim(
    client: &dyn MasterClient,
    ask: Ask<'_>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Vec<Token>> {
    let req = QueryAndOwnRequest {
        lease_sec: Some(ask.lease_sec),
        ..QueryAndOwnRequest::new(
            ask.owner,
            0,
            ask.prefix,
            Some(ask.max),
            Some(ask.wait.as_millis() as u64),
        )
    };
    let claimed = tokio::select! {
        r = client.query_and_own(req) => r,
        _ = shutdown.changed() => return None,
    };
    match claimed {
        Ok(r) => Some(r.tokens),
        Err(e) => {
            tracing::warn!(prefix = ask.prefix, error = %e, "claiming failed; trying again in a second");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => Some(Vec::new()),
                _ = shutdown.changed() => None,
            }
        }
    }
}
