//! Notification emails (PINBALL_SPEC §10.1): a job's final failure, an instance's end, a job
//! past its warn timeout. A small SMTP client (EHLO, optional AUTH LOGIN, one message per
//! call, text and HTML alternatives) over plain TCP; used by the workers. Sending never holds
//! up a job: failures are logged.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::config::Config;

const TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct Mailer {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub pass: String,
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
            pass: c.smtp_pass.0.clone(),
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
    ) -> Result<(), String> {
        let mut rcpt: Vec<&String> = to.iter().collect();
        rcpt.sort();
        rcpt.dedup();
        if rcpt.is_empty() {
            return Ok(());
        }
        tokio::time::timeout(TIMEOUT, self.converse(&rcpt, subject, text, html))
            .await
            .map_err(|_| {
                format!(
                    "SMTP server {}:{} did not answer within {TIMEOUT:?}",
                    self.host, self.port
                )
            })?
    }

    async fn converse(
        &self,
        rcpt: &[&String],
        subject: &str,
        text: &str,
        html: &str,
    ) -> Result<(), String> {
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                format!(
                    "cannot connect to SMTP server {}:{}: {e}",
                    self.host, self.port
                )
            })?;
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        expect(&mut read, 220).await?;
        command(&mut write, &mut read, "EHLO pinball", 250).await?;
        if !self.user.is_empty() {
            command(&mut write, &mut read, "AUTH LOGIN", 334).await?;
            command(&mut write, &mut read, &base64(self.user.as_bytes()), 334).await?;
            command(&mut write, &mut read, &base64(self.pass.as_bytes()), 235).await?;
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
        write
            .write_all(message.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
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
) -> Result<(), String> {
    write
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    expect(read, code).await
}

/// Reads one (possibly multi-line) reply and checks its code.
async fn expect<R: tokio::io::AsyncBufRead + Unpin>(read: &mut R, code: u16) -> Result<(), String> {
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await.map_err(|e| e.to_string())? == 0 {
            return Err("the SMTP server closed the connection".into());
        }
        let got: u16 = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("bad SMTP reply {line:?}"))?;
        if line.as_bytes().get(3) == Some(&b'-') {
            continue;
        }
        return if got == code {
            Ok(())
        } else {
            Err(format!(
                "SMTP server answered {:?}, expected {code}",
                line.trim_end()
            ))
        };
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Escapes text for HTML bodies.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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
    fn messages_are_dot_stuffed_with_crlf_lines() {
        let to = "a@x".to_string();
        let m = compose("p@x", &[&to], "S", "line\n.hidden", "<b>x</b>");
        assert!(m.contains("\r\n..hidden\r\n"));
        assert!(m.contains("Subject: S\r\n"));
        assert!(!m.replace("\r\n", "").contains('\n'));
    }
}
