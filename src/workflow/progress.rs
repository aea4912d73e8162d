//! How an instance moves forward, as atomic, version-checked writes through `MasterClient`:
//! a job's success (its result, the downstream events, and every downstream job that is now
//! satisfied made runnable, in ONE `/modify`), its retry or final failure, making waiting jobs
//! runnable, noticing that an instance is done, and archiving it.

use std::collections::BTreeMap;

use super::instance::JobToken;
use super::job::{Event, Job};
use super::signal::{Action, Attributes, Signal, Signals};
use super::status::{Status, instance_status};
use crate::clock::now_f64 as epoch_secs_f64;
use crate::master::{MasterClient, MasterError};
use crate::token::name::{self, JobState, Level, Name};
use crate::token::*;

/// Attempts at a commit that lost a race with another worker before giving up for now.
const MAX_RACES: usize = 20;

fn unique_event_name(creator: &str) -> String {
    let clean: String = creator
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}_{}", clean, fastrand::u64(..))
}

fn q(prefix: String) -> Query {
    Query {
        name_prefix: prefix,
        max_tokens: None,
    }
}

/// The instance-level ARCHIVE signal token to insert when none is visible.
fn archive_signal(workflow: &str, instance: &str) -> Token {
    let level = Level::Instance(workflow.into(), instance.into());
    let signal = Signal {
        action: Action::ARCHIVE,
        attributes: Attributes::default(),
    };
    Token::new(
        name::signal_token(&level, Action::ARCHIVE.as_str()),
        Some(signal.to_data()),
    )
}

/// Outcome of a completion commit.
#[derive(Debug, PartialEq)]
pub enum Committed {
    Done,
    /// A final failure, the instance's first: it marked the instance finishing.
    FirstFailure,
    /// Our token changed under us: another worker owns the job now. Nothing was written.
    LostLease,
}

/// Whether our job token is still the version we hold.
async fn still_ours(client: &dyn MasterClient, jt: &JobToken) -> Result<bool, MasterError> {
    let current = client.get(&jt.token.name).await?;
    Ok(current.is_some_and(|t| t.version == jt.token.version))
}

