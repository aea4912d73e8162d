//! Runs that wait for room (`util start --queue`, a trigger with `"queue": true`): a run that
//! its workflow's `max_running_instances` holds back is written as one token
//! `/queue/workflow/<wf>/<instance>` holding the run it will be, under the instance id it will
//! have. The scheduler process starts the oldest as runs end (`scheduler::queue`), writing
//! the run's tokens and deleting the queued token in one version-checked commit, so a queued
//! run starts once or is cancelled (`util stop`), never both.

use serde::{Deserialize, Serialize};

use super::run_info::RunInfo;
use crate::master::MasterClient;
use crate::parser::WorkflowDef;
use crate::token::name::{self, InstanceId, WorkflowName};
use crate::token::{MasterError, Token};

/// The most runs one workflow may have queued: a start beyond it is refused.
pub const MAX_QUEUED: usize = 1000;

/// The data of a queued run's token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedRun {
    /// The run it starts as: its kind, params and logical time.
    pub run: RunInfo,
    /// When it was queued, seconds since the epoch.
    pub queued_at: i64,
}

impl QueuedRun {
    /// Its token, unowned: claimable by the scheduler at once.
    pub fn token(&self, w: &WorkflowName, i: &InstanceId) -> Token {
        let data = serde_json::to_string(self).expect("a queued run serialises");
        Token::new(name::queued_run(w, i), Some(data))
    }

    pub fn from_token(t: &Token) -> Option<QueuedRun> {
        serde_json::from_str(t.data.as_deref()?).ok()
    }
}

/// A workflow's run limit and its running instances, as every way of starting a run counts
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    pub running: usize,
    /// `None`: a workflow without a schedule has no run limit (as the original).
    pub limit: Option<usize>,
}

impl Room {
    /// How many more runs may start now.
    pub fn left(&self) -> usize {
        self.limit
            .map_or(usize::MAX, |l| l.saturating_sub(self.running))
    }

    /// The refusal of a start when no room is left (the original's words).
    pub fn full(&self, w: &WorkflowName) -> Option<String> {
        let limit = self.limit?;
        (self.running >= limit).then(|| {
            format!(
                "failed to start a new instance for workflow {w} due to too many instances running! ({} running, max_running_instances {limit})",
                self.running
            )
        })
    }
}

/// `w`'s room under its schedule's `max_running_instances` (`default_max` when the schedule
/// names none); the running instances are read only when there is a limit.
pub async fn room(
    client: &dyn MasterClient,
    w: &WorkflowName,
    def: &WorkflowDef,
    default_max: u32,
) -> Result<Room, MasterError> {
    let Some(schedule) = &def.schedule else {
        return Ok(Room {
            running: 0,
            limit: None,
        });
    };
    let limit = schedule.max_running_instances.unwrap_or(default_max) as usize;
    let running = super::settle::running_instances(client, w).await?.len();
    Ok(Room {
        running,
        limit: Some(limit),
    })
}

/// `w`'s queued runs, oldest first (ids are creation times in ms).
pub async fn waiting(
    client: &dyn MasterClient,
    w: &WorkflowName,
) -> Result<Vec<(InstanceId, Token)>, MasterError> {
    let tokens = client.query_prefix(&name::queue_prefix(w)).await?;
    Ok(oldest_first(tokens))
}

/// Queued tokens with their instance ids, oldest first; other names are left out.
pub fn oldest_first(tokens: Vec<Token>) -> Vec<(InstanceId, Token)> {
    let mut runs: Vec<(InstanceId, Token)> = tokens
        .into_iter()
        .filter_map(|t| name::queued_of(&t.name).map(|(_, i)| (i, t)))
        .collect();
    runs.sort_by_key(|(i, _)| (i.as_str().len(), i.as_str().to_owned()));
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_what_the_limit_leaves_and_says_why_when_full() {
        let w = WorkflowName::parse("w").unwrap();
        let free = Room {
            running: 1,
            limit: Some(3),
        };
        assert_eq!((free.left(), free.full(&w)), (2, None));
        let full = Room {
            running: 3,
            limit: Some(3),
        };
        assert_eq!(full.left(), 0);
        assert!(
            full.full(&w)
                .unwrap()
                .contains("(3 running, max_running_instances 3)")
        );
        let unlimited = Room {
            running: 50,
            limit: None,
        };
        assert_eq!((unlimited.left(), unlimited.full(&w)), (usize::MAX, None));
    }

    #[test]
    fn queued_runs_come_oldest_first_by_id() {
        let w = WorkflowName::parse("w").unwrap();
        let q = QueuedRun {
            run: RunInfo::default(),
            queued_at: 5,
        };
        let ids = ["1700000000100", "999", "1700000000020"];
        let mut tokens: Vec<Token> = ids
            .iter()
            .map(|i| q.token(&w, &InstanceId::parse(*i).unwrap()))
            .collect();
        tokens.push(Token::new("/queue/workflow/w", None));
        let order: Vec<String> = oldest_first(tokens)
            .into_iter()
            .map(|(i, t)| {
                assert_eq!(QueuedRun::from_token(&t), Some(q.clone()));
                i.to_string()
            })
            .collect();
        assert_eq!(order, ["999", "1700000000020", "1700000000100"]);
    }
}
