use super::*;
use crate::email::Refused;

fn mail(to: &[&str]) -> Outgoing {
    Outgoing::new(
        to.iter().map(|s| s.to_string()).collect(),
        "s".into(),
        "t".into(),
        None,
    )
}

#[test]
fn an_email_round_trips_through_its_token_with_a_stable_message_id() {
    let m = mail(&["a@example.com"]);
    let t = m.token("/email/end/w/1".into()).unwrap();
    let back = Outgoing::from_token(&t).unwrap();
    assert_eq!(back, m);
    assert!(m.message_id.starts_with('<') && m.message_id.ends_with('>'));
    assert!(m.message_id.contains('@'));
    assert_ne!(mail(&["a@example.com"]).message_id, m.message_id);
    assert!(mail(&[]).token("/email/end/w/1".into()).is_none());
}

#[test]
fn backoff_doubles_to_a_minute() {
    let waits: Vec<i64> = (1..=9).map(backoff).collect();
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    assert_eq!(backoff(u32::MAX), 60);
}

#[test]
fn only_transient_recipients_are_tried_again() {
    let m = mail(&["a@example.com", "b@example.com", "c@example.com"]);
    let refused = |r: &str, transient| Refused {
        recipient: r.into(),
        reason: "no".into(),
        transient,
    };
    let result = Err(MailError::Recipients {
        failed: vec![
            refused("a@example.com", false),
            refused("b@example.com", true),
        ],
        sent: 1,
    });
    match after_try(&m, "k", result) {
        Next::Retry { to, .. } => assert_eq!(to, ["b@example.com"]),
        other => panic!("{other:?}"),
    }
    let permanent = Err(MailError::Recipients {
        failed: vec![refused("a@example.com", false)],
        sent: 2,
    });
    assert_eq!(after_try(&m, "k", permanent), Next::Done);
    let down = Err(MailError::Transport {
        server: "s:25".into(),
        reason: "refused".into(),
    });
    assert!(matches!(after_try(&m, "k", down), Next::Retry { to, .. } if to.len() == 3));
    assert_eq!(after_try(&m, "k", Ok(3)), Next::Done);
    let bad = Err(MailError::Message("x".into()));
    assert_eq!(after_try(&m, "k", bad), Next::Done);
}
