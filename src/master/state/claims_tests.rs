//! Claims on the pure state: priority and age order, pools, leases that end, and an outage's
//! lease extension.

use std::time::Duration;

use super::super::tests::{claim_req, fresh, modify, names, tok};
use super::super::*;

#[test]
fn claims_skip_owned_tokens_and_take_expired_leases() {
    let mut s = fresh();
    let now = 1000;
    let mut updates = vec![
        Token {
            owner: Some("o".into()),
            expiration_time: Some(10),
            ..tok("/t0", None)
        },
        Token {
            owner: Some("o".into()),
            expiration_time: Some(NEVER),
            ..tok("/t1", None)
        },
    ];
    updates.extend((0..108).map(|i| tok(&format!("/u{i}"), None)));
    modify(&mut s, updates, vec![]).unwrap();
    let mut txn = Txn::default();
    let claim = s
        .claim(&claim_req("", Some(200), "o2", NEVER), now, &mut txn)
        .unwrap();
    assert_eq!(claim.tokens.len(), 109);
    assert!(
        claim
            .tokens
            .iter()
            .all(|t| t.owner.as_deref() == Some("o2") && t.expiration_time == Some(NEVER))
    );
    assert!(claim.tokens.iter().all(|t| t.name != "/t1"));
}

#[test]
fn a_claim_takes_the_highest_priority_first() {
    for prefix in ["/w/", "/w/*/"] {
        let mut s = fresh();
        let updates = [1.0, 5.0, 3.0].iter().enumerate().map(|(i, p)| Token {
            priority: *p,
            ..tok(&format!("/w/{i}/j"), None)
        });
        modify(&mut s, updates.collect(), vec![]).unwrap();
        let claim = s
            .claim(
                &claim_req(prefix, Some(1), "o", 2000),
                1000,
                &mut Txn::default(),
            )
            .unwrap();
        assert_eq!(claim.tokens.len(), 1, "{prefix}");
        assert_eq!(claim.tokens[0].priority, 5.0, "{prefix}");
        let second = s
            .claim(
                &claim_req(prefix, Some(5), "o", 2000),
                1000,
                &mut Txn::default(),
            )
            .unwrap();
        let prios: Vec<f64> = second.tokens.iter().map(|t| t.priority).collect();
        assert_eq!(prios, vec![3.0, 1.0], "{prefix}");
        assert_eq!(second.next_lease_end, Some(2000), "{prefix}");
    }
}

