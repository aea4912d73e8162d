//! `deadline:` and `max_duration_sec` (CONTRACT §4.5): when a run must have succeeded, and how
//! long it may run. A scheduled run for logical date D must have succeeded by `at` on D + 1 in
//! `time_zone` (the schedule's without one, else UTC), or on D itself with `same_day: true`;
//! any run running past `max_duration_sec` has missed too. Either raises `deadline_missed`.

use serde::{Deserialize, Serialize};

/// `deadline: {at: "06:00", time_zone: Europe/Berlin, same_day: false}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlineDef {
    /// `HH:MM` or `HH:MM:SS`, wall-clock time in the zone.
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The deadline is on the logical date itself, not the day after.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub same_day: bool,
}

impl DeadlineDef {
    /// The time of day and the zone, or what is wrong (naming the key).
    pub fn parts(
        &self,
        schedule_zone: Option<&str>,
    ) -> Result<(jiff::civil::Time, jiff::tz::TimeZone), String> {
        let time = self
            .at
            .parse::<jiff::civil::Time>()
            .ok()
            .filter(|_| matches!(self.at.len(), 5 | 8))
            .ok_or_else(|| format!("deadline.at `{}` is not HH:MM or HH:MM:SS", self.at))?;
        let zone = match self.time_zone.as_deref().or(schedule_zone) {
            Some(z) => jiff::tz::TimeZone::get(z)
                .map_err(|_| format!("deadline.time_zone `{z}` is not a known time zone"))?,
            None => jiff::tz::TimeZone::UTC,
        };
        Ok((time, zone))
    }

    /// The deadline of the run for `logical_time` (seconds since the epoch).
    pub fn for_run(&self, logical_time: i64, schedule_zone: Option<&str>) -> Option<i64> {
        let (time, zone) = self.parts(schedule_zone).ok()?;
        let date = jiff::Timestamp::from_second(logical_time)
            .ok()?
            .to_zoned(zone.clone())
            .date();
        let day = match self.same_day {
            true => date,
            false => date.tomorrow().ok()?,
        };
        Some(
            day.to_datetime(time)
                .to_zoned(zone)
                .ok()?
                .timestamp()
                .as_second(),
        )
    }
}

/// The most `max_duration_sec` may be (a year).
pub const MAX_DURATION_SEC: u64 = 366 * 86_400;

/// Checks a definition's deadline and maximum duration.
pub fn check(
    deadline: Option<&DeadlineDef>,
    max_duration_sec: Option<u64>,
    schedule_zone: Option<&str>,
) -> Result<(), String> {
    if let Some(d) = deadline {
        d.parts(schedule_zone)?;
    }
    if let Some(m) = max_duration_sec
        && !(1..=MAX_DURATION_SEC).contains(&m)
    {
        return Err(format!(
            "max_duration_sec must be between 1 and {MAX_DURATION_SEC}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        text.parse::<jiff::Timestamp>().unwrap().as_second()
    }

    #[test]
    fn a_run_s_deadline_is_the_next_day_in_its_zone_or_the_same_day() {
        let d = DeadlineDef {
            at: "06:00".into(),
            time_zone: Some("Europe/Berlin".into()),
            same_day: false,
        };
        // Logical date 2026-03-28 in Berlin: due 2026-03-29 06:00 CEST (the clocks moved).
        let logical = at("2026-03-28T01:30:00Z");
        assert_eq!(d.for_run(logical, None), Some(at("2026-03-29T04:00:00Z")));
        let same = DeadlineDef {
            same_day: true,
            at: "23:30:15".into(),
            ..d.clone()
        };
        assert_eq!(
            same.for_run(logical, None),
            Some(at("2026-03-28T22:30:15Z"))
        );
        // The schedule's zone without one of its own; UTC without either.
        let plain = DeadlineDef {
            time_zone: None,
            ..d.clone()
        };
        assert_eq!(
            plain.for_run(logical, Some("America/New_York")),
            Some(at("2026-03-28T10:00:00Z"))
        );
        assert_eq!(
            plain.for_run(logical, None),
            Some(at("2026-03-29T06:00:00Z"))
        );
    }

    #[test]
    fn a_bad_deadline_is_named() {
        let bad = |at: &str, tz: Option<&str>| {
            check(
                Some(&DeadlineDef {
                    at: at.into(),
                    time_zone: tz.map(Into::into),
                    same_day: false,
                }),
                None,
                None,
            )
            .unwrap_err()
        };
        assert!(bad("6am", None).contains("deadline.at `6am`"));
        assert!(bad("25:00", None).contains("deadline.at"));
        assert!(bad("06:00", Some("Mars/Base")).contains("deadline.time_zone `Mars/Base`"));
        assert!(
            check(None, Some(0), None)
                .unwrap_err()
                .contains("max_duration_sec")
        );
        assert!(check(None, Some(3600), None).is_ok());
    }
}
