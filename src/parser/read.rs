//! Reading definitions: a YAML file, a folder of them, or the JSON a program prints (the
//! `exec` parser), each parsed and validated, with errors that name where the text came from.

use std::path::{Path, PathBuf};

use super::def::File;
use super::validate::validate;
use super::{Definitions, ParseError};
use crate::config::Config;

/// Reads the definitions the configuration names: `parser: yaml` reads
/// `parser_params.workflows_config` (a file or a folder); `parser: exec` runs
/// `parser_params.command` and reads the same definitions as JSON from its stdout.
pub fn load_from_config(config: &Config) -> Result<Definitions, ParseError> {
    match config.parser.as_str() {
        "exec" => {
            let command = config
                .parser_params
                .command
                .as_deref()
                .ok_or(ParseError::Config(
                    "parser exec needs parser_params.command",
                ))?;
            run_exec(command)
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

fn run_exec(command: &str) -> Result<Definitions, ParseError> {
    let out = std::process::Command::new("/bin/sh")
        .args(["-c", command])
        .output()
        .map_err(|source| ParseError::Spawn {
            command: command.to_owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(ParseError::Command {
            command: command.to_owned(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    parse_json(
        &String::from_utf8_lossy(&out.stdout),
        &format!("output of {command:?}"),
    )
}

/// Reads every workflow from a YAML file or a folder of `.yaml`/`.yml` files.
pub fn load_path(path: &Path) -> Result<Definitions, ParseError> {
    let read_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ParseError::Read { path, source }
    };
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(read_error(path))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut all = Definitions::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(read_error(&file))?;
        let origin = file.display().to_string();
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
    let file: File = serde_yaml::from_str(text).map_err(|e| syntax(origin, e))?;
    validated(file, origin)
}

/// Parses definitions given as JSON (the `exec` parser's output).
pub fn parse_json(text: &str, origin: &str) -> Result<Definitions, ParseError> {
    let file: File = serde_json::from_str(text).map_err(|e| syntax(origin, e))?;
    validated(file, origin)
}
