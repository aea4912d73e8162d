//! Reading definitions: a YAML file, a folder of them, or the JSON a program prints (the
//! `exec` parser), each parsed and validated, with errors that name where the text came from.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::def::File;
use super::validate::validate;
use super::{Definitions, ParseError};
use crate::config::Config;

/// Reads the definitions the configuration names: `parser: yaml` reads
/// `parser_params.workflows_config` (a file or a folder); `parser: exec` runs
/// `parser_params.command` and reads the same definitions as JSON from its stdout.
/// Where `config`'s definitions come from, for messages: the file or folder, or the `exec`
/// parser's command.
pub fn source_of(config: &Config) -> String {
    match config.parser.as_str() {
        "exec" => format!(
            "the output of `{}`",
            config.parser_params.command.as_deref().unwrap_or("")
        ),
        _ => config
            .parser_params
            .workflows_config
            .clone()
            .unwrap_or_else(|| "the configured definitions".into()),
    }
}

/// The configured definitions, with every webhook their `notify` rules name configured.
pub fn load_from_config(config: &Config) -> Result<Definitions, ParseError> {
    let defs = read_configured(config)?;
    let known = |n: &str| config.webhooks.contains_key(n);
    for (name, def) in &defs {
        targets_known(def, &known).map_err(|problem| ParseError::Invalid {
            origin: source_of(config),
            workflow: name.clone(),
            problem,
        })?;
    }
    Ok(defs)
}

/// Every webhook `def`'s rules name is one `known` configures.
pub fn targets_known(
    def: &super::WorkflowDef,
    known: &dyn Fn(&str) -> bool,
) -> Result<(), super::Invalid> {
    let unknown = super::notify::unknown_webhooks(def, known);
    if unknown.is_empty() {
        return Ok(());
    }
    Err(super::Invalid::Workflow(format!(
        "{} (webhooks are named in the configuration's `webhooks`)",
        unknown.join("; ")
    )))
}

fn read_configured(config: &Config) -> Result<Definitions, ParseError> {
    match config.parser.as_str() {
        "exec" => {
            let command = config
                .parser_params
                .command
                .as_deref()
                .ok_or(ParseError::Config(
                    "parser exec needs parser_params.command",
                ))?;
            let p = &config.parser_params;
            let timeout = p.timeout_sec.map_or(EXEC_TIMEOUT, Duration::from_secs);
            run_exec(
                command,
                &config.child_env(),
                timeout,
                p.max_output_bytes.unwrap_or(EXEC_MAX_OUTPUT),
            )
        }
        _ => {
            let path = config.parser_params.workflows_config.as_deref().ok_or(
                ParseError::Config(
                    "parser_params.workflows_config is not set: nothing names the workflow definitions",
                ),
            )?;
            load_path(Path::new(path))
        }
    }
}

/// How long the `exec` parser's program may run, and how much it may print, by default.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(60);
pub const EXEC_MAX_OUTPUT: usize = 64 << 20;
const EXEC_MAX_STDERR: usize = 64 << 10;

/// Reads at most `limit` bytes of `from`; the flag says whether there was more.
fn read_bounded(from: impl Read, limit: usize) -> std::io::Result<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    from.take(limit as u64 + 1).read_to_end(&mut out)?;
    let over = out.len() > limit;
    out.truncate(limit);
    Ok((out, over))
}

/// Runs the `exec` parser's program in a process group of its own, reading its output on
/// threads, and kills the whole group when it runs past `timeout` or prints past `max_output`.
fn run_exec(
    command: &str,
    env: &[(std::ffi::OsString, std::ffi::OsString)],
    timeout: Duration,
    max_output: usize,
) -> Result<Definitions, ParseError> {
    let spawn_error = |source| ParseError::Spawn {
        command: command.to_owned(),
        source,
    };
    let limit = |limit: String| ParseError::Limit {
        command: command.to_owned(),
        limit,
    };
    let too_long = || {
        limit(format!(
            "ran longer than {} s (parser_params.timeout_sec)",
            timeout.as_secs()
        ))
    };
    let started = std::time::Instant::now();
    let mut child = spawn_in_group(command, env).map_err(spawn_error)?;
    let group = child.id() as libc::pid_t;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(read_bounded(stdout, max_output));
    });
    let (etx, errors) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = etx.send(read_bounded(stderr, EXEC_MAX_STDERR));
    });
    let (out, over) = match rx.recv_timeout(timeout.saturating_sub(started.elapsed())) {
        Ok(read) => read.map_err(spawn_error)?,
        Err(_) => {
            end_group(group, &mut child);
            return Err(too_long());
        }
    };
    if over {
        end_group(group, &mut child);
        return Err(limit(format!(
            "printed more than {max_output} bytes (parser_params.max_output_bytes)"
        )));
    }
    // Its output has ended; it must exit within the same time limit.
    let Some(status) = exit_by(&mut child, started + timeout).map_err(spawn_error)? else {
        end_group(group, &mut child);
        return Err(too_long());
    };
    // Anything it left running in its group goes too.
    end_group(group, &mut child);
    let stderr = errors
        .recv_timeout(Duration::from_secs(1))
        .ok()
        .and_then(Result::ok)
        .map(|(e, _)| String::from_utf8_lossy(&e).trim().to_owned())
        .unwrap_or_default();
    if !status.success() {
        return Err(ParseError::Command {
            command: command.to_owned(),
            status: status.to_string(),
            stderr,
        });
    }
    parse_json(
        &String::from_utf8_lossy(&out),
        &format!("output of {command:?}"),
    )
}

