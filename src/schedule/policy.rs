//! Overrun policies (PINBALL_SPEC §5.3) and what to do with a due run, as a pure function of
//! the policy and the workflow's state, with one max-instances rule for every policy that starts.

use serde::{Deserialize, Serialize};

use super::{Field, ScheduleError};

/// What to do when a run is due while earlier instances still run (PINBALL_SPEC §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[allow(non_camel_case_types)]
pub enum OverrunPolicy {
    #[default]
    SKIP,
    START_NEW,
    ABORT_RUNNING,
    DELAY,
    DELAY_UNTIL_SUCCESS,
}

impl OverrunPolicy {
    pub fn parse(s: &str) -> Result<OverrunPolicy, ScheduleError> {
        Ok(match s {
            "SKIP" => OverrunPolicy::SKIP,
            "START_NEW" => OverrunPolicy::START_NEW,
            "ABORT_RUNNING" => OverrunPolicy::ABORT_RUNNING,
            "DELAY" => OverrunPolicy::DELAY,
            "DELAY_UNTIL_SUCCESS" => OverrunPolicy::DELAY_UNTIL_SUCCESS,
            other => {
                return Err(ScheduleError::new(
                    Field::OverrunPolicy,
                    format!(
                        "`{other}` is not one of START_NEW, SKIP, ABORT_RUNNING, DELAY, DELAY_UNTIL_SUCCESS"
                    ),
                ));
            }
        })
    }

    /// The explanation the UI shows.
    pub fn help(self) -> &'static str {
        match self {
            OverrunPolicy::SKIP => "Skip execution if already running",
            OverrunPolicy::ABORT_RUNNING => "Abort the running instance before starting a new one",
            OverrunPolicy::DELAY => "Delay the execution until the previous one finishes",
            OverrunPolicy::DELAY_UNTIL_SUCCESS => {
                "Delay the execution until the previous one succeeds"
            }
            OverrunPolicy::START_NEW => {
                "Start a new instance in parallel to currently running ones"
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start an instance and advance the schedule.
    Start,
    /// Abort the running instances, then start.
    AbortRunningThenStart,
    /// Drop this occurrence and advance the schedule.
    Skip,
    /// Keep the occurrence due; look again shortly.
    Delay,
    /// Starting would exceed max_running_instances: look again shortly (and tell the owners).
    TooMany,
}

/// `running`: unfinished instances; `last_failed`: the last started instance ended FAILURE or
/// ABORTED (or its outcome is unknown).
pub fn decide(policy: OverrunPolicy, running: usize, limit: usize, last_failed: bool) -> Decision {
    let start = |running: usize| {
        if running >= limit {
            Decision::TooMany
        } else {
            Decision::Start
        }
    };
    match policy {
        OverrunPolicy::START_NEW => start(running),
        OverrunPolicy::SKIP if running > 0 => Decision::Skip,
        OverrunPolicy::ABORT_RUNNING if running > 0 => Decision::AbortRunningThenStart,
        OverrunPolicy::DELAY if running > 0 => Decision::Delay,
        OverrunPolicy::DELAY_UNTIL_SUCCESS if running > 0 || last_failed => Decision::Delay,
        _ => start(running),
    }
}

#[cfg(test)]
mod tests {
    use super::Decision::*;
    use super::OverrunPolicy::*;
    use super::*;

    #[test]
    fn every_policy_decides_as_specified() {
        assert_eq!(
            decide(START_NEW, 1, 3, false),
            Start,
            "START_NEW runs alongside"
        );
        assert_eq!(
            decide(START_NEW, 3, 3, false),
            TooMany,
            "but not past the limit"
        );
        assert_eq!(decide(SKIP, 1, 3, false), Skip);
        assert_eq!(decide(SKIP, 0, 3, true), Start);
        assert_eq!(decide(ABORT_RUNNING, 2, 3, false), AbortRunningThenStart);
        assert_eq!(decide(ABORT_RUNNING, 0, 3, false), Start);
        assert_eq!(decide(DELAY, 1, 3, false), Delay);
        assert_eq!(
            decide(DELAY, 0, 3, true),
            Start,
            "DELAY does not care how the last one ended"
        );
        assert_eq!(
            decide(DELAY_UNTIL_SUCCESS, 0, 3, true),
            Delay,
            "waits after a failure"
        );
        assert_eq!(decide(DELAY_UNTIL_SUCCESS, 1, 3, false), Delay);
        assert_eq!(decide(DELAY_UNTIL_SUCCESS, 0, 3, false), Start);
        assert_eq!(decide(SKIP, 0, 1, false), Start);
        assert_eq!(
            decide(DELAY, 0, 0, false),
            TooMany,
            "one max-instances rule for every policy"
        );
    }
}
