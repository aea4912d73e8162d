//! Answering `/query` without ever holding up the writer. A read first tries to answer under
//! one lock with a small allowance of visits ([`QUICK_VISITS`], what every worker's read
//! needs); a read that needs more goes to the blocking pool, at most [`SCANS`] at a time, and
//! reads there in chunks of [`CHUNK`] visits, each under its own read lock, so the writer
//! waits at most one chunk for any read. Its answer carries the version of the state when it
//! began, so a watch from that version misses nothing written meanwhile. Parked watches are
//! answered the same way: the writer only says which watches woke. Called by `service` and
//! `watch`.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::budget::{AnswerBudget, Charge, InFlight};
use super::pattern::Pattern;
use super::service::Shared;
use super::state::{Found, State};
use crate::token::*;

/// Visits a read may make under the lock it first took.
pub(super) const QUICK_VISITS: usize = 4096;
/// Visits between two locks of a long read.
pub(super) const CHUNK: usize = 4096;
/// Long reads running at once (each holds a blocking thread; more wait their turn).
pub(super) const SCANS: usize = 2;

/// An answer, and the share of `max_answers_bytes_total` it holds until it is sent.
pub struct Answer {
    pub response: QueryResponse,
    pub charge: Charge,
}

/// The bounds of reads, shared by every read of one master.
#[derive(Debug, Clone)]
pub(super) struct ReadLimits {
    pub max_answer_bytes: usize,
    pub max_visits: usize,
    pub in_flight: Arc<InFlight>,
    pub scans: Arc<Semaphore>,
}

impl ReadLimits {
    pub fn new(max_answer_bytes: usize, max_visits: usize, max_in_flight: usize) -> Self {
        ReadLimits {
            max_answer_bytes,
            max_visits,
            in_flight: InFlight::new(max_in_flight),
            scans: Arc::new(Semaphore::new(SCANS)),
        }
    }

    fn budget(&self, visits: usize) -> AnswerBudget {
        AnswerBudget::new(self.max_answer_bytes)
            .with_visits(visits)
            .with_in_flight(self.in_flight.clone())
    }
}

/// Answers `req` from `state` if it needs at most [`QUICK_VISITS`]; `None` when it needs more.
pub(super) fn quick(
    state: &State,
    req: &QueryRequest,
    limits: &ReadLimits,
) -> Option<Result<Answer, MasterError>> {
    let mut budget = limits.budget(QUICK_VISITS.min(limits.max_visits));
    let tokens = req
        .queries
        .iter()
        .map(|q| state.query(q, &mut budget))
        .collect::<Result<Vec<_>, _>>();
    match tokens {
        Err(_) if budget.out_of_visits && limits.max_visits > QUICK_VISITS => None,
        Err(e) => Some(Err(e)),
        Ok(tokens) => Some(Ok(Answer {
            response: QueryResponse {
                tokens,
                version: state.last_version(),
            },
            charge: budget.into_charge(),
        })),
    }
}

/// Answers `req` on the blocking pool, in chunks (see the module's header).
pub(super) async fn long(shared: Arc<Shared>, req: QueryRequest) -> Result<Answer, MasterError> {
    // The permit moves into the blocking work: it is held until the scan ends, whatever
    // happens to the request that asked.
    let permit = shared
        .reads
        .scans
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| MasterError::Unavailable("the master is stopping".into()))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        in_chunks(&shared, &req)
    })
    .await
    .map_err(|e| MasterError::Unavailable(format!("a read failed: {e}")))?
}

fn in_chunks(shared: &Shared, req: &QueryRequest) -> Result<Answer, MasterError> {
    let limits = &shared.reads;
    let mut budget = limits.budget(limits.max_visits);
    let version = shared.state.blocking_read().last_version();
    let mut tokens = Vec::with_capacity(req.queries.len());
    for q in &req.queries {
        let pattern = Pattern::parse(&q.name_prefix)?;
        let mut found = Found::new(q.max_tokens);
        let mut after: Option<String> = None;
        loop {
            let state = shared.state.blocking_read();
            after = state.scan(&pattern, after.as_deref(), CHUNK, &mut budget, &mut found)?;
            drop(state);
            if after.is_none() {
                break;
            }
        }
        tokens.push(found.into_tokens());
    }
    Ok(Answer {
        response: QueryResponse { tokens, version },
        charge: budget.into_charge(),
    })
}
