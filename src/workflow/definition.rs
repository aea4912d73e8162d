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
    /// Workflows retired: in the master, no longer in the definitions.
    pub retired: Vec<WorkflowName>,
    /// Among `definitions`, those the master did not have.
    pub added: Vec<WorkflowName>,
    /// For each changed definition the master had: what changed, one line a job.
    pub changed: Vec<(WorkflowName, Vec<String>)>,
}

/// What differs from `old` to `new`, one line a job (and one for each workflow-level key):
/// `job j: command, priority changed`, `job k added`, `schedule changed`.
pub fn diff(old: &WorkflowDef, new: &WorkflowDef) -> Vec<String> {
    let mut lines = Vec::new();
    for (j, new_job) in &new.jobs {
        match old.jobs.get(j) {
            None => lines.push(format!("job {j} added")),
            Some(old_job) if old_job != new_job => lines.extend(keys_changed(
                &format!("job {j}"),
                serde_json::to_value(old_job).unwrap_or_default(),
                serde_json::to_value(new_job).unwrap_or_default(),
            )),
            Some(_) => {}
        }
    }
    for j in old.jobs.keys().filter(|j| !new.jobs.contains_key(*j)) {
        lines.push(format!("job {j} removed"));
    }
    let whole = |d: &WorkflowDef| {
        let mut v = serde_json::to_value(d).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("jobs");
        }
        v
    };
    lines.extend(keys_changed("workflow", whole(old), whole(new)));
    lines
}

/// `what: a, b changed`, naming the keys whose values differ between two JSON objects.
fn keys_changed(what: &str, a: serde_json::Value, b: serde_json::Value) -> Option<String> {
    let a = a.as_object().cloned().unwrap_or_default();
    let b = b.as_object().cloned().unwrap_or_default();
    let mut changed: Vec<&str> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .map(String::as_str)
        .collect();
    changed.sort_unstable();
    changed.dedup();
    (!changed.is_empty()).then(|| format!("{what}: {} changed", changed.join(", ")))
}

/// Why a workflow cannot be started any more: an import found it gone from `from` (a file, a
/// folder, or the `exec` parser's output) at `at` (seconds).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Retired {
    pub from: String,
    pub at: i64,
}

/// The retirement of `w`, if an import retired it.
pub async fn retired(
    client: &dyn MasterClient,
    w: &WorkflowName,
) -> Result<Option<Retired>, MasterError> {
    Ok(client
        .get(&name::retired_token(w))
        .await?
        .and_then(|t| serde_json::from_str(t.data.as_deref()?).ok()))
}

/// Writes the definitions and schedule tokens that changed, in one atomic request. A schedule
/// is rewritten (its next run recomputed) only when its definition changed (`corresponds_to`).
pub async fn import(
    client: &dyn MasterClient,
    defs: &Definitions,
    retire_from: Option<&str>,
    dry_run: bool,
) -> Result<Imported, super::error::Error> {
    let existing = read_all(client).await?;
    let retirements: BTreeMap<String, Token> = client
        .query_prefix(name::RETIRED_PREFIX)
        .await?
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
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
        // Back in the definitions: no longer retired.
        req.deletes
            .extend(retirements.get(&name::retired_token(w)).cloned());
        let old = existing.get(w);
        if !old.is_some_and(|(_, d)| d == def) {
            match old {
                None => imported.added.push(w.clone()),
                Some((_, d)) => imported.changed.push((w.clone(), diff(d, def))),
            }
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
            if o.corresponds_to(&new, now) {
                continue;
            }
            // A paused schedule stays paused through a deploy's import.
            new.paused = o.paused;
        }
        req.updates.push(new.to_token(old.and_then(|t| t.version)));
        imported.schedules.push(w.clone());
    }
    if let Some(from) = retire_from {
        let gone = existing
            .keys()
            .filter(|w| !defs.contains_key(*w))
            .filter(|w| !retirements.contains_key(&name::retired_token(w)));
        for w in gone {
            let retired = Retired {
                from: from.to_owned(),
                at: now.as_second(),
            };
            let data = serde_json::to_string(&retired).expect("retirements serialize");
            req.updates
                .push(Token::new(name::retired_token(w), Some(data)));
            req.deletes
                .extend(schedules.get(&name::schedule_token(w)).cloned());
            imported.retired.push(w.clone());
        }
    }
    if !dry_run && (!req.updates.is_empty() || !req.deletes.is_empty()) {
        client.modify(req).await?;
    }
    Ok(imported)
}
