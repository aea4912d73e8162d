//! Paths of the dashboard's pages, for the UI's own links and the emails' (which put the UI's
//! address in front).

use crate::token::name::{InstanceId, JobName, WorkflowName};

pub fn instances_href(w: &WorkflowName) -> String {
    format!("/instances/?workflow={w}")
}

pub fn jobs_href(w: &WorkflowName, i: &InstanceId) -> String {
    format!("/jobs/?workflow={w}&instance={i}")
}

pub fn job_href(w: &WorkflowName, i: &InstanceId, job: &JobName) -> String {
    format!("/executions/?workflow={w}&instance={i}&job={job}")
}

pub fn execution_href(w: &WorkflowName, i: &InstanceId, job: &JobName, n: usize) -> String {
    format!("/execution/?workflow={w}&instance={i}&job={job}&execution={n}")
}

pub fn file_href(w: &WorkflowName, i: &InstanceId, job: &JobName, n: usize, kind: &str) -> String {
    format!("/file/?workflow={w}&instance={i}&job={job}&execution={n}&log_type={kind}")
}
