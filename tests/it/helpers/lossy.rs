//! An HTTP proxy that loses answers: it forwards each request to the master, lets the master
//! answer (and commit), and then closes the client's connection instead of passing the answer
//! on, for the requests a test picks. It stands in for a network that breaks at the worst
//! moment: after the write happened, before its client heard.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Which answers to lose: of the requests to `path` whose body contains `needle`, every
/// `every`-th one (the first included), `left` more times.
#[derive(Default)]
struct Rule {
    path: String,
    needle: String,
    every: usize,
    seen: usize,
    left: usize,
}

pub struct Lossy {
    pub port: u16,
    rule: Arc<Mutex<Rule>>,
    lost: Arc<AtomicUsize>,
}

impl Lossy {
    pub async fn start(target: SocketAddr) -> Lossy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let rule: Arc<Mutex<Rule>> = Arc::default();
        let lost = Arc::new(AtomicUsize::new(0));
        let (r, l) = (rule.clone(), lost.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                tokio::spawn(serve(inbound, target, r.clone(), l.clone()));
            }
        });
        Lossy { port, rule, lost }
    }

    /// Loses `times` answers to `path` requests whose body contains `needle`: the first such
    /// request's, then every `every`-th.
    pub fn lose(&self, path: &str, needle: &str, times: usize, every: usize) {
        *self.rule.lock().unwrap() = Rule {
            path: path.into(),
            needle: needle.into(),
            every: every.max(1),
            seen: 0,
            left: times,
        };
    }

    /// How many answers were lost so far.
    pub fn lost(&self) -> usize {
        self.lost.load(Ordering::SeqCst)
    }
}

/// One HTTP/1.1 message from `from`: its head and its body (by Content-Length).
async fn message(from: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = from.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    while buf.len() < end + length {
        let mut chunk = [0u8; 65536];
        let n = from.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[end..end + length].to_vec();
    buf.drain(..end + length);
    Some((head, body))
}

async fn serve(
    mut inbound: TcpStream,
    target: SocketAddr,
    rule: Arc<Mutex<Rule>>,
    lost: Arc<AtomicUsize>,
) {
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    let (mut from_client, mut from_master) = (Vec::new(), Vec::new());
    while let Some((head, body)) = message(&mut inbound, &mut from_client).await {
        let path = head.split(' ').nth(1).unwrap_or("").to_owned();
        if outbound.write_all(head.as_bytes()).await.is_err()
            || outbound.write_all(&body).await.is_err()
        {
            return;
        }
        let Some((answer_head, answer)) = message(&mut outbound, &mut from_master).await else {
            return;
        };
        let lose = {
            let mut r = rule.lock().unwrap();
            let matches = r.left > 0
                && path == r.path
                && String::from_utf8_lossy(&body).contains(r.needle.as_str());
            if matches {
                r.seen += 1;
            }
            let lose = matches && (r.seen - 1).is_multiple_of(r.every);
            if lose {
                r.left -= 1;
            }
            lose
        };
        if lose {
            // The master answered (and committed); its client never hears.
            lost.fetch_add(1, Ordering::SeqCst);
            return;
        }
        if inbound.write_all(answer_head.as_bytes()).await.is_err()
            || inbound.write_all(&answer).await.is_err()
        {
            return;
        }
    }
}
