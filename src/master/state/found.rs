//! A query's answer, bounded: every match, or the best `max_tokens` in a heap.

use super::AnswerBudget;
use super::Entry;
use crate::token::MasterError;
use crate::token::*;

/// The matches of one query: every one, or the best `max_tokens` by priority (then name) in
/// a heap that never holds more than that (a full sort of every match would not be bounded).
pub struct Found {
    max: Option<usize>,
    all: Vec<Token>,
    best: std::collections::BinaryHeap<Ranked>,
}

/// A token in the heap, ordered by (priority, highest first; name): the heap's top is the
/// worst kept, the one a better match replaces.
pub struct Ranked {
    rank: Rank,
    token: Token,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.rank, &self.token.name).cmp(&(other.rank, &other.token.name))
    }
}

fn answer_bytes(t: &Token) -> usize {
    t.name.len() + t.data.as_ref().map_or(0, |d| d.len())
}

impl Found {
    pub fn new(max_tokens: Option<u32>) -> Found {
        Found {
            max: max_tokens.map(|m| m as usize),
            all: Vec::new(),
            best: std::collections::BinaryHeap::new(),
        }
    }

    pub(super) fn add(
        &mut self,
        name: &str,
        e: &Entry,
        budget: &mut AnswerBudget,
    ) -> Result<(), MasterError> {
        let bytes = name.len() + e.data.as_ref().map_or(0, |d| d.len());
        let Some(max) = self.max else {
            budget.charge(bytes)?;
            self.all.push(e.to_token(name));
            return Ok(());
        };
        if max == 0 {
            return Ok(());
        }
        // Entries hold -0.0 as 0.0 already (`Entry::from_token`).
        let rank = Rank(e.priority);
        if self.best.len() == max
            && let Some(worst) = self.best.peek()
            && (rank, name) >= (worst.rank, worst.token.name.as_str())
        {
            return Ok(());
        }
        budget.charge(bytes)?;
        self.best.push(Ranked {
            rank,
            token: e.to_token(name),
        });
        if self.best.len() > max
            && let Some(out) = self.best.pop()
        {
            budget.refund(answer_bytes(&out.token));
        }
        Ok(())
    }

    /// The tokens, in name order (or best first with `max_tokens`).
    pub fn into_tokens(self) -> Vec<Token> {
        match self.max {
            None => self.all,
            Some(_) => self
                .best
                .into_sorted_vec()
                .into_iter()
                .map(|r| r.token)
                .collect(),
        }
    }
}

/// Priority ordered highest first, then name: the order in which tokens are claimed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Rank(pub(super) f64);
impl Eq for Rank {}
impl PartialOrd for Rank {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Rank {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.0.total_cmp(&self.0)
    }
}
