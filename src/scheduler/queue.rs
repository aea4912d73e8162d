//! The queue loop of the scheduler process: it starts queued runs (`workflow::queue`) as their
//! workflow's `max_running_instances` leaves room. It long-polls a claim on the queue with a
//! short lease: a run queued now is claimable at once, and one the limit still holds back
//! becomes claimable again when its lease lapses, so the loop looks again each [`LOOK_SEC`]
//! while runs wait, and not at all when none do. A run starts in ONE version-checked write
//! that inserts its tokens and deletes its queued token: it starts once, or is cancelled
//! (`util stop` deletes the token), never both.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::master::MasterClient;
use crate::parser::Graph;
use crate::token::name::{self, InstanceId, QUEUE_PREFIX, WorkflowName};
use crate::token::*;
use crate::workflow::definition;
use crate::workflow::instance::instance_id_after;
use crate::workflow::queue::{self, QueuedRun};
use crate::workflow::run_info::run_tokens;

pub struct Queuer {
    pub client: Arc<dyn MasterClient>,
    /// The owner its claims are made in.
    pub name: String,
    /// The longest a claim waits before the loop looks again (shutdown).
    pub poll: Duration,
    /// `max_running_instances` of a workflow whose schedule names none.
    pub default_max_running: u32,
}

/// A claim's lease: how soon a queued run the limit held back is looked at again.
pub const LOOK_SEC: u64 = 1;
/// Queued runs claimed at once.
const CLAIM_AT_ONCE: u32 = 256;
/// Writes tried per run before it is left to its lease (instance ids taken meanwhile).
const TRIES: usize = 8;

impl Queuer {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(owner = %self.name, "queue loop started");
        while !*shutdown.borrow() {
            let ask = super::claim::Ask {
                owner: &self.name,
                prefix: QUEUE_PREFIX,
                lease_sec: LOOK_SEC,
                max: CLAIM_AT_ONCE,
                wait: self.poll,
            };
            let Some(tokens) = super::claim::claim(self.client.as_ref(), ask, &mut shutdown).await
            else {
                break;
            };
            let mut by_workflow: BTreeMap<WorkflowName, Vec<Token>> = BTreeMap::new();
            for t in tokens {
                match name::queued_of(&t.name) {
                    Some((w, _)) => by_workflow.entry(w).or_default().push(t),
                    None => tracing::warn!(token = %t.name, "not a queued run's name; left alone"),
                }
            }
            for (w, tokens) in by_workflow {
                if let Err(e) = self.start_queued(&w, tokens).await {
                    tracing::warn!(workflow = %w, error = %e, "starting queued runs failed; they are looked at again");
                }
            }
        }
        tracing::info!(owner = %self.name, "queue loop stopped");
    }

    /// Starts the oldest of `tokens`, queued runs of `w`, that the run limit has room for.
    async fn start_queued(&self, w: &WorkflowName, tokens: Vec<Token>) -> Result<(), MasterError> {
        let c = self.client.as_ref();
        let def = match definition::read(c, w).await? {
            Some(def) if definition::retired(c, w).await?.is_none() => def,
            _ => return self.drop_all(w, tokens, "it is no longer defined").await,
        };
        let room = queue::room(c, w, &def, self.default_max_running).await?;
        let graph = def.graph();
        for (i, token) in queue::oldest_first(tokens).into_iter().take(room.left()) {
            match QueuedRun::from_token(&token) {
                Some(q) => self.start_one(w, &i, &token, &q, &graph).await?,
                None => {
                    self.drop_all(w, vec![token], "its token is unreadable")
                        .await?
                }
            }
        }
        Ok(())
    }

    /// Starts queued run `i` of `w` under its id (a later one if an instance took it), in one
    /// write with the deletion of its token; nothing when it was cancelled meanwhile.
    async fn start_one(
        &self,
        w: &WorkflowName,
        i: &InstanceId,
        token: &Token,
        q: &QueuedRun,
        graph: &Graph,
    ) -> Result<(), MasterError> {
        let c = self.client.as_ref();
        let mut id = i.clone();
        for _ in 0..TRIES {
            let req = ModifyRequest {
                updates: run_tokens(w, &id, graph, &q.run),
                deletes: vec![token.clone()],
                ..Default::default()
            };
            match c.modify(req).await {
                Ok(_) => {
                    metrics::counter!(crate::metrics::QUEUED_RUNS_ENDED, "outcome" => "started")
                        .increment(1);
                    let waited_sec = crate::clock::now() - q.queued_at;
                    tracing::info!(workflow = %w, instance = %id, waited_sec, "started a queued run");
                    return Ok(());
                }
                Err(MasterError::VersionConflict(_)) => match c.get(&token.name).await? {
                    // Still ours as claimed: an instance holds the id already.
                    Some(t) if t.version == token.version => {
                        id = instance_id_after(fastrand::i64(1..16));
                        tracing::warn!(workflow = %w, queued = %i, instance = %id, "the queued run's instance id is taken; it starts under another");
                    }
                    // Cancelled, or claimed again after its lease: not ours to start.
                    _ => return Ok(()),
                },
                Err(e) => return Err(e),
            }
        }
        Err(MasterError::Unavailable(format!(
            "queued run {i} of workflow {w} found its instance ids taken {TRIES} times"
        )))
    }

    /// Deletes queued runs that can never start, saying why.
    async fn drop_all(
        &self,
        w: &WorkflowName,
        tokens: Vec<Token>,
        why: &str,
    ) -> Result<(), MasterError> {
        let n = tokens.len();
        self.client.modify(ModifyRequest::delete(tokens)).await?;
        metrics::counter!(crate::metrics::QUEUED_RUNS_ENDED, "outcome" => "dropped")
            .increment(n as u64);
        tracing::error!(workflow = %w, runs = n, "dropped queued runs: {why}");
        Ok(())
    }
}