#[test]
fn a_claim_naming_pools_takes_only_their_tokens_best_first() {
    for prefix in ["/w/", "/w/*/"] {
        let mut s = fresh();
        let job = |i: usize, pool: Option<&str>, priority: f64| Token {
            priority,
            data: Some(match pool {
                Some(p) => format!(r#"{{"pool":"{p}","command":"x"}}"#),
                None => r#"{"command":"echo \"pool\""}"#.into(),
            }),
            ..tok(&format!("/w/{i}/j"), None)
        };
        let updates = vec![
            job(0, None, 1.0),
            job(1, Some("heavy"), 5.0),
            job(2, Some("default"), 3.0),
            job(3, Some("gpu"), 9.0),
            job(4, Some("heavy"), 2.0),
        ];
        modify(&mut s, updates, vec![]).unwrap();
        let mut claim = |pools: Option<Vec<&str>>, max: u32| {
            let req = QueryAndOwnRequest {
                pools: pools.map(|p| p.into_iter().map(String::from).collect()),
                ..claim_req(prefix, Some(max), "o", 2000)
            };
            req.validate().unwrap();
            let got = s.claim(&req, 1000, &mut Txn::default()).unwrap();
            got.tokens.into_iter().map(|t| t.name).collect::<Vec<_>>()
        };
        assert_eq!(
            claim(Some(vec!["default"]), 5),
            ["/w/2/j", "/w/0/j"],
            "{prefix}: no pool means default"
        );
        assert_eq!(
            claim(Some(vec!["heavy", "nothing_here"]), 1),
            ["/w/1/j"],
            "{prefix}"
        );
        assert_eq!(claim(None, 5), ["/w/3/j", "/w/4/j"], "{prefix}: every pool");
        assert!(claim(None, 5).is_empty(), "{prefix}");
    }
}

#[test]
fn a_claim_names_real_pools() {
    for (pools, ok) in [
        (vec![], false),
        (vec!["heavy", "gpu-large"], true),
        (vec!["a b"], false),
        (vec![""], false),
    ] {
        let req = QueryAndOwnRequest {
            pools: Some(pools.iter().map(|p| p.to_string()).collect()),
            ..claim_req("/w/", Some(1), "o", 2000)
        };
        assert_eq!(req.validate().is_ok(), ok, "{pools:?}");
    }
    let many = QueryAndOwnRequest {
        pools: Some((0..17).map(|i| format!("p{i}")).collect()),
        ..claim_req("/w/", Some(1), "o", 2000)
    };
    assert!(many.validate().unwrap_err().to_string().contains("16"));
}

#[test]
fn a_lease_that_ends_makes_the_token_claimable_again() {
    let mut s = fresh();
    modify(&mut s, vec![tok("/w/1/j", None)], vec![]).unwrap();
    let p = "/w/*/";
    assert_eq!(
        s.claim(&claim_req(p, Some(1), "a", 1010), 1000, &mut Txn::default())
            .unwrap()
            .tokens
            .len(),
        1
    );
    let none = s
        .claim(&claim_req(p, Some(1), "b", 1020), 1005, &mut Txn::default())
        .unwrap();
    assert!(none.tokens.is_empty());
    assert_eq!(none.next_lease_end, Some(1010));
    let again = s
        .claim(&claim_req(p, Some(1), "b", 1020), 1010, &mut Txn::default())
        .unwrap();
    assert_eq!(again.tokens[0].owner.as_deref(), Some("b"));
}

#[test]
fn leases_are_counted_by_the_master_and_never_granted_ended() {
    let mut s = fresh();
    modify(
        &mut s,
        vec![tok("/w/1/j", None), tok("/w/2/j", None)],
        vec![],
    )
    .unwrap();
    let p = "/w/*/";
    let ended = s
        .claim(&claim_req(p, Some(1), "a", 999), 1000, &mut Txn::default())
        .unwrap();
    assert!(
        ended.tokens.is_empty(),
        "a lease that has already ended is not granted"
    );
    let relative = QueryAndOwnRequest {
        lease_sec: Some(30),
        ..claim_req(p, Some(1), "a", 0)
    };
    let got = s.claim(&relative, 1000, &mut Txn::default()).unwrap();
    assert_eq!(
        got.tokens[0].expiration_time,
        Some(1031),
        "30 s from the grant, rounded up to whole seconds"
    );
    // A renewal through /modify with lease_sec counts from the master's now, too.
    let mut renewed = got.tokens[0].clone();
    renewed.expiration_time = Some(5);
    let req = ModifyRequest {
        lease_sec: Some(30),
        ..ModifyRequest::update(vec![renewed])
    };
    let answer = s.modify(&req, 1020, &mut Txn::default()).unwrap();
    assert_eq!(answer.updates[0].expiration_time, Some(1051));
}

#[test]
fn an_outage_gives_job_leases_their_full_length_and_leaves_other_tokens() {
    let mut s = fresh();
    let leased = |name: &str, exp: i64| Token {
        owner: Some("w".into()),
        expiration_time: Some(exp),
        ..tok(name, None)
    };
    modify(
        &mut s,
        vec![
            leased("/workflow/a/1/job/runnable/j", 1005),
            leased("/workflow/a/1/job/runnable/k", 5000),
            leased("/schedule/workflow/a", 1005),
        ],
        vec![],
    )
    .unwrap();
    let before = names(&s);
    assert_eq!(s.extend_leases("/workflow/", 1010, 30), 1);
    let exp = |n: &str| s.iter().find(|(k, _)| *k == n).unwrap().1.expiration_time;
    assert_eq!(exp("/workflow/a/1/job/runnable/j"), Some(1040));
    assert_eq!(
        exp("/workflow/a/1/job/runnable/k"),
        Some(5000),
        "a longer lease stays"
    );
    assert_eq!(
        exp("/schedule/workflow/a"),
        Some(1005),
        "a schedule's next run is not a lease"
    );
    assert_eq!(names(&s), before, "no version changes: holders still match");
}

/// Jobs in pool `p` taking `slots` each, in the state.
fn pooled(s: &mut State, names: &[(&str, u32)]) {
    let updates = names
        .iter()
        .map(|(n, k)| Token::new(*n, Some(format!(r#"{{"pool":"p","pool_slots":{k}}}"#))))
        .collect();
    modify(s, updates, vec![]).unwrap();
}

fn claim_one(s: &mut State, now: i64, lease_end: i64) -> Vec<String> {
    let mut txn = Txn::default();
    let c = s
        .claim(&claim_req("/j/*", Some(10), "w", lease_end), now, &mut txn)
        .unwrap();
    s.seal(&mut txn);
    c.tokens.into_iter().map(|t| t.name).collect()
}

#[test]
fn a_pool_s_slots_bound_the_claims_and_come_back_when_a_lease_ends_or_a_job_does() {
    let mut s = fresh().with_pools("/pool/", 60);
    modify(
        &mut s,
        vec![Token::new("/pool/p", Some(r#"{"slots":3}"#.into()))],
        vec![],
    )
    .unwrap();
    pooled(
        &mut s,
        &[("/j/a/1", 1), ("/j/b/1", 1), ("/j/c/1", 1), ("/j/d/1", 1)],
    );
    let first = claim_one(&mut s, 1000, 1010);
    assert_eq!(first.len(), 3, "3 slots: {first:?}");
    assert!(claim_one(&mut s, 1001, 1010).is_empty(), "all 3 used");
    // A job ends: its token goes, and so does its slot.
    let done = s.get(&first[0]).unwrap().to_token(&first[0]);
    modify(&mut s, vec![], vec![done]).unwrap();
    assert_eq!(claim_one(&mut s, 1002, 1010).len(), 1);
    // Leases that lapse give their slots back.
    assert_eq!(
        claim_one(&mut s, 1011, 1030).len(),
        3,
        "the 3 lapsed leases, reclaimed"
    );
    // Fewer slots: nothing new until the use fits.
    let version = s.get("/pool/p").map(|e| e.version);
    let fewer = Token {
        version,
        ..Token::new("/pool/p", Some(r#"{"slots":1}"#.into()))
    };
    modify(&mut s, vec![fewer], vec![]).unwrap();
    pooled(&mut s, &[("/j/e/1", 1)]);
    assert!(claim_one(&mut s, 1012, 1030).is_empty());
    assert_eq!(s.pool_usage("/j/*", "p").used, 3);
}

#[test]
fn a_large_job_reserves_the_slots_once_it_has_waited_long_enough() {
    let mut s = fresh().with_pools("/pool/", 60);
    modify(
        &mut s,
        vec![Token::new("/pool/p", Some(r#"{"slots":2}"#.into()))],
        vec![],
    )
    .unwrap();
    pooled(&mut s, &[("/j/0/hold", 1)]);
    assert_eq!(claim_one(&mut s, 1000, 5000).len(), 1, "one slot held");
    // The 2-slot job comes first in line; 1-slot jobs behind it.
    pooled(
        &mut s,
        &[("/j/1/big", 2), ("/j/2/small", 1), ("/j/3/small", 1)],
    );
    assert_eq!(
        claim_one(&mut s, 1001, 1002),
        ["/j/2/small"],
        "a small one passes"
    );
    // Its lease lapses at 1002; by 1061 the big one has waited 60 s: the free slot is kept.
    assert!(
        claim_one(&mut s, 1061, 5000).is_empty(),
        "reserved for the big one"
    );
    // The held slot comes back: the big one takes both.
    let hold = s.get("/j/0/hold").unwrap().to_token("/j/0/hold");
    modify(&mut s, vec![], vec![hold]).unwrap();
    assert_eq!(claim_one(&mut s, 1062, 5000), ["/j/1/big"]);
}

#[test]
fn a_claim_that_asks_records_its_grant_in_the_data_it_commits() {
    let mut s = fresh();
    let job = r#"{"name":"j","history":[{"x":"a\"b"}],"pool":"p"}"#;
    modify(
        &mut s,
        vec![
            Token::new("/w/1/j", Some(job.into())),
            Token::new("/w/2/k", Some("plain text".into())),
        ],
        vec![],
    )
    .unwrap();
    let asks = |owner: &str, lease_end: i64| QueryAndOwnRequest {
        record_grant: true,
        ..claim_req("/w/*/", Some(5), owner, lease_end)
    };
    let mut txn = Txn::default();
    let first = s.claim(&asks("a", 1010), 1000, &mut txn).unwrap();
    let data = |t: &Token| serde_json::from_str::<serde_json::Value>(t.data.as_deref().unwrap());
    let j = first.tokens.iter().find(|t| t.name == "/w/1/j").unwrap();
    let v = data(j).unwrap();
    assert_eq!(
        v["grant"],
        serde_json::json!({"n": 1, "owner": "a", "at": 1000})
    );
    assert_eq!(v["history"][0]["x"], "a\"b", "the rest of the data is kept");
    assert_eq!(v["pool"], "p");
    let k = first.tokens.iter().find(|t| t.name == "/w/2/k").unwrap();
    assert_eq!(
        k.data.as_deref(),
        Some("plain text"),
        "data that is no object is left"
    );
    // What the claim answered is what it keeps (and commits).
    assert!(txn.touched().any(|n| n == "/w/1/j"));
    assert_eq!(s.tokens["/w/1/j"].data.as_deref(), j.data.as_deref());
    // The lease ends unrenewed: the next grant counts on and names the one it replaced.
    let second = s
        .claim(&asks("b", 1030), 1020, &mut Txn::default())
        .unwrap();
    let j = second.tokens.iter().find(|t| t.name == "/w/1/j").unwrap();
    assert_eq!(
        data(j).unwrap()["grant"],
        serde_json::json!({"n": 2, "owner": "b", "at": 1020, "prev_owner": "a", "prev_at": 1000})
    );
    // A claim granted after waiting (parked) says how long: its worker counts the lease from
    // its own send time plus that, whatever the clocks of the two hosts say.
    let waited = s
        .claim_after(
            &asks("c", 1050),
            1040,
            Duration::from_millis(1500),
            &mut Txn::default(),
        )
        .unwrap();
    let j = waited.tokens.iter().find(|t| t.name == "/w/1/j").unwrap();
    assert_eq!(data(j).unwrap()["grant"]["waited_ms"], 1500);
    // A claim that does not ask leaves the data as it is.
    let third = s
        .claim(
            &claim_req("/w/*/", Some(5), "d", 1070),
            1060,
            &mut Txn::default(),
        )
        .unwrap();
    let j3 = third.tokens.iter().find(|t| t.name == "/w/1/j").unwrap();
    assert_eq!(j3.data, j.data);
}
