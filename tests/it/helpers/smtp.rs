//! An SMTP server for the tests: it speaks the protocol over real TCP on port 0 and keeps every
//! message it accepts (envelope recipients, subject, body).

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

impl Mail {
    /// A header's value, unfolded (a long header continues on lines that start with a space).
    pub fn header(&self, name: &str) -> String {
        let prefix = format!("{name}: ");
        let mut lines = self.data.lines().skip_while(|l| !l.starts_with(&prefix));
        let Some(first) = lines.next() else {
            return String::new();
        };
        let mut value = first[prefix.len()..].to_owned();
        for l in lines.take_while(|l| l.starts_with([' ', '\t'])) {
            value.push(' ');
            value.push_str(l.trim_start());
        }
        value
    }

    pub fn subject(&self) -> String {
        self.header("Subject")
    }

    /// The text part, decoded (quoted-printable, base64), by a MIME parser.
    pub fn text(&self) -> String {
        let parsed = mail_parser::MessageParser::default()
            .parse(self.data.as_bytes())
            .expect("the message parses");
        parsed.body_text(0).expect("a text part").into_owned()
    }
}

#[derive(Clone, Default)]
pub struct SmtpServer {
    pub port: u16,
    pub mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = SmtpServer {
            port: listener.local_addr().unwrap().port(),
            mails: Arc::default(),
        };
        let mails = server.mails.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let mails = mails.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 test SMTP ready\r\n").await;
                    let mut mail = Mail::default();
                    let mut in_data = false;
                    while let Ok(Some(line)) = lines.next_line().await {
                        if in_data {
                            if line == "." {
                                in_data = false;
                                mails.lock().unwrap().push(std::mem::take(&mut mail));
                                let _ = write.write_all(b"250 queued\r\n").await;
                            } else {
                                mail.data.push_str(line.strip_prefix('.').unwrap_or(&line));
                                mail.data.push('\n');
                            }
                            continue;
                        }
                        let reply: &[u8] = match line
                            .split(' ')
                            .next()
                            .unwrap_or("")
                            .to_ascii_uppercase()
                            .as_str()
                        {
                            "EHLO" | "HELO" => b"250-test\r\n250 AUTH LOGIN\r\n",
                            "MAIL" => {
                                mail.from = line.split(['<', '>']).nth(1).unwrap_or("").into();
                                b"250 ok\r\n"
                            }
                            "RCPT" => {
                                mail.to
                                    .push(line.split(['<', '>']).nth(1).unwrap_or("").into());
                                b"250 ok\r\n"
                            }
                            "DATA" => {
                                in_data = true;
                                b"354 go ahead\r\n"
                            }
                            "QUIT" => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => b"250 ok\r\n",
                        };
                        let _ = write.write_all(reply).await;
                    }
                });
            }
        });
        server
    }

    /// The messages received, in order: one message sent to several recipients in an envelope
    /// each (as Pinball sends them) is one entry, with every recipient.
    pub fn mails(&self) -> Vec<Mail> {
        let mut out: Vec<Mail> = Vec::new();
        for m in self.mails.lock().unwrap().iter() {
            let id = m.header("Message-ID");
            match out
                .iter_mut()
                .find(|o| !id.is_empty() && o.header("Message-ID") == id)
            {
                Some(o) => o.to.extend(m.to.iter().cloned()),
                None => out.push(m.clone()),
            }
        }
        out
    }
}
