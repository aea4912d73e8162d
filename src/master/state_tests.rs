//! The rules of PINBALL_SPEC §1.4 on the pure state (claims in `state/claims_tests.rs`, the
//! randomized model check in `state/model_tests.rs`).

use super::*;

pub(super) fn unbounded() -> AnswerBudget {
    AnswerBudget::new(usize::MAX)
}

pub(super) fn fresh() -> State {
    State::load(Vec::new(), 0, "blessed".into())
}

pub(super) fn tok(name: &str, version: Option<i64>) -> Token {
    Token {
        version,
        ..Token::new(name, Some(format!("data of {name}")))
    }
}

pub(super) fn modify(
    s: &mut State,
    updates: Vec<Token>,
    deletes: Vec<Token>,
) -> Result<ModifyResponse, MasterError> {
    let req = ModifyRequest {
        updates,
        deletes,
        ..ModifyRequest::default()
    };
    req.validate()?;
    let mut txn = Txn::default();
    let r = s.modify(&req, 0, &mut txn);
    s.seal(&mut txn);
    r
}

pub(super) fn names(s: &State) -> Vec<(String, i64)> {
    s.iter().map(|(n, e)| (n.to_owned(), e.version)).collect()
}

pub(super) fn claim_req(
    prefix: &str,
    max: Option<u32>,
    owner: &str,
    exp: i64,
) -> QueryAndOwnRequest {
    QueryAndOwnRequest::new(owner, exp, prefix, max, None)
}

#[test]
fn a_fresh_state_shows_only_the_blessed_version() {
    let s = fresh();
    let all = s.query(&Query::default(), &mut unbounded()).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].name, BLESSED_VERSION_NAME);
    assert_eq!(all[0].owner.as_deref(), Some("__master__"));
    assert_eq!(
        s.group(&GroupRequest {
            name_prefix: "/".into(),
            group_suffix: None
        })
        .unwrap()
        .counts
        .len(),
        1
    );
    let mut s = s;
    let claim = s
        .claim(
            &claim_req("", Some(10), "o", NEVER),
            100,
            &mut Txn::default(),
        )
        .unwrap();
    assert!(
        claim.tokens.is_empty(),
        "the blessed version is never claimable"
    );
}

#[test]
fn an_insert_gets_a_version_and_an_update_a_new_one() {
    let mut s = fresh();
    let v1 = modify(&mut s, vec![tok("/d/t", None)], vec![])
        .unwrap()
        .updates[0]
        .version
        .unwrap();
    let mut t = tok("/d/t", Some(v1));
    t.data = Some("new".into());
    let r = modify(&mut s, vec![t], vec![]).unwrap();
    assert!(r.updates[0].version.unwrap() > v1);
    assert_eq!(r.updates[0].data.as_deref(), Some("new"));
}

#[test]
fn a_stale_version_or_an_insert_of_an_existing_name_is_a_conflict() {
    let mut s = fresh();
    let v1 = modify(&mut s, vec![tok("/d/t", None)], vec![])
        .unwrap()
        .updates[0]
        .version;
    modify(&mut s, vec![tok("/d/t", v1)], vec![]).unwrap();
    let before = names(&s);
    assert!(matches!(
        modify(&mut s, vec![tok("/d/t", v1)], vec![]),
        Err(MasterError::VersionConflict(_))
    ));
    assert!(matches!(
        modify(&mut s, vec![tok("/d/t", None)], vec![]),
        Err(MasterError::VersionConflict(_))
    ));
    assert_eq!(names(&s), before);
}

#[test]
fn a_rename_is_not_found_and_changes_nothing() {
    let mut s = fresh();
    let v = modify(&mut s, vec![tok("/some_dir/some_token_0", None)], vec![])
        .unwrap()
        .updates[0]
        .version;
    let before = names(&s);
    let err = modify(&mut s, vec![tok("/some_other_dir/some_token_0", v)], vec![]).unwrap_err();
    assert!(matches!(err, MasterError::NotFound(_)), "{err:?}");
    assert_eq!(names(&s), before);
}

#[test]
fn a_delete_without_a_version_is_an_input_error() {
    let req = ModifyRequest::delete(vec![tok("/a", None)]);
    assert!(
        matches!(req.validate(), Err(MasterError::InputError(m)) if m.contains("does not have version set"))
    );
}

