//! Where an instance stands, for the commands that must not rewrite history: a signal or a job
//! edit on an archived instance would bring it back to life in the master (it showed RUNNING,
//! then was archived again as ABORTED, its recorded FAILURE gone). Those commands refuse it and
//! say what to do instead: retry copies it into a new instance.

use super::{Ops, OpsError};
use crate::token::name::{self, InstanceId, WorkflowName};
use crate::workflow::settle;
use crate::workflow::status::Status;

/// An instance's place in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// In the master and running.
    Running,
    /// In the master, finished (waiting to be archived), with how it ended.
    Finished(Status),
    /// Only in the archive, with how it ended.
    Archived(Option<Status>),
    /// Nowhere.
    Missing,
}

impl Ops<'_> {
    pub async fn standing(&self, w: &WorkflowName, i: &InstanceId) -> Result<Standing, OpsError> {
        let prefix = name::instance_prefix(w, i);
        let live = self.client().query_prefix(&prefix).await?;
        if !live.is_empty() {
            return Ok(match settle::outcome(w, i, &live, false) {
                Some(status) => Standing::Finished(status),
                None => Standing::Running,
            });
        }
        let archived = self.archived(&prefix).await?;
        Ok(if archived.is_empty() {
            Standing::Missing
        } else {
            Standing::Archived(settle::outcome(w, i, &archived, true))
        })
    }

    /// The workflow's newest instance, live or archived (ids are start times: the greatest).
    pub async fn latest(&self, w: &WorkflowName) -> Result<Option<InstanceId>, OpsError> {
        let groups = self
            .client()
            .group(crate::token::GroupRequest {
                name_prefix: name::workflow_prefix(w),
                group_suffix: Some("/".into()),
            })
            .await?;
        let mut ids = name::instances_of_groups(w, groups.counts.keys());
        if let Ok(store) = self.store() {
            let (newest, _) = store
                .summaries(&self.settings.master_name, w.as_str(), 0, 1)
                .await?;
            ids.extend(
                newest
                    .iter()
                    .filter_map(|s| InstanceId::parse(&s.instance).ok()),
            );
        }
        let rank = |i: &InstanceId| (i.as_str().parse::<u64>().unwrap_or(0), i.to_string());
        Ok(ids.into_iter().max_by_key(rank))
    }

    /// Refuses `what` on an instance that is archived or does not exist; with `finished_too`,
    /// on a finished one as well (a signal would only change how its end is recorded).
    pub(super) async fn refuse_history(
        &self,
        what: &str,
        w: &WorkflowName,
        i: &InstanceId,
        finished_too: bool,
    ) -> Result<(), OpsError> {
        let retry =
            format!("to run its failed jobs again, retry it (pinball util -w {w} -i {i} retry)");
        match self.standing(w, i).await? {
            Standing::Running => Ok(()),
            Standing::Finished(_) if !finished_too => Ok(()),
            Standing::Finished(s) => Err(OpsError::Failed(format!(
                "{what} refused: workflow {w} instance {i} has finished ({}), and {what} would only rewrite how it ended; {retry}",
                s.as_str()
            ))),
            Standing::Archived(s) => Err(OpsError::Failed(format!(
                "{what} refused: workflow {w} instance {i} has finished ({}) and is archived, and its history cannot change; {retry}, which copies it into a new instance",
                s.map_or("ended", Status::as_str)
            ))),
            Standing::Missing => Err(OpsError::Failed(format!(
                "{what} refused: workflow {w} has no instance {i}"
            ))),
        }
    }
}
