//! Jobs never hold Pinball's credentials (issue 22, H3): a real master with API tokens, a real
//! `-m workers` process given its token the way the documented unit gives it (the environment,
//! and a second variable holding the same value, as an `EnvironmentFile` might), and jobs,
//! a cleanup command and an `exec` parser that look for it everywhere they can: their own
//! environment and their parent's `/proc/PID/environ`.

use std::path::Path;
use std::time::Duration;

use crate::helpers::*;

const LONG: Duration = Duration::from_secs(60);

/// Every file in `dir` whose name ends in `.env`, with its text.
fn dumps(dir: &Path) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "env"))
        .map(|p| {
            let text = std::fs::read(&p).unwrap();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, String::from_utf8_lossy(&text).into_owned())
        })
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn a_job_its_cleanup_and_the_exec_parser_find_no_token_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spy = d.join("spy");
    std::fs::create_dir(&spy).unwrap();
    let s = spy.display();
    // The job dumps its environment and its parent's (the worker's), then fails, so its
    // cleanup command runs and dumps its own.
    let yaml = format!(
        "workflows:\n  w:\n    jobs:\n      j:\n        command: \"env > {s}/job.env; tr '\\\\0' '\\\\n' < /proc/$PPID/environ > {s}/parent.env; echo ran > {s}/ran; exit 1\"\n        cleanup_template: \"env > {s}/cleanup.env\"\n"
    );
    std::fs::write(d.join("workflows.yaml"), &yaml).unwrap();
    // The exec parser prints the same definitions, as JSON, after dumping its environment.
    let defs =
        serde_json::to_string(&serde_yaml::from_str::<serde_json::Value>(&yaml).unwrap()).unwrap();
    std::fs::write(d.join("defs.json"), defs).unwrap();
    let master = master_with(d, &api_tokens_yaml()).await;
    let config = local_config(
        d,
        "workers.yaml",
        master.port,
        &format!(
            "parser: exec\nparser_params:\n  command: 'env > {s}/parser.env; cat {}'\n",
            d.join("defs.json").display()
        ),
    );
    let run = |args: &[&str]| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_pinball"));
        c.arg("-c")
            .arg(&config)
            .args(args)
            .current_dir(d)
            .env("PINBALL_API_TOKEN", WORKER)
            .env("DEPLOY_TOKEN_COPY", WORKER)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        c
    };
    // The command line, with an operator's token, imports (running the exec parser) and
    // starts the instance.
    for args in [&["import", "-f"][..], &["util", "-f", "-w", "w", "start"]] {
        let out = run(args)
            .env("PINBALL_API_TOKEN", crate::helpers::OPERATOR)
            .env("DEPLOY_TOKEN_COPY", crate::helpers::OPERATOR)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut workers = run(&["-m", "workers"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(LONG, "the job and its cleanup ran", || async {
        spy.join("cleanup.env").exists() && spy.join("ran").exists()
    })
    .await;
    let _ = workers.kill().await;

    let found = dumps(&spy);
    let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["cleanup.env", "job.env", "parent.env", "parser.env"],
        "every command dumped what it could see"
    );
    for (name, text) in &found {
        assert!(
            !text.contains(WORKER),
            "{name} holds the worker's token:\n{text}"
        );
        assert!(
            !text.contains(crate::helpers::OPERATOR),
            "{name} holds a token:\n{text}"
        );
        if name != "parent.env" {
            assert!(!text.contains("DEPLOY_TOKEN_COPY"), "{name}:\n{text}");
        }
    }
    // The job still has its own variables and the ordinary ones.
    let job = &found[1].1;
    assert!(job.contains("PINBALL_JOB=j"), "{job}");
    assert!(job.contains("PATH="), "{job}");
    // The worker's own environment (what a job running as its user reads in /proc) kept the
    // variable's name but not its value.
    let parent = &found[2].1;
    assert!(parent.contains("PINBALL_API_TOKEN="), "{parent}");
}

/// A configuration for `-m master,workers` in `d` running `workflows.yaml`, with `extra` keys.
fn single_host_config(d: &Path, extra: &str) -> std::path::PathBuf {
    let workflows = d.join("workflows.yaml");
    let extra = format!(
        "parser_params:\n  workflows_config: {}\n{extra}",
        workflows.display()
    );
    local_config(d, "pinball.yaml", free_port(), &extra)
}

/// Starts an instance of `w` once the master of `cfg` answers.
async fn start_when_up(cfg: &str, d: &Path) {
    wait_until(LONG, "the instance starts", || async {
        pinball_out(&["-c", cfg, "util", "-f", "-w", "w", "start"], d)
            .await
            .status
            .success()
    })
    .await;
}

#[tokio::test]
async fn env_deny_keeps_a_variable_from_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("job.env");
    std::fs::write(
        d.join("workflows.yaml"),
        format!(
            "workflows:\n  w:\n    jobs:\n      j: {{command: 'env > {}'}}\n",
            out.display()
        ),
    )
    .unwrap();
    let config = single_host_config(d, "env_deny: [AWS_*]\n");
    let cfg = config.to_str().unwrap();
    let mut all = pinball_with_env(
        &["-c", cfg, "-m", "master,workers"],
        d,
        &[
            ("AWS_SECRET_ACCESS_KEY", "do-not-pass-this-on"),
            ("KEEP_ME", "passed"),
        ],
    );
    start_when_up(cfg, d).await;
    wait_until(LONG, "the job ran", || async {
        std::fs::read_to_string(&out).is_ok_and(|t| t.contains("KEEP_ME"))
    })
    .await;
    let _ = all.kill().await;
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("KEEP_ME=passed"), "{text}");
    assert!(!text.contains("AWS_SECRET_ACCESS_KEY"), "{text}");
}

