//! `cargo bench --bench ui`: the UI at scale, on SQLite.
//! 1. The instance page of a 1,000-job and a 10,000-job instance: server time (median and
//!    p95 of 20 requests), and fully rendered in headless chromium (navigation to loaded, plus
//!    a forced layout of the graph).
//! 2. 100,000 archived instances: how fast their summaries are built, then the workflows page
//!    and the instances page (first and a deep page), p95 of 50 requests each.
//! 3. 2,000 running instances (10 workflows × 200, 20 jobs each, one running): the workflows
//!    page, a workflow's instances page and one instance page, p95 of 50 requests each
//!    (target ≤ 200 ms).
//!
//! 4. The runs grid of a workflow with 25 instances of 1,000 jobs: server time and fully
//!    rendered in chromium (target: within 1 s).
//!
//! `PINBALL_BENCH_ONLY=instance|history|running|grid` runs one part.
//!
//! Needs Debian's chromium and chromium-driver for the rendering figures.

#[path = "../tests/it/helpers/webdriver.rs"]
#[allow(dead_code)]
mod webdriver;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinball::config::Config;
use pinball::master::LocalMasterClient;
use pinball::master::{Master, MasterClient};
use pinball::ops::read::DataLayer;
use pinball::parser::{JobDef, WorkflowDef};
use pinball::storage;
use pinball::token::name::{self, Level};
use pinball::token::{ArchiveRequest, ModifyRequest, Token};
use pinball::ui::Ui;
use pinball::workflow::instance::{JobToken, new_instance_tokens};
use pinball::workflow::job::ExecutionRecord;
use pinball::workflow::signal::{Action, Attributes, Signal};

/// `jobs` jobs in layers of `width`, each depending on two jobs of the layer above.
fn layered(jobs: usize, width: usize) -> WorkflowDef {
    let mut out = BTreeMap::new();
    for k in 0..jobs {
        let depends_on = if k < width {
            vec![]
        } else {
            let above = k - width;
            let other = above - above % width + (above + 1) % width;
            vec![
                job(&format!("job_{above:05}")),
                job(&format!("job_{other:05}")),
            ]
        };
        out.insert(
            job(&format!("job_{k:05}")),
            JobDef {
                command: "true".into(),
                depends_on,
                ..Default::default()
            },
        );
    }
    WorkflowDef {
        jobs: out,
        ..Default::default()
    }
}

fn job(s: &str) -> name::JobName {
    name::JobName::parse(s).unwrap()
}

fn record(instance: &name::InstanceId, start: f64, exit: i32) -> ExecutionRecord {
    ExecutionRecord {
        end_time: Some(start + 3.0),
        exit_code: Some(exit),
        worker: "bench".into(),
        ..ExecutionRecord::new(instance.clone(), "true", start)
    }
}

/// The tokens of a finished instance of `def`: every job ran once, in layer order.
fn finished_instance(w: &str, i: &str, def: &WorkflowDef, t0: f64, exit: i32) -> Vec<Token> {
    let w = &name::WorkflowName::parse(w).unwrap();
    let i = &name::InstanceId::parse(i).unwrap();
    new_instance_tokens(w, i, &def.graph())
        .into_iter()
        .enumerate()
        .map(|(k, t)| {
            let mut jt = JobToken::parse(t).unwrap();
            jt.job.history = vec![record(i, t0 + k as f64 * 0.01, exit)];
            Token::new(
                name::job_token(w, i, name::JobState::Waiting, &jt.job.name),
                Some(jt.job.to_data()),
            )
        })
        .collect()
}

fn stats(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let pick = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    (pick(0.5), pick(0.95))
}

