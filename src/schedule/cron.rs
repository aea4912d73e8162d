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

use super::{Field, ScheduleError};

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

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
/// How far ahead a next run is looked for: 28 years hold every combination of day, month,
/// weekday and leap year.
const HORIZON_DAYS: i64 = 366 * 28;

fn bad(message: String) -> ScheduleError {
    ScheduleError::new(Field::Cron, message)
}

/// One field's range and names.
struct Kind {
    what: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    names_from: u32,
}

const SECOND: Kind = Kind {
    what: "second",
    min: 0,
    max: 59,
    names: &[],
    names_from: 0,
};
const MINUTE: Kind = Kind {
    what: "minute",
    ..SECOND
};
const HOUR: Kind = Kind {
    what: "hour",
    max: 23,
    ..SECOND
};
const DAY: Kind = Kind {
    what: "day of month",
    min: 1,
    max: 31,
    ..SECOND
};
const MONTH: Kind = Kind {
    what: "month",
    min: 1,
    max: 12,
    names: &MONTHS,
    names_from: 1,
};
const WEEKDAY: Kind = Kind {
    what: "day of week",
    min: 0,
    max: 7,
    names: &DAYS,
    names_from: 0,
};

impl Kind {
    fn value(&self, text: &str) -> Result<u32, ScheduleError> {
        if let Some(i) = self.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
            return Ok(i as u32 + self.names_from);
        }
        let v: u32 = text
            .parse()
            .map_err(|_| bad(format!("{} value `{text}` is not a number", self.what)))?;
        if v < self.min || v > self.max {
            return Err(bad(format!(
                "{} value {v} is outside {}-{}",
                self.what, self.min, self.max
            )));
        }
        Ok(v)
    }

    /// One list item without the day fields' letters: `*`, `v`, `a-b`, each with `/n`.
    fn item(&self, part: &str) -> Result<u64, ScheduleError> {
        let what = self.what;
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| bad(format!("{what} step `{s}` is not a number")))?;
                if step == 0 {
                    return Err(bad(format!("{what} step must be at least 1")));
                }
                (r, Some(step))
            }
            None => (part, None),
        };
        let (lo, hi) = match range {
            "*" | "?" => (self.min, self.max),
            r => match r.split_once('-') {
                Some((a, b)) => (self.value(a)?, self.value(b)?),
                // `a/n` runs from `a` to the end of the field; `a` alone is one value.
                None => {
                    let v = self.value(r)?;
                    (v, if step.is_some() { self.max } else { v })
                }
            },
        };
        // A range whose start is above its end wraps round the field's end.
        let values: Vec<u32> = if lo <= hi {
            (lo..=hi).collect()
        } else {
            (lo..=self.max).chain(self.min..=hi).collect()
        };
        Ok(values
            .into_iter()
            .step_by(step.unwrap_or(1) as usize)
            .fold(0, |bits, v| bits | 1 << v))
    }

    /// A plain field: the bits of every list item.
    fn field(&self, text: &str) -> Result<u64, ScheduleError> {
        text.split(',')
            .try_fold(0, |bits, part| Ok(bits | self.item(part)?))
    }
}

fn unrestricted(text: &str) -> bool {
    text == "*" || text == "?"
}

fn day_field(text: &str) -> Result<DaySpec, ScheduleError> {
    let mut spec = DaySpec {
        restricted: !unrestricted(text),
        ..DaySpec::default()
    };
    for part in text.split(',') {
        match part.to_ascii_uppercase().as_str() {
            "L" => spec.last = true,
            "LW" | "WL" => spec.last_weekday = true,
            p if p.len() > 1 && p.ends_with('W') => {
                let day = DAY.value(&p[..p.len() - 1])?;
                spec.nearest_weekday |= 1 << day;
            }
            _ => spec.bits |= DAY.item(part)?,
        }
    }
    Ok(spec)
}

