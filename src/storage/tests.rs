use super::*;

#[test]
fn redact_url_hides_the_password_only() {
    assert_eq!(
        redact_url("mysql://root:secret@127.0.0.1:3306/test"),
        "mysql://root:***@127.0.0.1:3306/test"
    );
    assert_eq!(redact_url("sqlite://pinball.db"), "sqlite://pinball.db");
}

#[test]
fn chunks_bound_rows_and_bytes_and_keep_every_row() {
    let big = "x".repeat(1000);
    let rows: Vec<TokenRef> = (0..10)
        .map(|i| TokenRef {
            name: "/a",
            version: i,
            owner: None,
            expiration_time: None,
            priority: 0.0,
            data: Some(if i == 5 { &big } else { "d" }),
        })
        .collect();
    let parts = chunks(&rows, 3, 500);
    assert_eq!(parts.iter().map(|p| p.len()).sum::<usize>(), 10);
    assert!(parts.iter().all(|p| p.len() <= 3));
    assert!(parts.iter().any(|p| p.len() == 1 && p[0].version == 5));
}
