//! Nothing outside the log directory: whatever a job token's data says, the UI serves only
//! logs inside its log directory, opens no device, follows no link; workers write logs 0600 in
//! folders 0700 and refuse a log directory other users may write.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use pinball::master::MasterClient;
use pinball::token::{ModifyRequest, Token};

use crate::helpers::*;

/// Rewrites the stdout path recorded in execution 0 of job `j` of instance `i` of `w`.
async fn plant_stdout(c: &Cluster, w: &str, i: &str, j: &str, path: &str) {
    let jt = c.jobs(w, i).await.remove(j).unwrap();
    let mut job = jt.job.clone();
    job.history[0].logs.insert("stdout".into(), path.into());
    let planted = Token {
        data: Some(job.to_data()),
        ..jt.token.clone()
    };
    c.client
        .modify(ModifyRequest::update(vec![planted]))
        .await
        .unwrap();
}

async fn get(url: String) -> (u16, String) {
    let r = tokio::time::timeout(Duration::from_secs(10), reqwest::get(url))
        .await
        .expect("the UI answers at once")
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

#[tokio::test]
async fn a_planted_log_path_serves_nothing_outside_the_log_directory() {
    let c = cluster(&one_job("w", "j: {command: 'echo inside'}"), 1, 3600).await;
    let i = c.start("w").await;
    c.wait_finished("w", &i, Duration::from_secs(30)).await;
    let ui = ui_server(&c).await;
    let page = |q: &str| {
        format!("{ui}/file/?workflow=w&instance={i}&job=j&execution=0&log_type=stdout{q}")
    };
    let raw = format!("{ui}/api/v1/workflows/w/instances/{i}/jobs/j/executions/0/logs/stdout");

    let (status, body) = get(page("")).await;
    assert_eq!(status, 200);
    assert!(body.contains("inside"), "the real log is shown");

    // The log the worker sent is found by its job and execution, never by a recorded path.
    plant_stdout(&c, "w", &i, "j", "/etc/passwd").await;
    let (status, body) = get(raw.clone()).await;
    assert_eq!((status, body.as_str()), (200, "inside\n"));
    // Without it (a log from before logs were sent) the UI looks on its own disk, and only
    // inside its log directory.
    let store = pinball::storage::open(&c.app.url).unwrap();
    store
        .delete_old_logs(&c.app.master_name, i64::MAX, 1000)
        .await
        .unwrap();

    for planted in ["/etc/passwd", "/dev/zero", "/proc/self/environ"] {
        plant_stdout(&c, "w", &i, "j", planted).await;
        for url in [page(""), page("&full=1"), raw.clone()] {
            let (status, body) = get(url.clone()).await;
            assert_eq!(status, 404, "{planted} at {url}: {body}");
            assert!(!body.contains("root:"), "{planted}: {body}");
            assert!(body.contains("not a log of workflow w"), "{body}");
        }
    }

    // A link with a log's name, planted inside the log directory, is not followed.
    let dir = c.logs.path().join("w").join(&i);
    let link = dir.join("j.1.stdout");
    std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
    plant_stdout(&c, "w", &i, "j", link.to_str().unwrap()).await;
    let (status, body) = get(raw.clone()).await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("root:"), "{body}");
    // The same for a folder of the path.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("j.2.stdout"), "not a log").unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), c.logs.path().join("w").join("7")).unwrap();
    plant_stdout(&c, "w", &i, "j", "w/7/j.2.stdout").await;
    let (status, body) = get(raw).await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("not a log"), "{body}");

    // The UI is well after all of it.
    let (status, _) = get(format!("{ui}/workflows/")).await;
    assert_eq!(status, 200);
    c.stop().await;
}

