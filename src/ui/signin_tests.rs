use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn five_failures_lock_the_address_and_each_further_one_doubles_the_lock() {
    let t = Throttle::default();
    let now = Instant::now();
    for _ in 0..4 {
        assert_eq!(t.failed(ip("10.0.0.1"), None, now).locked_for, None);
    }
    assert_eq!(t.locked(ip("10.0.0.1"), None, now), None);
    assert_eq!(
        t.failed(ip("10.0.0.1"), None, now).locked_for,
        Some(FIRST_LOCK)
    );
    assert_eq!(t.locked(ip("10.0.0.1"), None, now), Some(FIRST_LOCK));
    assert_eq!(t.locked(ip("10.0.0.2"), None, now), None, "another address");
    assert_eq!(
        t.failed(ip("10.0.0.1"), None, now).locked_for,
        Some(FIRST_LOCK * 2)
    );
    let later = now + FIRST_LOCK * 2;
    assert_eq!(t.locked(ip("10.0.0.1"), None, later), None, "the lock ends");
}

#[test]
fn a_user_is_locked_from_any_address_and_freed_by_a_success() {
    let t = Throttle::default();
    let now = Instant::now();
    for n in 0..FREE_FAILURES {
        t.failed(ip(&format!("10.0.1.{n}")), Some("alice"), now);
    }
    assert!(t.locked(ip("10.9.9.9"), Some("alice"), now).is_some());
    assert_eq!(t.locked(ip("10.9.9.9"), Some("bob"), now), None);
    t.succeeded("alice");
    assert_eq!(t.locked(ip("10.9.9.9"), Some("alice"), now), None);
}

#[test]
fn the_lock_is_capped_and_failures_age_out_of_the_window() {
    let t = Throttle::default();
    let now = Instant::now();
    let mut last = None;
    for _ in 0..60 {
        last = t.failed(ip("10.0.0.1"), None, now).locked_for;
    }
    assert_eq!(last, Some(MAX_LOCK));
    let much_later = now + WINDOW + MAX_LOCK + Duration::from_secs(1);
    assert_eq!(t.locked(ip("10.0.0.1"), None, much_later), None);
    assert_eq!(t.failed(ip("10.0.0.1"), None, much_later).locked_for, None);
}

#[test]
fn an_ipv6_host_is_one_address_across_its_64() {
    let t = Throttle::default();
    let now = Instant::now();
    for n in 0..FREE_FAILURES {
        t.failed(ip(&format!("2001:db8::{n:x}")), None, now);
    }
    assert!(t.locked(ip("2001:db8::ffff"), None, now).is_some());
    assert_eq!(t.locked(ip("2001:db8:0:1::1"), None, now), None);
}

#[test]
fn the_records_stay_bounded_under_a_spread_of_addresses() {
    let t = Throttle::default();
    let now = Instant::now();
    for n in 0..(MAX_ADDRESSES as u32 * 2) {
        t.failed(IpAddr::V4(n.into()), None, now);
    }
    assert!(t.len() <= MAX_ADDRESSES, "{}", t.len());
}

#[tokio::test]
async fn a_full_queue_refuses_at_once_and_checks_still_answer() {
    let v = Verifier::new();
    let hash = crate::config::access::hash_password("right").unwrap();
    let mut answers = Vec::new();
    let mut busy = 0;
    for _ in 0..(UNKNOWN_QUEUE + THREADS + 4) {
        match v.submit("wrong", &hash, false) {
            Ok(rx) => answers.push(rx),
            Err(Refusal::Busy) => busy += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(busy > 0, "more checks than the queue holds were all taken");
    let right = v
        .submit("right", &hash, true)
        .expect("the known lane has room");
    assert!(right.await.unwrap());
    for rx in answers {
        assert!(!rx.await.unwrap());
    }
}
