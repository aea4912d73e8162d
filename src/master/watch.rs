//! Watches: a `/query` with `wait_ms` and `after_version` parks in the writer until a token one
//! of its queries matches is written (or deleted) after that version, or until the wait ends,
//! then answers the query as it reads then. Workers watch their instance's signals this way
//! while a job runs, so an ABORT reaches them within one commit instead of a lease renewal; the
//! cost per running job is one parked request, woken only by commits that touch its names.

use std::time::Instant;

use super::pattern::Pattern;
use super::service::Reply;
use super::state::{AnswerBudget, State};
use crate::token::*;

pub(super) struct Watch {
    req: QueryRequest,
    patterns: Vec<Pattern>,
    deadline: Instant,
    reply: Reply<QueryResponse>,
}

#[derive(Default)]
pub(super) struct Watches {
    parked: Vec<Watch>,
    budget: usize,
}

impl Watches {
    pub(super) fn new(answer_budget: usize) -> Self {
        Watches {
            parked: Vec::new(),
            budget: answer_budget,
        }
    }

    fn answer(&self, state: &State, w: Watch) {
        let mut budget = AnswerBudget::new(self.budget);
        let answer = w
            .req
            .queries
            .iter()
            .map(|q| state.query(q, &mut budget))
            .collect::<Result<Vec<_>, _>>()
            .map(|tokens| QueryResponse {
                tokens,
                version: state.last_version(),
            });
        let _ = w.reply.send(answer);
    }

    /// Answers at once when something already changed after `after_version`, else parks.
    pub(super) fn add(&mut self, state: &State, req: QueryRequest, reply: Reply<QueryResponse>) {
        let patterns = match req
            .queries
            .iter()
            .map(|q| Pattern::parse(&q.name_prefix))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(p) => p,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let after = req.after_version.unwrap_or(i64::MAX);
        let wait = std::time::Duration::from_millis(req.wait_ms.unwrap_or(0));
        let watch = Watch {
            deadline: Instant::now() + wait,
            req,
            patterns,
            reply,
        };
        if wait.is_zero() || state.changed_since(&watch.patterns, after) {
            self.answer(state, watch);
        } else {
            self.parked.push(watch);
        }
    }

    /// After a commit: answers every watch one of whose queries matches a name it wrote.
    pub(super) fn wake(&mut self, state: &State, touched: &[Box<str>]) {
        if self.parked.is_empty() || touched.is_empty() {
            return;
        }
        let (woken, still): (Vec<Watch>, Vec<Watch>) =
            std::mem::take(&mut self.parked).into_iter().partition(|w| {
                w.patterns
                    .iter()
                    .any(|p| touched.iter().any(|n| p.matches(n)))
            });
        self.parked = still;
        for w in woken {
            self.answer(state, w);
        }
    }

    /// Answers the watches whose wait ended (all of them when `all`), and forgets the ones whose
    /// caller hung up.
    pub(super) fn expire(&mut self, state: &State, all: bool) {
        let now = Instant::now();
        let (done, still): (Vec<Watch>, Vec<Watch>) = std::mem::take(&mut self.parked)
            .into_iter()
            .filter(|w| !w.reply.is_closed())
            .partition(|w| all || w.deadline <= now);
        self.parked = still;
        for w in done {
            self.answer(state, w);
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.parked.iter().map(|w| w.deadline).min()
    }

    pub(super) fn len(&self) -> usize {
        self.parked.len()
    }
}
