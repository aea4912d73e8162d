//! The audit log's entries for operator actions, recorded by `Ops::apply` (and `apply_raw`)
//! once an action has run, with who ran it and how it ended. The master adds the time and the API token
//! it came through. Failing to record is logged and never hides the action's own outcome.

use crate::master::MasterClient;
use crate::token::AuditRequest;
use crate::token::name::{InstanceId, JobName, WorkflowName};
use crate::token::{MAX_AUDIT_RESULT, clip};

/// What an action was applied to.
#[derive(Debug, Clone, Default)]
pub struct Target<'a> {
    pub workflow: Option<&'a WorkflowName>,
    pub instance: Option<&'a InstanceId>,
    pub jobs: &'a [JobName],
}

/// Records that `actor` ran `command` on `target`, with its message or its error.
pub async fn record(
    client: &dyn MasterClient,
    actor: &str,
    command: &str,
    target: Target<'_>,
    outcome: Result<&str, &str>,
) {
    let (ok, result) = match outcome {
        Ok(m) => (true, m),
        Err(e) => (false, e),
    };
    let req = AuditRequest {
        actor: clip(actor, crate::token::MAX_AUDIT_FIELD).to_owned(),
        command: command.to_owned(),
        workflow: target.workflow.map(|w| w.to_string()),
        instance: target.instance.map(|i| i.to_string()),
        jobs: target.jobs.iter().map(|j| j.to_string()).collect(),
        ok,
        result: clip(result.trim_end(), MAX_AUDIT_RESULT).to_owned(),
    };
    if let Err(e) = client.audit(req).await {
        tracing::error!(command, actor = ?actor, error = %e, "could not write the audit log entry of an action");
    }
}

/// Records how a command ended: its message, or its error; a refusal (nothing done) is
/// recorded as not done.
pub async fn record_done(
    client: &dyn MasterClient,
    actor: &str,
    command: &str,
    target: Target<'_>,
    done: &Result<super::Done, super::OpsError>,
) {
    let error = done.as_ref().err().map(ToString::to_string);
    let said = match (done, &error) {
        (Ok(d), _) if d.refused => Err(d.message.as_str()),
        (Ok(d), _) => Ok(d.message.as_str()),
        (Err(_), e) => Err(e.as_deref().unwrap_or_default()),
    };
    record(client, actor, command, target, said).await;
}
