//! `pinball` as a separate process, started from the built binary.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// A `pinball` process started from the built binary, with its stderr drained in the background.
pub struct Process {
    pub child: tokio::process::Child,
    pub port: u16,
}

/// Writes a configuration file for a master on port 0 with the given database.
pub fn write_config(dir: &Path, url: &str, master_name: &str) -> PathBuf {
    write_config_with(dir, url, master_name, "")
}

/// [`write_config`] with `extra` keys.
pub fn write_config_with(dir: &Path, url: &str, master_name: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{master_name}.yaml"));
    std::fs::write(
        &path,
        format!("database_url: {url}\nmaster_port: 0\nmaster_name: {master_name}\n{extra}"),
    )
    .unwrap();
    path
}

/// Writes configuration `name` in `dir`: a master on `port` with its SQLite file in `dir`, one
/// worker with its logs in `dir/logs`, and `extra` keys.
pub fn local_config(dir: &Path, name: &str, port: u16, extra: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "database_url: sqlite://{}\nmaster_port: {port}\nworkers: 1\nlocal_logs_dir_prefix: {}\n{extra}",
            dir.join("pinball.db").display(),
            dir.join("logs").display(),
        ),
    )
    .unwrap();
    path
}

/// Writes `workflows` (YAML) as `dir/wf.yaml` and configuration `name` in `dir` that reads
/// them: [`local_config`] with `extra` keys.
pub fn workflows_config(
    dir: &Path,
    name: &str,
    port: u16,
    workflows: &str,
    extra: &str,
) -> PathBuf {
    let file = dir.join("wf.yaml");
    std::fs::write(&file, workflows).unwrap();
    let extra = format!(
        "{extra}parser_params:\n  workflows_config: {}\n",
        file.display()
    );
    local_config(dir, name, port, &extra)
}

/// Runs `pinball -c CONFIG` with each of `commands` in turn (`import -f`, `util -f -w W
/// start`, ...), failing the test with what one printed unless it succeeds.
pub async fn pinball_ok(config: &Path, commands: &[&[&str]], dir: &Path) {
    for args in commands {
        let mut full = vec!["-c", config.to_str().unwrap()];
        full.extend_from_slice(args);
        let out = pinball_out(&full, dir).await;
        assert!(
            out.status.success(),
            "pinball {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Starts `pinball -c CONFIG -m master` and waits for the line that says where it listens.
pub async fn start_master_process(config: &Path) -> Process {
    try_master_process(config)
        .await
        .expect("the master exited before listening")
}

/// Starts `pinball -c CONFIG -m master`: the process once it listens, or `None` when it exited
/// before (refused to serve).
pub async fn try_master_process(config: &Path) -> Option<Process> {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pinball"))
        .args(["-c", config.to_str().unwrap(), "-m", "master"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the pinball binary starts");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the master logs its address within a minute")
            .unwrap()?;
        if let Some(addr) = line.split("master listening addr=").nth(1) {
            break addr.trim().rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    // Keep reading, so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Some(Process { child, port })
}

/// Seconds since boot (`/proc/uptime`): the clock the tests' jobs write into their records with
/// `read up _ < /proc/uptime`, so a test can compare its own moments with theirs.
pub fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// A port no one listens on now, for a server the test starts later. It lies below the
/// kernel's ephemeral range, so no outgoing connection (to a database, between processes) can
/// take it meanwhile, and each call in this process gets another, so no two tests get the same:
/// a port the kernel picked for `bind(0)` was free when asked, but an SMTP server started 10 s
/// later found it taken by an outgoing connection.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let (first, span) = (10_000, low.saturating_sub(10_000));
    if span < 1000 {
        return bind_port("127.0.0.1:0").expect("a free port");
    }
    // Started at an offset of this process's id, so a leftover server of an earlier run is
    // unlikely to sit on the first ports tried (and is stepped over if it does).
    let base = std::process::id() * 97 % span;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < span, "no free port below the ephemeral range");
        let port = first + (base + n) % span;
        if let Some(p) = bind_port(&format!("127.0.0.1:{port}")) {
            return p;
        }
    }
}

fn bind_port(addr: &str) -> Option<u16> {
    let l = std::net::TcpListener::bind(addr).ok()?;
    Some(l.local_addr().ok()?.port())
}

/// Starts `pinball ARGS` in `dir`; its log goes to `dir/pinball.<pid>.log`, for a failing test
/// to read.
pub fn spawn_pinball(args: &[&str], dir: &Path) -> tokio::process::Child {
    let log = tempfile::Builder::new()
        .prefix("pinball.")
        .suffix(".log")
        .tempfile_in(dir)
        .and_then(|f| f.keep().map_err(|e| e.error))
        .map(|(f, _)| Stdio::from(f))
        .unwrap_or_else(|_| Stdio::null());
    tokio::process::Command::new(env!("CARGO_BIN_EXE_pinball"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Runs `pinball ARGS` in `dir` to its end; a caller that stops waiting kills it.
pub async fn pinball_out(args: &[&str], dir: &Path) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_pinball"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap()
}

/// Starts `pinball ARGS` in `dir` with `env` added, its output discarded.
pub fn pinball_with_env(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_pinball"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

pub async fn job_at(
    client: &dyn pinball::master::MasterClient,
    prefix: &str,
) -> Option<pinball::workflow::instance::JobToken> {
    client
        .query_prefix(prefix)
        .await
        .unwrap()
        .into_iter()
        .next()
        .map(|t| pinball::workflow::instance::JobToken::parse(t).unwrap())
}

/// The last lines of every `pinball` log in `dir`.
pub fn logs_of(dir: &Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("pinball.") && name.ends_with(".log") {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out += &format!(
                "--- {name}\n{}\n",
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        }
    }
    out
}
