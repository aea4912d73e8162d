//! How many requests one API token may have parked at the master at once (watches and claims
//! that wait): `max_parked_per_token`, by default half of `max_connections`. A parked request
//! holds a connection for up to its wait, so without this bound one token's watches (a
//! viewer's dashboard, say) could hold every connection the workers need. A request beyond it
//! is answered UNAVAILABLE at once and its connection closed. The slot is held by the request
//! itself and given back when it ends, however it ends. Used by the master's API handlers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Parked requests by token name.
#[derive(Debug)]
pub struct Parking {
    counts: Mutex<Counts>,
    cap: usize,
    /// All tokens together at most: below `max_connections`, so renewals and ends (which do
    /// not wait) always find a connection.
    total: usize,
}

#[derive(Debug, Default)]
struct Counts {
    by_token: HashMap<Arc<str>, usize>,
    all: usize,
}

/// Why a request may not park.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Its token has `max_parked_per_token` parked already.
    Token,
    /// All tokens together have the master's most.
    Master,
}

/// One parked request's place; dropping it gives the place back.
#[derive(Debug)]
pub struct Slot {
    parking: Arc<Parking>,
    token: Arc<str>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .parking
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        counts.all = counts.all.saturating_sub(1);
        if let Some(n) = counts.by_token.get_mut(&self.token) {
            *n -= 1;
            if *n == 0 {
                counts.by_token.remove(&self.token);
            }
        }
    }
}

impl Parking {
    /// Up to `cap` parked requests per token and `total` in all.
    pub fn new(cap: usize, total: usize) -> Arc<Parking> {
        Arc::new(Parking {
            counts: Mutex::new(Counts::default()),
            cap: cap.max(1),
            total: total.max(1),
        })
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    pub fn total(&self) -> usize {
        self.total
    }

    /// A place for one more parked request of `token`, if it and the master are below their
    /// bounds.
    pub fn take(self: &Arc<Self>, token: &Arc<str>) -> Result<Slot, Full> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.all >= self.total {
            return Err(Full::Master);
        }
        let n = counts.by_token.entry(token.clone()).or_insert(0);
        if *n >= self.cap {
            return Err(Full::Token);
        }
        *n += 1;
        counts.all += 1;
        Ok(Slot {
            parking: self.clone(),
            token: token.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_parks_up_to_its_bound_and_gets_places_back() {
        let p = Parking::new(2, 100);
        let (viewer, worker): (Arc<str>, Arc<str>) = ("viewer".into(), "workers".into());
        let a = p.take(&viewer).unwrap();
        let _b = p.take(&viewer).unwrap();
        assert_eq!(p.take(&viewer).err(), Some(Full::Token));
        assert!(p.take(&worker).is_ok(), "another token has its own places");
        drop(a);
        assert!(p.take(&viewer).is_ok());
    }

    #[test]
    fn all_tokens_together_park_up_to_the_master_s_bound() {
        let p = Parking::new(10, 3);
        let tokens: Vec<Arc<str>> = ["a", "b", "c", "d"].map(Into::into).to_vec();
        let held: Vec<Slot> = tokens[..3].iter().map(|t| p.take(t).unwrap()).collect();
        assert_eq!(p.take(&tokens[3]).err(), Some(Full::Master));
        drop(held);
        assert!(p.take(&tokens[3]).is_ok(), "places come back");
    }
}
