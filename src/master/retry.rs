//! How an HTTP client of the master retries: attempts, capped backoff, each attempt's limit.

use std::time::Duration;

use crate::config::Config;

/// How an HTTP client retries.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Time limit of one attempt (a parked claim's `wait_ms` is added to it).
    pub timeout: Duration,
    /// With several masters, the time limit of one attempt at most: a hung leader (paused, or
    /// its host gone silent) is left for the next address after this long.
    pub failover_timeout: Duration,
}

impl RetryPolicy {
    /// The policy the configuration's `client_*` keys describe.
    pub fn from_config(c: &Config) -> RetryPolicy {
        RetryPolicy {
            attempts: c.client_connect_attempts,
            max_backoff: Duration::from_secs(c.max_backoff_client_reconnect_sec.max(1)),
            timeout: Duration::from_secs(c.client_timeout_sec.max(1)),
            // Half a lease: a standby takes a hung leader's lease over within one.
            failover_timeout: Duration::from_secs((c.master_lease_sec / 2).max(2)),
            ..Default::default()
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            timeout: Duration::from_secs(60),
            failover_timeout: Duration::from_secs(5),
        }
    }
}