async fn time_get(http: &reqwest::Client, url: &str, n: usize) -> (f64, f64, usize) {
    let mut ms = Vec::new();
    let mut size = 0;
    http.get(url).send().await.unwrap().text().await.unwrap(); // warm-up
    for _ in 0..n {
        let t = Instant::now();
        let r = http.get(url).send().await.unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        size = r.text().await.unwrap().len();
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (p50, p95) = stats(ms);
    (p50, p95, size)
}

async fn serve_ui(url: &str, master: &Master) -> String {
    let data = DataLayer::new(Arc::from(storage::open(url).unwrap()), "default".into(), 3);
    let client: Arc<dyn MasterClient> = Arc::new(LocalMasterClient(master.clone()));
    let ui = Ui::new(data, client, Arc::new(Config::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let root = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(pinball::ui::serve(ui, listener, std::future::pending()));
    root
}

async fn instance_pages(browser: Option<&webdriver::Browser>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ui.db").display());
    let master = Master::start(
        storage::open(&url).unwrap(),
        "default",
        pinball::modes::naming(),
    )
    .await;
    let client = LocalMasterClient(master.clone());
    let root = serve_ui(&url, &master).await;
    let http = reqwest::Client::new();
    for jobs in [1_000, 10_000] {
        let w = format!("big_{jobs}");
        let def = layered(jobs, 100);
        let tokens = finished_instance(&w, "1", &def, 1.7e9, 0);
        for chunk in tokens.chunks(2_000) {
            client
                .modify(ModifyRequest::update(chunk.to_vec()))
                .await
                .unwrap();
        }
        let page = format!("{root}/jobs/?workflow={w}&instance=1");
        if let Ok(dir) = std::env::var("PINBALL_BENCH_SAVE") {
            let html = http.get(&page).send().await.unwrap().text().await.unwrap();
            std::fs::write(format!("{dir}/instance-{jobs}.html"), html).unwrap();
        }
        let (p50, p95, size) = time_get(&http, &page, 20).await;
        println!(
            "instance page, {jobs} jobs: server {p50:.1} ms median, {p95:.1} ms p95 ({} KiB of HTML)",
            size / 1024
        );
        if let Some(b) = browser {
            let mut ms = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                b.goto(&page).await;
                let nodes = b
                    .execute("document.getElementById('graph').getBoundingClientRect(); document.body.offsetHeight; return document.querySelectorAll('g.node').length;")
                    .await;
                ms.push(t.elapsed().as_secs_f64() * 1e3);
                assert_eq!(nodes.as_u64(), Some(jobs as u64), "every job is drawn");
            }
            // An open page refreshes itself; leave it so it does not load the next figures.
            b.goto("about:blank").await;
            let (p50, p95) = stats(ms);
            println!(
                "instance page, {jobs} jobs: rendered in chromium {p50:.0} ms median, {p95:.0} ms p95"
            );
        }
    }
}

async fn runs_grid(browser: Option<&webdriver::Browser>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("grid.db").display());
    let master = Master::start(
        storage::open(&url).unwrap(),
        "default",
        pinball::modes::naming(),
    )
    .await;
    let client = LocalMasterClient(master.clone());
    let root = serve_ui(&url, &master).await;
    let http = reqwest::Client::new();
    let (runs, jobs) = (25, 1_000);
    let def = layered(jobs, 100);
    for k in 0..runs {
        let i = format!("{}", 1_700_000_000_000u64 + k as u64 * 60_000);
        let tokens = finished_instance(
            "grid",
            &i,
            &def,
            1.7e9 + k as f64 * 60.0,
            (k % 3 == 0) as i32,
        );
        for chunk in tokens.chunks(2_000) {
            client
                .modify(ModifyRequest::update(chunk.to_vec()))
                .await
                .unwrap();
        }
    }
    let page = format!("{root}/instances/?workflow=grid");
    let (p50, p95, size) = time_get(&http, &page, 10).await;
    println!(
        "runs grid, {runs} instances x {jobs} jobs: server {p50:.0} ms median, {p95:.0} ms p95 ({} KiB of HTML)",
        size / 1024
    );
    if let Some(b) = browser {
        let count = "document.body.offsetHeight; return document.querySelectorAll('#runs-grid [role=cell] a').length;";
        let (mut first, mut all) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let t = Instant::now();
            b.goto(&page).await;
            let cells = b.execute(count).await;
            first.push(t.elapsed().as_secs_f64() * 1e3);
            assert!(
                cells.as_u64() >= Some((runs * 60) as u64),
                "the first rows are drawn"
            );
            let every = format!(
                "document.body.offsetHeight; return document.querySelectorAll('#runs-grid [role=cell] a').length === {};",
                runs * jobs
            );
            b.wait_until(&every, Duration::from_secs(60), "every cell drawn")
                .await;
            all.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let timing = b
            .execute("const n = performance.getEntriesByType('navigation')[0]; return [n.responseStart, n.responseEnd, n.domInteractive, n.domContentLoadedEventEnd, n.loadEventEnd, Number(document.querySelector('#runs-grid .rg-body').dataset.drawnAt)].map(Math.round);")
            .await;
        println!(
            "runs grid timing (ms since navigation: first byte, last byte, DOM interactive, DOMContentLoaded, load, last row drawn): {timing}"
        );
        b.goto("about:blank").await;
        let ((f50, f95), (a50, a95)) = (stats(first), stats(all));
        println!(
            "runs grid, {runs} instances x {jobs} jobs in chromium: loaded with its first screenful {f50:.0} ms median ({f95:.0} p95), all {} cells drawn {a50:.0} ms median ({a95:.0} p95)",
            runs * jobs
        );
    }
}

const RUNNING: usize = 2_000;

/// The tokens of a running instance of `def`: its first job running (owned, one execution
/// open), the others waiting.
fn running_instance(w: &str, i: &str, def: &WorkflowDef, t0: f64) -> Vec<Token> {
    let wn = &name::WorkflowName::parse(w).unwrap();
    let id = &name::InstanceId::parse(i).unwrap();
    new_instance_tokens(wn, id, &def.graph())
        .into_iter()
        .enumerate()
        .map(|(k, t)| {
            if k > 0 {
                return t;
            }
            let mut jt = JobToken::parse(t).unwrap();
            jt.job.history = vec![ExecutionRecord {
                worker: "bench".into(),
                ..ExecutionRecord::new(id.clone(), "sleep 600", t0)
            }];
            let mut token = Token::new(jt.token.name.clone(), Some(jt.job.to_data()));
            token.owner = Some("bench-worker".into());
            token.expiration_time = Some(i64::MAX / 2);
            token
        })
        .collect()
}

async fn running_instances() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("running.db").display());
    let master = Master::start(
        storage::open(&url).unwrap(),
        "default",
        pinball::modes::naming(),
    )
    .await;
    let client = LocalMasterClient(master.clone());
    let def = layered(20, 5);
    let mut batch = Vec::new();
    for k in 0..RUNNING {
        let w = format!("live_{:02}", k % WORKFLOWS);
        let i = format!("{}", 1_700_000_000_000u64 + k as u64);
        batch.extend(running_instance(&w, &i, &def, 1.7e9 + k as f64));
        if batch.len() >= 3_000 || k + 1 == RUNNING {
            client
                .modify(ModifyRequest::update(std::mem::take(&mut batch)))
                .await
                .unwrap();
        }
    }
    let root = serve_ui(&url, &master).await;
    let http = reqwest::Client::new();
    let one = 1_700_000_000_000u64 + 3;
    for (what, page) in [
        ("workflows page", format!("{root}/workflows/")),
        (
            "instances page",
            format!("{root}/instances/?workflow=live_03"),
        ),
        (
            "instance page",
            format!("{root}/jobs/?workflow=live_03&instance={one}"),
        ),
    ] {
        let (p50, p95, _) = time_get(&http, &page, 50).await;
        println!("{what} with {RUNNING} running instances: {p50:.1} ms median, {p95:.1} ms p95");
    }
}

