//! The rules a definition must meet beyond its shape (CONTRACT §4): the problem found names the
//! job where it has one; the caller adds the file and the workflow.

use std::collections::BTreeSet;

use super::def::{JobDef, WorkflowDef};
use super::graph::find_cycle;
use crate::token::name::JobName;

/// What is wrong with a definition.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Invalid {
    #[error("job {job}: {message}")]
    Job { job: JobName, message: String },
    #[error("{0}")]
    Workflow(String),
    #[error("{0}")]
    Schedule(#[from] crate::schedule::ScheduleError),
}

fn at(job: &JobName, message: impl Into<String>) -> Invalid {
    Invalid::Job {
        job: job.clone(),
        message: message.into(),
    }
}

/// The longest command that reaches `/bin/sh -c` as one argument: Linux takes at most 128 KiB
/// (MAX_ARG_STRLEN, its NUL included) in one argument, and the worker wraps the command in up
/// to 512 bytes of its own (the start gate, the cleanup banners).
pub const MAX_COMMAND_BYTES: usize = 128 * 1024 - 1 - 512;

/// Refuses a command (as substituted, placeholders become variable references) that the
/// operating system would not run.
fn check_length(name: &JobName, what: &str, template: &str) -> Result<(), Invalid> {
    let substituted = super::template::substitute(template, &Default::default())
        .map(|s| s.command.len())
        .unwrap_or(template.len());
    if substituted > MAX_COMMAND_BYTES {
        return Err(at(
            name,
            format!(
                "{what} is {substituted} bytes once its placeholders are filled in; the operating system runs at most {MAX_COMMAND_BYTES} bytes in one command: put the script in a file and run the file"
            ),
        ));
    }
    Ok(())
}

fn validate_job(name: &JobName, job: &JobDef) -> Result<(), Invalid> {
    if job.command.trim().is_empty() {
        return Err(at(name, "command is empty"));
    }
    super::template::check(&job.command).map_err(|e| at(name, format!("command: {e}")))?;
    check_length(name, "command", &job.command)?;
    if let Some(t) = &job.cleanup_template {
        super::template::check(t).map_err(|e| at(name, format!("cleanup_template: {e}")))?;
        check_length(name, "cleanup_template", t)?;
    }
    if let Some(p) = job
        .pool
        .as_deref()
        .filter(|p| !crate::token::is_pool_name(p))
    {
        return Err(at(
            name,
            format!("pool `{p}` is not a pool name: letters, digits, _ and - only, at most 64"),
        ));
    }
    if job.pool_slots.is_some_and(|k| !(1..=1000).contains(&k)) {
        return Err(at(name, "pool_slots must be between 1 and 1000"));
    }
    if job.max_attempts == Some(0) {
        return Err(at(name, "max_attempts must be at least 1"));
    }
    if job.priority.is_some_and(|p| !p.is_finite()) {
        return Err(at(name, "priority must be a finite number"));
    }
    if let (Some(w), Some(a)) = (job.warn_timeout_sec, job.abort_timeout_sec)
        && w >= a
    {
        return Err(at(
            name,
            format!("warn_timeout_sec {w} must be below abort_timeout_sec {a}"),
        ));
    }
    if job.condition && !job.depends_on.is_empty() {
        return Err(at(
            name,
            "a condition job polls an external condition and cannot depend on other jobs",
        ));
    }
    let mut seen = BTreeSet::new();
    for dep in &job.depends_on {
        if !seen.insert(dep) {
            return Err(at(name, format!("depends on {dep} twice")));
        }
        if dep == name {
            return Err(at(name, "depends on itself"));
        }
    }
    Ok(())
}

pub fn validate(def: &WorkflowDef) -> Result<(), Invalid> {
    if def.jobs.is_empty() {
        return Err(Invalid::Workflow("has no jobs".into()));
    }
    for (job, jd) in &def.jobs {
        validate_job(job, jd)?;
        if let Some(dep) = jd.depends_on.iter().find(|d| !def.jobs.contains_key(*d)) {
            return Err(at(job, format!("depends on unknown job {dep}")));
        }
    }
    if let Some(f) = &def.final_job {
        let final_job = JobName::final_job();
        if def.jobs.contains_key(&final_job) {
            return Err(Invalid::Workflow(format!(
                "job {final_job} already exists; it is the name of final_job"
            )));
        }
        if !f.depends_on.is_empty() {
            return Err(Invalid::Workflow(
                "final_job: depends on every leaf job by itself; remove depends_on".into(),
            ));
        }
        validate_job(&final_job, f)?;
    }
    if let Some(schedule) = &def.schedule {
        crate::schedule::Schedule::from_def(schedule)?;
    }
    super::params::check_declarations(&def.params, def.schedule.is_some())
        .map_err(|e| Invalid::Workflow(e.0))?;
    if let Some(cycle) = find_cycle(&def.jobs) {
        let members: Vec<&str> = cycle.iter().map(|j| j.as_str()).collect();
        return Err(at(
            &cycle[0],
            format!("is part of a cycle ({})", members.join(", ")),
        ));
    }
    // Mailboxes as SMTP will use them: `ops@example.com` or `Ops Team <ops@example.com>`,
    // never a line break (it would inject SMTP commands).
    if let Some(e) = def
        .notify_emails
        .iter()
        .find_map(|e| crate::email::parse_mailbox(e).err())
    {
        return Err(Invalid::Workflow(format!("notify_emails: {e}")));
    }
    super::notify::check(&def.notify, false).map_err(Invalid::Workflow)?;
    let zone = def.schedule.as_ref().and_then(|s| s.timezone.as_deref());
    super::deadline::check(def.deadline.as_ref(), def.max_duration_sec, zone)
        .map_err(Invalid::Workflow)?;
    for (job, jd) in &def.jobs {
        if let Some(e) = jd
            .emails
            .iter()
            .find_map(|e| crate::email::parse_mailbox(e).err())
        {
            return Err(at(job, format!("emails: {e}")));
        }
        super::notify::check(&jd.notify, true).map_err(|e| at(job, e))?;
    }
    Ok(())
}
