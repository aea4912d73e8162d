//! Who the outbox may write to: only the addresses the workflow's stored definition names
//! (`notify_emails`, each job's `emails`, and the addresses of `notify` rules). An outbox token is written through `/modify`,
//! which a worker's token may call, so without this check anyone holding a worker token could
//! send any text to anyone through the company's SMTP account. Called by the outbox's sender
//! before every delivery.

use std::collections::BTreeSet;

use crate::master::MasterClient;
use crate::token::MasterError;
use crate::token::name::{self, OUTBOX_PREFIX, WorkflowName};

/// The workflow an outbox token belongs to: `/email/<kind>/<workflow>/...`.
pub fn workflow_of(token_name: &str) -> Option<WorkflowName> {
    let rest = token_name.strip_prefix(OUTBOX_PREFIX)?;
    rest.split('/').nth(1)?.parse().ok()
}

/// Every address a definition (as stored, JSON) names: its `notify_emails` and each job's
/// `emails`, compared without regard to case.
pub fn named_in(definition: &str) -> BTreeSet<String> {
    let Ok(def) = serde_json::from_str::<serde_json::Value>(definition) else {
        return BTreeSet::new();
    };
    let addresses = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str())
                    .map(str::to_lowercase)
                    .collect()
            })
            .unwrap_or_default()
    };
    // The addresses of `notify` rules (their other targets are webhook names).
    let rule_addresses = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| addresses(&r["to"]))
            .filter(|t| t.contains('@'))
            .collect()
    };
    let mut named: BTreeSet<String> = addresses(&def["notify_emails"]).into_iter().collect();
    named.extend(rule_addresses(&def["notify"]));
    if let Some(jobs) = def["jobs"].as_object() {
        for job in jobs.values() {
            named.extend(addresses(&job["emails"]));
            named.extend(rule_addresses(&job["notify"]));
        }
    }
    named
}

/// The addresses the email stored under `token_name` may go to.
pub async fn allowed(
    client: &dyn MasterClient,
    token_name: &str,
) -> Result<BTreeSet<String>, MasterError> {
    let Some(w) = workflow_of(token_name) else {
        return Ok(BTreeSet::new());
    };
    let def = client.get(&name::definition_token(&w)).await?;
    Ok(def
        .and_then(|t| t.data)
        .map(|d| named_in(&d))
        .unwrap_or_default())
}

/// Splits `to` into the addresses `allowed` holds and the rest.
pub fn split(to: Vec<String>, allowed: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
    to.into_iter()
        .partition(|r| allowed.contains(&r.trim().to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workflow_comes_from_the_token_name() {
        assert_eq!(
            workflow_of("/email/failure/w1/3/j/0").map(|w| w.to_string()),
            Some("w1".into())
        );
        assert_eq!(
            workflow_of("/email/too_many/w2/1700000000").map(|w| w.to_string()),
            Some("w2".into())
        );
        assert_eq!(workflow_of("/email/x"), None);
        assert_eq!(workflow_of("/workflow/w/1"), None);
    }

    #[test]
    fn a_definition_names_its_notify_emails_and_its_jobs_emails() {
        let def = r#"{"notify_emails": ["Ops@Example.com"], "jobs": {
            "a": {"command": "true", "emails": ["dev@example.com"]},
            "b": {"command": "true"}}}"#;
        let named = named_in(def);
        assert_eq!(
            named.into_iter().collect::<Vec<_>>(),
            ["dev@example.com", "ops@example.com"]
        );
        let (kept, dropped) = split(
            vec!["ops@example.com".into(), "victim@elsewhere.example".into()],
            &named_in(def),
        );
        assert_eq!(kept, ["ops@example.com"]);
        assert_eq!(dropped, ["victim@elsewhere.example"]);
    }
}
