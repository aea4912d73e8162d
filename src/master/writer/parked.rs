//! Parked claims: retried after every batch and when a lease ends, so a claim is granted in
//! the same commit as the write that made a token claimable.

use super::*;
use crate::master::budget::AnswerBudget;

pub(super) struct Parked {
    pub(super) req: QueryAndOwnRequest,
    pub(super) key: Key,
    pub(super) pattern: Pattern,
    /// When it was parked, for the claim-wait metric.
    pub(super) since: Instant,
    pub(super) deadline: Instant,
    /// The earliest lease end (seconds) among matching tokens: retry then.
    pub(super) next_lease_end: Option<i64>,
    pub(super) reply: Reply<QueryAndOwnResponse>,
}

/// A parked claim was answered: granted a token, or empty at its deadline (or shutdown).
fn claim_waited(since: Instant, granted: bool) {
    let outcome = if granted { "granted" } else { "empty" };
    metrics::histogram!(crate::metrics::CLAIM_WAIT, "outcome" => outcome)
        .record(since.elapsed().as_secs_f64());
}

/// The most bytes and tokens a claim's context reads: past them it goes without one, and the
/// claimant reads what it needs itself.
const CONTEXT_BYTES: usize = 64 * 1024;
const CONTEXT_VISITS: usize = 256;

impl Writer {
    /// A claim's answer: the tokens granted, and their context when the claim asks for it.
    fn claim_answer(
        &self,
        state: &State,
        req: &QueryAndOwnRequest,
        tokens: Vec<Token>,
    ) -> QueryAndOwnResponse {
        let context = if req.context && !tokens.is_empty() {
            self.context(state, &tokens)
        } else {
            None
        };
        QueryAndOwnResponse { tokens, context }
    }

    /// What the naming says the claimant of `tokens` reads first, as the state is now (the
    /// grant's batch included: the answer waits for its commit).
    fn context(&self, state: &State, tokens: &[Token]) -> Option<ClaimContext> {
        let of = self.shared.options.naming.claim_context;
        let mut prefixes: Vec<String> = tokens.iter().flat_map(|t| of(&t.name)).collect();
        prefixes.sort_unstable();
        prefixes.dedup();
        let mut budget = AnswerBudget::new(CONTEXT_BYTES).with_visits(CONTEXT_VISITS);
        let mut read = Vec::new();
        for name_prefix in prefixes {
            let query = Query {
                name_prefix,
                max_tokens: None,
            };
            read.extend(state.query(&query, &mut budget).ok()?);
        }
        Some(ClaimContext {
            tokens: read,
            version: state.last_version(),
        })
    }

    /// Claims for one request; a claim that finds nothing and may wait is parked (no
    /// answer yet) instead of answered.
    pub(super) fn claim_or_park(
        &mut self,
        req: QueryAndOwnRequest,
        key: Key,
        reply: Reply<QueryAndOwnResponse>,
        state: &mut State,
        txn: &mut Txn,
        now: i64,
    ) -> Option<Outcome> {
        match state.claim(&req, now, txn) {
            // A claim without a query claims nothing and has nothing to wait for.
            Ok(claim)
                if claim.tokens.is_empty()
                    && req.wait_ms.unwrap_or(0) > 0
                    && !self.closing
                    && let Some(query) = &req.query =>
            {
                let pattern =
                    Pattern::parse(&query.name_prefix).expect("validated before queueing");
                let deadline = Instant::now() + Duration::from_millis(req.wait_ms.unwrap_or(0));
                self.parked.push_back(Parked {
                    req,
                    key,
                    pattern,
                    since: Instant::now(),
                    deadline,
                    next_lease_end: claim.next_lease_end,
                    reply,
                });
                None
            }
            result => {
                let result = result.map(|c| self.claim_answer(state, &req, c.tokens));
                self.claimed(&key, &result, now);
                Some(Outcome::Claim(reply, result))
            }
        }
    }

    /// Retries the parked claims that this batch (or the clock) may have satisfied, oldest first.
    pub(super) fn retry_parked(
        &mut self,
        state: &mut State,
        txn: &mut Txn,
        now: i64,
        outcomes: &mut Vec<Outcome>,
    ) {
        if self.parked.is_empty() {
            return;
        }
        let touched: Vec<Box<str>> = txn.touched().map(Into::into).collect();
        // A slot freed in a limited pool (or a limit changed): every parked claim looks again.
        let slots_freed = touched.iter().any(|n| state.frees_slots(txn, n));
        let instant = Instant::now();
        let mut still = VecDeque::with_capacity(self.parked.len());
        while let Some(mut p) = self.parked.pop_front() {
            if p.reply.is_closed() {
                // The caller hung up (a stopped scheduler, a killed worker): granting it a
                // token would lease that token to nobody for the claim's whole lease.
                continue;
            }
            let mut due = self.closing || slots_freed || p.next_lease_end.is_some_and(|t| t <= now);
            for name in touched.iter().filter(|n| p.pattern.matches(n)) {
                match state.get(name) {
                    Some(e) if is_owned(e.owner.as_deref(), e.expiration_time, now) => {
                        if let Some(t) = e.expiration_time.filter(|t| *t != NEVER) {
                            p.next_lease_end = Some(p.next_lease_end.map_or(t, |n| n.min(t)));
                        }
                    }
                    Some(_) => due = true,
                    None => {}
                }
            }
            if due {
                match state.claim_after(&p.req, now, p.since.elapsed(), txn) {
                    Ok(claim)
                        if claim.tokens.is_empty() && !self.closing && p.deadline > instant =>
                    {
                        p.next_lease_end = claim.next_lease_end;
                    }
                    result => {
                        let result = result.map(|c| self.claim_answer(state, &p.req, c.tokens));
                        self.claimed(&p.key, &result, now);
                        claim_waited(p.since, result.as_ref().is_ok_and(|r| !r.tokens.is_empty()));
                        outcomes.push(Outcome::Claim(p.reply, result));
                        continue;
                    }
                }
            }
            if p.deadline <= instant {
                claim_waited(p.since, false);
                outcomes.push(Outcome::Claim(p.reply, Ok(QueryAndOwnResponse::default())));
                continue;
            }
            still.push_back(p);
        }
        self.parked = still;
    }

    /// After a commit: runnable jobs it created start their clock; those it gave to a worker
    /// are observed (the job-to-job latency) and forgotten, as are deleted ones.
    pub(super) fn follow_runnable(&mut self, pending: &Pending) {
        let now = Instant::now();
        for (name, entry) in pending.rows().filter(|(n, _)| self.runnable.matches(n)) {
            match entry {
                Some(e) if e.owner.is_none() => {
                    if self.runnable_since.len() < MAX_FOLLOWED {
                        self.runnable_since.entry(name.into()).or_insert(now);
                    }
                }
                Some(_) => {
                    if let Some(since) = self.runnable_since.remove(name) {
                        metrics::histogram!(crate::metrics::JOB_TO_JOB)
                            .record(now.duration_since(since).as_secs_f64());
                    }
                }
                None => {
                    self.runnable_since.remove(name);
                }
            }
        }
    }
}
