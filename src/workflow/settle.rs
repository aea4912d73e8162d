//! Settling an instance after progress, through `MasterClient`: make satisfied jobs runnable,
//! stamp the archive time when it is done, archive it when that time has come or when it was
//! aborted and nothing runs; and reading how instances ended. The decisions are `plan`'s.

use super::definition;
use super::downstream::runs_on;
use super::instance::JobToken;
use super::mail::Notifier;
use super::plan::{self, SettleStep};
use super::progress::{InstanceTokens, make_runnable, read_instance};
use super::signal::{Action, Signal, Signals};
use super::status::{Status, instance_status};
use crate::master::MasterClient;
use crate::token::name::{self, InstanceId, JobName, Level, WorkflowName};
use crate::token::*;

/// What `settle` did to an instance.
#[derive(Debug, PartialEq)]
pub enum Settled {
    Running,
    /// Done; this call stamped the archive time (the first worker to notice).
    Finished(InstanceEnd),
    /// Aborted, and this call archived it.
    Aborted(InstanceEnd),
    Archived,
    Waiting,
}

/// How an instance ended, for its notification.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceEnd {
    pub status: Status,
    pub start: Option<f64>,
    pub end: Option<f64>,
    /// Every job, by last start.
    pub jobs: Vec<JobEnd>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobEnd {
    pub name: JobName,
    pub last_start: Option<f64>,
    pub last_end: Option<f64>,
    /// Whether its last run succeeded; `None` when it never ran.
    pub succeeded: Option<bool>,
}

fn summarize(tokens: &InstanceTokens, aborted: bool) -> InstanceEnd {
    // The waiting jobs were read already; an ended instance has few runnable ones, if any.
    let parsed: Vec<JobToken> = tokens
        .waiting
        .iter()
        .cloned()
        .chain(
            tokens
                .runnable
                .iter()
                .filter_map(|t| JobToken::parse(t.clone()).ok()),
        )
        .collect();
    // A finished instance, still live: ABORTED is decided by the caller, which saw the signal.
    let status = instance_status(&parsed, false, false, true);
    let mut jobs: Vec<JobEnd> = parsed
        .iter()
        .map(|jt| {
            let last = jt.job.history.last();
            JobEnd {
                name: jt.job.name.clone(),
                last_start: last.map(|r| r.start_time),
                last_end: last.and_then(|r| r.end_time),
                succeeded: last.map(|r| r.succeeded()),
            }
        })
        .collect();
    jobs.sort_by(|a, b| {
        a.last_start
            .unwrap_or(f64::MAX)
            .total_cmp(&b.last_start.unwrap_or(f64::MAX))
    });
    InstanceEnd {
        status: if aborted {
            Status::ABORTED
        } else {
            status.status
        },
        start: status.start_time,
        end: jobs.iter().filter_map(|j| j.last_end).reduce(f64::max),
        jobs,
    }
}

