//! The mailer against a real SMTP server (aiosmtpd): STARTTLS with AUTH required, implicit
//! TLS, one AUTH mechanism only, a recipient refused with 550, credentials kept from a server
//! without TLS. Every message is read back with a MIME parser.

use pinball::config::Secret;
use pinball::email::{MailError, Mailer, Outgoing, Security};

use crate::helpers::{RealSmtp, ServerOptions, ServerTls};

fn mailer(server: &RealSmtp, user: &str, pass: &str, security: Security) -> Mailer {
    Mailer {
        // The certificate is for `localhost`: the name checked is the one connected to.
        host: "localhost".into(),
        port: server.port,
        user: user.into(),
        pass: Secret(pass.into()),
        from: "Pinball <pinball@example.com>".into(),
        security,
        ca_file: Some(server.cert()),
        ..Mailer::default()
    }
}

/// A one-line message to `to`.
fn simple(to: &str) -> Outgoing {
    Outgoing::new(
        vec![to.into()],
        "s".into(),
        "t".into(),
        Some("<p>t</p>".into()),
    )
}

fn well_formed(raw: &[u8]) -> String {
    crate::helpers::well_formed(raw).text
}

#[tokio::test]
async fn starttls_with_plain_auth_delivers_to_every_recipient_the_server_takes() {
    let test = "smtp_tls::starttls_with_plain_auth";
    let Some(server) = RealSmtp::start(
        test,
        ServerOptions {
            tls: ServerTls::StartTls,
            auth: Some(("pinball", "s3cret")),
            mechanisms: "PLAIN",
            reject: &["gone@example.com"],
        },
    )
    .await
    else {
        return;
    };
    // Opportunistic by default: with credentials, TLS is required all the same.
    let m = mailer(&server, "pinball", "s3cret", Security::Opportunistic);
    let long = "x".repeat(3_000);
    let to = [
        "a@example.com".to_string(),
        "Ops Team <ops@example.com>".to_string(),
        "gone@example.com".to_string(),
    ];
    let err = m
        .send(&Outgoing::new(
            to.to_vec(),
            "Ünïcode subject".into(),
            format!("body ✓\n{long}\n.\n"),
            Some("<p>x</p>".into()),
        ))
        .await
        .unwrap_err();
    let MailError::Recipients { failed, sent } = &err else {
        panic!("{err}")
    };
    assert_eq!(*sent, 2);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].recipient, "gone@example.com");
    assert!(
        failed[0].reason.contains("550") && !failed[0].transient,
        "{err}"
    );
    let got = server.received();
    assert_eq!(got.len(), 2, "one envelope per recipient the server took");
    let mut rcpt: Vec<String> = got.iter().flat_map(|r| r.to.clone()).collect();
    rcpt.sort();
    assert_eq!(rcpt, ["a@example.com", "ops@example.com"]);
    for r in &got {
        assert!(r.tls && r.auth, "over TLS, authenticated");
        let text = well_formed(&r.raw);
        assert!(text.contains("body ✓") && text.contains(&long), "{text}");
        let parsed = mail_parser::MessageParser::default().parse(&r.raw).unwrap();
        assert_eq!(parsed.subject(), Some("Ünïcode subject"));
    }
}

#[tokio::test]
async fn implicit_tls_with_login_auth_delivers() {
    let Some(server) = RealSmtp::start(
        "smtp_tls::implicit_tls_with_login_auth",
        ServerOptions {
            tls: ServerTls::Implicit,
            auth: Some(("pinball", "s3cret")),
            mechanisms: "LOGIN",
            reject: &[],
        },
    )
    .await
    else {
        return;
    };
    let m = mailer(&server, "pinball", "s3cret", Security::Implicit);
    m.send(&simple("a@example.com")).await.unwrap();
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert!(got[0].tls && got[0].auth);
    assert_eq!(well_formed(&got[0].raw).trim_end(), "t");
}

