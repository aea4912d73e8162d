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
    counts: Mutex<HashMap<Arc<str>, usize>>,
    cap: usize,
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
        if let Some(n) = counts.get_mut(&self.token) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.token);
            }
        }
    }
}

impl Parking {
    pub fn new(cap: usize) -> Arc<Parking> {
        Arc::new(Parking {
            counts: Mutex::new(HashMap::new()),
            cap: cap.max(1),
        })
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// A place for one more parked request of `token`, if it has fewer than the bound.
    pub fn take(self: &Arc<Self>, token: &Arc<str>) -> Option<Slot> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(token.clone()).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Slot {
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
        let p = Parking::new(2);
        let (viewer, worker): (Arc<str>, Arc<str>) = ("viewer".into(), "workers".into());
        let a = p.take(&viewer).unwrap();
        let _b = p.take(&viewer).unwrap();
        assert!(p.take(&viewer).is_none());
        assert!(
            p.take(&worker).is_some(),
            "another token has its own places"
        );
        drop(a);
        assert!(p.take(&viewer).is_some());
    }
}
