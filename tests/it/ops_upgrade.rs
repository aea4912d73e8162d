//! The upgrade runbook (PINBALL_SPEC §4.3, the README's Operations section) performed with
//! real processes while a workflow runs: bump `generation`, start new workers, restart the
//! master, UI and scheduler, `util -f exit`; the old workers finish the job they hold and
//! exit, the new ones take over; nothing is aborted, lost or run twice; `util -f unexit`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use pinball::master::MasterClient;
use pinball::token::name;
use pinball::workflow::instance::JobToken;

use crate::helpers::*;

const LONG: Duration = Duration::from_secs(60);

/// A chain of eight short jobs beside one long job, each recording its run in `runs.txt`; and
/// a schedule every 2 seconds, which must keep firing across the scheduler's restart.
fn workflows(dir: &Path) -> String {
    let runs = dir.join("runs.txt");
    let record = format!(
        "echo \"$PINBALL_INSTANCE $PINBALL_JOB $PINBALL_EXECUTION\" >> {}",
        runs.display()
    );
    let mut yaml = String::from("workflows:\n  up:\n    jobs:\n");
    yaml += &format!("      long: {{command: 'sleep 5; {record}'}}\n");
    for k in 0..8 {
        let deps = if k == 0 {
            String::new()
        } else {
            format!(", depends_on: [c{}]", k - 1)
        };
        yaml += &format!("      c{k}: {{command: 'sleep 0.6; {record}'{deps}}}\n");
    }
    yaml += "  tick:\n    schedule: {recurrence: 2S, overrun_policy: START_NEW, max_running_instances: 5}\n    jobs:\n      t: {command: 'true'}\n";
    yaml
}

/// The database a run uses, and its master's name there.
struct Place {
    url: String,
    master: String,
}

fn write_config(
    dir: &Path,
    at: &Place,
    generation: u32,
    master: u16,
    ui: u16,
    extra: &str,
) -> String {
    let path = dir.join(format!("gen{generation}{}.yaml", extra.len()));
    std::fs::write(
        &path,
        format!(
            "generation: {generation}\ndatabase_url: {db}\nmaster_name: {name}\nmaster_port: {master}\nui_port: {ui}\n\
             workers: 2\nworker_poll_time_sec: 1\narchive_delay_sec: 1\nlocal_logs_dir_prefix: {logs}\n\
             parser_params: {{workflows_config: {wf}}}\n{extra}",
            db = at.url,
            name = at.master,
            logs = dir.join("logs").display(),
            wf = dir.join("wf.yaml").display(),
        ),
    )
    .unwrap();
    path.display().to_string()
}

async fn ready(port: u16) -> bool {
    is_ready(port).await
}

/// The tokens of `instance`, live or (once archived) archived.
async fn tokens_of(
    client: &dyn MasterClient,
    store: &dyn pinball::storage::Storage,
    master: &str,
    i: &str,
) -> Vec<pinball::token::Token> {
    let prefix = name::instance_prefix(&wf("up"), &inst(i));
    let live = client.query_prefix(&prefix).await.unwrap_or_default();
    if !live.is_empty() {
        return live;
    }
    store
        .read(master, pinball::storage::Table::Archived, &prefix)
        .await
        .unwrap_or_default()
}

/// The jobs of `instance`, live or archived, by name.
async fn jobs_of(
    client: &dyn MasterClient,
    store: &dyn pinball::storage::Storage,
    master: &str,
    i: &str,
) -> BTreeMap<String, JobToken> {
    tokens_of(client, store, master, i)
        .await
        .into_iter()
        .filter_map(|t| JobToken::parse(t).ok())
        .map(|jt| (jt.job.name.to_string(), jt))
        .collect()
}

/// The generation in a worker's owner name (`<host>_<generation>_<pid>_...`).
fn generation_of(worker: &str) -> u32 {
    worker.split('_').nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn the_upgrade_runbook_replaces_every_process_without_aborting_work() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("pinball.db").display());
    runbook(dir, url).await;
}

#[tokio::test]
async fn the_upgrade_runbook_on_mariadb() {
    if let Some(url) = mysql_url("the_upgrade_runbook_on_mariadb") {
        runbook(tempfile::tempdir().unwrap(), url).await;
    }
}

#[tokio::test]
async fn the_upgrade_runbook_on_postgresql() {
    if let Some(url) = postgres_url("the_upgrade_runbook_on_postgresql") {
        runbook(tempfile::tempdir().unwrap(), url).await;
    }
}