#[tokio::test]
async fn credentials_never_go_to_a_server_without_tls_and_a_relay_without_them_works() {
    let Some(server) = RealSmtp::start(
        "smtp_tls::credentials_never_go_to_a_server_without_tls",
        ServerOptions {
            tls: ServerTls::None,
            auth: None,
            mechanisms: "PLAIN,LOGIN",
            reject: &[],
        },
    )
    .await
    else {
        return;
    };
    let with_password = mailer(&server, "pinball", "s3cret", Security::Opportunistic);
    let err = with_password
        .send(&simple("a@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Transport { .. }), "{err}");
    assert!(server.received().is_empty(), "nothing was sent");
    // A local relay: no credentials, no TLS offered, the mail goes.
    let relay = mailer(&server, "", "", Security::Opportunistic);
    relay.send(&simple("a@example.com")).await.unwrap();
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert!(!got[0].tls);
}

#[tokio::test]
async fn util_test_email_sends_one_message_and_prints_the_servers_answer() {
    let Some(server) = RealSmtp::start(
        "smtp_tls::util_test_email",
        ServerOptions {
            tls: ServerTls::StartTls,
            auth: Some(("pinball", "s3cret")),
            mechanisms: "PLAIN,LOGIN",
            reject: &["gone@example.com"],
        },
    )
    .await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pinball.yaml");
    std::fs::write(
        &cfg,
        format!(
            "default_email: pinball@example.com\nsmtp_host: localhost\nsmtp_port: {}\nsmtp_user: pinball\nsmtp_pass: s3cret\nsmtp_starttls: required\nsmtp_ca_file: {}\n",
            server.port,
            server.cert().display()
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let out = crate::helpers::pinball_out(
        &["-c", cfg, "util", "test-email", "--to", "a@example.com"],
        dir.path(),
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("sent to a@example.com through localhost:")
            && stdout.contains("answered 250"),
        "{stdout}"
    );
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert!(got[0].tls && got[0].auth);
    assert!(well_formed(&got[0].raw).contains("test message from Pinball"));
    // A refused address: a failure that says what the server said, and a non-zero exit.
    let out = crate::helpers::pinball_out(
        &["-c", cfg, "util", "test-email", "--to", "gone@example.com"],
        dir.path(),
    )
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("gone@example.com") && stderr.contains("550"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "no password in the output");
}

#[tokio::test]
async fn a_self_signed_ca_certificate_named_in_smtp_ca_file_is_pinned() {
    // A relay on a certificate made as `openssl req -x509` makes it by default (CA:TRUE),
    // named in smtp_ca_file: it was refused with `invalid peer certificate:
    // Other(OtherError(CaUsedAsEndEntity))`. Pinned, the message goes, over TLS and with AUTH.
    let Some(server) = RealSmtp::start(
        "smtp_tls::a_self_signed_ca_certificate_named_in_smtp_ca_file_is_pinned",
        ServerOptions {
            tls: ServerTls::StartTlsCaCert,
            auth: Some(("pinball", "s3cret")),
            mechanisms: "PLAIN",
            reject: &[],
        },
    )
    .await
    else {
        return;
    };
    let m = mailer(&server, "pinball", "s3cret", Security::Required);
    m.send(&simple("a@example.com")).await.unwrap();
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert!(got[0].tls && got[0].auth);
    assert_eq!(server.auth_attempts(), 1);
}

#[tokio::test]
async fn a_refused_certificate_is_named_in_words_with_what_to_change() {
    // The same kind of relay, its certificate not named (or another one named): refused before
    // AUTH, in words that say what to change.
    let Some(server) = RealSmtp::start(
        "smtp_tls::a_refused_certificate_is_named_in_words",
        ServerOptions {
            tls: ServerTls::StartTlsCaCert,
            auth: Some(("pinball", "s3cret")),
            mechanisms: "PLAIN",
            reject: &[],
        },
    )
    .await
    else {
        return;
    };
    let Some(another) = RealSmtp::start(
        "smtp_tls::a_refused_certificate_is_named_in_words",
        ServerOptions {
            tls: ServerTls::StartTlsCaCert,
            auth: None,
            mechanisms: "PLAIN",
            reject: &[],
        },
    )
    .await
    else {
        return;
    };
    for ca_file in [None, Some(another.cert())] {
        let m = Mailer {
            ca_file,
            ..mailer(&server, "pinball", "s3cret", Security::Required)
        };
        let err = m
            .send(&simple("a@example.com"))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the server's certificate is a CA certificate (CA:TRUE); name it in smtp_ca_file to pin it, or issue a server certificate with CA:FALSE"),
            "{err}"
        );
    }
    assert!(server.received().is_empty(), "nothing was sent");
    assert_eq!(
        server.auth_attempts(),
        0,
        "the password never reached the server"
    );
    // A server's certificate (CA:FALSE) nothing trusts: which setting names the authority.
    let Some(server) = RealSmtp::start(
        "smtp_tls::a_refused_certificate_is_named_in_words",
        ServerOptions {
            tls: ServerTls::StartTls,
            auth: None,
            mechanisms: "PLAIN",
            reject: &[],
        },
    )
    .await
    else {
        return;
    };
    let untrusted = Mailer {
        ca_file: None,
        ..mailer(&server, "", "", Security::Required)
    };
    let err = untrusted
        .send(&simple("a@example.com"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not signed by an authority this machine trusts; name that authority (or the self-signed certificate itself) in smtp_ca_file"),
        "{err}"
    );
    assert!(server.received().is_empty(), "nothing was sent");
}
