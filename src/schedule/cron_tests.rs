//! Unit tests of `cron`.

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// Each (expression, after, next, why) of a table, in `tz`.
pub(super) fn assert_table(cases: &[(&str, &str, &str, &str)], tz: &str) {
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
