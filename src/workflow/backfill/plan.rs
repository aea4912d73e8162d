//! Planning a backfill: its schedule, the fire times in its range, and what happens to each
//! date given the workflow's runs.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::{DateState, MAX_DATES, Reprocess};
use crate::schedule::Schedule;

/// A run that exists for the workflow, as the backfill's planning sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExistingRun {
    pub logical_time: i64,
    /// Its id's number: a larger one is newer.
    pub created: u64,
    pub finished: bool,
    pub succeeded: bool,
}

/// What happens to one date, and why (a dry run's line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub time: i64,
    pub state: DateState,
    pub why: &'static str,
}

/// The schedule whose fire times a backfill of `def` runs: `--every SPEC` (a recurrence like
/// `1D` counted from `from`, or a cron expression) in the workflow's time zone, else the
/// workflow's own schedule.
pub fn schedule_of(
    def: &crate::parser::WorkflowDef,
    every: Option<&str>,
    from: Timestamp,
) -> Result<Schedule, String> {
    let zone = def.schedule.as_ref().and_then(|s| s.timezone.clone());
    let spec = match every {
        Some(e) if e.contains(' ') => crate::schedule::ScheduleDef {
            cron: Some(e.to_owned()),
            timezone: zone,
            ..Default::default()
        },
        Some(e) => crate::schedule::ScheduleDef {
            recurrence: Some(e.to_owned()),
            start: Some(from.to_string()),
            timezone: zone,
            ..Default::default()
        },
        None => def.schedule.clone().ok_or_else(|| {
            "the workflow has no schedule: give its dates with --every (1D, 1H, or a cron like '0 2 * * *')".to_owned()
        })?,
    };
    Schedule::from_def(&spec).map_err(|e| format!("--every {}: {e}", every.unwrap_or_default()))
}

/// The fire times of `schedule` in `[from, to]`, at most [`MAX_DATES`].
pub fn fire_times(schedule: &Schedule, from: Timestamp, to: Timestamp) -> Result<Vec<i64>, String> {
    if to < from {
        return Err(format!("--to {to} is before --from {from}"));
    }
    let mut times = Vec::new();
    let mut t = from - jiff::SignedDuration::from_secs(1);
    while let Some(next) = schedule.next_after(t).filter(|n| *n <= to) {
        if times.len() == MAX_DATES {
            return Err(format!(
                "the range has more than {MAX_DATES} fire times; backfill it in parts"
            ));
        }
        times.push(next.as_second());
        t = next;
    }
    Ok(times)
}

/// What a backfill with `reprocess` does with each of `times`, given the workflow's runs.
pub fn decide(times: &[i64], runs: &[ExistingRun], reprocess: Reprocess) -> Vec<Decision> {
    let mut by_time: BTreeMap<i64, Vec<&ExistingRun>> = BTreeMap::new();
    for r in runs {
        by_time.entry(r.logical_time).or_default().push(r);
    }
    times
        .iter()
        .map(|&time| {
            let runs = by_time.get(&time).map(Vec::as_slice).unwrap_or_default();
            let newest = runs.iter().max_by_key(|r| r.created);
            let (state, why) = if runs.iter().any(|r| !r.finished) {
                (DateState::InProgress, DateState::InProgress.why())
            } else {
                match (newest, reprocess) {
                    (None, _) => (DateState::Pending, "no run yet"),
                    (Some(_), Reprocess::Missing) => (DateState::HasRun, DateState::HasRun.why()),
                    (Some(n), Reprocess::Failed) if n.succeeded => {
                        (DateState::Succeeded, DateState::Succeeded.why())
                    }
                    (Some(_), Reprocess::Failed) => (DateState::Pending, "its newest run failed"),
                    (Some(_), Reprocess::All) => (DateState::Pending, "--reprocess all"),
                }
            };
            Decision { time, state, why }
        })
        .collect()
}
