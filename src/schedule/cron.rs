//! Crontab expressions: 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds
//! first. Fields take `*`, numbers, names (JAN-DEC, SUN-SAT), ranges `a-b`, steps `*/n` and
//! `a-b/n`, and lists. As in cron, when both day fields are restricted a day matching either
//! one matches. This is the one place 5-field expressions are normalised.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use super::{Field, ScheduleError};

/// A parsed expression: one bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_restricted: bool,
    weekdays_restricted: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn bad(message: String) -> ScheduleError {
    ScheduleError::new(Field::Cron, message)
}

fn value(
    text: &str,
    what: &str,
    min: u32,
    max: u32,
    names: &[&str],
    names_from: u32,
) -> Result<u32, ScheduleError> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        return Ok(i as u32 + names_from);
    }
    let v: u32 = text
        .parse()
        .map_err(|_| bad(format!("{what} value `{text}` is not a number")))?;
    if v < min || v > max {
        return Err(bad(format!("{what} value {v} is outside {min}-{max}")));
    }
    Ok(v)
}

/// Parses one field into a bit set; returns it and whether it restricts anything.
fn field(
    text: &str,
    what: &str,
    min: u32,
    max: u32,
    names: &[&str],
    names_from: u32,
) -> Result<(u64, bool), ScheduleError> {
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| bad(format!("{what} step `{s}` is not a number")))?;
                if step == 0 {
                    return Err(bad(format!("{what} step must be at least 1")));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = match range {
            "*" | "?" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (
                    value(a, what, min, max, names, names_from)?,
                    value(b, what, min, max, names, names_from)?,
                ),
                None => {
                    let v = value(r, what, min, max, names, names_from)?;
                    (v, if step > 1 { max } else { v })
                }
            },
        };
        if lo > hi {
            return Err(bad(format!("{what} range {lo}-{hi} is empty")));
        }
        for v in (lo..=hi).step_by(step as usize) {
            bits |= 1 << v;
        }
    }
    Ok((bits, text != "*" && text != "?"))
}

impl Cron {
    pub fn parse(expr: &str) -> Result<Cron, ScheduleError> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let (sec, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => {
                return Err(bad(format!(
                    "cron expression `{expr}` has {n} fields; use 5 (minute hour day month weekday) or 6 (seconds first)"
                )));
            }
        };
        let (seconds, _) = field(sec, "second", 0, 59, &[], 0)?;
        let (minutes, _) = field(rest[0], "minute", 0, 59, &[], 0)?;
        let (hours, _) = field(rest[1], "hour", 0, 23, &[], 0)?;
        let (days, days_restricted) = field(rest[2], "day of month", 1, 31, &[], 0)?;
        let (months, _) = field(rest[3], "month", 1, 12, &MONTHS, 1)?;
        let (mut weekdays, weekdays_restricted) = field(rest[4], "day of week", 0, 7, &DAYS, 0)?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1; // 7 is Sunday too
        }
        Ok(Cron {
            seconds,
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_restricted,
            weekdays_restricted,
        })
    }

    fn day_matches(&self, d: Date) -> bool {
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().to_sunday_zero_offset()) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    /// The first matching instant strictly after `after`, in `tz` (wall-clock time, so a daily
    /// expression keeps its hour across daylight-saving changes; a time skipped by a change runs
    /// at the shifted time, a repeated one runs once). `None` if nothing matches within 8 years.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let start = after.to_zoned(tz.clone()).date();
        let mut day = start;
        for _ in 0..(366 * 8) {
            if self.months & (1 << day.month()) != 0 && self.day_matches(day) {
                for h in (0..24).filter(|h| self.hours & (1 << h) != 0) {
                    for m in (0..60).filter(|m| self.minutes & (1 << m) != 0) {
                        for s in (0..60).filter(|s| self.seconds & (1 << s) != 0) {
                            let t = Time::new(h, m, s, 0).expect("valid by construction");
                            let at = DateTime::from_parts(day, t)
                                .to_zoned(tz.clone())
                                .ok()?
                                .timestamp();
                            if at > after {
                                return Some(at);
                            }
                        }
                    }
                }
            }
            day = day.checked_add(1.day()).ok()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
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
        for (expr, after, want, why) in cases {
            assert_eq!(
                next(expr, after, "UTC"),
                want,
                "{expr} after {after}: {why}"
            );
        }
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
                "2026-03-08T07:30:00Z",
                "02:30 does not exist that day: it runs at the shifted time, once",
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
        for (expr, after, want, why) in cases {
            assert_eq!(next(expr, after, ny), want, "{expr} after {after}: {why}");
        }
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for (expr, says) in [
            ("* * *", "3 fields"),
            ("61 * * * *", "minute value 61"),
            ("* * * FOO *", "`FOO`"),
            ("*/0 * * * *", "step"),
            ("5-1 * * * *", "empty"),
        ] {
            let err = Cron::parse(expr).unwrap_err().to_string();
            assert!(err.contains(says), "{expr}: {err}");
        }
    }
}
