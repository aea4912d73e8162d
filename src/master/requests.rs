//! Idempotent writes: a client sends each write with an `Idempotency-Key` header, the same on
//! every retry of that write. The master commits the outcome of a keyed write in the same
//! transaction as the write, and answers a replay (the answer was lost on its way) with the
//! original answer instead of applying it again: a lost answer is never mistaken for a
//! conflict, and `util start` never starts two instances. Outcomes are kept for [`WINDOW_SEC`]
//! (longer than any client retries a write) and at most [`MAX_KEPT`] at once, in memory and in
//! the database (`request_outcomes`), so a master restarted between a write and its replay
//! still knows it.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::state::State;
use crate::storage::RequestOutcome;
use crate::token::*;

/// How long an outcome is kept: clients retry one write for minutes at most.
pub const WINDOW_SEC: i64 = 15 * 60;
/// The most outcomes kept at once; beyond it the oldest are forgotten first.
pub const MAX_KEPT: usize = 200_000;
/// The longest key a client may send.
pub const MAX_KEY_LEN: usize = 64;

/// A keyed write: whose and which key, and what it asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    /// The caller (its API token's name) and the key, so no caller sees another's answers.
    pub key: String,
    /// SHA-256 of the request, hex: a replay must ask the same.
    pub hash: String,
}

impl RequestKey {
    /// The key `key` of `caller` for the request `req`; `Err` for a key that is not 1 to 64
    /// characters of `A-Z a-z 0-9 - _`.
    pub fn new(caller: &str, key: &str, req: &impl Serialize) -> Result<RequestKey, MasterError> {
        if key.is_empty()
            || key.len() > MAX_KEY_LEN
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(MasterError::InputError(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LEN} characters of A-Z a-z 0-9 - _"
            )));
        }
        let body = serde_json::to_vec(req).map_err(|e| {
            MasterError::InputError(format!("the request cannot be written back: {e}"))
        })?;
        let hash = crate::token::hex(&Sha256::digest(&body));
        Ok(RequestKey {
            key: format!("{caller}:{key}"),
            hash,
        })
    }
}

/// What a keyed write answered, compactly: a replay's answer is rebuilt from it and the
/// request (which the hash proves is the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// `/modify`: each update's new version and expiration time, in request order.
    #[serde(rename = "m")]
    Modify(Vec<(i64, Option<i64>)>),
    /// `/query_and_own`: each token claimed, by name and version.
    #[serde(rename = "c")]
    Claim(Vec<(String, i64)>),
    /// `/archive` and `/audit`: `{}`.
    #[serde(rename = "e")]
    Empty,
}

impl Answer {
    pub fn of_modify(r: &ModifyResponse) -> Answer {
        Answer::Modify(
            r.updates
                .iter()
                .map(|t| (t.version.unwrap_or(0), t.expiration_time))
                .collect(),
        )
    }

    pub fn of_claim(r: &QueryAndOwnResponse) -> Answer {
        Answer::Claim(
            r.tokens
                .iter()
                .map(|t| (t.name.clone(), t.version.unwrap_or(0)))
                .collect(),
        )
    }

    /// The `/modify` answer again: the request's updates with the versions it got.
    pub fn modify_response(&self, req: &ModifyRequest) -> Option<ModifyResponse> {
        let Answer::Modify(got) = self else {
            return None;
        };
        if got.len() != req.updates.len() {
            return None;
        }
        let updates = req
            .updates
            .iter()
            .zip(got)
            .map(|(t, (version, expiration))| {
                let mut entry = super::state::Entry::from_token(t, *version);
                entry.expiration_time = *expiration;
                entry.to_token(&t.name)
            })
            .collect();
        Some(ModifyResponse { updates })
    }

    /// The `/query_and_own` answer again: each token it claimed, as it is now, while it is at
    /// the version the claim gave it (a token changed since is the claimant's no more).
    pub fn claim_response(&self, state: &State) -> Option<QueryAndOwnResponse> {
        let Answer::Claim(got) = self else {
            return None;
        };
        let tokens = got
            .iter()
            .filter_map(|(name, version)| {
                state
                    .get(name)
                    .filter(|e| e.version == *version)
                    .map(|e| e.to_token(name))
            })
            .collect();
        // Without its context: that was as of the grant, and the claimant reads it itself.
        Some(QueryAndOwnResponse {
            tokens,
            context: None,
        })
    }
}

/// What a keyed write finds.
pub enum Seen<'a> {
    /// A new key: apply the write.
    New,
    /// A replay of a committed write: answer this.
    Replay(&'a Answer),
    /// The key was used for another request.
    Different,
}