fn weekday_field(text: &str) -> Result<WeekdaySpec, ScheduleError> {
    let mut spec = WeekdaySpec {
        restricted: !unrestricted(text),
        ..WeekdaySpec::default()
    };
    let day = |t: &str| WEEKDAY.value(t).map(|d| d % 7);
    for part in text.split(',') {
        if let Some((d, k)) = part.split_once('#') {
            let k: u32 = k
                .parse()
                .ok()
                .filter(|k| (1..=5).contains(k))
                .ok_or_else(|| {
                    bad(format!(
                        "day of week `{part}`: the week after # must be 1-5"
                    ))
                })?;
            spec.nth |= 1 << (7 * (k - 1) + day(d)?);
        } else if part.len() > 1 && (part.ends_with('L') || part.ends_with('l')) {
            spec.last |= 1 << day(&part[..part.len() - 1])?;
        } else if part.eq_ignore_ascii_case("L") {
            return Err(bad(
                "day of week `L` needs a day before it: 5L is the last Friday of the month".into(),
            ));
        } else {
            spec.bits |= WEEKDAY.item(part)?;
        }
    }
    if spec.bits & (1 << 7) != 0 {
        spec.bits = (spec.bits | 1) & !(1 << 7); // 7 is Sunday too
    }
    Ok(spec)
}

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
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// Each (expression, after, next, why) of a table, in `tz`.
    fn assert_table(cases: &[(&str, &str, &str, &str)], tz: &str) {
        for (expr, after, want, why) in cases {
            assert_eq!(next(expr, after, tz), *want, "{expr} after {after}: {why}");
        }
    }

    fn next(expr: &str, after: &str, tz: &str) -> String {
        let tz = TimeZone::get(tz).unwrap();
        Cron::parse(expr)
            .unwrap()
            .next_after(ts(after), &tz)
            .unwrap()
            .to_string()
    }

    #[test]
    fn five_and_six_field_expressions() {
        // (expression, after, next, why)
        let cases = [
            (
                "30 2 * * *",
                "2026-01-01T00:00:00Z",
                "2026-01-01T02:30:00Z",
                "",
            ),
            (
                "30 2 * * *",
                "2026-01-01T02:30:00Z",
                "2026-01-02T02:30:00Z",
                "strictly after",
            ),
            (
                "*/15 * * * * *",
                "2026-01-01T00:00:01Z",
                "2026-01-01T00:00:15Z",
                "",
            ),
            (
                "0 9 * * MON-FRI",
                "2026-11-28T10:00:00Z",
                "2026-11-30T09:00:00Z",
                "Saturday -> Monday",
            ),
            (
                "0 0 1 JAN *",
                "2026-03-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
                "",
            ),
            (
                "0 0 29 2 *",
                "2026-03-01T00:00:00Z",
                "2028-02-29T00:00:00Z",
                "leap day",
            ),
            (
                "0 0 31 * *",
                "2026-04-01T00:00:00Z",
                "2026-05-31T00:00:00Z",
                "months without a 31st are skipped",
            ),
        ];
        assert_table(&cases, "UTC");
    }

    #[test]
    fn both_day_fields_restricted_means_either() {
        // The 13th, or any Friday.
        assert_eq!(
            next("0 0 13 * 5", "2026-11-01T00:00:00Z", "UTC"),
            "2026-11-06T00:00:00Z"
        );
        assert_eq!(
            next("0 0 13 * 5,7", "2026-11-07T00:00:00Z", "UTC"),
            "2026-11-08T00:00:00Z",
            "7 is Sunday"
        );
    }

    #[test]
    fn wall_clock_time_holds_across_daylight_saving_changes() {
        let ny = "America/New_York";
        // New York: clocks go forward 2026-03-08 02:00 (EST -5 -> EDT -4), back 2026-11-01.
        let cases = [
            (
                "0 9 * * *",
                "2026-03-07T15:00:00Z",
                "2026-03-08T13:00:00Z",
                "09:00 EDT",
            ),
            (
                "0 9 * * *",
                "2026-03-06T15:00:00Z",
                "2026-03-07T14:00:00Z",
                "09:00 EST",
            ),
            (
                "30 2 * * *",
                "2026-03-08T05:00:00Z",
                "2026-03-08T07:00:00Z",
                "02:30 does not exist that day: it runs at the first valid time after, 03:00 EDT",
            ),
            (
                "30 1 * * *",
                "2026-11-01T04:00:00Z",
                "2026-11-01T05:30:00Z",
                "01:30 EDT",
            ),
            (
                "30 1 * * *",
                "2026-11-01T05:30:00Z",
                "2026-11-02T06:30:00Z",
                "01:30 happens twice on the day clocks go back; the job runs once",
            ),
        ];
        assert_table(&cases, ny);
    }

    #[test]
    fn the_dialect_reads_as_documented() {
        // (expression, after, next, why), UTC.
        let cases = [
            (
                "5/1 * * * *",
                "2026-01-01T00:05:00Z",
                "2026-01-01T00:06:00Z",
                "a/1 runs from a to the end",
            ),
            (
                "50/5 * * * *",
                "2026-01-01T00:56:00Z",
                "2026-01-01T01:50:00Z",
                "a/n from a, by n",
            ),
            (
                "@hourly",
                "2026-01-01T00:00:00Z",
                "2026-01-01T01:00:00Z",
                "",
            ),
            ("@daily", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", ""),
            (
                "@midnight",
                "2026-01-01T12:00:00Z",
                "2026-01-02T00:00:00Z",
                "",
            ),
            (
                "@weekly",
                "2026-11-25T00:00:00Z",
                "2026-11-29T00:00:00Z",
                "Sundays",
            ),
            (
                "@monthly",
                "2026-11-25T00:00:00Z",
                "2026-12-01T00:00:00Z",
                "",
            ),
            (
                "@yearly",
                "2026-11-25T00:00:00Z",
                "2027-01-01T00:00:00Z",
                "",
            ),
            (
                "@annually",
                "2026-11-25T00:00:00Z",
                "2027-01-01T00:00:00Z",
                "",
            ),
            (
                "0 0 L * *",
                "2026-02-01T00:00:00Z",
                "2026-02-28T00:00:00Z",
                "last day",
            ),
            (
                "0 0 L 2 *",
                "2027-03-01T00:00:00Z",
                "2028-02-29T00:00:00Z",
                "last day of a leap February",
            ),
            (
                "0 0 LW * *",
                "2026-05-01T00:00:00Z",
                "2026-05-29T00:00:00Z",
                "31 May 2026 is a Sunday",
            ),
            (
                "0 0 15W * *",
                "2026-11-01T00:00:00Z",
                "2026-11-16T00:00:00Z",
                "15 Nov 2026 is a Sunday: Monday",
            ),
            (
                "0 0 14W * *",
                "2026-11-01T00:00:00Z",
                "2026-11-13T00:00:00Z",
                "14 Nov 2026 is a Saturday: Friday",
            ),
            (
                "0 0 1W * *",
                "2026-07-31T00:00:00Z",
                "2026-08-03T00:00:00Z",
                "1 Aug 2026 is a Saturday: not back into July",
            ),
            (
                "0 0 * * 5#3",
                "2026-11-01T00:00:00Z",
                "2026-11-20T00:00:00Z",
                "third Friday",
            ),
            (
                "0 0 * * MON#1",
                "2026-11-03T00:00:00Z",
                "2026-12-07T00:00:00Z",
                "first Monday",
            ),
            (
                "0 0 * * 5L",
                "2026-11-01T00:00:00Z",
                "2026-11-27T00:00:00Z",
                "last Friday",
            ),
            (
                "0 0 * * SAT-SUN",
                "2026-11-30T00:00:00Z",
                "2026-12-05T00:00:00Z",
                "a range round the week's end",
            ),
            (
                "0 0 * * FRI-MON",
                "2026-12-01T00:00:00Z",
                "2026-12-04T00:00:00Z",
                "Tuesday -> Friday",
            ),
            (
                "0 22-2 * * *",
                "2026-01-01T02:00:00Z",
                "2026-01-01T22:00:00Z",
                "a range round midnight",
            ),
            (
                "0 22-2 * * *",
                "2026-01-01T23:00:00Z",
                "2026-01-02T00:00:00Z",
                "",
            ),
            (
                "0 22-2/2 * * *",
                "2026-01-01T22:00:00Z",
                "2026-01-02T00:00:00Z",
                "a step over a wrapped range",
            ),
            (
                "0 0 * NOV-FEB *",
                "2026-03-01T00:00:00Z",
                "2026-11-01T00:00:00Z",
                "",
            ),
            (
                "0 0 1 * 7",
                "2026-11-02T00:00:00Z",
                "2026-11-08T00:00:00Z",
                "the 1st or a Sunday",
            ),
        ];
        assert_table(&cases, "UTC");
    }

    #[test]
    fn a_repeated_hour_runs_intervals_at_each_occurrence_and_fixed_times_once() {
        let ny = "America/New_York";
        // 2026-11-01: 01:00-01:59 EDT (05:00-05:59Z), then again as EST (06:00-06:59Z).
        let hourly: Vec<String> = walk("0 * * * *", "2026-11-01T03:30:00Z", ny, 4);
        assert_eq!(
            hourly,
            [
                "2026-11-01T04:00:00Z",
                "2026-11-01T05:00:00Z",
                "2026-11-01T06:00:00Z",
                "2026-11-01T07:00:00Z"
            ],
            "00:00 EDT, 01:00 EDT, 01:00 EST, 02:00 EST: never two hours without a run"
        );
        let fives = walk("*/5 * * * *", "2026-11-01T05:50:00Z", ny, 3);
        assert_eq!(
            fives,
            [
                "2026-11-01T05:55:00Z",
                "2026-11-01T06:00:00Z",
                "2026-11-01T06:05:00Z"
            ],
            "every five minutes of elapsed time through the change"
        );
        assert_eq!(
            walk("30 1 * * *", "2026-11-01T04:00:00Z", ny, 2),
            ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
            "a fixed time runs once"
        );
    }

    #[test]
    fn a_skipped_time_runs_at_the_first_valid_time_after() {
        let ny = "America/New_York";
        // 2026-03-08 02:00 EST becomes 03:00 EDT at 07:00Z.
        assert_eq!(
            walk("*/20 * * * *", "2026-03-08T06:30:00Z", ny, 3),
            [
                "2026-03-08T06:40:00Z",
                "2026-03-08T07:00:00Z",
                "2026-03-08T07:20:00Z"
            ],
            "01:40 EST, then the skipped 02:00-02:40 once at 03:00 EDT, then 03:20"
        );
        assert_eq!(
            next("15 2 * * *", "2026-03-08T00:00:00Z", ny),
            "2026-03-08T07:00:00Z"
        );
        assert_eq!(
            next("15 2 * * *", "2026-03-08T07:00:00Z", ny),
            "2026-03-09T06:15:00Z",
            "the written time again the next day"
        );
    }

    fn walk(expr: &str, after: &str, tz: &str, n: usize) -> Vec<String> {
        let tz = TimeZone::get(tz).unwrap();
        let c = Cron::parse(expr).unwrap();
        let mut t = ts(after);
        (0..n)
            .map(|_| {
                t = c.next_after(t, &tz).unwrap();
                t.to_string()
            })
            .collect()
    }

    /// The reference: every minute after `after`, in order, until one runs. A minute runs when
    /// its wall-clock time matches (in a repeated hour, its second pass only for intervals), or
    /// when clocks jumped over matching times to reach it.
    fn brute_force(c: &Cron, after: Timestamp, tz: &TimeZone, minutes: i64) -> Option<Timestamp> {
        let minute = jiff::SignedDuration::from_mins(1);
        let mut t = Timestamp::from_second(after.as_second().div_euclid(60) * 60).unwrap();
        for _ in 0..minutes {
            let before = t.to_zoned(tz.clone()).datetime();
            t += minute;
            let z = t.to_zoned(tz.clone());
            let dt = z.datetime();
            let runs = |d: DateTime| c.day_matches(d.date()) && c.time_matches(d.time());
            let second_pass = matches!(
                tz.to_ambiguous_timestamp(dt).offset(),
                AmbiguousOffset::Fold { after, .. } if after == z.offset()
            );
            let matched = runs(dt) && (!second_pass || c.repeats_in_fold());
            let jumped = dt.duration_since(before).as_mins();
            let skipped = jumped > 1 && (1..jumped).any(|k| runs(before + k.minutes()));
            if matched || skipped {
                return Some(t);
            }
        }
        None
    }

    fn field(rng: &mut fastrand::Rng, min: u32, max: u32) -> String {
        let v = |rng: &mut fastrand::Rng| rng.u32(min..=max);
        match rng.u32(0..6) {
            0 => "*".into(),
            1 => format!("*/{}", rng.u32(1..=max.max(2))),
            2 => v(rng).to_string(),
            3 => format!("{}-{}", v(rng), v(rng)),
            4 => format!("{}/{}", v(rng), rng.u32(1..=4)),
            _ => format!("{},{}", v(rng), v(rng)),
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn next_after_agrees_with_a_minute_walk(
            seed in proptest::prelude::any::<u64>(),
            zone in 0usize..4,
            offset_min in 0i64..(3 * 24 * 60),
            near in 0usize..3,
        ) {
            let mut rng = fastrand::Rng::with_seed(seed);
            let zones = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "UTC"];
            let tz = TimeZone::get(zones[zone]).unwrap();
            let hour = match rng.usize(0..3) {
                0 => field(&mut rng, 0, 23),
                _ => ["*", "1", "2", "0-3", "*/2", "22-2"][rng.usize(0..6)].to_string(),
            };
            let dom = ["*", "*", "L", "15W", "1-10", "28-3"][rng.usize(0..6)];
            let dow = ["*", "*", "*", "5L", "0#1", "SAT-SUN", "1-5"][rng.usize(0..7)];
            let expr = format!("{} {hour} {dom} * {dow}", field(&mut rng, 0, 59));
            let c = Cron::parse(&expr).unwrap();
            // Around a daylight-saving change, or anywhere.
            let base = ["2026-11-01T00:00:00Z", "2026-03-07T12:00:00Z", "2026-04-04T12:00:00Z"][near];
            let after = ts(base) + jiff::SignedDuration::from_mins(offset_min);
            let window = 8 * 24 * 60;
            let want = brute_force(&c, after, &tz, window);
            let got = c.next_after(after, &tz);
            match want {
                Some(w) => proptest::prop_assert_eq!(got, Some(w), "{} after {} in {}", expr, after, zones[zone]),
                None => proptest::prop_assert!(got.is_none_or(|g| g > after + jiff::SignedDuration::from_mins(window - 1)), "{} after {}", expr, after),
            }
        }
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for (expr, says) in [
            ("* * *", "3 fields"),
            ("61 * * * *", "minute value 61"),
            ("* * * FOO *", "`FOO`"),
            ("*/0 * * * *", "step"),
            ("@often", "not a macro"),
            ("0 0 * * L", "5L is the last Friday"),
            ("0 0 * * 5#6", "1-5"),
            ("0 0 32W * *", "day of month value 32"),
        ] {
            let err = Cron::parse(expr).unwrap_err().to_string();
            assert!(err.contains(says), "{expr}: {err}");
        }
    }
}
