//! A cluster in one test: a master over real HTTP, real workers running real shell commands,
//! the workflows of a YAML text imported, and what a user would look at (an instance's jobs,
//! live or archived; its logs).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinball::config::Config;
use pinball::master::{HttpMasterClient, MasterClient};
use pinball::ops::{Action, Command, Ops, OpsError};
use pinball::parser;
use pinball::storage::{self, Table};
use pinball::token::name;
use pinball::token::{ModifyRequest, Token};
use pinball::workflow::definition;
use pinball::workflow::instance::JobToken;
use pinball::workflow::job::ExecutionRecord;
use pinball::workflow::worker::{WorkerSettings, run_workers};
use tokio::sync::watch;

use super::{
    TestApp, finished, inst, job, spawn_app, spawn_app_on, started_instance, unique_master, wf,
};

pub struct Cluster {
    pub app: TestApp,
    pub client: HttpMasterClient,
    pub logs: tempfile::TempDir,
    pub stop: watch::Sender<bool>,
    pub workers: Option<tokio::task::JoinHandle<()>>,
    _db: tempfile::TempDir,
}

pub fn settings(logs: &std::path::Path, archive_delay_sec: u64) -> WorkerSettings {
    WorkerSettings {
        generation: 1,
        lease: Duration::from_secs(3),
        poll: Duration::from_millis(300),
        logs_dir: logs.to_path_buf(),
        archive_delay_sec,
        base_url: None,
        kill_grace: Duration::from_millis(500),
        shutdown_grace: Duration::from_secs(2),
        mailer: None,
        webhooks: None,
        ui_link: "http://localhost:8080".into(),
        outage_grace: Duration::from_secs(600),
        lost_lease_retries: 1,
        pools: vec!["default".into()],
        launch: Default::default(),
    }
}

/// A master, `workers` workers, and the workflows of `yaml` imported.
pub async fn cluster(yaml: &str, workers: usize, archive_delay_sec: u64) -> Cluster {
    cluster_on(None, yaml, workers, archive_delay_sec).await
}

/// The same on the database `url` (a fresh SQLite file when `None`).
pub async fn cluster_on(
    url: Option<&str>,
    yaml: &str,
    workers: usize,
    archive_delay_sec: u64,
) -> Cluster {
    let db = tempfile::tempdir().unwrap();
    let app = match url {
        Some(url) => {
            spawn_app_on(
                url,
                &unique_master("wf"),
                pinball::master::api::DEFAULT_MAX_REQUEST_BYTES,
            )
            .await
        }
        None => spawn_app(&db).await,
    };
    let client = app.client.clone();
    import_yaml(&client, yaml).await;
    let logs = tempfile::tempdir().unwrap();
    let (stop, stopped) = watch::channel(false);
    let worker_client: Arc<dyn MasterClient> = Arc::new(client.clone());
    let s = settings(logs.path(), archive_delay_sec);
    let handle =
        (workers > 0).then(|| tokio::spawn(run_workers(worker_client, s, workers, stopped)));
    Cluster {
        app,
        client,
        logs,
        stop,
        workers: handle,
        _db: db,
    }
}

/// `pinball util -f COMMAND` with these arguments.
pub fn action(command: Command, w: Option<&str>, i: Option<&str>, jobs: &[&str]) -> Action {
    Action {
        workflow: w.map(wf),
        instance: i.map(inst),
        jobs: jobs.iter().map(|j| job(j)).collect(),
        ..Action::new(command)
    }
}

