//! The clock and how instants are written for people: seconds since the epoch (the unit of
//! leases and token times) and UTC text (`2026-11-28 19:00:00 UTC`), both through jiff. The
//! bottom layer: every module that reads the wall clock or prints an instant comes here, so
//! pure code can take `now` as an argument and tests can pass any instant.

use jiff::Timestamp;

/// Seconds since the epoch.
pub fn now() -> i64 {
    Timestamp::now().as_second()
}

/// Seconds since the epoch, with the fraction (execution start and end times).
pub fn now_f64() -> f64 {
    Timestamp::now().as_millisecond() as f64 / 1000.0
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

/// `YYYY-mm-dd HH:MM:SS UTC`; an instant outside the calendar jiff knows (years past 9999)
/// is written as its number of seconds.
pub fn utc(secs: i64) -> String {
    match Timestamp::from_second(secs) {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => format!("{secs} s after the epoch"),
    }
}

/// `1d 2h 3m 4s`, leading zero units left out: `45s`, `2m 0s`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    let (d, h, m, s) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants_are_written_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(10), "1970-01-01 00:00:10 UTC");
        assert_eq!(utc(1_325_376_000), "2012-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_767_225_599), "2025-12-31 23:59:59 UTC");
        assert_eq!(utc(i64::MAX), format!("{} s after the epoch", i64::MAX));
    }

    #[test]
    fn the_clock_agrees_with_itself() {
        let (s, ms) = (now(), now_ms());
        assert!((ms / 1000 - s).abs() <= 1);
        assert!((now_f64() - s as f64).abs() < 2.0);
    }
}