#[tokio::test]
async fn a_whole_log_is_streamed_and_a_tail_is_bounded() {
    // 6 MiB of output: more than the page shows at once.
    let c = cluster(
        &one_job(
            "w",
            "j: {command: 'head -c 6291456 /dev/zero | tr ''\\000'' x'}",
        ),
        1,
        3600,
    )
    .await;
    let i = c.start("w").await;
    c.wait_finished("w", &i, Duration::from_secs(30)).await;
    let ui = ui_server(&c).await;
    let raw = format!("{ui}/api/v1/workflows/w/instances/{i}/jobs/j/executions/0/logs/stdout");
    let (status, body) = get(raw.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(body.len(), 6 << 20, "the whole file, streamed");
    let (_, body) = get(format!("{raw}?tail=100")).await;
    assert_eq!(body.len(), 100);
    let (_, body) = get(format!("{raw}?tail=99999999999")).await;
    assert_eq!(body.len(), 4 << 20, "a tail is at most 4 MiB");
    let (status, page) = get(format!(
        "{ui}/file/?workflow=w&instance={i}&job=j&execution=0&log_type=stdout&full=1"
    ))
    .await;
    assert_eq!(status, 200);
    assert!(
        page.contains("of 6291456 bytes"),
        "the page says it shows part"
    );
    c.stop().await;
}

#[tokio::test]
async fn logs_are_private_to_the_worker_s_user() {
    let c = cluster(&one_job("w", "j: {command: 'echo private'}"), 1, 3600).await;
    let i = c.start("w").await;
    c.wait_finished("w", &i, Duration::from_secs(30)).await;
    let r = &c.jobs("w", &i).await["j"].job.history[0];
    let log = std::path::Path::new(&r.logs["stdout"]);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(log), 0o600, "{}", log.display());
    assert_eq!(mode(log.parent().unwrap()), 0o700);
    assert_eq!(mode(log.parent().unwrap().parent().unwrap()), 0o700);
    c.stop().await;
}

#[tokio::test]
async fn workers_refuse_a_log_directory_other_users_may_write() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let config = dir.path().join("w.yaml");
    std::fs::write(
        &config,
        format!(
            "database_url: sqlite://{}\nmaster_port: 0\nlocal_logs_dir_prefix: {}\njob_log_path_prefix: ''\n",
            dir.path().join("p.db").display(),
            shared.display()
        ),
    )
    .unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        pinball_out(
            &["-c", config.to_str().unwrap(), "-m", "master,workers"],
            dir.path(),
        ),
    )
    .await
    .expect("the workers refuse at once");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("other users"), "{stderr}");
}

#[tokio::test]
async fn the_database_file_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fresh.db");
    let config = write_config(dir.path(), &format!("sqlite://{}", db.display()), "private");
    let _master = start_master_process(&config).await;
    let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[tokio::test]
async fn a_job_whose_data_names_a_path_is_not_run() {
    let c = cluster(&one_job("w", "j: {command: 'echo ok'}"), 1, 3600).await;
    let i = c.start("w").await;
    c.wait_finished("w", &i, Duration::from_secs(30)).await;
    let name = c
        .plant_runnable(("w", &i, "j"), "999", |data| {
            data["name"] = "../../x".into();
            data["command"] = "echo planted".into();
        })
        .await;
    let name = name.as_str();
    wait_until(
        Duration::from_secs(30),
        "a worker claims the planted job",
        || async {
            c.client
                .get(name)
                .await
                .unwrap()
                .is_some_and(|t| t.owner.is_some())
        },
    )
    .await;
    let mut top: Vec<String> = std::fs::read_dir(c.logs.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(
        top,
        vec!["w".to_string()],
        "nothing was written beside the workflow's folder"
    );
    assert!(
        !c.logs.path().join("w").join("999").exists(),
        "the planted job did not run"
    );
    c.stop().await;
}

/// `pinball -m workers` with its logs in `logs`: its exit code and what it said.
async fn workers_with_logs_in(
    dir: &std::path::Path,
    logs: &std::path::Path,
) -> (Option<i32>, String) {
    let config = dir.join("workers.yaml");
    std::fs::write(
        &config,
        format!(
            "database_url: sqlite://{}\nmaster_port: {}\nlocal_logs_dir_prefix: {}\n",
            dir.join("pinball.db").display(),
            crate::helpers::free_port(),
            logs.display()
        ),
    )
    .unwrap();
    let out =
        crate::helpers::pinball_out(&["-c", config.to_str().unwrap(), "-m", "workers"], dir).await;
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_log_directory_another_user_could_swap_is_refused_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // A folder others may write, without the sticky bit: anyone could rename the logs away.
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let logs = open.join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (code, said) = workers_with_logs_in(dir.path(), &logs).await;
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("other users may write"), "{said}");
    // A folder that belongs to another user (root only can make one).
    // SAFETY: geteuid only reads the process's user id.
    if unsafe { libc::geteuid() } != 0 {
        crate::helpers::skipped("(confinement::swap, another user's folder): not root");
        return;
    }
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let logs = theirs.join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (code, said) = workers_with_logs_in(dir.path(), &logs).await;
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("belongs to user 65534"), "{said}");
}
