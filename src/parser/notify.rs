//! `notify:` rules (CONTRACT §4.5): who is told what. A workflow (and a job) lists rules
//! `{on: [events], to: [email addresses, webhook names]}`; `notify_emails` and a job's
//! `emails` keep their meaning beside them. Checked with the definition (events, addresses,
//! bounds); that each webhook name is configured is checked where the configuration is known
//! ([`unknown_webhooks`]).

use serde::{Deserialize, Serialize};

use super::WorkflowDef;

/// What a rule is told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// A run ended failed or aborted (a job rule: the job's final failure).
    Failure,
    /// A run ended succeeded (a job rule: the job succeeded).
    Success,
    /// A run ended, however (a job rule: the job ended, however).
    Finish,
    /// A job ran past its `warn_timeout_sec`.
    WarnTimeout,
    /// A run had not succeeded by its deadline, or ran past `max_duration_sec`.
    DeadlineMissed,
    /// A scheduled run was held back by `max_running_instances`.
    TooManyRuns,
    /// A job failed and will be tried again.
    Retry,
}

impl NotifyEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Failure => "failure",
            NotifyEvent::Success => "success",
            NotifyEvent::Finish => "finish",
            NotifyEvent::WarnTimeout => "warn_timeout",
            NotifyEvent::DeadlineMissed => "deadline_missed",
            NotifyEvent::TooManyRuns => "too_many_runs",
            NotifyEvent::Retry => "retry",
        }
    }

    /// Whether a job's own rule may name it (the others are the workflow's).
    fn of_a_job(self) -> bool {
        !matches!(self, NotifyEvent::DeadlineMissed | NotifyEvent::TooManyRuns)
    }
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyRule {
    pub on: Vec<NotifyEvent>,
    /// Email addresses (`ops@example.com`, `Ops <ops@example.com>`) and webhook names.
    pub to: Vec<String>,
}

/// The most rules one workflow or job has, and the most targets one rule names.
pub const MAX_RULES: usize = 20;
pub const MAX_TARGETS: usize = 50;

/// A rule's target: an address (it has an `@`) or a webhook's name.
pub fn is_address(target: &str) -> bool {
    target.contains('@')
}

/// Checks `rules` (of a job when `job`): events and targets as written, within bounds.
pub fn check(rules: &[NotifyRule], job: bool) -> Result<(), String> {
    if rules.len() > MAX_RULES {
        return Err(format!("notify: at most {MAX_RULES} rules"));
    }
    for r in rules {
        if r.on.is_empty() || r.to.is_empty() {
            return Err("notify: a rule needs `on` (events) and `to` (targets)".into());
        }
        if r.to.len() > MAX_TARGETS {
            return Err(format!("notify: at most {MAX_TARGETS} targets a rule"));
        }
        if let Some(e) = r.on.iter().find(|e| job && !e.of_a_job()) {
            return Err(format!(
                "notify: {} is a workflow's event; put it in the workflow's notify",
                e.as_str()
            ));
        }
        for t in &r.to {
            if is_address(t) {
                crate::email::parse_mailbox(t).map_err(|e| format!("notify: {e}"))?;
            } else if !crate::config::webhooks::is_webhook_name(t) {
                return Err(format!(
                    "notify: `{t}` is neither an email address nor a webhook name"
                ));
            }
        }
    }
    Ok(())
}

/// The webhook names `def`'s rules use that `known` does not configure, with where each is
/// used (`notify` or `job J notify`).
pub fn unknown_webhooks(def: &WorkflowDef, known: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut look = |rules: &[NotifyRule], place: String| {
        for t in rules.iter().flat_map(|r| &r.to) {
            if !is_address(t) && !known(t) {
                out.push(format!("{place}: unknown webhook `{t}`"));
            }
        }
    };
    look(&def.notify, "notify".into());
    for (j, jd) in &def.jobs {
        look(&jd.notify, format!("job {j}: notify"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(yaml: &str) -> Vec<NotifyRule> {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn rules_name_known_events_and_targets_within_bounds() {
        assert!(
            check(
                &rules("[{on: [failure, retry], to: [ops-slack, 'Ops <ops@example.com>']}]"),
                false
            )
            .is_ok()
        );
        for (yaml, job, says) in [
            ("[{on: [], to: [x]}]", false, "needs `on`"),
            ("[{on: [failure], to: []}]", false, "needs `on`"),
            (
                "[{on: [too_many_runs], to: [x]}]",
                true,
                "a workflow's event",
            ),
            (
                "[{on: [failure], to: ['a b']}]",
                false,
                "neither an email address",
            ),
            ("[{on: [failure], to: ['x@']}]", false, "notify:"),
        ] {
            let e = check(&rules(yaml), job).unwrap_err();
            assert!(e.contains(says), "{yaml}: {e}");
        }
        assert!(serde_yaml::from_str::<Vec<NotifyRule>>("[{on: [sometimes], to: [x]}]").is_err());
    }
}
