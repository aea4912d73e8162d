//! Workflow definitions kept in the master, so every component on every machine sees the same,
//! versioned definition: one token `/definition/workflow/<wf>` per workflow, whose data is the
//! definition as JSON. `pinball import` writes them; `util start` and the scheduler read them.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::master::{MasterClient, MasterError};
use crate::parser::{self, ParseError, WorkflowDef};
use crate::schedule::ScheduleData;
use crate::token::{ModifyRequest, Token};

pub const DEFINITION_PREFIX: &str = "/definition/workflow/";

pub fn definition_token(workflow: &str) -> String {
    format!("{DEFINITION_PREFIX}{workflow}")
}

/// Reads the definitions the configuration names: `parser: yaml` reads
/// `parser_params.workflows_config` (a file or a folder); `parser: exec` runs
/// `parser_params.command` and reads the same definitions as JSON from its stdout.
pub fn load_from_config(config: &Config) -> Result<BTreeMap<String, WorkflowDef>, ParseError> {
    match config.parser.as_str() {
        "exec" => {
            let command = config
                .parser_params
                .command
                .as_deref()
                .ok_or_else(|| ParseError("parser exec needs parser_params.command".into()))?;
            let out = std::process::Command::new("/bin/sh")
                .args(["-c", command])
                .output()
                .map_err(|e| ParseError(format!("cannot run parser command {command:?}: {e}")))?;
            if !out.status.success() {
                return Err(ParseError(format!(
                    "parser command {command:?} failed with {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            parser::parse_json(
                &String::from_utf8_lossy(&out.stdout),
                &format!("output of {command:?}"),
            )
        }
        _ => {
            let path = config
                .parser_params
                .workflows_config
                .as_deref()
                .ok_or_else(|| ParseError("parser_params.workflows_config is not set: nothing names the workflow definitions".into()))?;
            parser::load_path(std::path::Path::new(path))
        }
    }
}

/// The definitions in the master, by workflow (with their tokens, for versioned rewrites).
pub async fn read_all(
    client: &dyn MasterClient,
) -> Result<BTreeMap<String, (Token, WorkflowDef)>, MasterError> {
    let mut out = BTreeMap::new();
    for t in client.query_prefix(DEFINITION_PREFIX).await? {
        let name = t.name[DEFINITION_PREFIX.len()..].to_owned();
        match t.data.as_deref().map(serde_json::from_str::<WorkflowDef>) {
            Some(Ok(def)) => {
                out.insert(name, (t, def));
            }
            _ => {
                tracing::warn!(token = %t.name, "unreadable workflow definition in the master; ignored")
            }
        }
    }
    Ok(out)
}

pub async fn read(
    client: &dyn MasterClient,
    workflow: &str,
) -> Result<Option<WorkflowDef>, MasterError> {
    let name = definition_token(workflow);
    let found = client.get(&name).await?;
    Ok(found.and_then(|t| t.data.and_then(|d| serde_json::from_str(&d).ok())))
}

/// What an import wrote.
#[derive(Debug, Default, PartialEq)]
pub struct Imported {
    /// Workflows whose definition changed.
    pub definitions: Vec<String>,
    /// Workflows whose schedule token was written (new or changed).
    pub schedules: Vec<String>,
}

/// Writes the definitions and schedule tokens that changed, in one atomic request. A schedule
/// is rewritten (its next run recomputed) only when its definition changed (`corresponds_to`).
pub async fn import(
    client: &dyn MasterClient,
    defs: &BTreeMap<String, WorkflowDef>,
) -> Result<Imported, MasterError> {
    let existing = read_all(client).await?;
    let schedules: BTreeMap<String, Token> = client
        .query_prefix(crate::token::name::SCHEDULE_PREFIX)
        .await?
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let now = jiff::Timestamp::now();
    let mut req = ModifyRequest::default();
    let mut imported = Imported::default();
    for (name, def) in defs {
        let old = existing.get(name);
        if !old.is_some_and(|(_, d)| d == def) {
            let data = serde_json::to_string(def).expect("definitions serialize");
            req.updates.push(Token {
                version: old.and_then(|(t, _)| t.version),
                ..Token::new(definition_token(name), Some(data))
            });
            imported.definitions.push(name.clone());
        }
        let Some(sd) = &def.schedule else { continue };
        let new = ScheduleData::new(name, sd, &def.notify_emails, now)
            .map_err(|e| MasterError::input(format!("workflow {name}: {e}")))?;
        let old = schedules.get(&crate::token::name::schedule_token(name));
        if old
            .and_then(ScheduleData::from_token)
            .is_some_and(|o| o.corresponds_to(&new))
        {
            continue;
        }
        req.updates.push(new.to_token(old.and_then(|t| t.version)));
        imported.schedules.push(name.clone());
    }
    if !req.updates.is_empty() {
        client.modify(req).await?;
    }
    Ok(imported)
}