#[test]
fn a_name_twice_in_one_request_is_an_input_error() {
    let twice = ModifyRequest::update(vec![tok("/a", None), tok("/a", None)]);
    assert!(matches!(twice.validate(), Err(MasterError::InputError(_))));
    let both = ModifyRequest {
        updates: vec![tok("/a", Some(1))],
        deletes: vec![tok("/a", Some(1))],
        ..ModifyRequest::default()
    };
    assert!(matches!(both.validate(), Err(MasterError::InputError(_))));
}

#[test]
fn a_failing_request_applies_nothing() {
    let mut s = fresh();
    let r = modify(&mut s, vec![tok("/a", None), tok("/b", None)], vec![]).unwrap();
    let (va, vb) = (r.updates[0].version, r.updates[1].version);
    modify(&mut s, vec![tok("/b", vb)], vec![]).unwrap();
    let before = names(&s);
    let err = modify(&mut s, vec![tok("/a", va), tok("/b", vb)], vec![]).unwrap_err();
    assert!(matches!(err, MasterError::VersionConflict(_)));
    assert_eq!(names(&s), before, "A must be unchanged");
}

#[test]
fn query_with_max_tokens_returns_the_highest_priorities() {
    let mut s = fresh();
    let mut updates = Vec::new();
    for i in 0..10 {
        updates.push(Token {
            priority: i as f64,
            ..tok(&format!("/some_dir/some_token_{i}"), None)
        });
        for j in 0..10 {
            updates.push(Token {
                priority: j as f64,
                ..tok(
                    &format!("/some_dir/some_token_{i}/some_other_token_{j}"),
                    None,
                )
            });
        }
    }
    modify(&mut s, updates, vec![]).unwrap();
    let top = s
        .query(
            &Query {
                name_prefix: "/some_dir".into(),
                max_tokens: Some(10),
            },
            &mut unbounded(),
        )
        .unwrap();
    assert_eq!(top.len(), 10);
    assert!(top.iter().all(|t| t.priority == 9.0));
    let sub = s
        .query(
            &Query {
                name_prefix: "/some_dir/some_token_0".into(),
                max_tokens: Some(100),
            },
            &mut unbounded(),
        )
        .unwrap();
    assert_eq!(sub.len(), 11);
    let all = s
        .query(
            &Query {
                name_prefix: "/some_dir/".into(),
                max_tokens: None,
            },
            &mut unbounded(),
        )
        .unwrap();
    assert!(
        all.windows(2).all(|w| w[0].name < w[1].name),
        "results without max_tokens are sorted by name"
    );
    let groups = s
        .group(&GroupRequest {
            name_prefix: "/some_dir/".into(),
            group_suffix: Some("/".into()),
        })
        .unwrap();
    assert_eq!(groups.counts.len(), 10);
    assert_eq!(groups.counts["/some_dir/some_token_3"], 11);
}

#[test]
fn a_detached_batch_leaves_the_tokens_and_indexes_as_before_it() {
    let mut s = fresh();
    modify(
        &mut s,
        vec![tok("/w/1/a", None), tok("/w/1/b", None)],
        vec![],
    )
    .unwrap();
    let p = "/w/*/";
    s.claim(&claim_req(p, Some(1), "x", 5000), 1000, &mut Txn::default())
        .unwrap();
    let before = names(&s);
    let version_before = s.last_version();
    let mut txn = Txn::default();
    let claimed = s
        .claim(&claim_req(p, None, "y", 5000), 1000, &mut txn)
        .unwrap();
    assert_eq!(claimed.tokens.len(), 1);
    let v = claimed.tokens[0].version;
    s.modify(
        &ModifyRequest::delete(vec![tok(&claimed.tokens[0].name, v)]),
        0,
        &mut txn,
    )
    .unwrap();
    s.seal(&mut txn);
    let pending = s.detach(txn, version_before);
    s.discard(&pending);
    assert_eq!(names(&s), before);
    let again = s
        .claim(&claim_req(p, None, "z", 5000), 1000, &mut Txn::default())
        .unwrap();
    assert_eq!(
        again.tokens.len(),
        1,
        "the index must hold the restored claimable token"
    );
}

