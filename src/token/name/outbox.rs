//! Names of the outbox's webhook notices, their last deliveries, the queued runs and the
//! runs' deadline watches.

use super::{InstanceId, JobName, WorkflowName};

/// Webhook notices waiting to be posted (the outbox's other channel):
/// `/webhook/<wf>/<instance>/<event>/<job or _>/<seq>/<target>`, one per event and target.
pub const WEBHOOK_PREFIX: &str = "/webhook/";
/// The last delivery to each webhook target of a workflow: `/delivery/<wf>/<target>`.
pub const DELIVERY_PREFIX: &str = "/delivery/";
/// Runs waiting for room under their workflow's `max_running_instances` (`util start
/// --queue`): `/queue/workflow/<wf>/<instance>`, the instance id the run will have.
pub const QUEUE_PREFIX: &str = "/queue/workflow/";
/// The notice of `event` (of job `job`, or the run's `i`, or the workflow's) numbered `seq` (an execution, or the
/// moment noticed) for webhook `target` (a webhook name).
pub fn webhook_notice(
    w: &WorkflowName,
    i: Option<&InstanceId>,
    event: &str,
    job: Option<&JobName>,
    seq: i64,
    target: &str,
) -> String {
    let job = job.map_or("_", |j| j.as_str());
    let i = i.map_or("_", |i| i.as_str());
    format!("{WEBHOOK_PREFIX}{w}/{i}/{event}/{job}/{seq}/{target}")
}

/// The record of the last delivery of `w`'s notices to webhook `target`.
pub fn delivery_record(w: &WorkflowName, target: &str) -> String {
    format!("{DELIVERY_PREFIX}{w}/{target}")
}

/// The workflow a webhook notice belongs to.
pub fn webhook_workflow_of(name: &str) -> Option<WorkflowName> {
    name.strip_prefix(WEBHOOK_PREFIX)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// Where the queued runs of `w` are, oldest first by id.
pub fn queue_prefix(w: &WorkflowName) -> String {
    format!("{QUEUE_PREFIX}{w}/")
}

/// The token of run `i` of `w` while it waits in the queue.
pub fn queued_run(w: &WorkflowName, i: &InstanceId) -> String {
    format!("{QUEUE_PREFIX}{w}/{i}")
}

/// The workflow and instance of a queued run's token.
pub fn queued_of(name: &str) -> Option<(WorkflowName, InstanceId)> {
    let (w, i) = name.strip_prefix(QUEUE_PREFIX)?.split_once('/')?;
    Some((w.parse().ok()?, i.parse().ok()?))
}

/// Deadline watches: `/deadline/<wf>/<instance>` (the pattern the scheduler claims with).
pub const DEADLINE_PREFIX: &str = "/deadline/";

/// The deadline watch of run `i` of `w`.
pub fn deadline_watch(w: &WorkflowName, i: &InstanceId) -> String {
    format!("{DEADLINE_PREFIX}{w}/{i}")
}

/// The workflow and run of a deadline watch.
pub fn deadline_of(name: &str) -> Option<(WorkflowName, InstanceId)> {
    let (w, i) = name.strip_prefix(DEADLINE_PREFIX)?.split_once('/')?;
    Some((w.parse().ok()?, i.parse().ok()?))
}