#[tokio::test]
async fn job_user_runs_jobs_as_a_user_who_cannot_read_the_config_or_the_worker() {
    // SAFETY: geteuid only reads the process's user id.
    if unsafe { libc::geteuid() } != 0 {
        crate::helpers::skipped("(secrets::job_user): switching users needs root");
        return;
    }
    let Ok(nobody) = pinball::workflow::executor::JobUser::resolve("nobody") else {
        crate::helpers::skipped("(secrets::job_user): this machine has no user nobody");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = d.join("pinball.yaml");
    let command = format!(
        "id -u; cat {} || echo no-config; tr '\\\\0' '\\\\n' < /proc/$PPID/environ || echo no-environ",
        config.display()
    );
    std::fs::write(
        d.join("workflows.yaml"),
        format!("workflows:\n  w:\n    jobs:\n      j: {{command: \"{command}\"}}\n"),
    )
    .unwrap();
    single_host_config(
        d,
        "job_user: nobody\nsmtp_pass: a-password-jobs-must-not-read\n",
    );
    // As the README says: the configuration is the workers' user's alone.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = config.to_str().unwrap();
    let mut all = pinball_with_env(&["-c", cfg, "-m", "master,workers"], d, &[]);
    start_when_up(cfg, d).await;
    let logs = d.join("logs").join("pinball_job_logs").join("w");
    let stdout = || -> Option<String> {
        let instance = std::fs::read_dir(&logs).ok()?.next()?.ok()?.path();
        let log = std::fs::read_dir(instance)
            .ok()?
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().ends_with(".stdout"))?;
        std::fs::read_to_string(log.path())
            .ok()
            .filter(|t| t.contains("no-environ") || t.lines().count() > 2)
    };
    wait_until(LONG, "the job ran", || async { stdout().is_some() }).await;
    let _ = all.kill().await;
    let out = stdout().unwrap();
    assert_eq!(
        out.lines().next(),
        Some(nobody.uid.to_string().as_str()),
        "{out}"
    );
    assert!(out.contains("no-config"), "the job read the config: {out}");
    assert!(!out.contains("a-password-jobs-must-not-read"), "{out}");
    assert!(
        out.contains("no-environ"),
        "the job read the worker's environment: {out}"
    );
}
