//! What every write is checked for before it is queued: the role its names need, its
//! idempotency key, and the audit entry of a control-plane write.

use axum::http::HeaderMap;

use super::IDEMPOTENCY_KEY;

use super::super::options::Naming;
use super::super::requests::RequestKey;
use crate::config::Role;
use crate::token::*;
use crate::web::auth::Caller;

/// Refuses writing `name` unless `caller` may: definitions and wide signals are the
/// operator's.
fn may_write(caller: &Caller, naming: &Naming, name: &str) -> Result<(), MasterError> {
    if (naming.needs_operator)(name) {
        caller.require(Role::Operator, &format!("writing {name}"))?;
    }
    Ok(())
}

pub(super) fn may_write_all<'a>(
    caller: &Caller,
    naming: &Naming,
    tokens: impl IntoIterator<Item = &'a Token>,
) -> Result<(), MasterError> {
    tokens
        .into_iter()
        .try_for_each(|t| may_write(caller, naming, &t.name))
}

/// The `Idempotency-Key` a write came with, scoped to its caller and bound to the request.
pub(super) fn request_key(
    headers: &HeaderMap,
    caller: &Caller,
    req: &impl serde::Serialize,
) -> Result<Option<RequestKey>, MasterError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| MasterError::InputError("Idempotency-Key must be printable ASCII".into()))?;
    RequestKey::new(&caller.name, key, req).map(Some)
}

/// The audit entry of a `/modify` that writes signals, schedules or definitions (the control
/// plane), naming every such token; `None` for a modify of jobs and events only. The actor is
/// the token (`via`); the UI and the command line add entries naming their users.
pub(super) fn control_writes(naming: &Naming, req: &ModifyRequest) -> Option<AuditRequest> {
    let mut workflows = std::collections::BTreeSet::new();
    let mut lines = Vec::new();
    let written = req.updates.iter().map(|t| ("set", t));
    let deleted = req.deletes.iter().map(|t| ("deleted", t));
    for (verb, t) in written.chain(deleted) {
        let Some(workflow) = (naming.control_of)(&t.name) else {
            continue;
        };
        workflows.extend(workflow);
        lines.push(format!("{verb} {}", t.name));
    }
    if lines.is_empty() {
        return None;
    }
    let mut result = lines.join("\n");
    if result.len() > MAX_AUDIT_RESULT {
        result = format!("{}...", clip(&result, MAX_AUDIT_RESULT - 3));
    }
    Some(AuditRequest {
        actor: "(api)".into(),
        command: "modify".into(),
        workflow: (workflows.len() == 1)
            .then(|| workflows.pop_first())
            .flatten(),
        instance: None,
        jobs: Vec::new(),
        ok: true,
        result,
    })
}
