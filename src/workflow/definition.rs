//! Workflow definitions kept in the master, so every component on every machine sees the same,
//! versioned definition: one token `/definition/workflow/<wf>` per workflow, whose data is the
//! definition as JSON. `pinball import` writes them; `util start` and the scheduler read them.

use std::collections::BTreeMap;

use crate::master::MasterClient;
use crate::parser::{Definitions, WorkflowDef};
use crate::schedule::ScheduleData;
use crate::token::name::{self, DEFINITION_PREFIX, Name, WorkflowName};
use crate::token::{MasterError, ModifyRequest, Token};

/// The definitions in the master, by workflow (with their tokens, for versioned rewrites).
pub async fn read_all(
    client: &dyn MasterClient,
) -> Result<BTreeMap<WorkflowName, (Token, WorkflowDef)>, MasterError> {
    let mut out = BTreeMap::new();
    for t in client.query_prefix(DEFINITION_PREFIX).await? {
        match (Name::parse(&t.name), from_token(&t)) {
            (Some(Name::Definition { workflow }), Some(def)) => {
                out.insert(workflow, (t, def));
            }
            _ => {
                tracing::warn!(token = %t.name, "unreadable workflow definition in the master; ignored")
            }
        }
    }
    Ok(out)
}

/// The definition a token holds; `None` when its data is not one.
pub fn from_token(t: &Token) -> Option<WorkflowDef> {
    serde_json::from_str(t.data.as_deref()?).ok()
}

pub async fn read(
    client: &dyn MasterClient,
    workflow: &WorkflowName,
) -> Result<Option<WorkflowDef>, MasterError> {
    let found = client.get(&name::definition_token(workflow)).await?;
    Ok(found.as_ref().and_then(from_token))
}

/// The workflow's `notify_emails` (none when it has no definition).
pub async fn notify_emails(
    client: &dyn MasterClient,
    workflow: &WorkflowName,
) -> Result<Vec<String>, MasterError> {
    Ok(read(client, workflow)
        .await?
        .map(|d| d.notify_emails)
        .unwrap_or_default())
}

/// What an import wrote.
#[derive(Debug, Default, PartialEq)]
pub struct Imported {
    /// Workflows whose definition changed.
    pub definitions: Vec<WorkflowName>,
    /// Workflows whose schedule token was written (new or changed).
    pub schedules: Vec<WorkflowName>,
}

/// Writes the definitions and schedule tokens that changed, in one atomic request. A schedule
/// is rewritten (its next run recomputed) only when its definition changed (`corresponds_to`).
pub async fn import(
    client: &dyn MasterClient,
    defs: &Definitions,
) -> Result<Imported, super::error::Error> {
    let existing = read_all(client).await?;
    let schedules: BTreeMap<String, Token> = client
        .query_prefix(name::SCHEDULE_PREFIX)
        .await?
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let now = jiff::Timestamp::now();
    let mut req = ModifyRequest::default();
    let mut imported = Imported::default();
    for (w, def) in defs {
        let old = existing.get(w);
        if !old.is_some_and(|(_, d)| d == def) {
            let data = serde_json::to_string(def).expect("definitions serialize");
            req.updates.push(Token {
                version: old.and_then(|(t, _)| t.version),
                ..Token::new(name::definition_token(w), Some(data))
            });
            imported.definitions.push(w.clone());
        }
        let Some(sd) = &def.schedule else { continue };
        let mut new = ScheduleData::new(w, sd, &def.notify_emails, now).map_err(|e| {
            super::error::Error::Definition {
                workflow: w.to_string(),
                message: e.to_string(),
            }
        })?;
        let old = schedules.get(&name::schedule_token(w));
        if let Some(o) = old.and_then(ScheduleData::from_token) {
            if o.corresponds_to(&new) {
                continue;
            }
            // A paused schedule stays paused through a deploy's import.
            new.paused = o.paused;
        }
        req.updates.push(new.to_token(old.and_then(|t| t.version)));
        imported.schedules.push(w.clone());
    }
    if !req.updates.is_empty() {
        client.modify(req).await?;
    }
    Ok(imported)
}
