//! What a run is for (CONTRACT §4.1-4.2): its kind, its logical time and interval, and its
//! parameter values. Every job token of an instance carries it (`Job::run`), so a worker has it
//! without another read, a copy into a new instance keeps it, and jobs see it in their
//! environment, never in their command text.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::parser::WorkflowDef;
use crate::parser::params::{ParamError, resolve};
use crate::schedule::Schedule;
use crate::token::Token;
use crate::workflow::instance::JobToken;

/// How a run was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    Scheduled,
    #[default]
    Manual,
    Backfill,
    Rerun,
    Retry,
    Trigger,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Scheduled => "scheduled",
            RunKind::Manual => "manual",
            RunKind::Backfill => "backfill",
            RunKind::Rerun => "rerun",
            RunKind::Retry => "retry",
            RunKind::Trigger => "trigger",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunInfo {
    pub kind: RunKind,
    /// Seconds since the epoch.
    pub logical_time: i64,
    /// The schedule's fire time before the logical time (the logical time without one).
    pub interval_start: i64,
    pub interval_end: i64,
    /// The schedule's time zone, in which the times are written (UTC without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// The backfill this run is a date of: its end is marked for the backfill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<String>,
    /// When it must have succeeded (a scheduled run of a workflow with a `deadline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<i64>,
    /// How long it may run (the workflow's `max_duration_sec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_sec: Option<u64>,
}

impl RunInfo {
    /// A run of `def` of `kind` for `logical_time`, with `given` parameter values (checked,
    /// defaults filled in).
    pub fn new(
        def: &WorkflowDef,
        kind: RunKind,
        logical_time: jiff::Timestamp,
        given: &BTreeMap<String, String>,
    ) -> Result<RunInfo, ParamError> {
        let params = resolve(&def.params, given)?;
        let schedule = def
            .schedule
            .as_ref()
            .and_then(|s| Schedule::from_def(s).ok());
        let start = schedule
            .as_ref()
            .and_then(|s| s.previous_before(logical_time))
            .unwrap_or(logical_time);
        Ok(RunInfo {
            kind,
            logical_time: logical_time.as_second(),
            interval_start: start.as_second(),
            interval_end: logical_time.as_second(),
            timezone: def.schedule.as_ref().and_then(|s| s.timezone.clone()),
            params,
            backfill: None,
            // Only a scheduled run: a backfill's or a manual run's date is not due by it.
            deadline: def
                .deadline
                .as_ref()
                .filter(|_| kind == RunKind::Scheduled)
                .and_then(|d| {
                    d.for_run(
                        logical_time.as_second(),
                        def.schedule.as_ref().and_then(|s| s.timezone.as_deref()),
                    )
                }),
            max_duration_sec: def.max_duration_sec,
        })
    }

    fn zone(&self) -> jiff::tz::TimeZone {
        zone_named(self.timezone.as_deref())
    }

    /// `secs` in the run's zone, RFC 3339.
    fn text(&self, secs: i64) -> String {
        zoned_text(secs, self.timezone.as_deref())
    }

    /// The logical date, `YYYY-MM-DD` in the run's zone.
    pub fn logical_date(&self) -> String {
        jiff::Timestamp::from_second(self.logical_time)
            .map(|t| t.to_zoned(self.zone()).date().to_string())
            .unwrap_or_default()
    }

    /// What a job of the run finds in its environment.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("PINBALL_LOGICAL_TIME".into(), self.text(self.logical_time)),
            ("PINBALL_LOGICAL_DATE".into(), self.logical_date()),
            (
                "PINBALL_INTERVAL_START".into(),
                self.text(self.interval_start),
            ),
            ("PINBALL_INTERVAL_END".into(), self.text(self.interval_end)),
            ("PINBALL_RUN_KIND".into(), self.kind.as_str().into()),
        ];
        env.extend(
            self.params
                .iter()
                .map(|(k, v)| (format!("PINBALL_PARAM_{k}"), v.clone())),
        );
        env
    }

    /// The same run again as `kind` (a rerun or a retry keeps the params and logical time;
    /// it is a run of its own, not one of the backfill's).
    pub fn again(&self, kind: RunKind) -> RunInfo {
        RunInfo {
            kind,
            backfill: None,
            deadline: None,
            ..self.clone()
        }
    }
}

