//! Signing in under attack (issue 22, H1 and M4), against a real `pinball -m ui` process: a
//! flood of wrong sign-ins from many addresses (the loopback range: 127.0.0.0/8 is all ours)
//! leaves the UI's memory flat and a real user able to sign in; repeated failures lock out
//! the address and the user, and the lock ends.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::helpers::wait_until;
use crate::helpers::*;

/// A client whose requests leave from `from`, following no redirect.
fn client_from(from: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(from))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The status of one sign-in, and its `Retry-After` if any.
async fn sign_in(
    c: &reqwest::Client,
    root: &str,
    user: &str,
    password: &str,
) -> (u16, Option<u64>) {
    let r = c
        .post(format!("{root}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encoded(&[("username", user), ("password", password)]))
        .send()
        .await
        .unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (r.status().as_u16(), retry)
}

/// The resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test]
async fn a_sign_in_flood_keeps_the_ui_s_memory_flat_and_lets_a_real_user_in() {
    let d = deploy(true).await;
    let root = Arc::new(d.root.clone());
    let pid = d._ui.id().unwrap();
    let baseline = rss(pid);
    let peak = Arc::new(AtomicU64::new(baseline));
    let flooding = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn({
        let (peak, flooding) = (peak.clone(), flooding.clone());
        async move {
            while flooding.load(Ordering::Relaxed) {
                peak.fetch_max(rss(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    // 150 attackers, each from an address of its own, each guessing made-up users' passwords
    // as fast as the UI answers, for eight seconds.
    let until = Instant::now() + Duration::from_secs(8);
    let statuses = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
    let mut attackers = Vec::new();
    for n in 0..150u8 {
        let (root, statuses) = (root.clone(), statuses.clone());
        attackers.push(tokio::spawn(async move {
            let c = client_from(Ipv4Addr::new(127, 0, 7, n + 1));
            let mut tries = 0;
            while Instant::now() < until {
                let user = format!("ghost{n}x{tries}");
                let (status, _) = sign_in(&c, &root, &user, "guess").await;
                *statuses.lock().unwrap().entry(status).or_insert(0u32) += 1;
                tries += 1;
            }
        }));
    }
    // Meanwhile a real user signs in (retrying, as a person would, when told to wait).
    let real = client_from(Ipv4Addr::LOCALHOST);
    let started = Instant::now();
    let mut signed_in = false;
    while !signed_in && started.elapsed() < Duration::from_secs(8) {
        let (status, _) = sign_in(&real, &root, "alice", "alice's password").await;
        assert!(matches!(status, 303 | 429), "the real user got {status}");
        signed_in = status == 303;
    }
    for a in attackers {
        a.await.unwrap();
    }
    flooding.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    let statuses = statuses.lock().unwrap().clone();
    let grew = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    eprintln!(
        "flood answers {statuses:?}; the UI grew {} MB (from {} MB)",
        grew >> 20,
        baseline >> 20
    );
    assert!(
        signed_in,
        "the real user could not sign in during the flood"
    );
    assert!(
        grew < 200 << 20,
        "the UI grew {} MB under the flood",
        grew >> 20
    );
    assert!(
        statuses.keys().all(|s| matches!(s, 401 | 429)),
        "every guess is refused as wrong or as too many: {statuses:?}"
    );
    assert!(statuses.contains_key(&429), "{statuses:?}");
    // The UI still answers a page at once.
    let (status, _) = sign_in(&real, &root, "victor", "victor's password").await;
    assert_eq!(status, 303);
}

#[tokio::test]
async fn repeated_failures_lock_out_the_address_and_the_user_until_the_lock_ends() {
    let d = deploy(true).await;
    let root = &d.root;
    let guesser = client_from(Ipv4Addr::new(127, 0, 8, 1));
    let elsewhere = client_from(Ipv4Addr::new(127, 0, 8, 2));
    for n in 0..5 {
        let (status, _) = sign_in(&guesser, root, "alice", &format!("guess {n}")).await;
        assert_eq!(status, 401, "guess {n}");
    }
    // The right password is no longer even checked: from that address, or for that user.
    let (status, retry) = sign_in(&guesser, root, "alice", "alice's password").await;
    assert_eq!(status, 429);
    assert!(retry.is_some_and(|s| (1..=2).contains(&s)), "{retry:?}");
    let (status, _) = sign_in(&guesser, root, "victor", "victor's password").await;
    assert_eq!(status, 429, "the address is locked for every user");
    let (status, _) = sign_in(&elsewhere, root, "alice", "alice's password").await;
    assert_eq!(status, 429, "the user is locked from every address");
    let (status, _) = sign_in(&elsewhere, root, "victor", "victor's password").await;
    assert_eq!(
        status, 303,
        "another user from another address is not held up"
    );
    // The lock ends (a second, the first time), and the right password works again.
    wait_until(Duration::from_secs(10), "alice's lock ends", || async {
        sign_in(&elsewhere, root, "alice", "alice's password")
            .await
            .0
            == 303
    })
    .await;
    // Each further failure doubles the lock.
    let (status, _) = sign_in(&guesser, root, "alice", "still guessing").await;
    assert_eq!(status, 401);
    let (status, retry) = sign_in(&guesser, root, "alice", "alice's password").await;
    assert_eq!(status, 429, "the address is still locked");
    assert!(retry.is_some_and(|s| s >= 2), "{retry:?}");
}

#[tokio::test]
async fn six_big_runs_grids_at_once_leave_the_master_in_the_same_process_answering() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let jobs: String = (0..300)
        .map(|n| format!("      j{n:03}: {{command: 'true'}}\n"))
        .collect();
    std::fs::write(
        d.join("wf.yaml"),
        format!("workflows:\n  wide:\n    jobs:\n{jobs}"),
    )
    .unwrap();
    let (master_port, ui_port) = (crate::helpers::free_port(), crate::helpers::free_port());
    let config = d.join("pinball.yaml");
    std::fs::write(
        &config,
        format!(
            "database_url: sqlite://{}\nmaster_port: {master_port}\nui_port: {ui_port}\nparser_params:\n  workflows_config: {}\nlocal_logs_dir_prefix: {}\n",
            d.join("pinball.db").display(),
            d.join("wf.yaml").display(),
            d.join("logs").display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let _all = crate::helpers::spawn_pinball(&["-c", cfg, "-m", "master,ui"], d);
    let health = format!("http://127.0.0.1:{master_port}/api/v1/health");
    wait_until(Duration::from_secs(30), "the master answers", || async {
        reqwest::get(&health)
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    let out = crate::helpers::pinball_out(&["-c", cfg, "import", "-f"], d).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 60 runs of 300 jobs: a grid of 18,000 cells.
    for _ in 0..60 {
        let out =
            crate::helpers::pinball_out(&["-c", cfg, "util", "-f", "-w", "wide", "start"], d).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let grid = format!("http://127.0.0.1:{ui_port}/instances/?workflow=wide&runs=100");
    let until = Instant::now() + Duration::from_secs(6);
    let mut viewers = Vec::new();
    for _ in 0..6 {
        let grid = grid.clone();
        viewers.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            while Instant::now() < until {
                let r = reqwest::get(&grid).await.unwrap();
                statuses.push(r.status().as_u16());
                let _ = r.bytes().await;
            }
            statuses
        }));
    }
    let mut waits = Vec::new();
    while Instant::now() < until {
        let started = Instant::now();
        let r = reqwest::get(&health).await.unwrap();
        assert!(r.status().is_success());
        waits.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut pages = Vec::new();
    for v in viewers {
        pages.extend(v.await.unwrap());
    }
    waits.sort();
    let p99 = waits[(waits.len() - 1) * 99 / 100];
    eprintln!(
        "{} grids served; master health p99 {p99:?} over {} probes",
        pages.len(),
        waits.len()
    );
    // Each page is served, or refused at once as busy (503) when it waited past the UI's
    // bound for its turn: never a hang.
    assert!(pages.contains(&200), "{pages:?}");
    assert!(pages.iter().all(|s| matches!(s, 200 | 503)), "{pages:?}");
    assert!(
        p99 < Duration::from_millis(250),
        "the master's health took {p99:?} (p99)"
    );
}
