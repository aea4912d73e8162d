//! The cron dialect, case by case as the documentation states it.

use super::tests::assert_table;

/// (expression, after, next, why), UTC: each rule of the dialect the documentation states.
const DIALECT: &[(&str, &str, &str, &str)] = &[
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

#[test]
fn the_dialect_reads_as_documented() {
    assert_table(DIALECT, "UTC");
}