/// The end of a range given as `text`: a time as [`parse_time`] reads it, or a date's last
/// second (`--to 2026-03-31` includes every fire time of that day).
pub fn parse_end_time(text: &str, zone: Option<&str>) -> Result<jiff::Timestamp, String> {
    let start = parse_time(text, zone)?;
    if text.parse::<jiff::Timestamp>().is_ok() {
        return Ok(start);
    }
    let next_day = text
        .parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.tomorrow().ok())
        .and_then(|d| d.to_zoned(zone_named(zone)).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| format!("{text:?} has no next day"))?;
    Ok(next_day - jiff::SignedDuration::from_secs(1))
}

/// `secs` as RFC 3339 in time zone `zone` (UTC without one, or when it is unknown).
pub fn zoned_text(secs: i64, zone: Option<&str>) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| {
            t.to_zoned(zone_named(zone))
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        })
        .unwrap_or_else(|_| secs.to_string())
}

fn zone_named(zone: Option<&str>) -> jiff::tz::TimeZone {
    zone.and_then(|z| jiff::tz::TimeZone::get(z).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC)
}

/// `T` of `--logical-time T`: RFC 3339, or `YYYY-MM-DD` (midnight in `zone`, UTC without one).
pub fn parse_time(text: &str, zone: Option<&str>) -> Result<jiff::Timestamp, String> {
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    let tz = zone_named(zone);
    text.parse::<jiff::civil::Date>()
        .ok()
        .filter(|_| text.len() == 10)
        .and_then(|d| d.to_zoned(tz).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| {
            format!("{text:?} is not a time: give RFC 3339 (2026-01-31T02:00:00Z) or a date (2026-01-31)")
        })
}

/// The tokens of new instance `i` of `w` for `run`: every way a run starts (a start, a
/// trigger, the schedule and its catch-up, a backfill) makes them here. A backfill's jobs
/// stand [`PRIORITY_DROP`](super::backfill::PRIORITY_DROP) below the workflow's own.
pub fn run_tokens(
    w: &crate::token::name::WorkflowName,
    i: &crate::token::name::InstanceId,
    graph: &crate::parser::Graph,
    run: &RunInfo,
) -> Vec<Token> {
    let mut tokens = with_run(super::instance::new_instance_tokens(w, i, graph), run);
    if run.kind == RunKind::Backfill {
        for t in &mut tokens {
            t.priority -= super::backfill::PRIORITY_DROP;
        }
    }
    tokens.extend(super::deadlines::watch(w, i, run, crate::clock::now()));
    tokens
}

/// The instance's tokens with `run` on every job.
pub fn with_run(tokens: Vec<Token>, run: &RunInfo) -> Vec<Token> {
    tokens
        .into_iter()
        .map(|t| match JobToken::parse(t.clone()) {
            Ok(jt) => {
                let mut job = jt.job;
                job.run = Some(run.clone());
                Token {
                    data: Some(job.to_data()),
                    ..t
                }
            }
            Err(_) => t,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scheduled_run_knows_its_interval_in_its_zone() {
        let def: WorkflowDef = serde_yaml::from_str(
            "jobs: {a: {command: 'true'}}\nschedule: {recurrence: 1D, start: '2026-03-01T02:00:00', timezone: Europe/Berlin}\nparams: {region: {type: string, default: eu}}\n",
        )
        .unwrap();
        let due = "2026-03-29T00:00:00Z".parse().unwrap(); // 02:00 in Berlin, summer time starts
        let run = RunInfo::new(&def, RunKind::Scheduled, due, &BTreeMap::new()).unwrap();
        let env: BTreeMap<String, String> = run.env().into_iter().collect();
        assert_eq!(env["PINBALL_LOGICAL_DATE"], "2026-03-29");
        assert_eq!(env["PINBALL_INTERVAL_START"], "2026-03-28T02:00:00+01:00");
        assert_eq!(env["PINBALL_PARAM_region"], "eu");
        assert_eq!(env["PINBALL_RUN_KIND"], "scheduled");
        assert_eq!(
            parse_time("2026-03-29", Some("Europe/Berlin"))
                .unwrap()
                .to_string(),
            "2026-03-28T23:00:00Z"
        );
        assert!(
            parse_time("tomorrow", None)
                .unwrap_err()
                .contains("not a time")
        );
    }
}