/// Commits a successful run: `jt` (runnable, owned, at its current version) with `job` (its
/// history updated). One `/modify`; retried on races with other workers.
pub async fn commit_success(
    client: &dyn MasterClient,
    jt: &JobToken,
    job: &Job,
    creator: &str,
) -> Result<Committed, MasterError> {
    let attributes = job
        .history
        .last()
        .map(|r| r.event_attributes())
        .unwrap_or_default();
    let our_event = Event {
        creator: creator.to_owned(),
        attributes,
    };
    for _ in 0..MAX_RACES {
        let (w, i) = (&jt.workflow, &jt.instance);
        // Read every downstream job token (either state) and the signals in one request.
        let mut queries: Vec<Query> = job
            .outputs
            .iter()
            .flat_map(|o| {
                [
                    q(name::job_token(w, i, JobState::Waiting, o)),
                    q(name::job_token(w, i, JobState::Runnable, o)),
                ]
            })
            .collect();
        queries.extend(
            Level::Instance(w.clone(), i.clone())
                .visible_levels()
                .iter()
                .map(|l| q(l.signal_prefix())),
        );
        let mut answer = client
            .query(QueryRequest { queries })
            .await?
            .tokens
            .into_iter();
        let mut downstream: BTreeMap<String, Option<JobToken>> = BTreeMap::new();
        for o in &job.outputs {
            let waiting = answer
                .next()
                .unwrap_or_default()
                .into_iter()
                .find(|t| t.name == name::job_token(w, i, JobState::Waiting, o));
            let runnable = answer
                .next()
                .unwrap_or_default()
                .into_iter()
                .find(|t| t.name == name::job_token(w, i, JobState::Runnable, o));
            let found = match (waiting, runnable) {
                (Some(t), None) => Some(JobToken::parse(t).map_err(MasterError::input)?),
                _ => None, // runnable (queued or running) or missing: just post the event
            };
            downstream.insert(o.clone(), found);
        }
        let signals = Signals::from_tokens(answer.flatten());

        // A downstream job with other inputs becomes runnable here only if each already holds
        // an event. Counting them (`/group`) moves no token data, so a sink with 500 inputs
        // costs each of its upstream completions one small answer, not 499 events.
        for found in downstream.values_mut() {
            let Some(d) = found else { continue };
            let others: Vec<&String> = d.job.inputs.iter().filter(|x| **x != job.name).collect();
            if others.is_empty() {
                continue;
            }
            let prefix = format!("/workflow/{w}/{i}/input/{}/", d.job.name);
            let counts = client
                .group(GroupRequest {
                    name_prefix: prefix.clone(),
                    group_suffix: Some("/".into()),
                })
                .await?
                .counts;
            if !others
                .iter()
                .all(|x| counts.contains_key(&format!("{prefix}{x}")))
            {
                *found = None; // just post our event
            }
        }
        // The events already waiting in the other inputs of each waiting downstream job.
        let input_queries: Vec<Query> = downstream
            .values()
            .flatten()
            .flat_map(|d| {
                d.job
                    .inputs
                    .iter()
                    .filter(|x| **x != job.name)
                    .map(|x| Query {
                        name_prefix: name::input_prefix(w, i, &d.job.name, x),
                        max_tokens: Some(1),
                    })
            })
            .collect();
        let mut inputs = if input_queries.is_empty() {
            Vec::new().into_iter()
        } else {
            client
                .query(QueryRequest {
                    queries: input_queries,
                })
                .await?
                .tokens
                .into_iter()
        };

        let mut req = ModifyRequest {
            updates: vec![jt.rewritten(JobState::Waiting, job)],
            deletes: vec![jt.token.clone()],
        };
        for (o, found) in &downstream {
            let Some(d) = found else {
                req.updates
                    .push(event_token(w, i, o, &job.name, &our_event));
                continue;
            };
            let mut consumed = Vec::new();
            let mut events = Vec::new();
            for x in &d.job.inputs {
                if *x == job.name {
                    events.push(our_event.clone());
                } else if let Some(e) = inputs.next().unwrap_or_default().into_iter().next() {
                    events.push(
                        e.data
                            .as_deref()
                            .and_then(|d| serde_json::from_str(d).ok())
                            .unwrap_or_default(),
                    );
                    consumed.push(e);
                }
            }
            if events.len() == d.job.inputs.len() {
                let mut next = d.job.clone();
                next.events = events;
                req.updates.push(d.rewritten(JobState::Runnable, &next));
                req.deletes.push(d.token.clone());
                req.deletes.extend(consumed);
            } else {
                // Not every input is satisfied yet. Two upstream jobs finishing at once may each
                // see the other's input empty; both then post events, and the `settle` each
                // runs after its commit makes the job runnable (one version-checked move wins).
                req.updates
                    .push(event_token(w, i, o, &job.name, &our_event));
            }
        }
        if job.outputs.is_empty() && signals.get(Action::ARCHIVE).is_none() {
            req.updates.push(archive_signal(w, i));
        }
        match client.modify(req).await {
            Ok(_) => return Ok(Committed::Done),
            Err(MasterError::VersionConflict(_) | MasterError::NotFound(_)) => {
                if !still_ours(client, jt).await? {
                    return Ok(Committed::LostLease);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(MasterError::Unavailable(format!(
        "gave up committing {} after {MAX_RACES} races",
        jt.token.name
    )))
}

fn event_token(w: &str, i: &str, job: &str, input: &str, event: &Event) -> Token {
    let data = serde_json::to_string(event).expect("events serialize");
    Token::new(
        name::event_token(w, i, job, input, &unique_event_name(&event.creator)),
        Some(data),
    )
}

/// Commits a failed run: in place for a retry (after `retry_delay_sec`, keeping the triggering
/// events), or back to waiting with the instance marked finishing.
pub async fn commit_failure(
    client: &dyn MasterClient,
    jt: &JobToken,
    job: &Job,
    owner: &str,
    retry: bool,
) -> Result<Committed, MasterError> {
    let mut req = ModifyRequest::default();
    if retry {
        let mut next = job.clone();
        next.events = job
            .history
            .last()
            .map(|r| r.events.clone())
            .unwrap_or_default();
        let mut token = jt.rewritten(JobState::Runnable, &next);
        if job.retry_delay_sec > 0 {
            token.owner = Some(owner.to_owned());
            token.expiration_time = Some(crate::clock::now() + job.retry_delay_sec as i64);
        }
        req.updates.push(token);
    } else {
        req.updates.push(jt.rewritten(JobState::Waiting, job));
        req.deletes.push(jt.token.clone());
        let signals = Signals::read(
            client,
            &Level::Instance(jt.workflow.clone(), jt.instance.clone()),
        )
        .await?;
        if signals.get(Action::ARCHIVE).is_none() {
            req.updates.push(archive_signal(&jt.workflow, &jt.instance));
        }
    }
    let first = req
        .updates
        .iter()
        .any(|t| t.name.ends_with("__SIGNAL__/ARCHIVE"));
    match client.modify(req).await {
        Ok(_) if first => Ok(Committed::FirstFailure),
        Ok(_) => Ok(Committed::Done),
        Err(MasterError::VersionConflict(_) | MasterError::NotFound(_))
            if !still_ours(client, jt).await? =>
        {
            Ok(Committed::LostLease)
        }
        Err(e) => Err(e),
    }
}

/// Every token of one instance, by kind.
#[derive(Debug, Default)]
pub struct InstanceTokens {
    pub all: Vec<Token>,
    pub waiting: Vec<JobToken>,
    pub runnable: Vec<Token>,
    pub events: BTreeMap<(String, String), Vec<Token>>,
}

pub async fn read_instance(
    client: &dyn MasterClient,
    w: &str,
    i: &str,
) -> Result<InstanceTokens, MasterError> {
    let all = client.query_prefix(&name::instance_prefix(w, i)).await?;
    let mut it = InstanceTokens::default();
    for t in &all {
        match Name::parse(&t.name) {
            Some(Name::Job {
                state: JobState::Waiting,
                ..
            }) => {
                if let Ok(jt) = JobToken::parse(t.clone()) {
                    it.waiting.push(jt);
                }
            }
            Some(Name::Job {
                state: JobState::Runnable,
                ..
            }) => it.runnable.push(t.clone()),
            Some(Name::Event { job, input, .. }) => {
                it.events.entry((job, input)).or_default().push(t.clone())
            }
            _ => {}
        }
    }
    it.all = all;
    Ok(it)
}

/// Makes runnable every waiting job of the instance whose inputs all hold an event (tokens
/// written by other tools, poison, retries). Returns how many it moved.
pub async fn make_runnable(
    client: &dyn MasterClient,
    w: &str,
    i: &str,
    tokens: &InstanceTokens,
) -> Result<usize, MasterError> {
    let mut moved = 0;
    for jt in tokens.waiting.iter().filter(|jt| satisfiable(jt, tokens)) {
        let picks: Option<Vec<&Token>> = jt
            .job
            .inputs
            .iter()
            .map(|x| {
                tokens
                    .events
                    .get(&(jt.job.name.clone(), x.clone()))
                    .and_then(|v| v.first())
            })
            .collect();
        let Some(picks) = picks else { continue };
        let mut next = jt.job.clone();
        next.events = picks
            .iter()
            .filter_map(|e| {
                e.data
                    .as_deref()
                    .and_then(|d| serde_json::from_str::<Event>(d).ok())
            })
            .collect();
        let mut req = ModifyRequest {
            updates: vec![jt.rewritten(JobState::Runnable, &next)],
            deletes: vec![jt.token.clone()],
        };
        req.deletes.extend(picks.into_iter().cloned());
        match client.modify(req).await {
            Ok(_) => moved += 1,
            Err(MasterError::VersionConflict(_) | MasterError::NotFound(_)) => {} // someone else did
            Err(e) => return Err(e),
        }
    }
    if moved > 0 {
        tracing::info!(
            workflow = w,
            instance = i,
            jobs = moved,
            "made waiting jobs runnable"
        );
    }
    Ok(moved)
}

/// Whether every input of a waiting job holds at least one event.
fn satisfiable(jt: &JobToken, tokens: &InstanceTokens) -> bool {
    jt.job.inputs.iter().all(|x| {
        tokens
            .events
            .contains_key(&(jt.job.name.clone(), x.clone()))
    })
}

/// Whether nothing more can happen in the instance: no job runnable or running, and no
/// waiting job with every input satisfied.
pub fn is_done(tokens: &InstanceTokens) -> bool {
    tokens.runnable.is_empty() && !tokens.waiting.iter().any(|jt| satisfiable(jt, tokens))
}

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
    /// `SUCCESS`, `FAILURE` or `ABORTED`.
    pub status: &'static str,
    pub start: Option<f64>,
    pub end: Option<f64>,
    /// Every job, by last start.
    pub jobs: Vec<JobEnd>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobEnd {
    pub name: String,
    pub last_start: Option<f64>,
    pub last_end: Option<f64>,
    /// Whether its last run succeeded; `None` when it never ran.
    pub succeeded: Option<bool>,
}

fn summarize(tokens: &InstanceTokens, aborted: bool) -> InstanceEnd {
    let parsed: Vec<JobToken> = tokens
        .all
        .iter()
        .filter_map(|t| JobToken::parse(t.clone()).ok())
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
            Status::ABORTED.as_str()
        } else {
            status.status.as_str()
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
    w: &str,
    i: &str,
    archive_delay_sec: u64,
) -> Result<Settled, MasterError> {
    // Cheap first: while a job is runnable or running (and no ABORT is set) there is nothing
    // to settle. This keeps a completion O(1) instead of re-reading a large instance.
    let quick = QueryRequest {
        queries: vec![
            Query {
                name_prefix: name::job_state_prefix(w, i, JobState::Runnable),
                max_tokens: Some(1),
            },
            Query {
                name_prefix: name::signal_token(
                    &Level::Instance(w.into(), i.into()),
                    Action::ABORT.as_str(),
                ),
                max_tokens: Some(1),
            },
        ],
    };
    let answer = client.query(quick).await?.tokens;
    if !answer[0].is_empty() && answer[1].is_empty() {
        return Ok(Settled::Running);
    }
    let tokens = read_instance(client, w, i).await?;
    if tokens.all.is_empty() {
        return Ok(Settled::Archived);
    }
    let level = Level::Instance(w.into(), i.into());
    let signals = Signals::read(client, &level).await?;
    let now = crate::clock::now();
    let instance_abort = name::signal_token(&level, Action::ABORT.as_str());
    let aborted_here = tokens.all.iter().any(|t| t.name == instance_abort);
    if !aborted_here && let Some(higher) = signals.get(Action::ABORT) {
        // An ABORT set for the workflow or everywhere ends this instance too (the original only
        // archived instance-level aborts, leaving the rest to finish as FAILURE). Recording it on
        // the instance makes the archive say ABORTED.
        let token = Token::new(instance_abort.clone(), Some(higher.to_data()));
        match client.modify(ModifyRequest::update(vec![token])).await {
            Ok(_) | Err(MasterError::VersionConflict(_)) => {}
            Err(e) => return Err(e),
        }
        return Ok(Settled::Running); // archived on the next settle, once nothing runs
    }
    if aborted_here {
        // Archive once nothing is possibly owned (a lease that ended within 10 s may still be
        // winding down on a skewed clock).
        if tokens
            .all
            .iter()
            .any(|t| t.owner.is_some() && t.expiration_time.is_some_and(|e| now - e < 10))
        {
            return Ok(Settled::Running);
        }
        archive_all(client, &tokens.all).await?;
        tracing::info!(workflow = w, instance = i, "archived aborted instance");
        return Ok(Settled::Aborted(summarize(&tokens, true)));
    }
    if signals.is_set(Action::DRAIN, 0) {
        return Ok(Settled::Waiting);
    }
    if make_runnable(client, w, i, &tokens).await? > 0 {
        return Ok(Settled::Running);
    }
    if !is_done(&tokens) {
        return Ok(Settled::Running);
    }
    let archive_name = name::signal_token(&level, Action::ARCHIVE.as_str());
    let Some(archive) = tokens.all.iter().find(|t| t.name == archive_name) else {
        return Ok(Settled::Waiting); // nothing ran to an end yet (or it was retried)
    };
    let signal: Signal = archive
        .data
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or(Signal {
            action: Action::ARCHIVE,
            attributes: Attributes::default(),
        });
    match signal.attributes.timestamp {
        None => {
            let at = epoch_secs_f64() + archive_delay_sec as f64;
            let stamped = Signal {
                action: Action::ARCHIVE,
                attributes: Attributes {
                    timestamp: Some(at),
                    generation: None,
                },
            };
            let update = Token {
                data: Some(stamped.to_data()),
                ..archive.clone()
            };
            match client.modify(ModifyRequest::update(vec![update])).await {
                Ok(_) => {
                    tracing::info!(
                        workflow = w,
                        instance = i,
                        archive_in_sec = archive_delay_sec,
                        "instance finished"
                    );
                    if archive_delay_sec == 0 {
                        let tokens = read_instance(client, w, i).await?;
                        archive_all(client, &tokens.all).await?;
                        tracing::info!(workflow = w, instance = i, "archived finished instance");
                    }
                    Ok(Settled::Finished(summarize(&tokens, false)))
                }
                Err(MasterError::VersionConflict(_) | MasterError::NotFound(_)) => {
                    Ok(Settled::Waiting)
                }
                Err(e) => Err(e),
            }
        }
        Some(at) if at <= epoch_secs_f64() => {
            archive_all(client, &tokens.all).await?;
            tracing::info!(workflow = w, instance = i, "archived finished instance");
            Ok(Settled::Archived)
        }
        Some(_) => Ok(Settled::Waiting),
    }
}

async fn archive_all(client: &dyn MasterClient, tokens: &[Token]) -> Result<(), MasterError> {
    match client
        .archive(ArchiveRequest {
            tokens: tokens.to_vec(),
        })
        .await
    {
        Ok(_) | Err(MasterError::VersionConflict(_) | MasterError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The live instances of `w` that have not finished (no stamped ARCHIVE signal): what
/// `max_running_instances` limits, for `util start` and the scheduler alike.
pub async fn running_instances(
    client: &dyn MasterClient,
    w: &str,
) -> Result<Vec<String>, MasterError> {
    let groups = client
        .group(GroupRequest {
            name_prefix: name::workflow_prefix(w),
            group_suffix: Some("/".into()),
        })
        .await?;
    let instances: Vec<String> = groups
        .counts
        .keys()
        .map(|k| k[name::workflow_prefix(w).len()..].to_owned())
        .filter(|i| i != name::SIGNAL_SEGMENT)
        .collect();
    if instances.is_empty() {
        return Ok(instances);
    }
    let queries = instances
        .iter()
        .map(|i| {
            q(name::signal_token(
                &Level::Instance(w.into(), i.clone()),
                Action::ARCHIVE.as_str(),
            ))
        })
        .collect();
    let answers = client.query(QueryRequest { queries }).await?.tokens;
    let finished = |tokens: &Vec<Token>| {
        tokens.iter().any(|t| {
            t.data
                .as_deref()
                .and_then(|d| serde_json::from_str::<Signal>(d).ok())
                .is_some_and(|s| s.attributes.timestamp.is_some())
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
pub fn outcome(w: &str, i: &str, tokens: &[Token], archived: bool) -> Option<&'static str> {
    let level = Level::Instance(w.into(), i.into());
    let abort = name::signal_token(&level, Action::ABORT.as_str());
    let archive = name::signal_token(&level, Action::ARCHIVE.as_str());
    let aborted = tokens.iter().any(|t| t.name == abort);
    let stamped = tokens.iter().any(|t| {
        t.name == archive
            && t.data
                .as_deref()
                .and_then(|d| serde_json::from_str::<Signal>(d).ok())
                .is_some_and(|s| s.attributes.timestamp.is_some())
    });
    let jobs: Vec<JobToken> = tokens
        .iter()
        .filter_map(|t| JobToken::parse(t.clone()).ok())
        .collect();
    let status = instance_status(&jobs, archived, aborted, stamped).status;
    (status != Status::RUNNING).then(|| status.as_str())
}