/// A scheduler of `c`'s master (reading its archive), sending its emails through `mailer`
/// with links to `ui_link`: runs are re-checked every 30 s, so a delayed run must be woken by
/// an instance's end, not found by a re-check.
pub fn scheduler_for(
    c: &Cluster,
    mailer: Option<pinball::email::Mailer>,
    ui_link: &str,
) -> pinball::scheduler::run::Scheduler {
    use pinball::scheduler::run::{Scheduler, SchedulerSettings};
    Scheduler {
        client: Arc::new(c.client.clone()),
        settings: SchedulerSettings {
            default_max_running: 3,
            poll: Duration::from_secs(1),
            recheck: Duration::from_secs(30),
            mailer,
            ui_link: ui_link.into(),
            store: Some(Arc::<dyn storage::Storage>::from(
                storage::open(&c.app.url).unwrap(),
            )),
            master_name: c.app.master_name.clone(),
        },
        name: "test_scheduler".into(),
    }
}

/// Workers started after the cluster, stopped on their own.
pub struct Workers {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Workers {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
    }
}

impl Cluster {
    /// Starts `n` more workers on this cluster's master (their logs in the cluster's).
    pub fn add_workers(&self, n: usize, archive_delay_sec: u64) -> Workers {
        let (stop, stopped) = watch::channel(false);
        let s = settings(self.logs.path(), archive_delay_sec);
        let task = tokio::spawn(run_workers(Arc::new(self.client.clone()), s, n, stopped));
        Workers { stop, task }
    }

    /// Starts `n` more workers of `generation` serving `pools`.
    pub fn add_pool_workers(&self, n: usize, generation: u32, pools: &[&str]) -> Workers {
        let (stop, stopped) = watch::channel(false);
        let s = WorkerSettings {
            generation,
            pools: pools.iter().map(|p| p.to_string()).collect(),
            ..settings(self.logs.path(), 0)
        };
        let task = tokio::spawn(run_workers(Arc::new(self.client.clone()), s, n, stopped));
        Workers { stop, task }
    }

    /// Waits until `job` of the instance runs: its runnable token holds its start.
    pub async fn wait_running(&self, w: &str, i: &str, job: &str, within: Duration) {
        let runnable = format!("runnable/{job}");
        self.wait_for(w, i, within, "the job runs", |ts| {
            ts.iter().any(|t| {
                t.name.ends_with(&runnable)
                    && t.data.as_deref().is_some_and(|d| d.contains("start_time"))
            })
        })
        .await;
    }

    /// Waits until the instance has finished; returns its live tokens.
    pub async fn wait_finished(&self, w: &str, i: &str, within: Duration) -> Vec<Token> {
        self.wait_for(w, i, within, "the instance finishes", finished)
            .await
    }

    /// Runs `command` on `w`, `i` and `jobs` as an operator would; what it says.
    pub async fn util(
        &self,
        command: Command,
        w: Option<&str>,
        i: Option<&str>,
        jobs: &[&str],
    ) -> String {
        self.apply(action(command, w, i, jobs))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", command.as_str()))
    }

    /// The configuration an operator's command of this cluster runs with (its database and
    /// logs).
    pub fn config(&self) -> Config {
        Config {
            database_url: Some(pinball::config::Secret(self.app.url.clone())),
            master_name: self.app.master_name.clone(),
            local_logs_dir_prefix: Some(self.logs.path().display().to_string()),
            job_log_path_prefix: String::new(),
            ..Config::default()
        }
    }

    /// Applies `action` (audited, as the command line and the dashboard do); what it says.
    pub async fn apply(&self, action: Action) -> Result<String, OpsError> {
        Ok(self.done_with(action, &self.config()).await?.message)
    }

    /// [`Cluster::apply`] with `config`, whose definitions `reload`, `reschedule` and `import`
    /// read.
    pub async fn apply_with(&self, action: Action, config: &Config) -> Result<String, OpsError> {
        Ok(self.done_with(action, config).await?.message)
    }

    /// Applies `action` as [`Cluster::apply`] does; what it did, refusals included.
    pub async fn done(&self, action: Action) -> Result<pinball::ops::Done, OpsError> {
        self.done_with(action, &self.config()).await
    }

