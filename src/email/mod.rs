//! Notification emails (PINBALL_SPEC §10.1): a job's final failure, an instance's end, a job
//! past its warn timeout, too many running instances. Sent with lettre's async SMTP client
//! (`smtp`): STARTTLS when the server offers it (or required), implicit TLS with `smtp_ssl`,
//! the server's certificate checked (and pinned: [`trust`]) before AUTH, the mechanism the
//! server offers (PLAIN or LOGIN), and credentials never sent in the clear unless
//! `smtp_allow_plaintext_auth` says so. One message, one envelope per recipient, so a
//! rejected address does not stop the others. Sending never holds up a job: failures are
//! logged by the callers.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::response::Response;

use crate::config::{Config, Secret, StartTls};

pub mod notices;
pub mod outbox;
pub mod recipients;
pub mod slack;
mod smtp;
pub mod trust;
pub mod webhook;

/// A TLS refusal in words, with what to change (`key` names the setting that lists trusted
/// certificates); other errors as they are. The library's own text follows in brackets.
pub fn tls_words(reason: &str, key: &str) -> String {
    let words = if reason.contains("CaUsedAsEndEntity") {
        format!(
            "the server's certificate is a CA certificate (CA:TRUE); name it in {key} to pin it, or issue a server certificate with CA:FALSE (openssl req -x509 ... -addext basicConstraints=critical,CA:FALSE)"
        )
    } else if reason.contains("UnknownIssuer") || reason.contains("BadSignature") {
        format!(
            "the server's certificate is not signed by an authority this machine trusts; name that authority (or the self-signed certificate itself) in {key}"
        )
    } else if reason.contains("NotValidForName") {
        "the server's certificate does not list the host name connected to; connect by a name it lists, or issue it for this one".to_owned()
    } else if reason.contains("Expired") {
        "the server's certificate has expired".to_owned()
    } else if reason.contains("NotValidYet") {
        "the server's certificate is not valid yet (is this machine's clock right?)".to_owned()
    } else {
        return reason.to_owned();
    };
    format!("{words} [{reason}]")
}
pub use outbox::{Outgoing, run_outbox};

/// Why an email was not sent (to some or all of its recipients).
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("{address:?} is not an email address: {reason}")]
    BadAddress { address: String, reason: String },
    #[error("the SMTP settings cannot be used: {0}")]
    Settings(String),
    #[error("the message cannot be built: {0}")]
    Message(String),
    #[error("SMTP server {server}: {reason}")]
    Transport { server: String, reason: String },
    #[error("not sent to {}", .failed.iter().map(|r| format!("{}: {}", r.recipient, r.reason)).collect::<Vec<_>>().join("; "))]
    Recipients {
        /// Each recipient the server did not take, and why.
        failed: Vec<Refused>,
        sent: usize,
    },
}