struct Kept {
    hash: String,
    answer: Answer,
    at: i64,
}

/// The outcomes kept, by key, with their order of commit.
#[derive(Default)]
pub struct Requests {
    kept: HashMap<String, Kept>,
    order: VecDeque<(i64, String)>,
    warned_full: bool,
}

impl Requests {
    /// The outcomes a master loaded from the database.
    pub fn load(stored: Vec<RequestOutcome>) -> Requests {
        let mut r = Requests::default();
        for o in stored {
            match serde_json::from_str(&o.answer) {
                Ok(answer) => r.insert(o.key, o.body_hash, answer, o.created_at),
                Err(e) => {
                    tracing::warn!(key = %o.key, error = %e, "an unreadable stored request outcome is ignored")
                }
            }
        }
        r
    }

    pub fn len(&self) -> usize {
        self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    pub fn seen(&self, key: &RequestKey) -> Seen<'_> {
        match self.kept.get(&key.key) {
            None => Seen::New,
            Some(k) if k.hash == key.hash => Seen::Replay(&k.answer),
            Some(_) => Seen::Different,
        }
    }

    /// Keeps a committed outcome; forgets the oldest beyond [`MAX_KEPT`].
    pub fn insert(&mut self, key: String, hash: String, answer: Answer, at: i64) {
        if self.kept.contains_key(&key) {
            return;
        }
        while self.kept.len() >= MAX_KEPT {
            let Some((_, oldest)) = self.order.pop_front() else {
                break;
            };
            self.kept.remove(&oldest);
            if !std::mem::replace(&mut self.warned_full, true) {
                tracing::warn!(
                    max = MAX_KEPT,
                    "the master keeps its most request outcomes: the oldest are forgotten before their {WINDOW_SEC} s"
                );
            }
        }
        self.order.push_back((at, key.clone()));
        self.kept.insert(key, Kept { hash, answer, at });
    }

    /// Forgets outcomes committed before `before` (seconds).
    pub fn expire(&mut self, before: i64) {
        while let Some((at, _)) = self.order.front() {
            if *at >= before {
                break;
            }
            let (_, key) = self.order.pop_front().expect("a front entry");
            if self.kept.get(&key).is_some_and(|k| k.at < before) {
                self.kept.remove(&key);
            }
        }
        if self.kept.len() < MAX_KEPT / 2 {
            self.warned_full = false;
        }
    }
}

/// The row that keeps `answer` for `key` in the commit of its write.
pub fn outcome(key: &RequestKey, answer: &Answer, at: i64) -> RequestOutcome {
    RequestOutcome {
        key: key.key.clone(),
        body_hash: key.hash.clone(),
        answer: serde_json::to_string(answer).expect("an answer is plain data"),
        created_at: at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_bounded_and_scoped_to_its_caller() {
        let req = ModifyRequest::default();
        assert!(RequestKey::new("w", "", &req).is_err());
        assert!(RequestKey::new("w", &"a".repeat(65), &req).is_err());
        assert!(RequestKey::new("w", "a b", &req).is_err());
        let a = RequestKey::new("w", "k-1_Z", &req).unwrap();
        let b = RequestKey::new("ops", "k-1_Z", &req).unwrap();
        assert_ne!(a.key, b.key);
        assert_eq!(a.hash, b.hash);
        let other = ModifyRequest {
            lease_sec: Some(3),
            ..ModifyRequest::default()
        };
        assert_ne!(RequestKey::new("w", "k", &other).unwrap().hash, a.hash);
    }

    #[test]
    fn outcomes_are_kept_within_the_window_and_the_cap() {
        let mut r = Requests::default();
        let key = RequestKey::new("w", "k", &ModifyRequest::default()).unwrap();
        r.insert(key.key.clone(), key.hash.clone(), Answer::Empty, 100);
        assert!(matches!(r.seen(&key), Seen::Replay(Answer::Empty)));
        let other = RequestKey {
            hash: "00".into(),
            ..key.clone()
        };
        assert!(matches!(r.seen(&other), Seen::Different));
        r.expire(100);
        assert_eq!(r.len(), 1);
        r.expire(101);
        assert!(matches!(r.seen(&key), Seen::New));
        for i in 0..MAX_KEPT + 10 {
            r.insert(format!("k{i}"), String::new(), Answer::Empty, 200);
        }
        assert_eq!(r.len(), MAX_KEPT, "the oldest are forgotten beyond the cap");
        let stored = outcome(&key, &Answer::Modify(vec![(7, Some(9))]), 5);
        assert_eq!(stored.answer, r#"{"m":[[7,9]]}"#);
    }
}