/// `/bin/sh -c command` with only `env`, its output piped, in a process group of its own.
fn spawn_in_group(
    command: &str,
    env: &[(std::ffi::OsString, std::ffi::OsString)],
) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    std::process::Command::new("/bin/sh")
        .args(["-c", command])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
}

/// Kills process group `group` (the one `child` leads) and reaps `child`.
fn end_group(group: libc::pid_t, child: &mut std::process::Child) {
    // SAFETY: killpg only sends a signal to the group this module started.
    unsafe {
        libc::killpg(group, libc::SIGKILL);
    }
    let _ = child.wait();
}

/// How `child` exited, once it has; `None` when it is still running at `deadline`.
fn exit_by(
    child: &mut std::process::Child,
    deadline: std::time::Instant,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    loop {
        match child.try_wait()? {
            Some(status) => return Ok(Some(status)),
            None if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            None => return Ok(None),
        }
    }
}

/// Reads every workflow from a YAML file or a folder of `.yaml`/`.yml` files.
pub fn load_path(path: &Path) -> Result<Definitions, ParseError> {
    let read_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ParseError::Read { path, source }
    };
    let files = definition_files(path).map_err(read_error(path))?;
    let mut all = Definitions::new();
    for file in files {
        let origin = file.display().to_string();
        let text = crate::yaml::read_file(&file)
            .map_err(read_error(&file))?
            .map_err(|e| syntax(&origin, e))?;
        for (name, def) in parse_yaml(&text, &origin)? {
            if all.contains_key(&name) {
                return Err(ParseError::DefinedTwice {
                    origin,
                    workflow: name,
                });
            }
            all.insert(name, def);
        }
    }
    Ok(all)
}

/// The files of definitions at `path`: the file itself, or a folder's `.yaml`/`.yml` files in
/// name order.
fn definition_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    Ok(files)
}

/// Every problem of the definitions at `paths` (files, or folders of `.yaml`/`.yml`), all at
/// once: what cannot be read or parsed (one per file), each invalid workflow, each workflow
/// defined twice; and how many valid workflows were found. Needs no master.
pub fn check_paths(paths: &[PathBuf], known: &dyn Fn(&str) -> bool) -> (usize, Vec<ParseError>) {
    let mut errors = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for path in paths {
        let files = match definition_files(path) {
            Ok(files) => files,
            Err(source) => {
                errors.push(ParseError::Read {
                    path: path.clone(),
                    source,
                });
                continue;
            }
        };
        for file in files {
            let origin = file.display().to_string();
            let text = match crate::yaml::read_file(&file) {
                Ok(Ok(text)) => text,
                Ok(Err(e)) => {
                    errors.push(syntax(&origin, e));
                    continue;
                }
                Err(source) => {
                    errors.push(ParseError::Read { path: file, source });
                    continue;
                }
            };
            let parsed: File = match crate::yaml::from_str(&text) {
                Ok(f) => f,
                Err(e) => {
                    errors.push(syntax(&origin, e));
                    continue;
                }
            };
            for (name, def) in &parsed.workflows {
                if let Err(problem) = validate(def).and_then(|_| targets_known(def, known)) {
                    errors.push(ParseError::Invalid {
                        origin: origin.clone(),
                        workflow: name.clone(),
                        problem,
                    });
                } else if !seen.insert(name.clone()) {
                    errors.push(ParseError::DefinedTwice {
                        origin: origin.clone(),
                        workflow: name.clone(),
                    });
                }
            }
        }
    }
    (seen.len(), errors)
}

fn validated(file: File, origin: &str) -> Result<Definitions, ParseError> {
    for (name, def) in &file.workflows {
        validate(def).map_err(|problem| ParseError::Invalid {
            origin: origin.to_owned(),
            workflow: name.clone(),
            problem,
        })?;
    }
    Ok(file.workflows)
}

fn syntax(origin: &str, e: impl std::fmt::Display) -> ParseError {
    ParseError::Syntax {
        origin: origin.to_owned(),
        message: e.to_string(),
    }
}

/// Parses and validates one YAML document; `origin` names it in errors.
pub fn parse_yaml(text: &str, origin: &str) -> Result<Definitions, ParseError> {
    let file: File = crate::yaml::from_str(text).map_err(|e| syntax(origin, e))?;
    validated(file, origin)
}

/// Parses definitions given as JSON (the `exec` parser's output).
pub fn parse_json(text: &str, origin: &str) -> Result<Definitions, ParseError> {
    let file: File = serde_json::from_str(text).map_err(|e| syntax(origin, e))?;
    validated(file, origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
        Config::default().child_env()
    }

    #[test]
    fn the_exec_parser_reads_what_its_program_prints() {
        let defs = run_exec(
            r#"echo '{"workflows": {"w": {"jobs": {"j": {"command": "true"}}}}}'"#,
            &env(),
            EXEC_TIMEOUT,
            EXEC_MAX_OUTPUT,
        )
        .unwrap();
        assert_eq!(defs.len(), 1);
    }

    #[test]
    fn a_program_that_runs_too_long_is_stopped() {
        let err =
            run_exec("sleep 600", &env(), Duration::from_secs(1), EXEC_MAX_OUTPUT).unwrap_err();
        assert!(err.to_string().contains("timeout_sec"), "{err}");
        let err = run_exec(
            "echo '{}'; exec sleep 600",
            &env(),
            Duration::from_secs(1),
            EXEC_MAX_OUTPUT,
        )
        .unwrap_err();
        assert!(err.to_string().contains("timeout_sec"), "{err}");
    }

    #[test]
    fn a_program_that_prints_too_much_is_stopped() {
        let err = run_exec("yes", &env(), EXEC_TIMEOUT, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("max_output_bytes"), "{err}");
    }
}
