//! The fields of an expression: values, names, ranges (wrapping), steps and lists, and the
//! day rules (`L`, `nW`, `LW`, `d#k`, `dL`).

use super::{DaySpec, WeekdaySpec};
use crate::schedule::{Field, ScheduleError};

pub(super) const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
pub(super) const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
pub(super) fn bad(message: String) -> ScheduleError {
    ScheduleError::new(Field::Cron, message)
}

/// One field's range and names.
pub(super) struct Kind {
    what: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    names_from: u32,
}

pub(super) const SECOND: Kind = Kind {
    what: "second",
    min: 0,
    max: 59,
    names: &[],
    names_from: 0,
};
pub(super) const MINUTE: Kind = Kind {
    what: "minute",
    ..SECOND
};
pub(super) const HOUR: Kind = Kind {
    what: "hour",
    max: 23,
    ..SECOND
};
pub(super) const DAY: Kind = Kind {
    what: "day of month",
    min: 1,
    max: 31,
    ..SECOND
};
pub(super) const MONTH: Kind = Kind {
    what: "month",
    min: 1,
    max: 12,
    names: &MONTHS,
    names_from: 1,
};
pub(super) const WEEKDAY: Kind = Kind {
    what: "day of week",
    min: 0,
    max: 7,
    names: &DAYS,
    names_from: 0,
};

impl Kind {
    pub(super) fn value(&self, text: &str) -> Result<u32, ScheduleError> {
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
    pub(super) fn item(&self, part: &str) -> Result<u64, ScheduleError> {
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
    pub(super) fn field(&self, text: &str) -> Result<u64, ScheduleError> {
        text.split(',')
            .try_fold(0, |bits, part| Ok(bits | self.item(part)?))
    }
}

pub(super) fn unrestricted(text: &str) -> bool {
    text == "*" || text == "?"
}

pub(super) fn day_field(text: &str) -> Result<DaySpec, ScheduleError> {
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

pub(super) fn weekday_field(text: &str) -> Result<WeekdaySpec, ScheduleError> {
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
