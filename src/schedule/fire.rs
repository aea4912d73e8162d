//! What the scheduler does with a claimed schedule token, as a pure function of the schedule,
//! the workflow's situation and an explicit `now`: start an instance (after aborting the
//! running ones), skip, delay, wait for fewer instances, or put the token back until it is
//! due. Missed occurrences collapse into one run and are counted, or, with `catchup`, run one
//! after the other. The scheduler loop reads, calls this, and writes.

use jiff::Timestamp;

use super::{Decision, OverrunPolicy, Schedule, ScheduleData, decide};

/// What the workflow looks like when a run is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Situation {
    /// Whether its definition is in the master.
    pub has_definition: bool,
    /// Instances that have not finished.
    pub running: usize,
    /// `max_running_instances` in force.
    pub limit: usize,
    /// Whether the latest finished instance failed (only DELAY_UNTIL_SUCCESS asks).
    pub last_failed: bool,
}

/// The scheduler's next step for one schedule token. `at` is when the token is claimable
/// again (its lease end); `data` is the schedule data to write back.
#[derive(Debug, Clone, PartialEq)]
pub enum Fire {
    /// Claimed before its time (clocks): put it back until then.
    NotYet { at: i64 },
    /// The schedule never runs again: leave it for the operator.
    Never,
    /// The workflow has no definition: this occurrence is missed.
    NoDefinition { data: ScheduleData, at: i64 },
    /// The policy waits (DELAY, DELAY_UNTIL_SUCCESS): look again at `at`.
    Delay { at: i64 },
    /// Starting would exceed the limit: look again at `at`; tell the owners on the first look.
    TooMany { at: i64, notify: bool },
    /// SKIP while one runs: the occurrence is dropped and counted.
    Skip { data: ScheduleData, at: i64 },
    /// Paused: nothing starts, the occurrence is counted in `missed_runs`.
    Paused { data: ScheduleData, at: i64 },
    /// Start an instance for the occurrence `scheduled_time` (after aborting the running
    /// ones when `abort_running`).
    Start {
        data: ScheduleData,
        at: i64,
        scheduled_time: i64,
        abort_running: bool,
    },
}

/// The step that needs no reading: `Some` when the token is not due yet or never will be.
pub fn before_reading(data: &ScheduleData, schedule: &Schedule, now: Timestamp) -> Option<Fire> {
    if data.next_run_time > now.as_second() {
        return Some(Fire::NotYet {
            at: data.next_run_time,
        });
    }
    next_occurrence(data, schedule, now)
        .is_none()
        .then_some(Fire::Never)
}

/// The occurrence after the due one: the next after `now`, or with catchup the next after the
/// due one.
fn next_occurrence(data: &ScheduleData, schedule: &Schedule, now: Timestamp) -> Option<i64> {
    let due = Timestamp::from_second(data.next_run_time).unwrap_or(now);
    let next = if schedule.catchup {
        schedule.next_after(due)
    } else {
        schedule.next_after(now)
    };
    next.map(|t| t.as_second())
}

