//! Notification emails (PINBALL_SPEC §10.1): a job's final failure, an instance's end, a job
//! past its warn timeout. A small SMTP client (EHLO, optional AUTH LOGIN, one message per
//! call, text and HTML alternatives) over plain TCP; used by the workers. Sending never holds
//! up a job: failures are logged.

use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::config::{Config, Secret};

const TIMEOUT: Duration = Duration::from_secs(20);

/// Why an email was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("cannot connect to SMTP server {server}: {source}")]
    Connect {
        server: String,
        source: std::io::Error,
    },
    #[error("SMTP server {server} did not answer within {TIMEOUT:?}")]
    Timeout { server: String },
    #[error("SMTP server answered {reply:?}, expected {expected}")]
    Refused { reply: String, expected: u16 },
    #[error("bad SMTP reply {0:?}")]
    BadReply(String),
    #[error("the SMTP server closed the connection")]
    Closed,
    #[error("writing to the SMTP server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The SMTP settings. Its `Debug` shows no password (`pass` is a [`Secret`]).
#[derive(Debug, Clone)]
pub struct Mailer {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub pass: Secret,
    pub from: String,
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
        })
    }

    /// Sends one message to `to` (deduplicated). Does nothing without recipients.
    pub async fn send(
        &self,
        to: &[String],
        subject: &str,
        text: &str,
        html: &str,
    ) -> Result<(), MailError> {
        let mut rcpt: Vec<&String> = to.iter().collect();
        rcpt.sort();
        rcpt.dedup();
        if rcpt.is_empty() {
            return Ok(());
        }
        tokio::time::timeout(TIMEOUT, self.converse(&rcpt, subject, text, html))
            .await
            .map_err(|_| MailError::Timeout {
                server: format!("{}:{}", self.host, self.port),
            })?
    }

    async fn converse(
        &self,
        rcpt: &[&String],
        subject: &str,
        text: &str,
        html: &str,
    ) -> Result<(), MailError> {
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|source| MailError::Connect {
                server: format!("{}:{}", self.host, self.port),
                source,
            })?;
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        expect(&mut read, 220).await?;
        command(&mut write, &mut read, "EHLO pinball", 250).await?;
        if !self.user.is_empty() {
            command(&mut write, &mut read, "AUTH LOGIN", 334).await?;
            command(&mut write, &mut read, &base64(self.user.as_bytes()), 334).await?;
            command(&mut write, &mut read, &base64(self.pass.0.as_bytes()), 235).await?;
        }
        command(
            &mut write,
            &mut read,
            &format!("MAIL FROM:<{}>", self.from),
            250,
        )
        .await?;
        for r in rcpt {
            command(&mut write, &mut read, &format!("RCPT TO:<{r}>"), 250).await?;
        }
        command(&mut write, &mut read, "DATA", 354).await?;
        let message = compose(&self.from, rcpt, subject, text, html);
        write.write_all(message.as_bytes()).await?;
        command(&mut write, &mut read, "\r\n.", 250).await?;
        let _ = command(&mut write, &mut read, "QUIT", 221).await;
        Ok(())
    }
}

/// The message: headers, then text and HTML alternatives; lines starting with `.` are
/// dot-stuffed and every line ends in CRLF.
fn compose(from: &str, to: &[&String], subject: &str, text: &str, html: &str) -> String {
    let boundary = format!("pinball-{:016x}", fastrand::u64(..));
    let to: Vec<&str> = to.iter().map(|s| s.as_str()).collect();
    let body = format!(
        "From: {from}\nTo: {}\nSubject: {subject}\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"{boundary}\"\n\n\
         --{boundary}\nContent-Type: text/plain; charset=utf-8\n\n{text}\n--{boundary}\nContent-Type: text/html; charset=utf-8\n\n{html}\n--{boundary}--",
        to.join(", ")
    );
    body.lines()
        .map(|l| {
            if l.starts_with('.') {
                format!(".{l}\r\n")
            } else {
                format!("{l}\r\n")
            }
        })
        .collect()
}

async fn command<R: tokio::io::AsyncBufRead + Unpin>(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    read: &mut R,
    line: &str,
    code: u16,
) -> Result<(), MailError> {
    write.write_all(format!("{line}\r\n").as_bytes()).await?;
    expect(read, code).await
}

/// Reads one (possibly multi-line) reply and checks its code.
async fn expect<R: tokio::io::AsyncBufRead + Unpin>(
    read: &mut R,
    code: u16,
) -> Result<(), MailError> {
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await? == 0 {
            return Err(MailError::Closed);
        }
        let got: u16 = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| MailError::BadReply(line.clone()))?;
        if line.as_bytes().get(3) == Some(&b'-') {
            continue;
        }
        return if got == code {
            Ok(())
        } else {
            Err(MailError::Refused {
                reply: line.trim_end().to_owned(),
                expected: code,
            })
        };
    }
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
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
    fn base64_matches_known_values() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"user@example.com"), "dXNlckBleGFtcGxlLmNvbQ==");
    }

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
            host: "h".into(),
            port: 25,
            user: "u".into(),
            pass: Secret("hunter2".into()),
            from: "f@x".into(),
        };
        assert!(!format!("{m:?}").contains("hunter2"));
    }

    #[test]
    fn messages_are_dot_stuffed_with_crlf_lines() {
        let to = "a@x".to_string();
        let m = compose("p@x", &[&to], "S", "line\n.hidden", "<b>x</b>");
        assert!(m.contains("\r\n..hidden\r\n"));
        assert!(m.contains("Subject: S\r\n"));
        assert!(!m.replace("\r\n", "").contains('\n'));
    }
}
