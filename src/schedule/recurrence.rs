//! Recurrences: `<n><unit>` with S, M, H (exact durations) and D, W, Y (calendar units that
//! keep the wall-clock time across daylight-saving changes).

use jiff::{Span, ToSpan};

use super::{Field, ScheduleError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Minutes,
    Hours,
    Days,
    Weeks,
    Years,
}

/// `<n><unit>`: S, M, H, D (or d), W (or w), Y (calendar years).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recurrence {
    pub n: i64,
    pub unit: Unit,
}

impl Recurrence {
    /// In words: `every 1 minute`, `every 2 days`, `every year`... (`1M` read as a month).
    pub fn describe(&self) -> String {
        let unit = match self.unit {
            Unit::Seconds => "second",
            Unit::Minutes => "minute",
            Unit::Hours => "hour",
            Unit::Days => "day",
            Unit::Weeks => "week",
            Unit::Years => "year",
        };
        match self.n {
            1 => format!("every 1 {unit}"),
            n => format!("every {n} {unit}s"),
        }
    }

    pub fn parse(text: &str) -> Result<Recurrence, ScheduleError> {
        let bad = |m: String| ScheduleError::new(Field::Recurrence, m);
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let n: i64 = digits.parse().map_err(|_| {
            bad(format!(
                "`{text}` must be a positive number followed by a unit, like 1D"
            ))
        })?;
        if n <= 0 || n > 100_000 {
            return Err(bad(format!(
                "`{text}`: the count must be between 1 and 100000"
            )));
        }
        let unit = match unit {
            "S" => Unit::Seconds,
            "M" => Unit::Minutes,
            "H" => Unit::Hours,
            "D" | "d" => Unit::Days,
            "W" | "w" => Unit::Weeks,
            "Y" => Unit::Years,
            other => {
                return Err(bad(format!(
                    "`{text}`: unit `{other}` is not one of S, M, H, D, W, Y"
                )));
            }
        };
        Ok(Recurrence { n, unit })
    }

    /// `k` periods as a calendar span (days stay days across DST changes).
    pub(super) fn span(self, k: i64) -> Result<Span, jiff::Error> {
        let n = self.n * k;
        Ok(match self.unit {
            Unit::Seconds => n.seconds(),
            Unit::Minutes => n.minutes(),
            Unit::Hours => n.hours(),
            Unit::Days => Span::new().try_days(n)?,
            Unit::Weeks => Span::new().try_weeks(n)?,
            Unit::Years => Span::new().try_years(n)?,
        })
    }

    /// Whether it counts calendar days (D, W, Y) rather than elapsed time.
    pub(super) fn is_calendar(self) -> bool {
        matches!(self.unit, Unit::Days | Unit::Weeks | Unit::Years)
    }

    /// Approximate length, to estimate how many periods have passed.
    pub(super) fn approx_seconds(self) -> i64 {
        self.n
            * match self.unit {
                Unit::Seconds => 1,
                Unit::Minutes => 60,
                Unit::Hours => 3600,
                Unit::Days => 86_400,
                Unit::Weeks => 7 * 86_400,
                Unit::Years => 365 * 86_400,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recurrences_read_in_words() {
        let words = |t: &str| Recurrence::parse(t).unwrap().describe();
        assert_eq!(words("1M"), "every 1 minute");
        assert_eq!(words("15M"), "every 15 minutes");
        assert_eq!(words("1D"), "every 1 day");
        assert_eq!(words("2w"), "every 2 weeks");
    }
}
