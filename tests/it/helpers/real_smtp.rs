//! A real SMTP server (aiosmtpd, from PyPI in the virtual environment `.ci/run` makes) with
//! STARTTLS or implicit TLS on a self-signed certificate made by `openssl`, AUTH required or
//! not, and recipients it refuses. `None`, with a visible message, where it is not installed
//! (`PINBALL_AIOSMTPD_PYTHON` names the environment's python).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;

use super::free_port;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerTls {
    None,
    StartTls,
    Implicit,
    /// STARTTLS on a certificate made the way `openssl req -x509` makes it by default: its
    /// own CA (`CA:TRUE`), as many internal relays have.
    StartTlsCaCert,
}

pub struct ServerOptions<'a> {
    pub tls: ServerTls,
    /// User and password AUTH requires (none: no AUTH).
    pub auth: Option<(&'a str, &'a str)>,
    /// The mechanisms offered: `PLAIN`, `LOGIN` or both.
    pub mechanisms: &'a str,
    /// Recipients answered 550.
    pub reject: &'a [&'a str],
}

/// One accepted transaction: its envelope, whether it came over TLS and authenticated, and
/// the message as sent.
#[derive(Debug, Clone)]
pub struct Received {
    pub to: Vec<String>,
    pub tls: bool,
    pub auth: bool,
    pub raw: Vec<u8>,
}

pub struct RealSmtp {
    _child: tokio::process::Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl RealSmtp {
    pub async fn start(test: &str, o: ServerOptions<'_>) -> Option<RealSmtp> {
        RealSmtp::start_on(test, o, free_port()).await
    }

    /// [`RealSmtp::start`] on a given port.
    pub async fn start_on(test: &str, o: ServerOptions<'_>, port: u16) -> Option<RealSmtp> {
        let Ok(python) = std::env::var("PINBALL_AIOSMTPD_PYTHON") else {
            crate::helpers::skipped(&format!(
                "({test}): PINBALL_AIOSMTPD_PYTHON is not set (.ci/run installs aiosmtpd)"
            ));
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let made = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            // A server's certificate, not an authority's (webpki refuses a CA as the server),
            // unless the test wants openssl's default.
            .args(match o.tls {
                ServerTls::StartTlsCaCert => vec![],
                _ => vec![
                    "-addext",
                    "basicConstraints=critical,CA:FALSE",
                    "-addext",
                    "extendedKeyUsage=serverAuth",
                ],
            })
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(made.success(), "openssl made no certificate");
        std::fs::create_dir(dir.path().join("mail")).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/aiosmtpd_server.py");
        let mut c = tokio::process::Command::new(python);
        c.arg(script)
            .args(["--port", &port.to_string()])
            .arg("--maildir")
            .arg(dir.path().join("mail"))
            .args(["--mechanisms", o.mechanisms])
            .args(["--reject", &o.reject.join(",")])
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .args([
                "--tls",
                match o.tls {
                    ServerTls::None => "none",
                    ServerTls::StartTls | ServerTls::StartTlsCaCert => "starttls",
                    ServerTls::Implicit => "implicit",
                },
            ]);
        if let Some((u, p)) = o.auth {
            c.args(["--auth-user", u, "--auth-pass", p]);
        }
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("aiosmtpd starts within 30 s")
            .unwrap();
        assert_eq!(ready.as_deref(), Some("READY"));
        Some(RealSmtp {
            _child: child,
            dir,
            port,
        })
    }

    /// The certificate clients must trust.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// How many times a client tried to AUTH (its credentials reached the server).
    pub fn auth_attempts(&self) -> usize {
        let log = self.dir.path().join("mail").join("auth-attempts");
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// Every accepted transaction, in order.
    pub fn received(&self) -> Vec<Received> {
        let mail = self.dir.path().join("mail");
        let mut out = Vec::new();
        for n in 1.. {
            let Ok(meta) = std::fs::read_to_string(mail.join(format!("{n}.json"))) else {
                break;
            };
            let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
            out.push(Received {
                to: meta["to"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect(),
                tls: meta["tls"].as_bool().unwrap(),
                auth: meta["auth"].as_bool().unwrap(),
                raw: std::fs::read(mail.join(format!("{n}.eml"))).unwrap(),
            });
        }
        out
    }
}

/// A received message as a strict reader sees it.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub subject: String,
    pub message_id: String,
    pub text: String,
    pub html: Option<String>,
}

/// Checks what a strict reader needs of one received message (lines within 998 bytes, no bare
/// CR, a Date and a Message-ID, a text part; parsed with `mail-parser`) and returns it.
pub fn well_formed(raw: &[u8]) -> Parsed {
    use mail_parser::MimeHeaders;
    let text = String::from_utf8(raw.to_vec()).expect("7-bit clean (encoded) message");
    assert!(
        text.split("\r\n").all(|l| l.len() <= 998),
        "every line within SMTP's 998 bytes"
    );
    assert!(!text.replace("\r\n", "").contains('\r'), "no bare CR");
    let parsed = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("the message parses");
    assert!(parsed.date().is_some(), "a Date header");
    Parsed {
        subject: parsed.subject().unwrap_or_default().to_owned(),
        message_id: parsed.message_id().expect("a Message-ID header").to_owned(),
        text: parsed.body_text(0).expect("a text part").into_owned(),
        // An HTML alternative only in multipart/alternative (the parser makes HTML of any
        // text part otherwise).
        html: parsed
            .content_type()
            .is_some_and(|c| c.ctype() == "multipart" && c.subtype() == Some("alternative"))
            .then(|| parsed.body_html(0).map(|h| h.into_owned()))
            .flatten(),
    }
}