/// Decides what to do with a due schedule.
pub fn fire(
    data: &ScheduleData,
    schedule: &Schedule,
    now: Timestamp,
    situation: Situation,
    recheck_sec: i64,
) -> Fire {
    if let Some(step) = before_reading(data, schedule, now) {
        return step;
    }
    let next = next_occurrence(data, schedule, now).expect("checked by before_reading");
    let due = Timestamp::from_second(data.next_run_time).unwrap_or(now);
    // Occurrences after this one that have also passed: collapsed into this run and counted
    // (or, with catchup, each run in turn).
    let late = schedule.count_between(due, now, 100_000);
    let collapsed = if schedule.catchup { 0 } else { late };
    let mut advanced = data.clone();
    advanced.next_run_time = next;
    if data.paused {
        advanced.missed_runs += 1 + collapsed;
        return Fire::Paused {
            data: advanced,
            at: next,
        };
    }
    if !situation.has_definition {
        advanced.missed_runs += 1;
        return Fire::NoDefinition {
            data: advanced,
            at: next,
        };
    }
    let last_failed =
        schedule.policy == OverrunPolicy::DELAY_UNTIL_SUCCESS && situation.last_failed;
    let recheck = now.as_second() + recheck_sec.max(1);
    match decide(
        schedule.policy,
        situation.running,
        situation.limit,
        last_failed,
    ) {
        Decision::Delay => Fire::Delay { at: recheck },
        Decision::TooMany => Fire::TooMany {
            at: recheck,
            notify: data.too_many_told != Some(data.next_run_time),
        },
        Decision::Skip => {
            advanced.missed_runs += 1 + collapsed;
            Fire::Skip {
                data: advanced,
                at: next,
            }
        }
        d @ (Decision::Start | Decision::AbortRunningThenStart) => {
            advanced.missed_runs += collapsed;
            Fire::Start {
                data: advanced,
                at: next,
                scheduled_time: data.next_run_time,
                abort_running: d == Decision::AbortRunningThenStart,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::ScheduleDef;
    use crate::token::name::WorkflowName;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// Every 10 s from 00:00:00, with `policy`, first due at 00:01:00.
    fn every_10s(policy: &str, catchup: bool) -> (ScheduleData, Schedule) {
        let def = ScheduleDef {
            recurrence: Some("10S".into()),
            start: Some("1970-01-01T00:00:00Z".into()),
            overrun_policy: Some(policy.into()),
            catchup,
            ..Default::default()
        };
        let w = WorkflowName::parse("w").unwrap();
        let data = ScheduleData::new(&w, &def, &[], ts("1970-01-01T00:00:55Z")).unwrap();
        assert_eq!(data.next_run_time, 60);
        (data, Schedule::from_def(&def).unwrap())
    }

    fn free() -> Situation {
        Situation {
            has_definition: true,
            running: 0,
            limit: 3,
            last_failed: false,
        }
    }

    #[test]
    fn a_token_claimed_early_goes_back_until_it_is_due() {
        let (data, s) = every_10s("SKIP", false);
        let step = fire(&data, &s, ts("1970-01-01T00:00:59Z"), free(), 10);
        assert_eq!(step, Fire::NotYet { at: 60 });
    }

    #[test]
    fn a_due_run_starts_and_advances_to_the_next_occurrence() {
        let (data, s) = every_10s("SKIP", false);
        match fire(&data, &s, ts("1970-01-01T00:01:00Z"), free(), 10) {
            Fire::Start {
                data: next,
                at,
                scheduled_time,
                abort_running,
            } => {
                assert_eq!((at, next.next_run_time, scheduled_time), (70, 70, 60));
                assert_eq!((next.missed_runs, abort_running), (0, false));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missed_occurrences_collapse_and_are_counted_unless_catching_up() {
        // Due at 60, now 95: 70, 80 and 90 have passed too.
        let now = ts("1970-01-01T00:01:35Z");
        let (data, s) = every_10s("START_NEW", false);
        match fire(&data, &s, now, free(), 10) {
            Fire::Start { data: next, .. } => {
                assert_eq!((next.next_run_time, next.missed_runs), (100, 3))
            }
            other => panic!("{other:?}"),
        }
        let (data, s) = every_10s("START_NEW", true);
        match fire(&data, &s, now, free(), 10) {
            Fire::Start { data: next, .. } => {
                assert_eq!(
                    (next.next_run_time, next.missed_runs),
                    (70, 0),
                    "one run per occurrence"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_policy_acts_on_a_running_instance() {
        let now = ts("1970-01-01T00:01:00Z");
        let busy = Situation {
            running: 1,
            ..free()
        };
        let (data, s) = every_10s("SKIP", false);
        match fire(&data, &s, now, busy, 10) {
            Fire::Skip { data: next, at } => assert_eq!((at, next.missed_runs), (70, 1)),
            other => panic!("{other:?}"),
        }
        let (data, s) = every_10s("DELAY", false);
        assert_eq!(fire(&data, &s, now, busy, 10), Fire::Delay { at: 70 });
        let (data, s) = every_10s("ABORT_RUNNING", false);
        assert!(matches!(
            fire(&data, &s, now, busy, 10),
            Fire::Start {
                abort_running: true,
                ..
            }
        ));
        let (data, s) = every_10s("DELAY_UNTIL_SUCCESS", false);
        let failed = Situation {
            last_failed: true,
            ..free()
        };
        assert_eq!(fire(&data, &s, now, failed, 5), Fire::Delay { at: 65 });
        let (data, s) = every_10s("DELAY", false);
        assert!(
            matches!(fire(&data, &s, now, failed, 5), Fire::Start { .. }),
            "only DELAY_UNTIL_SUCCESS cares how the last one ended"
        );
    }

    #[test]
    fn too_many_instances_are_told_once_per_occurrence() {
        let now = ts("1970-01-01T00:01:00Z");
        let full = Situation {
            running: 3,
            ..free()
        };
        let (data, s) = every_10s("START_NEW", false);
        assert_eq!(
            fire(&data, &s, now, full, 10),
            Fire::TooMany {
                at: 70,
                notify: true
            }
        );
        let told = ScheduleData {
            too_many_told: Some(data.next_run_time),
            ..data.clone()
        };
        assert_eq!(
            fire(&told, &s, ts("1970-01-01T00:01:10Z"), full, 10),
            Fire::TooMany {
                at: 80,
                notify: false
            },
            "a re-check of an occurrence already told about"
        );
    }

    #[test]
    fn a_workflow_without_a_definition_misses_the_run() {
        let (data, s) = every_10s("SKIP", false);
        let none = Situation {
            has_definition: false,
            ..free()
        };
        match fire(&data, &s, ts("1970-01-01T00:01:00Z"), none, 10) {
            Fire::NoDefinition { data: next, at } => {
                assert_eq!((at, next.missed_runs), (70, 1))
            }
            other => panic!("{other:?}"),
        }
    }
}
