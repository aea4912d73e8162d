//! Crontab expressions: 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds
//! first, or a macro (`@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`,
//! `@hourly`). Fields take `*` (or `?` in the day fields), numbers, names (JAN-DEC, SUN-SAT),
//! ranges `a-b` (wrapping round when `a` is above `b`: `SAT-SUN`, `22-2`), steps `*/n`, `a/n`
//! (from `a` to the field's end) and `a-b/n`, and lists. Day of month also takes `L` (the last
//! day), `nW` (the weekday nearest day `n`, within the month) and `LW` (the last weekday); day
//! of week takes `d#k` (the `k`th `d` of the month) and `dL` (the last `d` of the month). As in
//! cron, when both day fields are restricted a day matching either one matches.
//!
//! Daylight-saving changes, in the expression's time zone: a wall-clock time that a change
//! skips runs at the first valid time after it (the moment of the change); in an hour that a
//! change repeats, an expression whose minute or hour field is written with `*` or a step runs
//! at each real occurrence (its spacing is elapsed time), and a fixed time runs once, at its
//! first occurrence. The project keeps this parser rather than the `cron` crate, which wants
//! a seconds field and skips times in a spring-forward gap (docs/schedules.md).

use jiff::Timestamp;
use jiff::ToSpan;
use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};

use super::ScheduleError;
use fields::{HOUR, MINUTE, MONTH, SECOND, bad, day_field, weekday_field};

mod fields;

/// A parsed expression: one bit per allowed value of each field, and the day rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: DaySpec,
    months: u64,
    weekdays: WeekdaySpec,
    /// The minute or hour field is written with `*` or a step: in a repeated hour, every real
    /// occurrence runs.
    interval: bool,
}

/// Day of month: plain days, `L`, `LW` and `nW`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct DaySpec {
    bits: u64,
    last: bool,
    last_weekday: bool,
    /// Days `n` of `nW`.
    nearest_weekday: u64,
    restricted: bool,
}

/// Day of week: plain weekdays (Sunday = 0), `d#k` and `dL`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct WeekdaySpec {
    bits: u64,
    /// Bit `7 * (k - 1) + d` for `d#k`.
    nth: u64,
    /// Weekdays `d` of `dL`.
    last: u64,
    restricted: bool,
}

/// How far ahead a next run is looked for: 28 years hold every combination of day, month,
/// weekday and leap year.
const HORIZON_DAYS: i64 = 366 * 28;

fn is_weekend(d: Date) -> bool {
    matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday)
}

/// The weekday nearest day `n` of `d`'s month, within the month (`nW`), if the month has it.
fn nearest_weekday(d: Date, n: i8) -> Option<Date> {
    let day = d.first_of_month().checked_add((n as i32 - 1).days()).ok()?;
    if day.month() != d.month() {
        return None;
    }
    Some(match day.weekday() {
        Weekday::Saturday if n == 1 => day.checked_add(2.days()).ok()?,
        Weekday::Saturday => day.checked_sub(1.days()).ok()?,
        Weekday::Sunday if day == d.last_of_month() => day.checked_sub(2.days()).ok()?,
        Weekday::Sunday => day.checked_add(1.days()).ok()?,
        _ => day,
    })
}

impl DaySpec {
    fn matches(&self, d: Date) -> bool {
        let last = d.last_of_month();
        self.bits & (1 << d.day()) != 0
            || (self.last && d == last)
            || (self.last_weekday && !is_weekend(d) && {
                let mut l = last;
                while is_weekend(l) {
                    l = l.yesterday().expect("in range");
                }
                l == d
            })
            || (self.nearest_weekday != 0
                && !is_weekend(d)
                && (1..=31).any(|n| {
                    self.nearest_weekday & (1 << n) != 0 && nearest_weekday(d, n) == Some(d)
                }))
    }
}

impl WeekdaySpec {
    fn matches(&self, d: Date) -> bool {
        let wd = d.weekday().to_sunday_zero_offset() as u32;
        let week = (d.day() as u32 - 1) / 7;
        self.bits & (1 << wd) != 0
            || self.nth & (1 << (7 * week + wd)) != 0
            || (self.last & (1 << wd) != 0 && d.day() + 7 > d.last_of_month().day())
    }
}

/// The instants a wall-clock time stands for in a time zone: one; in a repeated hour, two
/// (earlier, later); in a skipped one, the moment of the change.
fn instants(dt: DateTime, tz: &TimeZone) -> Option<(Timestamp, Option<Timestamp>)> {
    let ambiguous = tz.to_ambiguous_timestamp(dt);
    match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { offset } => Some((offset.to_timestamp(dt).ok()?, None)),
        AmbiguousOffset::Fold { before, after } => Some((
            before.to_timestamp(dt).ok()?,
            Some(after.to_timestamp(dt).ok()?),
        )),
        AmbiguousOffset::Gap { after, .. } => {
            // Read with the offset after the change, the time falls before the change: the
            // change itself is the first valid time after it.
            let before_change = after.to_timestamp(dt).ok()?;
            let change = tz.following(before_change).next()?.timestamp();
            Some((change, None))
        }
    }
}

