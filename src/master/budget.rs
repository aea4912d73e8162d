//! What one read may cost: the bytes of its answer (`max_answer_bytes`), the tokens it may
//! visit (`max_query_visits`), and its share of every answer the process holds at once
//! (`max_answers_bytes_total`, [`InFlight`]). A read over any of them fails at once with an error
//! that names the bound; a read refused for the process-wide total is UNAVAILABLE (try again),
//! the others are the caller's to narrow. Used by `state::query` and `read`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::token::MasterError;

/// What one answered token costs beyond its name and data: the JSON around them.
pub const TOKEN_OVERHEAD: usize = 96;

/// The bytes of every answer being built or sent at once, and their bound.
#[derive(Debug)]
pub struct InFlight {
    used: AtomicUsize,
    limit: usize,
}

impl InFlight {
    pub fn new(limit: usize) -> Arc<InFlight> {
        Arc::new(InFlight {
            used: AtomicUsize::new(0),
            limit,
        })
    }

    /// The bytes charged now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn take(&self, bytes: usize) -> bool {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let Some(new) = used.checked_add(bytes).filter(|n| *n <= self.limit) else {
                return false;
            };
            match self
                .used
                .compare_exchange_weak(used, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// The bytes an answer holds of the process-wide total, given back when it is dropped (once
/// the answer has been sent).
#[derive(Debug, Default)]
pub struct Charge {
    in_flight: Option<Arc<InFlight>>,
    bytes: usize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(f) = &self.in_flight {
            f.give_back(self.bytes);
        }
    }
}

/// What is left of one read's allowance.
#[derive(Debug)]
pub struct AnswerBudget {
    left: usize,
    limit: usize,
    visits_left: usize,
    visits_limit: usize,
    /// The visits ran out (a quick try may go on with a larger allowance).
    pub out_of_visits: bool,
    charge: Charge,
}

impl AnswerBudget {
    /// At most `limit` bytes of answer, any number of visits, no process-wide share.
    pub fn new(limit: usize) -> Self {
        AnswerBudget {
            left: limit,
            limit,
            visits_left: usize::MAX,
            visits_limit: usize::MAX,
            out_of_visits: false,
            charge: Charge::default(),
        }
    }

    /// At most `visits` tokens visited.
    pub fn with_visits(mut self, visits: usize) -> Self {
        self.visits_left = visits;
        self.visits_limit = visits;
        self
    }

    /// Every byte charged is also charged to `in_flight`.
    pub fn with_in_flight(mut self, in_flight: Arc<InFlight>) -> Self {
        self.charge.in_flight = Some(in_flight);
        self
    }

    /// Charges one answered token of `bytes` (name and data).
    pub fn charge(&mut self, bytes: usize) -> Result<(), MasterError> {
        let cost = bytes + TOKEN_OVERHEAD;
        if cost > self.left {
            return Err(MasterError::input(format!(
                "the answer would be larger than {} bytes (max_answer_bytes); ask for fewer tokens at once (a longer name_prefix, max_tokens, or fewer queries)",
                self.limit
            )));
        }
        if let Some(f) = &self.charge.in_flight {
            if !f.take(cost) {
                return Err(MasterError::Unavailable(format!(
                    "the master is sending {} MiB of answers already (max_answers_bytes_total); try again in a moment",
                    f.limit >> 20
                )));
            }
            self.charge.bytes += cost;
        }
        self.left -= cost;
        Ok(())
    }

    /// Gives back what [`charge`](Self::charge) took for a token the answer no longer holds.
    pub fn refund(&mut self, bytes: usize) {
        let cost = bytes + TOKEN_OVERHEAD;
        self.left += cost;
        if let Some(f) = &self.charge.in_flight {
            let back = cost.min(self.charge.bytes);
            f.give_back(back);
            self.charge.bytes -= back;
        }
    }

    /// Counts one token visited.
    pub fn visit(&mut self) -> Result<(), MasterError> {
        if self.visits_left == 0 {
            self.out_of_visits = true;
            return Err(MasterError::input(format!(
                "the query would look at more than {} tokens (max_query_visits); use a longer name_prefix",
                self.visits_limit
            )));
        }
        self.visits_left -= 1;
        Ok(())
    }

    /// The share of the process-wide total the answer holds until it is dropped.
    pub fn into_charge(mut self) -> Charge {
        std::mem::take(&mut self.charge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_share_the_process_wide_total_until_they_are_dropped() {
        let total = InFlight::new(1000);
        let mut a = AnswerBudget::new(usize::MAX).with_in_flight(total.clone());
        a.charge(500).unwrap();
        let held = a.into_charge();
        let mut b = AnswerBudget::new(usize::MAX).with_in_flight(total.clone());
        let e = b.charge(500).unwrap_err();
        assert!(matches!(e, MasterError::Unavailable(_)), "{e}");
        assert!(e.to_string().contains("max_answers_bytes_total"), "{e}");
        drop(held);
        drop(b);
        assert_eq!(total.used(), 0);
        b = AnswerBudget::new(usize::MAX).with_in_flight(total.clone());
        b.charge(500).unwrap();
        b.refund(500);
        assert_eq!(total.used(), 0, "a refund gives the bytes back");
    }

    #[test]
    fn visits_run_out_with_an_error_that_names_the_bound() {
        let mut b = AnswerBudget::new(usize::MAX).with_visits(2);
        b.visit().unwrap();
        b.visit().unwrap();
        let e = b.visit().unwrap_err();
        assert!(b.out_of_visits);
        assert!(e.to_string().contains("max_query_visits"), "{e}");
    }
}