async fn runbook(dir: tempfile::TempDir, url: String) {
    let d = dir.path();
    let at = Place {
        url,
        master: unique_master("upgrade"),
    };
    std::fs::write(d.join("wf.yaml"), workflows(d)).unwrap();
    let (master_port, ui_port) = (free_port(), free_port());
    let v1 = write_config(d, &at, 1, master_port, ui_port, "");
    // The old workers serve metrics too: their listener must not keep the process alive.
    let probes = free_port();
    let v1_workers = write_config(
        d,
        &at,
        1,
        master_port,
        ui_port,
        &format!("metrics_bind: 127.0.0.1:{probes}\n"),
    );
    let client = pinball::master::HttpMasterClient::new("127.0.0.1", master_port, quick_policy());

    // Generation 1 runs: master and UI, the scheduler, a workers process.
    let mut front = spawn_pinball(&["-c", &v1, "-m", "master,ui"], d);
    wait_until(LONG, "generation 1's master is ready", || {
        ready(master_port)
    })
    .await;
    let mut scheduler = spawn_pinball(&["-c", &v1, "-m", "scheduler"], d);
    let mut old_workers = spawn_pinball(&["-c", &v1_workers, "-m", "workers"], d);
    let out = pinball_out(&["-c", &v1, "import", "-f"], d).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = pinball_out(&["-c", &v1, "util", "-f", "-w", "up", "start"], d).await;
    let i = started_instance(&String::from_utf8_lossy(&out.stdout));
    let long = name::job_token(&wf("up"), &inst(&i), name::JobState::Runnable, &job("long"));
    wait_until(LONG, "an old worker runs the long job", || async {
        client
            .get(&long)
            .await
            .ok()
            .flatten()
            .is_some_and(|t| t.owner.is_some())
    })
    .await;

    // 1. Bump the generation. 2. Start new workers.
    assert!(is_ready(probes).await, "the old workers' listener is ready");
    let v2 = write_config(d, &at, 2, master_port, ui_port, "");
    let mut new_workers = spawn_pinball(&["-c", &v2, "-m", "workers"], d);
    // 3. Restart the master, UI and scheduler with the new configuration.
    for child in [&mut front, &mut scheduler] {
        let pid = child.id().unwrap() as i32;
        unsafe { libc::kill(pid, libc::SIGTERM) };
        tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .expect("a component stops within 20 s of SIGTERM")
            .unwrap();
    }
    let _front = spawn_pinball(&["-c", &v2, "-m", "master,ui"], d);
    wait_until(LONG, "generation 2's master is ready", || {
        ready(master_port)
    })
    .await;
    let _scheduler = spawn_pinball(&["-c", &v2, "-m", "scheduler"], d);
    // 4. Tell older generations to exit.
    let out = pinball_out(&["-c", &v2, "util", "-f", "exit"], d).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 5. The old workers finish the job they hold, then their process exits by itself.
    let status = tokio::time::timeout(LONG, old_workers.wait())
        .await
        .expect("the old workers exit once their job is done")
        .unwrap();
    assert!(
        status.success(),
        "the old workers' process exits cleanly: {status}"
    );
    let store = pinball::storage::open(&at.url).unwrap();
    wait_until(LONG, "the instance succeeds", || async {
        let jobs = jobs_of(&client, store.as_ref(), &at.master, &i).await;
        jobs.len() == 9
            && jobs.values().all(|jt| jt.state == name::JobState::Waiting)
            && jobs.values().all(|jt| {
                jt.job
                    .history
                    .last()
                    .is_some_and(|r| r.exit_code == Some(0))
            })
    })
    .await;
    assert!(
        new_workers.try_wait().unwrap().is_none(),
        "the new workers stay"
    );

    // Every job ran once, with one execution, none aborted or lost; the long job ended on the
    // old generation, and the jobs started after the exit ran on the new one.
    let jobs = jobs_of(&client, store.as_ref(), &at.master, &i).await;
    let runs = std::fs::read_to_string(d.join("runs.txt")).unwrap();
    let mine: Vec<&str> = runs.lines().filter(|l| l.starts_with(&i)).collect();
    assert_eq!(mine.len(), 9, "each job's command ran exactly once: {runs}");
    for (name, jt) in &jobs {
        assert_eq!(jt.job.history.len(), 1, "{name} has one execution");
        let r = &jt.job.history[0];
        assert_eq!(r.exit_code, Some(0), "{name}");
        assert!(r.killed.is_none(), "{name} was not killed");
        assert!(
            mine.contains(&format!("{i} {name} 0").as_str()),
            "{name} recorded its run"
        );
    }
    assert_eq!(generation_of(&jobs["long"].job.history[0].worker), 1);
    assert_eq!(
        generation_of(&jobs["c7"].job.history[0].worker),
        2,
        "the last of the chain ran after the old workers left"
    );
    let instance_tokens = tokens_of(&client, store.as_ref(), &at.master, &i).await;
    assert!(
        !instance_tokens.iter().any(|t| t.name.ends_with("/ABORT")),
        "no abort was set on the instance"
    );

    // The restarted scheduler keeps firing, and its runs go to the new workers.
    let last = || async {
        let t = client
            .get("/schedule/workflow/tick")
            .await
            .unwrap()
            .unwrap();
        serde_json::from_str::<pinball::schedule::ScheduleData>(t.data.as_deref().unwrap())
            .unwrap()
            .last_instance
    };
    let before = last().await;
    wait_until(LONG, "the restarted scheduler starts runs", || async {
        last().await != before
    })
    .await;

    // 6. Clear the exit: nothing of generation 2 ever stopped for it, and it is gone.
    let out = pinball_out(&["-c", &v2, "util", "-f", "unexit"], d).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signals = client
        .query_prefix(&name::Level::Global.signal_prefix())
        .await
        .unwrap();
    assert!(
        !signals.iter().any(|t| t.name.ends_with("EXIT")),
        "unexit removed the EXIT signal: {signals:?}"
    );
    let out = pinball_out(&["-c", &v2, "util", "-f", "-w", "up", "start"], d).await;
    let second = started_instance(&String::from_utf8_lossy(&out.stdout));
    wait_until(LONG, "a new instance runs on generation 2", || async {
        let jobs = jobs_of(&client, store.as_ref(), &at.master, &second).await;
        jobs.get("c7").is_some_and(|jt| {
            jt.job
                .history
                .first()
                .is_some_and(|r| r.exit_code == Some(0) && generation_of(&r.worker) == 2)
        })
    })
    .await;
}
