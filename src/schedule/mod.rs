//! The schedule model, pure and below the parser: a workflow's schedule as written
//! (`ScheduleDef`), validated into a [`Schedule`] whose next run is a function of the schedule
//! and an explicit instant, never of the clock. Recurrences (`<n><unit>`, `recurrence`) count
//! from `start`; cron expressions are in `cron`; overrun policies and their decisions in
//! `policy`; the schedule token's data in `data`. Used by the parser (validation), the
//! scheduler (the loop), the UI and `ops`.

pub mod cron;
pub mod data;
mod def;
pub mod fire;
pub mod policy;
pub mod recurrence;

use jiff::Timestamp;
use jiff::tz::TimeZone;

pub use cron::Cron;
pub use data::ScheduleData;
pub use def::ScheduleDef;
pub use fire::{Fire, Situation};
pub use policy::{Decision, OverrunPolicy, decide};
pub use recurrence::{Recurrence, Unit};

/// The field of a `schedule:` block a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The block as a whole (recurrence and cron together, or neither).
    Schedule,
    Recurrence,
    Cron,
    Start,
    Timezone,
    OverrunPolicy,
    MaxRunningInstances,
}

/// What is wrong with a schedule; shown as `schedule.<field> ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleError {
    pub field: Field,
    pub message: String,
}

impl ScheduleError {
    pub fn new(field: Field, message: impl Into<String>) -> Self {
        ScheduleError {
            field,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = &self.message;
        match self.field {
            Field::Schedule => write!(f, "schedule: {m}"),
            Field::Recurrence => write!(f, "schedule.recurrence {m}"),
            Field::Cron => write!(f, "schedule.cron: {m}"),
            Field::Start => write!(f, "schedule.start {m}"),
            Field::Timezone => write!(f, "schedule.timezone {m}"),
            Field::OverrunPolicy => write!(f, "schedule.overrun_policy {m}"),
            Field::MaxRunningInstances => write!(f, "schedule.max_running_instances {m}"),
        }
    }
}

impl std::error::Error for ScheduleError {}

#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    Every(Recurrence),
    Cron(Cron),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub rule: Rule,
    /// The first occurrence of a recurrence; for cron, no run comes before it.
    pub start: Timestamp,
    /// `start` as written, when written as a wall-clock time: days, weeks and years count
    /// from it, so a start in a skipped hour keeps its written time on every other day.
    pub start_civil: Option<jiff::civil::DateTime>,
    pub tz: TimeZone,
    pub policy: OverrunPolicy,
    pub max_running_instances: Option<u32>,
    pub catchup: bool,
}

