//! What the master is told about Pinball's token names (it knows no workflows itself): the
//! runnable jobs it follows, the job leases it holds through an outage, the writes that need
//! the operator role or are audited, where a job's log goes, and how archived tokens group
//! into instances.

use crate::master::{JobLog, MasterError, Naming};
use crate::token::name::{self, InstanceId, JobName, JobState, Level, Name, WorkflowName};

/// The names of Pinball's workflows, for the master.
pub fn naming() -> Naming {
    Naming {
        followed_claims: name::ALL_RUNNABLE_JOBS.to_owned(),
        leased_prefix: name::WORKFLOW_PREFIX.to_owned(),
        outbox_prefix: name::OUTBOX_PREFIX.to_owned(),
        pool_prefix: name::POOL_PREFIX.to_owned(),
        queue_prefix: name::QUEUE_PREFIX.to_owned(),
        needs_operator: name::needs_operator,
        control_of,
        job_log,
        archive_group: name::archive_prefix,
        claim_context,
    }
}

/// A job's worker reads the signals its instance sees before it runs the job.
fn claim_context(token: &str) -> Vec<String> {
    match Name::parse(token) {
        Some(Name::Job {
            workflow, instance, ..
        }) => Level::Instance(workflow, instance).visible_signal_prefixes(),
        _ => Vec::new(),
    }
}

/// Signals, schedules and definitions are the control plane: `Some`, with their workflow.
fn control_of(token: &str) -> Option<Option<String>> {
    match Name::parse(token)? {
        Name::Signal { level, .. } => Some(level.workflow().map(|w| w.to_string())),
        Name::Schedule { workflow } | Name::Definition { workflow } => {
            Some(Some(workflow.to_string()))
        }
        _ => None,
    }
}

/// A job's log is keyed `/workflow/W/I/JOB` and sent by the owner of its runnable token.
fn job_log(workflow: &str, instance: &str, job: &str) -> Result<JobLog, MasterError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| MasterError::input(format!("{what}: {e}"));
    let w: WorkflowName = workflow.parse().map_err(|e| bad("workflow", &e))?;
    let i: InstanceId = instance.parse().map_err(|e| bad("instance", &e))?;
    let j: JobName = job.parse().map_err(|e| bad("job", &e))?;
    Ok(JobLog {
        job_token: name::job_token(&w, &i, JobState::Runnable, &j),
        key: name::job_log_key(&w, &i, &j),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_and_wide_signals_need_the_operator() {
        let needs = naming().needs_operator;
        assert!(!needs("/workflow/wf/1/job/runnable/a"));
        assert!(!needs("/workflow/wf/1/__SIGNAL__/ABORT"));
        assert!(needs("/workflow/__SIGNAL__/EXIT"));
        assert!(needs("/workflow/wf/__SIGNAL__/DRAIN"));
        assert!(needs("/definition/workflow/wf"));
    }

    #[test]
    fn control_writes_name_their_workflow() {
        let of = naming().control_of;
        assert_eq!(of("/workflow/wf/1/job/runnable/a"), None);
        assert_eq!(of("/workflow/__SIGNAL__/EXIT"), Some(None));
        assert_eq!(of("/schedule/workflow/wf"), Some(Some("wf".into())));
        assert_eq!(of("/definition/workflow/wf"), Some(Some("wf".into())));
    }

    #[test]
    fn a_jobs_claim_context_is_the_signals_its_instance_sees() {
        let of = naming().claim_context;
        assert_eq!(
            of("/workflow/wf/1/job/runnable/a"),
            [
                "/workflow/__SIGNAL__/",
                "/workflow/wf/__SIGNAL__/",
                "/workflow/wf/1/__SIGNAL__/"
            ]
        );
        assert!(of("/schedule/workflow/wf").is_empty());
    }

    #[test]
    fn a_job_log_names_a_real_job() {
        let log = (naming().job_log)("w", "1", "j").unwrap();
        assert_eq!(log.key, "/workflow/w/1/j");
        assert_eq!(log.job_token, "/workflow/w/1/job/runnable/j");
        for (w, i, j, says) in [
            ("../etc", "1", "j", "workflow"),
            ("w", "a b", "j", "instance"),
            ("w", "1", "", "job"),
        ] {
            let e = (naming().job_log)(w, i, j).unwrap_err().to_string();
            assert!(e.contains(says), "{says}: {e}");
        }
    }

    #[test]
    fn archived_tokens_group_by_instance() {
        let group = naming().archive_group;
        assert_eq!(group("/workflow/w/1/job/waiting/a"), "/workflow/w/1/");
        assert_eq!(group("/workflow/w/1/__SIGNAL__/ARCHIVE"), "/workflow/w/1/");
    }
}
