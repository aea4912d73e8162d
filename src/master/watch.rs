//! Watches: a `/query` with `wait_ms` and `after_version` parks in the writer until a token one
//! of its queries matches is written (or deleted) after that version, or until the wait ends,
//! then answers the query as it reads then. Workers watch their instance's signals this way
//! while a job runs, so an ABORT reaches them within one commit instead of a lease renewal; the
//! cost per running job is one parked request, woken only by commits that touch its names.

use std::sync::Arc;
use std::time::Instant;

use super::pattern::Pattern;
use super::read::{self, Answer};
use super::service::{Reply, Shared};
use super::state::State;
use crate::token::*;

pub(super) struct Watch {
    req: QueryRequest,
    patterns: Vec<Pattern>,
    deadline: Instant,
    reply: Reply<Answer>,
}

pub(super) struct Watches {
    parked: Vec<Watch>,
    shared: Arc<Shared>,
}

impl Watches {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Watches {
            parked: Vec::new(),
            shared,
        }
    }

    /// Answers a small read here; a larger one is read in chunks on the blocking pool, once
    /// the writer has let go of the state (see `read`).
    fn answer(&self, state: &State, w: Watch) {
        match read::quick(state, &w.req, &self.shared.reads) {
            Some(answer) => drop(w.reply.send(answer)),
            None => {
                let shared = self.shared.clone();
                tokio::spawn(async move {
                    let _ = w.reply.send(read::long(shared, w.req).await);
                });
            }
        }
    }

    /// Answers at once when something already changed after `after_version`, else parks.
    pub(super) fn add(&mut self, state: &State, req: QueryRequest, reply: Reply<Answer>) {
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