/// A recipient the server did not take.
#[derive(Debug, Clone)]
pub struct Refused {
    pub recipient: String,
    /// The server's answer.
    pub reason: String,
    /// A 4xx answer: trying again later may work.
    pub transient: bool,
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Security {
    /// STARTTLS when the server offers it, plain otherwise (never with credentials).
    #[default]
    Opportunistic,
    /// STARTTLS or no email.
    Required,
    /// Plain SMTP (a local relay).
    Off,
    /// TLS from the first byte (`smtp_ssl`, port 465).
    Implicit,
}

/// The SMTP settings. Its `Debug` shows no password (`pass` is a [`Secret`]).
#[derive(Debug, Clone)]
pub struct Mailer {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub pass: Secret,
    pub from: String,
    pub security: Security,
    /// Extra certificate authorities (PEM) trusted for the server's certificate.
    pub ca_file: Option<PathBuf>,
    /// Whether credentials may go over a connection without TLS.
    pub allow_plaintext_auth: bool,
    /// How long an email the server does not take is tried again (`email_give_up_sec`).
    pub give_up: Duration,
    /// The longest one step of the SMTP conversation may take (`smtp_timeout_sec`).
    pub timeout: Duration,
}

impl Default for Mailer {
    fn default() -> Self {
        Mailer {
            host: "localhost".into(),
            port: 25,
            user: String::new(),
            pass: Secret::default(),
            from: String::new(),
            security: Security::default(),
            ca_file: None,
            allow_plaintext_auth: false,
            give_up: Duration::from_secs(3600),
            timeout: Duration::from_secs(20),
        }
    }
}

/// A mailbox (`ops@example.com` or `Ops Team <ops@example.com>`), or why not. Line breaks and
/// other control characters are refused (they would inject SMTP commands or headers).
pub fn parse_mailbox(address: &str) -> Result<Mailbox, MailError> {
    let bad = |reason: &str| MailError::BadAddress {
        address: address.to_owned(),
        reason: reason.to_owned(),
    };
    if address.chars().any(char::is_control) {
        return Err(bad("it holds a line break or another control character"));
    }
    address
        .trim()
        .parse::<Mailbox>()
        .map_err(|e| bad(&e.to_string()))
}

impl Mailer {
    /// The mailer the configuration describes, or `None` when no sender (`default_email`) is set.
    pub fn from_config(c: &Config) -> Option<Mailer> {
        let from = c.default_email.clone()?;
        Some(Mailer {
            host: c.smtp_host.clone(),
            port: c.smtp_port,
            user: c.smtp_user.clone(),
            pass: c.smtp_pass.clone(),
            from,
            security: if c.smtp_ssl {
                Security::Implicit
            } else {
                match c.smtp_starttls {
                    StartTls::Opportunistic => Security::Opportunistic,
                    StartTls::Required => Security::Required,
                    StartTls::Off => Security::Off,
                }
            },
            ca_file: c.smtp_ca_file.clone().map(PathBuf::from),
            allow_plaintext_auth: c.smtp_allow_plaintext_auth,
            give_up: Duration::from_secs(c.email_give_up_sec),
            timeout: Duration::from_secs(c.smtp_timeout_sec.max(1)),
        })
    }

    pub fn server(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Sends `m` to its recipients (deduplicated), one envelope per recipient over one
    /// connection, answering the server's reply for each. Does nothing without recipients.
    pub async fn send(&self, m: &Outgoing) -> Result<Vec<(String, Response)>, MailError> {
        let mut rcpt: Vec<&String> = m.to.iter().collect();
        rcpt.sort();
        rcpt.dedup();
        if rcpt.is_empty() {
            return Ok(Vec::new());
        }
        let from = parse_mailbox(&self.from)?;
        let mailboxes = rcpt
            .iter()
            .map(|r| parse_mailbox(r))
            .collect::<Result<Vec<_>, _>>()?;
        let bytes = message(m, &from, &mailboxes)?;
        let plan = self.plan()?;
        let mut conn: Option<lettre::transport::smtp::client::AsyncSmtpConnection> = None;
        let (mut sent, mut failed) = (Vec::new(), Vec::new());
        for (r, mb) in rcpt.iter().zip(&mailboxes) {
            let envelope =
                lettre::address::Envelope::new(Some(from.email.clone()), vec![mb.email.clone()])
                    .map_err(|e| MailError::Message(e.to_string()))?;
            // A refused envelope ends its connection (lettre quits it): the next recipient
            // opens another.
            let step = async {
                let c = match &mut conn {
                    Some(c) if !c.has_broken() => c,
                    _ => conn.insert(self.connect(&plan).await?),
                };
                c.send(&envelope, &bytes).await.map_err(smtp::Failure::Smtp)
            };
            match tokio::time::timeout(self.timeout, step).await {
                Ok(Ok(response)) => sent.push((r.to_string(), response)),
                Ok(Err(smtp::Failure::Smtp(e))) if e.is_permanent() || e.is_transient() => failed
                    .push(Refused {
                        recipient: r.to_string(),
                        reason: e.to_string(),
                        transient: e.is_transient(),
                    }),
                // The connection or TLS failed: the next recipient would meet the same.
                Ok(Err(smtp::Failure::Smtp(e))) => {
                    return Err(MailError::Transport {
                        server: self.server(),
                        reason: tls_words(&e.to_string(), "smtp_ca_file"),
                    });
                }
                Ok(Err(smtp::Failure::Certificate(reason))) => {
                    return Err(MailError::Transport {
                        server: self.server(),
                        reason,
                    });
                }
                Err(_) => {
                    return Err(MailError::Transport {
                        server: self.server(),
                        reason: format!("no answer within {} s", self.timeout.as_secs()),
                    });
                }
            }
        }
        if let Some(mut c) = conn.filter(|c| !c.has_broken()) {
            // The messages are taken; a lost goodbye changes nothing.
            let _ = tokio::time::timeout(self.timeout, c.quit()).await;
        }
        if failed.is_empty() {
            Ok(sent)
        } else {
            Err(MailError::Recipients {
                sent: sent.len(),
                failed,
            })
        }
    }
}

/// `m` as sent, from `from` to `to`. Date is added by the builder; the Message-ID was chosen
/// when the email was recorded, so every try of one email carries the same one.
fn message(m: &Outgoing, from: &Mailbox, to: &[Mailbox]) -> Result<Vec<u8>, MailError> {
    let mut builder = lettre::Message::builder()
        .from(from.clone())
        .message_id(Some(m.message_id.clone()))
        .subject(&m.subject);
    for mb in to {
        builder = builder.to(mb.clone());
    }
    let message = match &m.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            m.text.clone(),
            html.clone(),
        )),
        None => builder.singlepart(lettre::message::SinglePart::plain(m.text.clone())),
    }
    .map_err(|e| MailError::Message(e.to_string()))?;
    Ok(message.formatted())
}

