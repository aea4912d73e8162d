//! `pinball pool` (CONTRACT §4.4): pools with slots, as tokens in the master
//! (`/pool/<name>`, operator-only, audited). The master grants a claim of a job in a pool only
//! while the slots its running jobs hold, plus the job's `pool_slots`, fit; this module writes
//! and lists the pools, and counts their use from the runnable jobs.

use std::collections::BTreeMap;

use super::audit::{Target, record_done};
use super::{Done, Ops, OpsError};
use crate::token::name::{self, ALL_RUNNABLE_JOBS, POOL_PREFIX};
use crate::token::{MasterError, ModifyRequest, PoolDef, Token, is_pool_name, pool_use};

/// The most slots a pool may have.
pub const MAX_SLOTS: u32 = 100_000;

/// A pool and its use now.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct PoolRow {
    pub pool: String,
    /// `null`: unlimited.
    pub slots: Option<u32>,
    /// Slots held by running jobs (their claims' leases).
    pub used: u64,
    /// Runnable jobs no worker holds yet.
    pub waiting: usize,
    pub description: String,
    /// The running jobs that hold its slots (at most [`MAX_HOLDERS`] listed).
    pub held_by: Vec<PoolHolder>,
}

/// A running job holding slots of a pool.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct PoolHolder {
    pub workflow: String,
    pub instance: String,
    pub job: String,
    pub slots: u32,
}

/// The most holders a pool's row lists.
pub const MAX_HOLDERS: usize = 100;

/// A pool's use: the slots held, the jobs waiting, and who holds the slots.
#[derive(Default)]
struct Use {
    used: u64,
    waiting: usize,
    held_by: Vec<PoolHolder>,
}

/// Counts each pool's use from the runnable jobs: the slots of those held by a live lease,
/// and those waiting.
fn usage(runnable: &[Token], now: i64) -> BTreeMap<String, Use> {
    let mut by_pool: BTreeMap<String, Use> = BTreeMap::new();
    for t in runnable {
        let (pool, slots) = pool_use(t.data.as_deref());
        let held = t.owner.as_deref().is_some_and(|o| !o.is_empty())
            && t.expiration_time.is_some_and(|e| e > now);
        let entry = by_pool.entry(pool.into()).or_default();
        if !held {
            entry.waiting += 1;
            continue;
        }
        entry.used += u64::from(slots);
        if entry.held_by.len() < MAX_HOLDERS
            && let Some(name::Name::Job {
                workflow,
                instance,
                job,
                ..
            }) = name::Name::parse(&t.name)
        {
            entry.held_by.push(PoolHolder {
                workflow: workflow.to_string(),
                instance: instance.to_string(),
                job: job.to_string(),
                slots,
            });
        }
    }
    by_pool
}

/// The pool rows of `pools` (their tokens) with the use `runnable` shows; pools that jobs name
/// without a token are listed as unlimited.
fn rows(pools: &[Token], runnable: &[Token], now: i64) -> Vec<PoolRow> {
    let mut use_of = usage(runnable, now);
    let mut out: Vec<PoolRow> = pools
        .iter()
        .filter_map(|t| {
            let pool = t.name.strip_prefix(POOL_PREFIX)?.to_owned();
            let def: PoolDef = serde_json::from_str(t.data.as_deref()?).ok()?;
            let u = use_of.remove(&pool).unwrap_or_default();
            Some(PoolRow {
                pool,
                slots: def.slots,
                used: u.used,
                waiting: u.waiting,
                description: def.description,
                held_by: u.held_by,
            })
        })
        .collect();
    out.extend(use_of.into_iter().map(|(pool, u)| PoolRow {
        pool,
        slots: None,
        used: u.used,
        waiting: u.waiting,
        description: String::new(),
        held_by: u.held_by,
    }));
    out.sort_by(|a, b| a.pool.cmp(&b.pool));
    out
}

impl Ops<'_> {
    /// `pool set NAME --slots N [--description T]`: creates or changes a pool; audited.
    pub async fn set_pool(
        &self,
        pool: &str,
        slots: Option<u32>,
        description: Option<String>,
        actor: &str,
    ) -> Result<Done, OpsError> {
        check_name(pool)?;
        if slots.is_some_and(|n| n > MAX_SLOTS) {
            return Err(OpsError::Input(format!(
                "--slots must be at most {MAX_SLOTS}"
            )));
        }
        if description.as_ref().is_some_and(|d| d.len() > 1024) {
            return Err(OpsError::Input(
                "--description must be at most 1024 bytes".into(),
            ));
        }
        let result = self.write_pool(pool, slots, description).await;
        self.audited("pool set", actor, result).await
    }

    async fn write_pool(
        &self,
        pool: &str,
        slots: Option<u32>,
        description: Option<String>,
    ) -> Result<Done, OpsError> {
        let c = self.client();
        let name = name::pool_token(pool);
        for _ in 0..8 {
            let current = c.get(&name).await?;
            let old: PoolDef = current
                .as_ref()
                .and_then(|t| serde_json::from_str(t.data.as_deref()?).ok())
                .unwrap_or_default();
            let def = PoolDef {
                slots,
                description: description.clone().unwrap_or(old.description),
            };
            let token = Token {
                version: current.as_ref().and_then(|t| t.version),
                ..Token::new(
                    &name,
                    Some(serde_json::to_string(&def).expect("serialises")),
                )
            };
            match c.modify(ModifyRequest::update(vec![token])).await {
                Ok(_) => {
                    tracing::info!(pool, slots = ?slots, "pool set");
                    let limit = slots.map_or("unlimited".to_owned(), |n| format!("{n} slots"));
                    return Ok(Done::say(format!("pool {pool}: {limit}\n")));
                }
                Err(MasterError::VersionConflict(_) | MasterError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(OpsError::Failed(format!(
            "pool {pool} changed under every try; try again"
        )))
    }

    /// `pool rm NAME`: jobs in it run unlimited again; audited.
    pub async fn remove_pool(&self, pool: &str, actor: &str) -> Result<Done, OpsError> {
        check_name(pool)?;
        let c = self.client();
        let result = async {
            match c.get(&name::pool_token(pool)).await? {
                None => Ok(Done::refuse(format!("pool {pool} not found\n"))),
                Some(t) => {
                    c.modify(ModifyRequest::delete(vec![t])).await?;
                    tracing::info!(pool, "pool removed");
                    Ok(Done::say(format!(
                        "pool {pool} removed: its jobs run without a limit\n"
                    )))
                }
            }
        }
        .await;
        self.audited("pool rm", actor, result).await
    }

    /// Every pool (and every pool a runnable job names) with its use now.
    pub async fn pools(&self) -> Result<Vec<PoolRow>, OpsError> {
        let c = self.client();
        let pools = c.query_prefix(POOL_PREFIX).await?;
        let runnable = c.query_prefix(ALL_RUNNABLE_JOBS).await?;
        Ok(rows(&pools, &runnable, crate::clock::now()))
    }

    async fn audited(
        &self,
        command: &str,
        actor: &str,
        done: Result<Done, OpsError>,
    ) -> Result<Done, OpsError> {
        record_done(self.client(), actor, command, Target::default(), &done).await;
        done
    }
}

fn check_name(pool: &str) -> Result<(), OpsError> {
    if is_pool_name(pool) {
        Ok(())
    } else {
        Err(OpsError::Input(format!(
            "pool `{pool}` is not a pool name: letters, digits, _ and - only, at most 64"
        )))
    }
}
