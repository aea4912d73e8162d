//! Tests of the HTTP client of the master: following the leader, retrying a master away.

use super::*;

#[test]
fn a_client_follows_the_named_leader_but_not_back_to_a_silent_one() {
    let c = HttpMasterClient::of_hosts(vec!["a:1".into(), "b:1".into()], Default::default());
    // A standby (b) names a leader that answers: go there.
    assert_eq!(c.move_on(1, Some("a:1")), 0);
    // The leader (a) just did not answer: its standby is asked again, whether it still
    // names the silent one or, its lease run out, names none.
    c.unreachable_ms[0].store(crate::clock::now_ms(), Ordering::Relaxed);
    assert_eq!(c.move_on(1, Some("a:1")), 1);
    assert_eq!(c.move_on(1, Some("")), 1);
    // An address that did not answer moves the call on to the next one, and so does a
    // standby naming a leader by an address the client does not know.
    assert_eq!(c.move_on(0, None), 1);
    assert_eq!(c.move_on(1, Some("10.0.0.1:1")), 0);
}

/// The times a listener that drops every connection at once saw `n` of them.
async fn attempts_seen(listener: tokio::net::TcpListener, n: usize) -> Vec<std::time::Instant> {
    let mut seen = Vec::with_capacity(n);
    while seen.len() < n {
        let (conn, _) = listener.accept().await.unwrap();
        seen.push(std::time::Instant::now());
        drop(conn);
    }
    seen
}

#[tokio::test]
async fn a_renewal_asks_a_master_that_is_away_again_at_least_every_quarter_second() {
    // A master that drops every connection (a port between a kill and a restart): the
    // renewal's tries never wait a backoff grown through the outage, so a job frozen for
    // want of a renewal goes on soon after its master is back. A plain call backs off.
    for (renewing, fast) in [(true, true), (false, false)] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let policy = RetryPolicy {
            attempts: 100,
            ..Default::default()
        };
        let client = HttpMasterClient::new("127.0.0.1", port, policy);
        let call = async {
            let req = ModifyRequest::default();
            match renewing {
                true => client.renew(req).await,
                false => client.modify(req).await,
            }
        };
        let seen = tokio::select! {
            seen = attempts_seen(listener, 6) => seen,
            answer = call => panic!("the call ended: {answer:?}"),
        };
        let longest = seen.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert_eq!(
            longest < Duration::from_millis(600),
            fast,
            "renewing {renewing}: the longest wait between tries was {longest:?}"
        );
    }
}
