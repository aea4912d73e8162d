//! `cargo bench --bench pools`: the master's claim path (`State::claim`, what the writer runs
//! for every `query_and_own`) with 10,000 runnable jobs in 100 pools, without slot limits and
//! with a limit on every pool. Each claim takes one job for a worker serving all 100 pools;
//! the job then ends (its token is deleted, giving its slot back). Prints p50 / p99 of the
//! claim alone, in memory, so the figure is the claim rule's cost, not the commit's
//! (target: the limited p99 within 10 % of the unlimited one).

use std::time::{Duration, Instant};

use pinball::master::state::{State, Txn};
use pinball::token::*;

const JOBS: usize = 10_000;
const POOLS: usize = 100;
const CLAIMS: usize = 5_000;

fn job(i: usize) -> Token {
    Token::new(
        format!("/workflow/w{}/1/job/runnable/j{i:05}", i % POOLS),
        Some(format!(
            r#"{{"type":"ShellJob","pool":"p{}","name":"j{i:05}","command":"true"}}"#,
            i % POOLS
        )),
    )
}

fn modify(s: &mut State, updates: Vec<Token>, deletes: Vec<Token>) {
    let mut txn = Txn::default();
    let req = ModifyRequest {
        updates,
        deletes,
        ..Default::default()
    };
    s.modify(&req, 0, &mut txn).unwrap();
    s.seal(&mut txn);
}

/// p50 and p99 of `CLAIMS` claims, with slot limits on every pool when `limited`.
fn run(limited: bool) -> (Duration, Duration) {
    let mut s = State::load(Vec::new(), 0, "bench".into()).with_pools("/pool/", 60);
    if limited {
        let pools = (0..POOLS)
            .map(|p| Token::new(format!("/pool/p{p}"), Some(r#"{"slots":50}"#.into())))
            .collect();
        modify(&mut s, pools, vec![]);
    }
    for chunk in (0..JOBS).collect::<Vec<_>>().chunks(1000) {
        modify(&mut s, chunk.iter().map(|i| job(*i)).collect(), vec![]);
    }
    let req = QueryAndOwnRequest {
        lease_sec: Some(30),
        pools: Some((0..POOLS).map(|p| format!("p{p}")).collect()),
        record_grant: true,
        ..QueryAndOwnRequest::new("worker", 0, name_pattern(), Some(1), None)
    };
    let mut took = Vec::with_capacity(CLAIMS);
    for n in 0..CLAIMS {
        let mut txn = Txn::default();
        let started = Instant::now();
        let claim = s.claim(&req, 1_000 + n as i64 / 100, &mut txn).unwrap();
        took.push(started.elapsed());
        s.seal(&mut txn);
        // The job ends: its token goes, and its slot with it.
        modify(&mut s, vec![], claim.tokens);
    }
    took.sort();
    let pct = |p: f64| took[((took.len() - 1) as f64 * p) as usize];
    (pct(0.5), pct(0.99))
}

fn name_pattern() -> &'static str {
    pinball::token::name::ALL_RUNNABLE_JOBS
}

fn main() {
    println!(
        "# claim path: {JOBS} runnable jobs in {POOLS} pools, {CLAIMS} claims of one job, in memory"
    );
    // Warm up, then measure each way three times, alternating; the best of each is printed.
    run(false);
    let mut free = Vec::new();
    let mut limited = Vec::new();
    for _ in 0..3 {
        free.push(run(false));
        limited.push(run(true));
    }
    let best = |v: &[(Duration, Duration)]| {
        (
            v.iter().map(|x| x.0).min().unwrap(),
            v.iter().map(|x| x.1).min().unwrap(),
        )
    };
    let (f50, f99) = best(&free);
    let (l50, l99) = best(&limited);
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "no slot limits: p50 {:.1} us, p99 {:.1} us",
        us(f50),
        us(f99)
    );
    println!(
        "every pool limited (50 slots each): p50 {:.1} us, p99 {:.1} us ({:+.0} % at p99; target within 10 %)",
        us(l50),
        us(l99),
        (us(l99) / us(f99) - 1.0) * 100.0
    );
}