const ARCHIVED: usize = 100_000;
const WORKFLOWS: usize = 10;

async fn long_history() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("history.db").display());
    let master = Master::start(
        storage::open(&url).unwrap(),
        "default",
        pinball::modes::naming(),
    )
    .await;
    let client = LocalMasterClient(master.clone());
    let def = layered(2, 2);
    let t = Instant::now();
    let mut batch = Vec::new();
    for k in 0..ARCHIVED {
        let w = format!("wf_{:02}", k % WORKFLOWS);
        let i = format!("{}", 1_700_000_000_000u64 + k as u64);
        batch.extend(finished_instance(
            &w,
            &i,
            &def,
            1.7e9 + k as f64 * 60.0,
            (k % 7 == 0) as i32,
        ));
        let archive = Signal {
            action: Action::ARCHIVE,
            attributes: Attributes {
                timestamp: Some(1.7e9 + k as f64 * 60.0 + 10.0),
                ..Attributes::default()
            },
        };
        batch.push(Token::new(
            name::signal_token(
                &Level::Instance(
                    name::WorkflowName::parse(w).unwrap(),
                    name::InstanceId::parse(i).unwrap(),
                ),
                Action::ARCHIVE,
            ),
            Some(archive.to_data()),
        ));
        if batch.len() >= 3_000 || k + 1 == ARCHIVED {
            let stored = client
                .modify(ModifyRequest::update(std::mem::take(&mut batch)))
                .await
                .unwrap()
                .updates;
            client
                .archive(ArchiveRequest { tokens: stored })
                .await
                .unwrap();
        }
        if (k + 1) % 20_000 == 0 {
            eprintln!("  archived {} instances", k + 1);
        }
    }
    println!(
        "archived {ARCHIVED} instances ({} tokens) in {:.1} s",
        ARCHIVED * 3,
        t.elapsed().as_secs_f64()
    );
    let data = DataLayer::new(Arc::from(storage::open(&url).unwrap()), "default".into(), 3);
    let t = Instant::now();
    let n = data.summaries.summarize().await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "summarised {n} archived instances in {secs:.1} s ({:.0} instances/s, once, as they are archived)",
        n as f64 / secs
    );
    let root = serve_ui(&url, &master).await;
    let http = reqwest::Client::new();
    for (what, page) in [
        ("workflows page", format!("{root}/workflows/")),
        (
            "instances page, first",
            format!("{root}/instances/?workflow=wf_03"),
        ),
        (
            "instances page, offset 5,000",
            format!("{root}/instances/?workflow=wf_03&offset=5000"),
        ),
        ("workflows JSON", format!("{root}/api/v1/workflows")),
    ] {
        let (p50, p95, _) = time_get(&http, &page, 50).await;
        println!("{what} with {ARCHIVED} archived instances: {p50:.1} ms median, {p95:.1} ms p95");
    }
}

fn main() {
    pinball::config::install_tls_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let browser = if std::path::Path::new("/usr/bin/chromedriver").exists()
            && std::env::var_os("PINBALL_BENCH_NO_BROWSER").is_none()
        {
            Some(webdriver::Browser::start().await)
        } else {
            println!(
                "(no chromedriver: rendering figures skipped; apt-get install chromium-driver)"
            );
            None
        };
        let only = std::env::var("PINBALL_BENCH_ONLY").ok();
        let run = |part: &str| only.as_deref().is_none_or(|o| o == part);
        if run("instance") {
            instance_pages(browser.as_ref()).await;
        }
        if run("history") {
            long_history().await;
        }
        if run("running") {
            running_instances().await;
        }
        if run("grid") {
            runs_grid(browser.as_ref()).await;
        }
    });
    std::thread::sleep(Duration::from_millis(10));
}
