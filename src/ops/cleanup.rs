//! `cleanup -a DAYS`: deletes the archived tokens and log folders of instances that ended more
//! than DAYS days ago (the original spared ABORTED instances forever; they go too).

use std::collections::BTreeMap;

use super::{Done, Ops, OpsError};
use crate::token::name::{self, InstanceId, Level, Name, WorkflowName};
use crate::workflow::instance::JobToken;
use crate::workflow::signal::Signal;

/// The youngest age `cleanup` accepts.
pub const MIN_CLEANUP_DAYS: u32 = 7;

impl Ops<'_> {
    pub async fn cleanup(&self, age_days: u32) -> Result<Done, OpsError> {
        if age_days < MIN_CLEANUP_DAYS {
            return Err(OpsError::Input(
                "age of instances to remove must be at least 7 days".into(),
            ));
        }
        let store = self.store()?;
        let master = &self.settings.master_name;
        let archived = self.archived(name::WORKFLOW_PREFIX).await?;
        let cutoff = (crate::clock::now() - i64::from(age_days) * 86_400) as f64;
        // Each archived instance's end: its latest job end, or its ABORT time.
        let mut ends: BTreeMap<(WorkflowName, InstanceId), f64> = BTreeMap::new();
        for t in &archived {
            let (w, i, end) = match Name::parse(&t.name) {
                Some(Name::Job {
                    workflow, instance, ..
                }) => {
                    let end = JobToken::parse(t.clone()).ok().and_then(|jt| {
                        jt.job
                            .history
                            .iter()
                            .filter_map(|r| r.end_time)
                            .reduce(f64::max)
                    });
                    (workflow, instance, end.unwrap_or(0.0))
                }
                Some(Name::Signal {
                    level: Level::Instance(workflow, instance),
                    ..
                }) => {
                    let ts = Signal::from_token(t).and_then(|s| s.attributes.timestamp);
                    (workflow, instance, ts.unwrap_or(0.0))
                }
                _ => continue,
            };
            let slot = ends.entry((w, i)).or_insert(0.0);
            *slot = slot.max(end);
        }
        let old: Vec<(WorkflowName, InstanceId)> = ends
            .into_iter()
            .filter(|(_, end)| *end < cutoff)
            .map(|(k, _)| k)
            .collect();
        if old.is_empty() {
            return Ok(Done::say("no tokens need to be cleaned up\n"));
        }
        let (mut tokens, mut dirs) = (0, 0);
        for (w, i) in &old {
            tokens += store
                .delete_archived(master, &name::instance_prefix(w, i))
                .await?;
            let dir = self.settings.logs_dir.join(w.as_str()).join(i.as_str());
            if dir.exists() && std::fs::remove_dir_all(&dir).is_ok() {
                dirs += 1;
            }
        }
        Ok(Done::say(format!(
            "removed {tokens} token(s) and {dirs} directory(ies)\n"
        )))
    }
}