    async fn done_with(
        &self,
        mut action: Action,
        config: &Config,
    ) -> Result<pinball::ops::Done, OpsError> {
        let reads = matches!(
            action.command,
            Command::Reload | Command::Reschedule | Command::Import
        );
        if reads && action.definitions.is_none() {
            action.definitions = Some(parser::load_from_config(config).map_err(|e| e.to_string()));
        }
        action.source = parser::source_of(config);
        let ops = Ops::from_config(&self.client, config);
        ops.apply(&action, "tests").await
    }

    pub async fn start(&self, w: &str) -> String {
        started_instance(&self.util(Command::Start, Some(w), None, &[]).await)
    }

    /// The instance's job tokens, live or archived, by job name.
    pub async fn jobs(&self, w: &str, i: &str) -> BTreeMap<String, JobToken> {
        let prefix = name::job_prefix(&wf(w), &inst(i));
        let mut tokens = self.client.query_prefix(&prefix).await.unwrap();
        if tokens.is_empty() {
            let store = storage::open(&self.app.url).unwrap();
            tokens = store
                .read(&self.app.master_name, Table::Archived, &prefix)
                .await
                .unwrap();
        }
        tokens
            .into_iter()
            .map(|t| JobToken::parse(t).unwrap())
            .map(|jt| (jt.job.name.to_string(), jt))
            .collect()
    }

    /// Waits until the instance is archived; returns its archived tokens.
    pub async fn archived(&self, w: &str, i: &str, within: Duration) -> Vec<Token> {
        let store = storage::open(&self.app.url).unwrap();
        let prefix = name::instance_prefix(&wf(w), &inst(i));
        let started = Instant::now();
        loop {
            let live = self.client.query_prefix(&prefix).await.unwrap();
            if live.is_empty() {
                return store
                    .read(&self.app.master_name, Table::Archived, &prefix)
                    .await
                    .unwrap();
            }
            assert!(
                started.elapsed() < within,
                "instance {w}/{i} was not archived within {within:?}; live tokens: {:#?}",
                live.iter().map(|t| &t.name).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `check` holds for the instance's live tokens.
    pub async fn wait_for(
        &self,
        w: &str,
        i: &str,
        within: Duration,
        what: &str,
        check: impl Fn(&[Token]) -> bool,
    ) -> Vec<Token> {
        let prefix = name::instance_prefix(&wf(w), &inst(i));
        let started = Instant::now();
        loop {
            let live = self.client.query_prefix(&prefix).await.unwrap();
            if check(&live) {
                return live;
            }
            assert!(started.elapsed() < within, "{what}: not within {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Writes a runnable copy of job `j` of instance `i` of `w` into instance `into`, as an
    /// older version or an attacker could have stored it: no history, and its data (as JSON)
    /// changed by `edit`. Returns the new token's name.
    pub async fn plant_runnable(
        &self,
        (w, i, j): (&str, &str, &str),
        into: &str,
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> String {
        let jt = self.jobs(w, i).await.remove(j).unwrap();
        let mut data: serde_json::Value =
            serde_json::from_str(jt.token.data.as_deref().unwrap()).unwrap();
        data["history"] = serde_json::json!([]);
        edit(&mut data);
        let name = format!("/workflow/{w}/{into}/job/runnable/{j}");
        self.client
            .modify(ModifyRequest::update(vec![Token::new(
                name.as_str(),
                Some(data.to_string()),
            )]))
            .await
            .unwrap();
        name
    }

    pub fn log(&self, record: &ExecutionRecord, kind: &str) -> String {
        std::fs::read_to_string(&record.logs[kind]).unwrap_or_default()
    }

    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(w) = self.workers.take() {
            w.await.unwrap();
        }
        self.app.stop().await;
    }
}

/// Imports the workflows of `yaml` through `client`, as `pinball import` does.
pub async fn import_yaml(client: &dyn MasterClient, yaml: &str) {
    let defs = parser::parse_yaml(yaml, "test.yaml").unwrap();
    definition::import(client, &defs, None, false)
        .await
        .unwrap();
}
