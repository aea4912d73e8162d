//! What a success needs to know of its downstream jobs, through `MasterClient`: whether each
//! is waiting and has every other input's event (read while the run goes on, so its end is
//! one write), and, after a success that left a join waiting, whether it can go now.

use super::instance::JobToken;
use super::plan::Downstream;
use super::progress::{move_to_runnable, q};
use super::signal::{Action, Signals};
use crate::master::MasterClient;
use crate::token::name::{self, InstanceId, JobName, JobState, Level, Name, WorkflowName};
use crate::token::*;

/// What a success needs to know of the instance: each downstream job, and the signals.
pub type Prefetched = (Vec<Downstream>, Signals);

/// [`Prefetched`] for a success of job `from` (with `outputs`) of instance `w`/`i`.
pub async fn read_downstream(
    client: &dyn MasterClient,
    (w, i): (&WorkflowName, &InstanceId),
    from: &JobName,
    outputs: &[JobName],
) -> Result<Prefetched, MasterError> {
    // Every downstream job token (either state) and the signals, in one request.
    let mut queries: Vec<Query> = outputs
        .iter()
        .flat_map(|o| {
            [
                q(name::job_token(w, i, JobState::Waiting, o)),
                q(name::job_token(w, i, JobState::Runnable, o)),
            ]
        })
        .collect();
    let level = Level::Instance(w.clone(), i.clone());
    queries.extend(level.visible_signal_prefixes().into_iter().map(q));
    // A job with more than 500 downstream jobs needs more than one request.
    let mut answer = client.query_many(queries).await?.into_iter();
    let mut waiting: Vec<(JobName, Option<Token>)> = Vec::new();
    for o in outputs {
        let exact = |tokens: Vec<Token>, state| {
            let want = name::job_token(w, i, state, o);
            tokens.into_iter().find(|t| t.name == want)
        };
        let found = exact(answer.next().unwrap_or_default(), JobState::Waiting);
        let runnable = exact(answer.next().unwrap_or_default(), JobState::Runnable);
        let found = match (found, runnable) {
            // Runnable (queued or running) or missing: just post the event.
            (Some(t), None) => Some(t),
            _ => None,
        };
        waiting.push((o.clone(), found));
    }
    let signals = Signals::from_tokens(answer.flatten());
    let mut downstream = Vec::with_capacity(waiting.len());
    for (o, found) in waiting {
        let ready = match &found {
            Some(d) => ready_with(client, d, Some(from)).await?,
            None => None,
        };
        let pending = found.filter(|_| ready.is_none());
        downstream.push(Downstream {
            job: o,
            ready,
            pending,
        });
    }
    Ok((downstream, signals))
}

/// Inputs of a wide fan-in looked at first, one event each, before the inputs are counted.
const PROBES: usize = 8;

/// The inputs a job token's data names, read without the rest of the job: a sink's token is
/// mostly the names of its inputs, and each of their completions reads it.
#[derive(serde::Deserialize)]
struct InputsOnly<'a> {
    #[serde(borrow)]
    inputs: Vec<std::borrow::Cow<'a, str>>,
}

/// Waiting job `d` (its token) with the first event of every input but `from` (of every
/// input, without it), when each holds one; none when one does not (or `d` is unreadable).
/// A few inputs are looked at first (the last by name, which a claim in name order reaches
/// last, and others at random): in a wide fan-in most completions find one of them without
/// an event and stop there, each at the cost of a few one-token answers, having read only the
/// names of `d`'s inputs (they only name what to look at; what is written comes from `d` read
/// whole). Then counting them (`/group`) moves no token data, so a sink with 500 inputs costs
/// each of its upstream completions one small answer, not 499 events; `d` is read whole only
/// then.
async fn ready_with(
    client: &dyn MasterClient,
    d: &Token,
    from: Option<&JobName>,
) -> Result<Option<(JobToken, Vec<Token>)>, MasterError> {
    let Some(Name::Job {
        workflow,
        instance,
        job,
        ..
    }) = Name::parse(&d.name)
    else {
        return Ok(None);
    };
    let Some(Ok(names)) = d.data.as_deref().map(serde_json::from_str::<InputsOnly>) else {
        return Ok(None);
    };
    let prefix = name::inputs_prefix(&workflow, &instance, &job);
    let others: Vec<&str> = names
        .inputs
        .iter()
        .map(|x| x.as_ref())
        .filter(|x| Some(*x) != from.map(JobName::as_str))
        .collect();
    if others.len() > PROBES {
        let last = others.iter().copied().max().expect("others is not empty");
        let rest = others.iter().copied().filter(|x| *x != last);
        let mut probes = fastrand::choose_multiple(rest, PROBES - 1);
        probes.push(last);
        if first_events(client, &prefix, &probes).await?.is_none() {
            return Ok(None);
        }
    }
    if !others.is_empty() {
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
            return Ok(None);
        }
    }
    let Ok(d) = JobToken::parse(d.clone()) else {
        return Ok(None);
    };
    let others: Vec<&str> = d
        .job
        .inputs
        .iter()
        .filter(|x| Some(*x) != from)
        .map(JobName::as_str)
        .collect();
    Ok(first_events(client, &prefix, &others)
        .await?
        .map(|events| (d, events)))
}

