//! Hosts on this machine for tests and benchmarks: network namespaces joined to this one
//! (host A) by veth pairs, each process in one under a host name of its own. Needs root.
//! Shared by `tests/it/ops_hosts.rs` and `benches/hosts.rs`.

use std::path::Path;
use std::process::Stdio;

/// Runs `ip ARGS`; the error says what failed.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Network namespaces and links, removed when dropped.
#[derive(Default)]
pub struct Hosts {
    namespaces: Vec<String>,
    links: Vec<String>,
}

/// One namespace host: its namespace and the address of host A on its link.
#[derive(Debug, Clone)]
pub struct Host {
    pub ns: String,
    pub a_addr: String,
}

impl Hosts {
    /// Builds host number `k` (1..): namespace, veth pair, `10.<net>.<k>.2` inside and
    /// `10.<net>.<k>.1` on A's side. Errors say which step the machine refused.
    pub fn add(&mut self, k: u8) -> Result<Host, String> {
        let tag = std::process::id() % 100_000;
        let net = 200 + (tag % 50);
        let ns = format!("pb{tag}h{k}");
        let (outer, inner) = (format!("pb{tag}a{k}"), format!("pb{tag}b{k}"));
        ip(&["netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner,
        ])?;
        self.links.push(outer.clone());
        ip(&["link", "set", &inner, "netns", &ns])?;
        let (a_addr, addr) = (format!("10.{net}.{k}.1"), format!("10.{net}.{k}.2"));
        ip(&["addr", "add", &format!("{a_addr}/24"), "dev", &outer])?;
        ip(&["link", "set", &outer, "up"])?;
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns, "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        inside(&["addr", "add", &format!("{addr}/24"), "dev", &inner])?;
        inside(&["link", "set", &inner, "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        Ok(Host { ns, a_addr })
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = ip(&["netns", "del", ns]);
        }
        for link in &self.links {
            let _ = ip(&["link", "del", link]);
        }
    }
}

/// Whether this machine lets the test build hosts; `Err` says why not.
pub fn hosts_allowed() -> Result<(), String> {
    // SAFETY: geteuid only reads the process's effective user id.
    if unsafe { libc::geteuid() } != 0 {
        return Err("network namespaces need root".into());
    }
    for tool in ["ip", "unshare"] {
        if std::process::Command::new(tool).arg("-V").output().is_err() {
            return Err(format!("`{tool}` is not installed"));
        }
    }
    let probe = format!("pbprobe{}", std::process::id() % 100_000);
    ip(&["netns", "add", &probe])?;
    let _ = ip(&["netns", "del", &probe]);
    Ok(())
}

/// `pinball ARGS` on `host` under the host name `hostname`, in `dir`, its log in `dir`.
pub fn spawn_on(host: &Host, hostname: &str, dir: &Path, args: &[&str]) -> tokio::process::Child {
    let log =
        std::fs::File::create(dir.join(format!("{hostname}.{}.log", fastrand::u32(..)))).unwrap();
    tokio::process::Command::new("ip")
        .args(["netns", "exec", &host.ns, "unshare", "--uts", "sh", "-c"])
        .arg(format!("hostname {hostname} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_pinball"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Writes the configuration of a workers host in `dir`: the master by `(address, port)` only,
/// with the API `token`, `workers` slots, its logs in `dir/logs`, and `extra` keys. Returns
/// its path.
pub fn worker_config(
    dir: &Path,
    (master, port, token): (&str, u16, &str),
    workers: u32,
    extra: &str,
) -> String {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let path = dir.join("pinball.yaml");
    std::fs::write(
        &path,
        format!(
            "master_host: {master}\nmaster_port: {port}\napi_token: {token}\nworkers: {workers}\nlocal_logs_dir_prefix: {}\n{extra}",
            logs.display()
        ),
    )
    .unwrap();
    path.display().to_string()
}