/// The instant a wall-clock time runs at when it runs once: the first of a repeated time, the
/// moment of the change for a skipped one. Shared with calendar recurrences.
pub(super) fn first_instant(dt: DateTime, tz: &TimeZone) -> Option<Timestamp> {
    instants(dt, tz).map(|(first, _)| first)
}

impl Cron {
    pub fn parse(expr: &str) -> Result<Cron, ScheduleError> {
        let expanded = match expr.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            m if m.starts_with('@') => {
                return Err(bad(format!(
                    "`{m}` is not a macro; use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly"
                )));
            }
            e => e,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let (sec, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => {
                return Err(bad(format!(
                    "cron expression `{expr}` has {n} fields; use 5 (minute hour day month weekday) or 6 (seconds first)"
                )));
            }
        };
        let stepped = |t: &str| t.contains('*') || t.contains('/');
        Ok(Cron {
            seconds: SECOND.field(sec)?,
            minutes: MINUTE.field(rest[0])?,
            hours: HOUR.field(rest[1])?,
            days: day_field(rest[2])?,
            months: MONTH.field(rest[3])?,
            weekdays: weekday_field(rest[4])?,
            interval: stepped(rest[0]) || stepped(rest[1]),
        })
    }

    /// Whether the expression's day fields and month take date `d`.
    pub fn day_matches(&self, d: Date) -> bool {
        if self.months & (1 << d.month()) == 0 {
            return false;
        }
        let (dom, dow) = (&self.days, &self.weekdays);
        match (dom.restricted, dow.restricted) {
            (true, true) => dom.matches(d) || dow.matches(d),
            (true, false) => dom.matches(d),
            (false, true) => dow.matches(d),
            (false, false) => true,
        }
    }

    /// Whether the expression takes this wall-clock time of day.
    pub fn time_matches(&self, t: Time) -> bool {
        self.hours & (1 << t.hour()) != 0
            && self.minutes & (1 << t.minute()) != 0
            && self.seconds & (1 << t.second()) != 0
    }

    /// Whether, in a repeated hour, the second occurrence runs too.
    pub fn repeats_in_fold(&self) -> bool {
        self.interval
    }

    /// The wall-clock times of day of hour `h` the expression takes, in order.
    fn times(&self, h: i8) -> impl Iterator<Item = Time> + '_ {
        let bits = |set: u64, n: i8| (0..n).filter(move |v| set & (1 << v) != 0);
        bits(self.minutes, 60).flat_map(move |m| {
            bits(self.seconds, 60).map(move |s| Time::new(h, m, s, 0).expect("in range"))
        })
    }

    /// The first run strictly after `after`, in `tz`, by the daylight-saving rules of the
    /// module's header. `None` if nothing matches within 28 years.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        // A day before, for a repeated hour's second occurrence after midnight's change.
        let mut day = after.to_zoned(tz.clone()).date().yesterday().ok()?;
        for _ in 0..HORIZON_DAYS {
            if self.day_matches(day)
                && let Some(at) = self.first_on(day, after, tz)
            {
                return Some(at);
            }
            day = day.tomorrow().ok()?;
        }
        None
    }

    /// The earliest run on `day` after `after`. Times of day run in order, so once a time's
    /// first instant is past the best found, no later time can be earlier.
    fn first_on(&self, day: Date, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let mut best: Option<Timestamp> = None;
        for h in (0..24).filter(|h| self.hours & (1 << h) != 0) {
            // An hour whose last second runs no later than `after` holds nothing to run.
            let end = instants(DateTime::from_parts(day, Time::new(h, 59, 59, 0).ok()?), tz);
            if end.is_some_and(|(a, b)| b.filter(|_| self.interval).unwrap_or(a) <= after) {
                continue;
            }
            for t in self.times(h) {
                let Some((first, second)) = instants(DateTime::from_parts(day, t), tz) else {
                    continue;
                };
                if best.is_some_and(|b| first >= b) {
                    return best;
                }
                let second = second.filter(|_| self.interval);
                for at in [Some(first), second].into_iter().flatten() {
                    if at > after && best.is_none_or(|b| at < b) {
                        best = Some(at);
                    }
                }
            }
        }
        best
    }
}

#[cfg(test)]
#[path = "cron_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "cron_dialect_tests.rs"]
mod dialect_tests;