/// The first event posted to each of `inputs` (names under a job's `prefix` of inputs), in
/// their order; none when one has none.
async fn first_events(
    client: &dyn MasterClient,
    prefix: &str,
    inputs: &[&str],
) -> Result<Option<Vec<Token>>, MasterError> {
    let queries = inputs
        .iter()
        .map(|x| Query {
            name_prefix: format!("{prefix}{x}/"),
            max_tokens: Some(1),
        })
        .collect();
    let answer = client.query_many(queries).await?;
    Ok(answer
        .into_iter()
        .map(|mut events| events.pop())
        .collect::<Option<Vec<Token>>>())
}

/// After a success that made no job runnable, with a downstream job that still missed
/// another input at the read: whether the instance runs on with nothing to settle, for a
/// job of it is runnable (the settle's first look, answered here) or this look made one so.
/// A look that fails is the settle's to make again.
pub(super) async fn nothing_to_settle(
    client: &dyn MasterClient,
    jt: &JobToken,
    downstream: &[Downstream],
) -> bool {
    if downstream.iter().all(|d| d.pending.is_none()) {
        return false;
    }
    match runs_on(client, &jt.workflow, &jt.instance).await {
        Ok(true) => true,
        Ok(false) => made_pending_runnable(client, downstream).await,
        Err(_) => false,
    }
}

/// After a success that made no job runnable, and none is: each downstream job that still
/// missed another input at the read (`pending`), made runnable now when every input holds an
/// event (this success's own is in the master by now). Of a fan-in's last inputs ending at
/// once, each read before the others' events were written; the last of them to be written
/// finds no other runnable, and its look, made after every one of those writes, sees them all:
/// the job does not wait for a settle (a read of the whole instance). Whether this look moved
/// one.
async fn made_pending_runnable(client: &dyn MasterClient, downstream: &[Downstream]) -> bool {
    for waiting in downstream.iter().filter_map(|d| d.pending.as_ref()) {
        let moved = match ready_with(client, waiting, None).await {
            Ok(Some((d, picks))) => move_to_runnable(client, &d, &picks)
                .await
                .map(|moved| moved.then_some(d)),
            Ok(None) => continue,
            Err(e) => Err(e),
        };
        match moved {
            Ok(Some(d)) => {
                tracing::info!(workflow = %d.workflow, instance = %d.instance, job = %d.job.name, "every input of a waiting job holds an event: made it runnable");
                return true;
            }
            // Moved by another's look, or changed since the read: the settle looks again.
            Ok(None) => continue,
            // The success is written: what is left is the settle's, which looks again.
            Err(e) => {
                tracing::warn!(job = %waiting.name, error = %e, "cannot look again at a job waiting on its inputs; the settle will");
                return false;
            }
        }
    }
    false
}

/// Whether instance `w`/`i` runs on with nothing to settle: a job is runnable or running, and
/// no ABORT is set for it.
pub(super) async fn runs_on(
    client: &dyn MasterClient,
    w: &WorkflowName,
    i: &InstanceId,
) -> Result<bool, MasterError> {
    let level = Level::Instance(w.clone(), i.clone());
    let quick = QueryRequest::new(vec![
        Query {
            name_prefix: name::job_state_prefix(w, i, JobState::Runnable),
            max_tokens: Some(1),
        },
        Query {
            name_prefix: name::signal_token(&level, Action::ABORT),
            max_tokens: Some(1),
        },
    ]);
    let answer = client.query(quick).await?.tokens;
    Ok(!answer[0].is_empty() && answer[1].is_empty())
}
