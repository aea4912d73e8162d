//! The worker's claim, and what it leaves out for a master from before one of its fields.

use std::sync::atomic::Ordering::Relaxed;

use super::Worker;
use crate::token::QueryAndOwnRequest;
use crate::token::name::ALL_RUNNABLE_JOBS;
use crate::workflow::error::Error;

/// The claim's fields an older master does not know.
const GRANT: &str = "record_grant";
const CONTEXT: &str = "context";

impl Worker {
    /// The long-polled claim of the best runnable job of every instance, with a lease the
    /// master counts from the moment it grants the claim.
    pub(super) fn claim(&self) -> QueryAndOwnRequest {
        QueryAndOwnRequest {
            lease_sec: Some(self.settings.lease.as_secs().max(1)),
            pools: Some(self.settings.pools.clone()),
            record_grant: !self.older_master.load(Relaxed),
            context: !self.no_claim_context.load(Relaxed),
            ..QueryAndOwnRequest::new(
                &self.name,
                0,
                ALL_RUNNABLE_JOBS,
                Some(1),
                Some(self.settings.poll.as_millis() as u64),
            )
        }
    }

    /// Whether a claim was refused for a field its master does not know (an older version):
    /// the claims after it go without that field.
    pub(super) fn claims_without_refused_field(&self, e: &Error) -> bool {
        if refuses_field(e, GRANT) && !self.older_master.swap(true, Relaxed) {
            tracing::info!(worker = %self.name, "the master does not record grants (an older version): this worker records each run's start itself");
            return true;
        }
        if refuses_field(e, CONTEXT) && !self.no_claim_context.swap(true, Relaxed) {
            tracing::info!(worker = %self.name, "the master answers no claim with its context (an older version): this worker reads each run's signals itself");
            return true;
        }
        false
    }
}

/// Whether a request was refused for its field `field`: a master from before it refuses
/// fields it does not know.
pub(super) fn refuses_field(e: &Error, field: &str) -> bool {
    matches!(e, Error::Master(crate::token::MasterError::InputError(m)) if m.contains(&format!("unknown field `{field}`")))
}

#[cfg(test)]
#[path = "claim_tests.rs"]
mod claim_tests;
