//! A randomized check of the state against a deliberately naive model of the contract.

use std::collections::BTreeMap;

use super::tests::{claim_req, fresh, unbounded};
use super::*;

/// A naive model of the contract: a sorted map and linear scans.
#[derive(Default)]
struct Model {
    tokens: BTreeMap<String, Token>,
    version: i64,
}

impl Model {
    fn modify(&mut self, req: &ModifyRequest) -> Result<Vec<Token>, &'static str> {
        for t in &req.updates {
            match (self.tokens.get(&t.name), t.version) {
                (Some(e), v) if e.version != v => return Err("VERSION_CONFLICT"),
                (None, Some(_)) => return Err("NOT_FOUND"),
                _ => {}
            }
        }
        for t in &req.deletes {
            match self.tokens.get(&t.name) {
                None => return Err("NOT_FOUND"),
                Some(e) if e.version != t.version => return Err("VERSION_CONFLICT"),
                _ => {}
            }
        }
        let mut out = Vec::new();
        for t in &req.updates {
            self.version += 1;
            let stored = Token {
                version: Some(self.version),
                ..t.clone()
            };
            self.tokens.insert(t.name.clone(), stored.clone());
            out.push(stored);
        }
        for t in &req.deletes {
            self.tokens.remove(&t.name);
        }
        self.version += 1; // the blessed version
        Ok(out)
    }

    fn claim(&mut self, prefix: &str, max: usize, owner: &str, exp: i64, now: i64) -> Vec<Token> {
        let pattern = Pattern::parse(prefix).unwrap();
        let mut candidates: Vec<Token> = self
            .tokens
            .values()
            .filter(|t| pattern.matches(&t.name) && !t.is_owned(now))
            .cloned()
            .collect();
        // In line: the highest priority first, then the longest waiting (the oldest version),
        // then the name; a lease that has already ended is never granted.
        candidates.sort_by(|a, b| {
            b.priority
                .total_cmp(&a.priority)
                .then(a.version.cmp(&b.version))
                .then(a.name.cmp(&b.name))
        });
        if exp <= now {
            candidates.clear();
        }
        candidates.truncate(max);
        for t in &mut candidates {
            self.version += 1;
            t.version = Some(self.version);
            t.owner = Some(owner.into());
            t.expiration_time = Some(exp);
            self.tokens.insert(t.name.clone(), t.clone());
        }
        if !candidates.is_empty() {
            self.version += 1;
        }
        candidates
    }
}

fn random_name(rng: &mut fastrand::Rng) -> String {
    format!("/w/{}/job/{}", rng.usize(0..3), rng.usize(0..6))
}

#[test]
fn random_request_sequences_agree_with_a_naive_model() {
    for seed in 0..40 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut state = fresh();
        let mut model = Model {
            version: state.last_version(),
            ..Default::default()
        };
        let mut now = 1000;
        for step in 0..300 {
            now += rng.i64(0..3);
            let ctx = format!("seed {seed} step {step}");
            match rng.u8(0..10) {
                0..=5 => {
                    let mut req = ModifyRequest::default();
                    for _ in 0..rng.usize(1..4) {
                        let name = random_name(&mut rng);
                        let version = match (model.tokens.get(&name), rng.u8(0..4)) {
                            (Some(t), 0..=2) => t.version,
                            (_, 3) => Some(rng.i64(1..50)),
                            _ => None,
                        };
                        let owned = rng.bool();
                        let t = Token {
                            name,
                            version,
                            owner: owned.then(|| "w".to_string()),
                            expiration_time: owned.then(|| now + rng.i64(-2..5)),
                            priority: rng.u8(0..4) as f64,
                            data: Some(format!("d{step}")),
                        };
                        if rng.u8(0..4) == 0 && t.version.is_some() {
                            req.deletes.push(t);
                        } else {
                            req.updates.push(t);
                        }
                    }
                    if req.validate().is_err() {
                        continue;
                    }
                    let mut txn = Txn::default();
                    let got = state
                        .modify(&req, 0, &mut txn)
                        .map(|r| r.updates)
                        .map_err(|e| e.code());
                    state.seal(&mut txn);
                    assert_eq!(got, model.modify(&req), "{ctx}");
                }
                _ => {
                    let prefix = ["/w/*/job/", "/w/1/", "/w/"][rng.usize(0..3)];
                    let max = rng.usize(1..4);
                    let exp = now + rng.i64(1..6);
                    let mut txn = Txn::default();
                    let got = state
                        .claim(
                            &claim_req(prefix, Some(max as u32), "c", exp),
                            now,
                            &mut txn,
                        )
                        .unwrap();
                    state.seal(&mut txn);
                    let want = model.claim(prefix, max, "c", exp, now);
                    assert_eq!(got.tokens, want, "{ctx}");
                }
            }
            let ours: Vec<Token> = state
                .query(
                    &Query {
                        name_prefix: "/w/".into(),
                        max_tokens: None,
                    },
                    &mut unbounded(),
                )
                .unwrap();
            let theirs: Vec<Token> = model.tokens.values().cloned().collect();
            assert_eq!(ours, theirs, "{ctx}");
        }
    }
}