impl Schedule {
    /// Validates a definition's `schedule:` block; errors name the field.
    pub fn from_def(def: &ScheduleDef) -> Result<Schedule, ScheduleError> {
        let tz = match &def.timezone {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name).map_err(|_| {
                ScheduleError::new(
                    Field::Timezone,
                    format!("`{name}` is not an IANA time zone name"),
                )
            })?,
        };
        let rule = match (&def.recurrence, &def.cron) {
            (Some(_), Some(_)) => {
                return Err(ScheduleError::new(
                    Field::Schedule,
                    "give recurrence or cron, not both",
                ));
            }
            (None, None) => {
                return Err(ScheduleError::new(
                    Field::Schedule,
                    "give recurrence (like 1D) or cron (like \"30 2 * * *\")",
                ));
            }
            (Some(r), None) => Rule::Every(Recurrence::parse(r)?),
            (None, Some(c)) => Rule::Cron(Cron::parse(c)?),
        };
        let (start, start_civil) = match &def.start {
            None => (
                jiff::civil::date(1970, 1, 1)
                    .to_zoned(tz.clone())
                    .map_err(|e| ScheduleError::new(Field::Start, e.to_string()))?
                    .timestamp(),
                None,
            ),
            Some(text) => parse_start(text, &tz)
                .map_err(|e| ScheduleError::new(Field::Start, format!("`{text}`: {e}")))?,
        };
        if let (Rule::Cron(c), Some(expr)) = (&rule, &def.cron)
            && c.next_after(Timestamp::UNIX_EPOCH, &tz).is_none()
        {
            return Err(ScheduleError::new(
                Field::Cron,
                format!(
                    "`{expr}` never matches a date (like the 30th of February); it would never run"
                ),
            ));
        }
        let policy = match &def.overrun_policy {
            None => OverrunPolicy::default(),
            Some(p) => OverrunPolicy::parse(p)?,
        };
        if def.max_running_instances == Some(0) {
            return Err(ScheduleError::new(
                Field::MaxRunningInstances,
                "must be at least 1",
            ));
        }
        Ok(Schedule {
            rule,
            start,
            start_civil,
            tz,
            policy,
            max_running_instances: def.max_running_instances,
            catchup: def.catchup,
        })
    }

    /// The first run strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match &self.rule {
            // `start` on a cron schedule means "not before".
            Rule::Cron(c) => c.next_after(
                after.max(self.start - jiff::SignedDuration::from_secs(1)),
                &self.tz,
            ),
            Rule::Every(r) => {
                if self.start > after {
                    return Some(self.start);
                }
                let origin = self.start.to_zoned(self.tz.clone());
                let civil = self.start_civil.filter(|_| r.is_calendar());
                let at = |k: i64| -> Option<Timestamp> {
                    match civil {
                        // The written wall-clock time, on each day where it exists.
                        Some(dt) => {
                            cron::first_instant(dt.checked_add(r.span(k).ok()?).ok()?, &self.tz)
                        }
                        None => Some(origin.checked_add(r.span(k).ok()?).ok()?.timestamp()),
                    }
                };
                // Estimate the count of periods passed, then settle on the first one after.
                let mut k =
                    ((after.as_second() - self.start.as_second()) / r.approx_seconds()).max(0);
                while k > 0 && at(k)? > after {
                    k -= 1;
                }
                while at(k)? <= after {
                    k += 1;
                }
                at(k)
            }
        }
    }

    /// The last run strictly before `before`, if any: looked for in windows that double from
    /// a second back (to two years), so a frequent schedule costs a step or two and a yearly
    /// one a few dozen.
    pub fn previous_before(&self, before: Timestamp) -> Option<Timestamp> {
        let mut window = 1i64;
        while window <= 2 * 366 * 86_400 {
            let from = before
                .checked_sub(jiff::SignedDuration::from_secs(window))
                .ok()?;
            let mut last = None;
            let mut t = from.checked_sub(jiff::SignedDuration::from_secs(1)).ok()?;
            while let Some(next) = self.next_after(t).filter(|n| *n < before) {
                last = Some(next);
                t = next;
            }
            if last.is_some() {
                return last;
            }
            window *= 2;
        }
        None
    }

    /// Occurrences in `(from, to]`, counted up to `cap`: the runs that were missed.
    pub fn count_between(&self, from: Timestamp, to: Timestamp, cap: u64) -> u64 {
        let mut n = 0;
        let mut t = from;
        while n < cap {
            match self.next_after(t) {
                Some(next) if next <= to => {
                    n += 1;
                    t = next;
                }
                _ => break,
            }
        }
        n
    }
}

/// `start`: RFC 3339 with an offset (`2015-02-01T00:00:01Z`), or a civil time
/// (`2015-02-01T00:00:01`, `2015-02-01 00:00:01`, `2015-02-01`) in the schedule's time zone.
/// A wall-clock start in a skipped hour starts at the first valid time after it.
fn parse_start(
    text: &str,
    tz: &TimeZone,
) -> Result<(Timestamp, Option<jiff::civil::DateTime>), std::borrow::Cow<'static, str>> {
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok((ts, None));
    }
    let civil = text
        .replace(' ', "T")
        .parse::<jiff::civil::DateTime>()
        .ok()
        .or_else(|| {
            text.parse::<jiff::civil::Date>()
                .ok()
                .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
        });
    if let Some(dt) = civil {
        return cron::first_instant(dt, tz)
            .map(|ts| (ts, Some(dt)))
            .ok_or_else(|| "is outside the supported range".into());
    }
    Err("not a date and time; use 2015-02-01T00:00:01Z or 2015-02-01 00:00:01".into())
}

#[cfg(test)]
mod tests;
