//! The UI for tests: a whole deployment as processes (master with tokens, UI with users, the
//! command line's configuration), or a UI server in this process on a cluster's database.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pinball::ops::read::DataLayer;
use pinball::storage;
use pinball::ui::Ui;
use tempfile::TempDir;

use super::*;

const LONG: Duration = Duration::from_secs(30);

pub const UI_TOKEN: &str = "ui-token-0123456789abcdef0123";

pub struct Deployment {
    pub _dir: TempDir,
    pub _master: Process,
    pub _ui: tokio::process::Child,
    pub root: String,
    /// The configuration the command line runs with (its own operator token).
    pub cli_config: PathBuf,
}

fn users_yaml() -> String {
    let alice = pinball::config::access::hash_password("alice's password").unwrap();
    let victor = pinball::config::access::hash_password("victor's password").unwrap();
    format!(
        "ui_users:\n  - {{username: alice, password_hash: '{alice}', role: operator}}\n  - {{username: victor, password_hash: '{victor}', role: viewer}}\n"
    )
}

/// A master with tokens, a UI with users (and `users` false: none), and the CLI's config.
pub async fn deploy(users: bool) -> Deployment {
    deploy_with(users, "").await
}

/// [`deploy`] with `ui_extra` keys in the UI's configuration.
pub async fn deploy_with(users: bool, ui_extra: &str) -> Deployment {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("workflows.yaml"),
        "workflows:\n  w:\n    jobs:\n      j: {command: 'true'}\n",
    )
    .unwrap();
    let tokens = format!(
        "{}  - {{name: ui, token: {UI_TOKEN}, role: operator}}\n",
        api_tokens_yaml()
    );
    let master = master_with(d, &tokens).await;
    let common = format!(
        "database_url: sqlite://{}\nmaster_port: {}\nparser_params:\n  workflows_config: {}\nlocal_logs_dir_prefix: {}\n",
        d.join("pinball.db").display(),
        master.port,
        d.join("workflows.yaml").display(),
        d.display()
    );
    let cli_config = d.join("cli.yaml");
    std::fs::write(&cli_config, format!("{common}api_token: {OPERATOR}\n")).unwrap();
    let ui_port = free_port();
    let ui_config = d.join("ui.yaml");
    std::fs::write(
        &ui_config,
        format!(
            "{common}api_token: {UI_TOKEN}\nui_port: {ui_port}\n{ui_extra}{}",
            if users { users_yaml() } else { String::new() }
        ),
    )
    .unwrap();
    let out = pinball_out(&["-c", cli_config.to_str().unwrap(), "import", "-f"], d).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ui = spawn_pinball(&["-c", ui_config.to_str().unwrap(), "-m", "ui"], d);
    let root = format!("http://127.0.0.1:{ui_port}");
    wait_until(LONG, "the UI serves", || async {
        reqwest::get(format!("{root}/static/pinball.css"))
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    Deployment {
        _dir: dir,
        _master: master,
        _ui: ui,
        root,
        cli_config,
    }
}

/// A form body, URL-encoded.
pub fn encoded(fields: &[(&str, &str)]) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, NON_ALPHANUMERIC)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A UI server on the cluster's database and master; returns its root URL.
pub async fn ui_server(c: &Cluster) -> String {
    ui_server_with(c, c.config()).await
}

/// [`ui_server`] with `config` (the cluster's master filled in).
pub async fn ui_server_with(c: &Cluster, mut config: pinball::config::Config) -> String {
    let data = DataLayer::new(
        Arc::from(storage::open(&c.app.url).unwrap()),
        c.app.master_name.clone(),
        3,
    );
    config.master_host = c.app.addr.ip().to_string();
    config.master_port = c.app.addr.port();
    let ui = Ui::new(data, Arc::new(c.client.clone()), Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let root = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(pinball::ui::serve(ui, listener, std::future::pending()));
    root
}

/// Instances of the workflows `good` and `bad`, run and archived, and one of `slow`, running.
pub async fn finished_and_running(c: &Cluster) -> (String, String, String) {
    let good = c.start("good").await;
    let bad = c.start("bad").await;
    c.archived("good", &good, Duration::from_secs(15)).await;
    c.archived("bad", &bad, Duration::from_secs(15)).await;
    let slow = c.start("slow").await;
    c.wait_for("slow", &slow, Duration::from_secs(10), "s runs", |ts| {
        ts.iter().any(|t| t.owner.is_some())
    })
    .await;
    (good, bad, slow)
}