/// Escapes text for HTML bodies (askama's escaper: the one the dashboard's pages use).
pub fn html_escape(s: &str) -> String {
    use askama::filters::Escaper;
    let mut out = String::with_capacity(s.len());
    askama::filters::Html
        .write_escaped_str(&mut out, s)
        .expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escaping_covers_every_special_character() {
        assert_eq!(
            html_escape(r#"<a href="x">it's & more</a>"#),
            "&#60;a href=&#34;x&#34;&#62;it&#39;s &#38; more&#60;/a&#62;"
        );
    }

    #[test]
    fn the_password_is_not_in_debug_output() {
        let m = Mailer {
            user: "u".into(),
            pass: Secret("hunter2".into()),
            ..Mailer::default()
        };
        assert!(!format!("{m:?}").contains("hunter2"));
    }

    #[test]
    fn mailboxes_take_names_and_refuse_injection() {
        let m = parse_mailbox("Ops Team <ops@example.com>").unwrap();
        assert_eq!(m.email.to_string(), "ops@example.com");
        assert_eq!(m.name.as_deref(), Some("Ops Team"));
        assert!(parse_mailbox("a@example.com").is_ok());
        for bad in [
            "a@example.com\r\nRCPT TO:<evil@example.com>",
            "a@example.com>\nDATA",
            "not an address",
            "",
        ] {
            assert!(parse_mailbox(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn credentials_never_go_in_the_clear_unless_allowed() {
        let m = Mailer {
            host: "localhost".into(),
            port: 25,
            user: "u".into(),
            pass: Secret("p".into()),
            from: "f@example.com".into(),
            security: Security::Off,
            ..Mailer::default()
        };
        assert!(matches!(m.security(), Err(MailError::Settings(_))));
        let upgraded = Mailer {
            security: Security::Opportunistic,
            ..m.clone()
        };
        assert_eq!(upgraded.security().unwrap(), Security::Required);
        let allowed = Mailer {
            allow_plaintext_auth: true,
            ..m
        };
        assert_eq!(allowed.security().unwrap(), Security::Off);
    }
}
