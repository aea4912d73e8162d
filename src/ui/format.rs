//! How the UI writes times and durations: `2026-11-28 21:20:42 UTC`, `3 min ago`, `1h 2m 3s`.

use crate::clock::utc as format_utc;

pub fn utc(t: Option<f64>) -> String {
    t.map_or_else(String::new, |t| format_utc(t as i64))
}

/// `12 s ago`, `3 min ago`, `5 h ago`, `2 days ago`; `in 4 min` for the future.
pub fn ago(t: Option<f64>, now: f64) -> String {
    let Some(t) = t else {
        return String::new();
    };
    let d = (now - t).round() as i64;
    let (n, future) = (d.abs(), d < 0);
    let amount = match n {
        0..60 => format!("{n} s"),
        60..3600 => format!("{} min", n / 60),
        3600..86_400 => format!("{} h", n / 3600),
        _ if n < 2 * 86_400 => "1 day".to_owned(),
        _ => format!("{} days", n / 86_400),
    };
    if future {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

pub use crate::clock::duration;

/// The run time from `start` to `end` (or to now while it runs), empty without a start.
pub fn run_time(start: Option<f64>, end: Option<f64>, now: f64) -> String {
    start.map_or_else(String::new, |s| duration(end.unwrap_or(now) - s))
}

/// The same run time in whole seconds, as a table's sort key (empty without a start).
pub fn run_secs(start: Option<f64>, end: Option<f64>, now: f64) -> String {
    start.map_or_else(String::new, |s| format!("{:.0}", end.unwrap_or(now) - s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_original() {
        assert_eq!(duration(0.4), "0s");
        assert_eq!(duration(45.0), "45s");
        assert_eq!(duration(120.0), "2m 0s");
        assert_eq!(duration(3723.0), "1h 2m 3s");
        assert_eq!(duration(90_061.0), "1d 1h 1m 1s");
    }

    #[test]
    fn relative_times_round_to_one_unit() {
        let now = 1_000_000.0;
        assert_eq!(ago(Some(now - 12.0), now), "12 s ago");
        assert_eq!(ago(Some(now - 185.0), now), "3 min ago");
        assert_eq!(ago(Some(now - 7200.0), now), "2 h ago");
        assert_eq!(ago(Some(now - 86_400.0 * 3.5), now), "3 days ago");
        assert_eq!(ago(Some(now + 240.0), now), "in 4 min");
        assert_eq!(ago(None, now), "");
        assert_eq!(utc(Some(0.0)), "1970-01-01 00:00:00 UTC");
    }
}