#[test]
fn archive_removes_the_stored_copies_and_checks_versions() {
    let mut s = fresh();
    let r = modify(&mut s, vec![tok("/A", None), tok("/A/child", None)], vec![]).unwrap();
    let mut txn = Txn::default();
    let stale = ArchiveRequest {
        tokens: vec![Token {
            version: Some(1),
            ..tok("/A", None)
        }],
    };
    assert!(matches!(
        s.archive(&stale, &mut txn),
        Err(MasterError::VersionConflict(_))
    ));
    let missing = ArchiveRequest {
        tokens: vec![tok("/nope", Some(1))],
    };
    assert!(matches!(
        s.archive(&missing, &mut txn),
        Err(MasterError::NotFound(_))
    ));
    // The request's copy carries other data; the archive keeps the master's copy.
    let tokens = r
        .updates
        .iter()
        .map(|t| Token {
            data: Some("client copy".into()),
            ..t.clone()
        })
        .collect();
    s.archive(&ArchiveRequest { tokens }, &mut txn).unwrap();
    assert!(s.is_empty());
    assert_eq!(txn.archived().len(), 2);
    assert!(
        txn.archived()
            .iter()
            .all(|t| t.data.as_deref().unwrap().starts_with("data of"))
    );
}

#[test]
fn a_query_stops_at_its_answer_budget() {
    let mut s = fresh();
    let big = Token::new("/big", Some("x".repeat(10_000)));
    modify(&mut s, vec![big], vec![]).unwrap();
    let q = Query {
        name_prefix: "/big".into(),
        max_tokens: None,
    };
    let mut budget = AnswerBudget::new(25_000);
    assert!(s.query(&q, &mut budget).is_ok());
    assert!(s.query(&q, &mut budget).is_ok());
    let err = s.query(&q, &mut budget).unwrap_err();
    assert!(err.to_string().contains("max_answer_bytes"), "{err}");
}

#[test]
fn a_watch_learns_of_writes_and_deletions_after_its_version() {
    let mut s = fresh();
    let written = modify(&mut s, vec![tok("/w/1/__SIGNAL__/DRAIN", None)], vec![]).unwrap();
    let seen = s.last_version();
    let patterns = [Pattern::parse("/w/1/__SIGNAL__/").unwrap()];
    assert!(!s.changed_since(&patterns, seen), "nothing since");
    assert!(s.changed_since(&patterns, seen - 2), "the write itself");
    modify(&mut s, vec![], vec![written.updates[0].clone()]).unwrap();
    assert!(
        s.changed_since(&patterns, seen),
        "the deletion, though the token is gone"
    );
    let other = [Pattern::parse("/w/2/").unwrap()];
    assert!(!s.changed_since(&other, seen), "not a name it watches");
}

proptest::proptest! {
    /// The bounded heap keeps exactly what a full stable sort by priority would: the best
    /// `max` tokens, highest priority first, names in order among equals.
    #[test]
    fn max_tokens_keeps_what_a_full_sort_would(
        priorities in proptest::collection::vec(0u8..4, 0..40),
        max in 0u32..12,
    ) {
        let mut s = fresh();
        let tokens: Vec<Token> = priorities
            .iter()
            .enumerate()
            .map(|(n, p)| Token {
                priority: f64::from(*p),
                ..tok(&format!("/p/{n:02}"), None)
            })
            .collect();
        if !tokens.is_empty() {
            modify(&mut s, tokens, vec![]).unwrap();
        }
        let q = Query { name_prefix: "/p/".into(), max_tokens: Some(max) };
        let got: Vec<String> = s.query(&q, &mut unbounded()).unwrap().into_iter().map(|t| t.name).collect();
        let mut all: Vec<(u8, String)> = priorities.iter().enumerate().map(|(n, p)| (*p, format!("/p/{n:02}"))).collect();
        all.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let want: Vec<String> = all.into_iter().take(max as usize).map(|(_, n)| n).collect();
        proptest::prop_assert_eq!(got, want);
    }
}

#[test]
fn a_long_read_goes_on_after_the_last_name_it_visited() {
    let mut s = fresh();
    let tokens: Vec<Token> = (0..10).map(|n| tok(&format!("/c/{n}"), None)).collect();
    modify(&mut s, tokens, vec![]).unwrap();
    let pattern = super::super::pattern::Pattern::parse("/c/").unwrap();
    let mut found = Found::new(None);
    let mut budget = unbounded();
    let mut after = None;
    let mut rounds = 0;
    loop {
        after = s
            .scan(&pattern, after.as_deref(), 3, &mut budget, &mut found)
            .unwrap();
        rounds += 1;
        if after.is_none() {
            break;
        }
    }
    assert_eq!(rounds, 4, "ten tokens, three a lock");
    let names: Vec<String> = found.into_tokens().into_iter().map(|t| t.name).collect();
    let want: Vec<String> = (0..10).map(|n| format!("/c/{n}")).collect();
    assert_eq!(names, want, "each token once, in order");
}