/// Looks at one instance after progress: makes satisfied jobs runnable, stamps the archive time
/// when it is done, archives it when that time has come or when it was aborted and nothing runs.
pub async fn settle(
    client: &dyn MasterClient,
    w: &WorkflowName,
    i: &InstanceId,
    archive_delay_sec: u64,
    notifier: &Notifier,
) -> Result<Settled, MasterError> {
    let level = Level::Instance(w.clone(), i.clone());
    // Cheap first: this keeps a completion O(1) instead of re-reading a large instance.
    if runs_on(client, w, i).await? {
        return Ok(Settled::Running);
    }
    let tokens = read_instance(client, w, i).await?;
    if tokens.all.is_empty() {
        return Ok(Settled::Archived);
    }
    let signals = Signals::read(client, &level).await?;
    match plan::settle_step(&tokens.all, &level, &signals, crate::clock::now()) {
        SettleStep::RecordAbort(token) => {
            // An ABORT set for the workflow or everywhere ends this instance too (the original
            // only archived instance-level aborts, leaving the rest to finish as FAILURE).
            match client.modify(ModifyRequest::update(vec![token])).await {
                Ok(_) | Err(MasterError::VersionConflict(_)) => {}
                Err(e) => return Err(e),
            }
            return Ok(Settled::Running); // archived on the next settle, once nothing runs
        }
        SettleStep::AwaitLeases => return Ok(Settled::Running),
        SettleStep::ArchiveAborted => {
            let end = summarize(&tokens, true);
            let mut all = tokens.all;
            if !record_abort_end(client, &level, &mut all, &end, notifier).await? {
                return Ok(Settled::Running); // another worker is ending it
            }
            if let Some(mark) = backfill_mark(&all, i, false) {
                match client.modify(ModifyRequest::update(vec![mark])).await {
                    Ok(_) | Err(MasterError::VersionConflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            archive_all(client, &all).await?;
            tracing::info!(workflow = %w, instance = %i, "archived aborted instance");
            return Ok(Settled::Aborted(end));
        }
        SettleStep::Drained => return Ok(Settled::Waiting),
        SettleStep::MakeRunnable => {}
    }
    if make_runnable(client, w, i, &tokens).await? > 0 || !tokens.is_done() {
        return Ok(Settled::Running);
    }
    finish(client, &level, tokens, archive_delay_sec, notifier).await
}

/// Records an aborted instance's end email with a mark on its ABORT signal, in one
/// version-checked write, so of the workers about to archive it only one records the email.
/// `all` gets the marked signal. False when another worker marked it first.
async fn record_abort_end(
    client: &dyn MasterClient,
    level: &Level,
    all: &mut [Token],
    end: &InstanceEnd,
    notifier: &Notifier,
) -> Result<bool, MasterError> {
    let Level::Instance(w, i) = level else {
        unreachable!("settle works on instances")
    };
    let abort = name::signal_token(level, Action::ABORT);
    let Some(at) = all.iter().position(|t| t.name == abort) else {
        return Ok(true);
    };
    let Some(mut signal) = Signal::from_token(&all[at]) else {
        return Ok(true);
    };
    if signal.attributes.notified.is_some() {
        return Ok(true);
    }
    let now = crate::clock::now_f64();
    signal.attributes.notified = Some(now);
    let marked = Token {
        data: Some(signal.to_data()),
        ..all[at].clone()
    };
    let mut req = ModifyRequest::update(vec![marked]);
    req.updates
        .extend(end_records(client, w, i, all, end, notifier, now).await?);
    match client.modify(req).await {
        Ok(mut written) => {
            all[at] = written.updates.swap_remove(0);
            Ok(true)
        }
        Err(MasterError::VersionConflict(_) | MasterError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// What an instance's end records in the write that records the end: the end email (to
/// `notify_emails` and the addresses of the rules that hear of it) and the webhook notices of
/// those rules (CONTRACT §4.5).
async fn end_records(
    client: &dyn MasterClient,
    w: &WorkflowName,
    i: &InstanceId,
    all: &[Token],
    end: &InstanceEnd,
    n: &Notifier,
    now: f64,
) -> Result<Vec<Token>, MasterError> {
    use crate::parser::notify::NotifyEvent;
    let def = definition::read(client, w).await?.unwrap_or_default();
    let kind = match end.status {
        Status::SUCCESS => NotifyEvent::Success,
        _ => NotifyEvent::Failure,
    };
    let (hooks, addresses) = super::notices::targets(&def.notify, kind);
    let mut to = def.notify_emails;
    to.extend(
        addresses
            .into_iter()
            .filter(|a| !to.contains(a))
            .collect::<Vec<_>>(),
    );
    let at_ms = (now * 1000.0) as i64;
    let mut out: Vec<Token> = n.instance_end(w, i, end, at_ms, to).into_iter().collect();
    let run = all
        .iter()
        .filter_map(|t| super::instance::JobToken::parse(t.clone()).ok())
        .find_map(|jt| jt.job.run);
    let e = super::notices::Event {
        kind,
        workflow: w,
        instance: Some(i),
        job: None,
        status: end.status.as_str(),
        exit_code: None,
        attempt: None,
        execution: None,
        run: run.as_ref(),
        seq: at_ms,
        reason: None,
    };
    out.extend(super::notices::tokens(&e, &hooks, &n.ui_link));
    Ok(out)
}

/// Nothing is left to run: stamps the time the instance may be archived (the first worker to
/// notice), or archives it when that time has come.
async fn finish(
    client: &dyn MasterClient,
    level: &Level,
    tokens: InstanceTokens,
    archive_delay_sec: u64,
    notifier: &Notifier,
) -> Result<Settled, MasterError> {
    let Level::Instance(w, i) = level else {
        unreachable!("settle works on instances")
    };
    let archive_name = name::signal_token(level, Action::ARCHIVE);
    // Nothing can run any more. Without an ARCHIVE signal nothing recorded the end. A job
    // that never ran may still get its events from elsewhere (PINBALL_SPEC scenarios 15-16):
    // the instance waits for them. But when every job has run (a retry, a poison or a hand
    // edit left none that can run again), the instance ends now, so no run stays RUNNING for
    // ever.
    let archive = match tokens.all.iter().find(|t| t.name == archive_name) {
        Some(archive) => archive.clone(),
        None if plan::every_job_ran(&tokens.waiting) => plan::archive_signal(w, i),
        None => return Ok(Settled::Waiting),
    };
    let now = crate::clock::now_f64();
    let Some(stamped) = plan::stamp_archive(&archive, now + archive_delay_sec as f64) else {
        let due = super::signal::Signal::from_token(&archive)
            .and_then(|s| s.attributes.timestamp)
            .is_some_and(|at| at <= now);
        if !due {
            return Ok(Settled::Waiting);
        }
        archive_all(client, &tokens.all).await?;
        tracing::info!(workflow = %w, instance = %i, "archived finished instance");
        return Ok(Settled::Archived);
    };
    // The end email goes in the stamp's write: only the worker whose stamp lands records it.
    let end = summarize(&tokens, false);
    let mut req = ModifyRequest::update(vec![stamped]);
    // A backfill's run: its end is marked in the same commit, which wakes the scheduler.
    req.updates
        .extend(backfill_mark(&tokens.all, i, end.status == Status::SUCCESS));
    req.updates
        .extend(end_records(client, w, i, &tokens.all, &end, notifier, now).await?);
    match client.modify(req).await {
        Ok(_) => {
            tracing::info!(workflow = %w, instance = %i, archive_in_sec = archive_delay_sec, "instance finished");
            if archive_delay_sec == 0 {
                // What is live now is archived as it is: nothing in it needs reading.
                let now_live = client.query_prefix(&name::instance_prefix(w, i)).await?;
                archive_all(client, &now_live).await?;
                tracing::info!(workflow = %w, instance = %i, "archived finished instance");
            }
            Ok(Settled::Finished(end))
        }
        Err(MasterError::VersionConflict(_) | MasterError::NotFound(_)) => Ok(Settled::Waiting),
        Err(e) => Err(e),
    }
}

/// The end mark of run `i`, when it is a date of a backfill.
fn backfill_mark(tokens: &[Token], i: &InstanceId, succeeded: bool) -> Option<Token> {
    let backfill = tokens
        .iter()
        .filter(|t| t.name.contains("/job/"))
        .find_map(|t| JobToken::parse(t.clone()).ok()?.job.run?.backfill)?;
    Some(super::backfill::EndMark::token(
        &backfill,
        i.as_str(),
        succeeded,
    ))
}

async fn archive_all(client: &dyn MasterClient, tokens: &[Token]) -> Result<(), MasterError> {
    let req = ArchiveRequest {
        tokens: tokens.to_vec(),
    };
    match client.archive(req).await {
        Ok(_) | Err(MasterError::VersionConflict(_) | MasterError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The live instances of `w` that have not finished (no stamped ARCHIVE signal): what
/// `max_running_instances` limits, for `util start` and the scheduler alike.
pub async fn running_instances(
    client: &dyn MasterClient,
    w: &WorkflowName,
) -> Result<Vec<InstanceId>, MasterError> {
    let groups = client
        .group(GroupRequest {
            name_prefix: name::workflow_prefix(w),
            group_suffix: Some("/".into()),
        })
        .await?;
    let instances = name::instances_of_groups(w, groups.counts.keys());
    if instances.is_empty() {
        return Ok(instances);
    }
    let queries = instances
        .iter()
        .map(|i| Query {
            name_prefix: name::signal_token(
                &Level::Instance(w.clone(), i.clone()),
                Action::ARCHIVE,
            ),
            max_tokens: None,
        })
        .collect();
    let answers = client.query_many(queries).await?;
    let finished = |tokens: &Vec<Token>| {
        tokens.iter().any(|t| {
            super::signal::Signal::from_token(t).is_some_and(|s| s.attributes.timestamp.is_some())
        })
    };
    Ok(instances
        .into_iter()
        .zip(answers.iter())
        .filter(|(_, a)| !finished(a))
        .map(|(i, _)| i)
        .collect())
}

/// How an instance ended, from its tokens (live or archived): `None` while it has not finished.
/// ABORTED when it carries an instance-level ABORT, FAILURE when a job's last run failed.
pub fn outcome(
    w: &WorkflowName,
    i: &InstanceId,
    tokens: &[Token],
    archived: bool,
) -> Option<Status> {
    let level = Level::Instance(w.clone(), i.clone());
    let abort = name::signal_token(&level, Action::ABORT);
    let archive = name::signal_token(&level, Action::ARCHIVE);
    let aborted = tokens.iter().any(|t| t.name == abort);
    let stamped = tokens.iter().any(|t| {
        t.name == archive
            && super::signal::Signal::from_token(t)
                .is_some_and(|s| s.attributes.timestamp.is_some())
    });
    let jobs: Vec<JobToken> = tokens
        .iter()
        .filter_map(|t| JobToken::parse(t.clone()).ok())
        .collect();
    let status = instance_status(&jobs, archived, aborted, stamped).status;
    (status != Status::RUNNING).then_some(status)
}
