//! What a master is told: its limits and leases from the configuration, and the names of the
//! tokens it keeps ([`Naming`]). The master keeps tokens, leases and claims and knows no
//! workflows: `modes` fills [`Naming`] from `token::name`.

use crate::storage::GroupOf;
use crate::token::{DEFAULT_MAX_ANSWER_BYTES, MAX_WAIT_MS};

/// The token names the master treats specially, as data: which claims it follows for the
/// job-to-job metric, which leases it holds through an outage, which writes need the operator
/// role or are audited as control-plane writes, how a job's log is keyed, and how archived
/// names group into instances.
#[derive(Debug, Clone)]
pub struct Naming {
    /// The claim pattern whose grants the job-to-job metric follows, and whose waiting and
    /// held tokens are the runnable and running gauges.
    pub followed_claims: String,
    /// The names whose leases are workers' leases (jobs): only these are held through an
    /// outage. A schedule's `expiration_time` is its next run, not a lease.
    pub leased_prefix: String,
    /// The names counted as `emails_waiting` in `/health`.
    pub outbox_prefix: String,
    /// Where the pool tokens are (`PREFIX<pool>`, data [`crate::token::PoolDef`]): their
    /// slot limits bound the claims of tokens in those pools.
    pub pool_prefix: String,
    /// The names counted as the `pinball_queued_runs` gauge (runs waiting for room).
    pub queue_prefix: String,
    /// Whether writing a name needs the operator role.
    pub needs_operator: fn(&str) -> bool,
    /// For a control-plane name (a signal, schedule or definition): `Some`, with the workflow
    /// it belongs to when it belongs to one; `None` for every other name.
    pub control_of: fn(&str) -> Option<Option<String>>,
    /// A job's log: the name of its runnable token (whose owner alone may send it) and its key
    /// in the log table, from the workflow, instance and job a request names; `Err` names the
    /// part that is not a name.
    pub job_log: fn(&str, &str, &str) -> Result<JobLog, crate::token::MasterError>,
    /// The group of an archived name (its instance): retention and summaries work by group.
    pub archive_group: GroupOf,
    /// The name prefixes a claimant reads before it acts on a claimed name (a job: its
    /// signals), answered with a claim that asks for its `context`.
    pub claim_context: fn(&str) -> Vec<String>,
}

/// Where a job's log belongs (see [`Naming::job_log`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLog {
    pub job_token: String,
    pub key: String,
}

/// What a master's configuration says about its limits and its leases.
#[derive(Debug, Clone)]
pub struct MasterOptions {
    /// Largest answer of one `/query` (names and data), in bytes (`max_answer_bytes`).
    pub max_answer_bytes: usize,
    /// Longest a claim or a watch waits, whatever its `wait_ms` asks (`max_claim_wait_ms`).
    pub max_wait_ms: u64,
    /// The length every lease gets again after the master was down or could not commit
    /// (`lease_sec`): an outage never ends a lease.
    pub lease_sec: u64,
    /// The token names the master treats specially.
    pub naming: Naming,
    /// How job logs are kept.
    pub logs: super::logs::LogOptions,
    /// Archived instances older than this many days are deleted in the background.
    pub retention_days: Option<u32>,
    /// The most tokens one `/query` may look at (`max_query_visits`).
    pub max_query_visits: usize,
    /// The most bytes of answers held at once, all requests together
    /// (`max_answers_bytes_total`).
    pub max_answers_bytes_total: usize,
    /// How long the head of a limited pool's line may be passed by smaller tokens
    /// (`pool_starvation_sec`).
    pub pool_starvation_sec: u64,
    /// Whether it may hand its lease over and stand by in the same process (a `-m master`
    /// process alone: nothing else in it holds this master).
    pub may_hand_over: bool,
}

impl MasterOptions {
    /// The default limits, with `naming`.
    pub fn new(naming: Naming) -> Self {
        MasterOptions {
            max_answer_bytes: DEFAULT_MAX_ANSWER_BYTES,
            max_wait_ms: MAX_WAIT_MS,
            lease_sec: 30,
            naming,
            logs: super::logs::LogOptions::default(),
            retention_days: None,
            max_query_visits: crate::token::DEFAULT_MAX_QUERY_VISITS,
            max_answers_bytes_total: crate::token::DEFAULT_MAX_ANSWERS_BYTES_TOTAL,
            pool_starvation_sec: 60,
            may_hand_over: false,
        }
    }

    /// The limits `c` sets, with `naming`.
    pub fn from_config(c: &crate::config::Config, naming: Naming) -> Self {
        MasterOptions {
            max_answer_bytes: c.max_answer_bytes,
            max_wait_ms: c.max_claim_wait_ms.min(MAX_WAIT_MS),
            lease_sec: c.lease_sec,
            logs: super::logs::LogOptions {
                max_bytes: c.log_max_bytes,
                retention_days: c.log_retention_days,
            },
            retention_days: c.retention_days,
            max_query_visits: c.max_query_visits,
            max_answers_bytes_total: c.max_answers_bytes_total,
            pool_starvation_sec: c.pool_starvation_sec,
            may_hand_over: false,
            ..MasterOptions::new(naming)
        }
    }
}
