//! Where a worker writes an execution's logs: `<logs>/<workflow>/<instance>/<job>.<start>.<kind>`
//! (an attempt that starts in the same second as an earlier one gets its execution number
//! too, so logs never mix), and Pinball's own notes about an execution, the pinlog.

use std::path::{Path, PathBuf};

use crate::token::name::{InstanceId, JobName, WorkflowName};
use crate::workflow::job::ExecutionRecord;

/// The log folder of one instance.
pub fn instance_dir(root: &Path, w: &WorkflowName, i: &InstanceId) -> PathBuf {
    root.join(w.as_str()).join(i.as_str())
}

/// Names the stdout and stderr logs of execution `n` of `job` in `record.logs`.
pub fn assign(dir: &Path, job: &JobName, n: usize, record: &mut ExecutionRecord) {
    let mut stem = format!("{job}.{}", record.start_time as i64);
    if dir.join(format!("{stem}.stdout")).exists() {
        stem = format!("{stem}.{n}");
    }
    for kind in ["stdout", "stderr"] {
        record.logs.insert(
            kind.into(),
            dir.join(format!("{stem}.{kind}")).display().to_string(),
        );
    }
}

/// Appends a line to the execution's pinlog, naming it in `record.logs` if it is new.
pub fn pinlog(dir: &Path, job: &JobName, record: &mut ExecutionRecord, message: &str) {
    let path = record
        .logs
        .entry("pinlog".into())
        .or_insert_with(|| {
            dir.join(format!("{job}.{}.pinlog", record.start_time as i64))
                .display()
                .to_string()
        })
        .clone();
    let written = std::fs::create_dir_all(dir).and_then(|()| {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?
            .write_all(format!("{message}\n").as_bytes())
    });
    if let Err(e) = written {
        tracing::warn!(path, error = %e, "cannot write the pinlog");
    }
}
