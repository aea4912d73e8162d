use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn schedule(recurrence: &str, start: &str, tz: Option<&str>) -> Schedule {
    let def = ScheduleDef {
        recurrence: Some(recurrence.into()),
        start: Some(start.into()),
        timezone: tz.map(Into::into),
        ..Default::default()
    };
    Schedule::from_def(&def).unwrap()
}

fn next(s: &Schedule, after: &str) -> String {
    s.next_after(ts(after)).unwrap().to_string()
}

#[test]
fn recurrences_count_from_start_and_collapse_missed_periods() {
    let s = schedule("10S", "1970-01-01T00:01:35Z", None);
    // next = 95, rec = 10, now = 100 -> 105 (scenario 36); next = now -> now + rec.
    assert_eq!(next(&s, "1970-01-01T00:01:40Z"), "1970-01-01T00:01:45Z");
    assert_eq!(next(&s, "1970-01-01T00:01:45Z"), "1970-01-01T00:01:55Z");
    assert_eq!(
        next(&s, "1970-01-01T00:00:00Z"),
        "1970-01-01T00:01:35Z",
        "before start, start comes first"
    );
    assert_eq!(
        s.count_between(ts("1970-01-01T00:01:35Z"), ts("1970-01-01T00:02:20Z"), 100),
        4
    );
}

#[test]
fn days_keep_the_wall_clock_time_across_dst() {
    let s = schedule("1D", "2026-03-01 09:00:00", Some("America/New_York"));
    assert_eq!(
        next(&s, "2026-03-07T15:00:00Z"),
        "2026-03-08T13:00:00Z",
        "09:00 EDT after the change"
    );
    assert_eq!(
        next(&s, "2026-03-06T15:00:00Z"),
        "2026-03-07T14:00:00Z",
        "09:00 EST before it"
    );
    let h = schedule("24H", "2026-03-01 09:00:00", Some("America/New_York"));
    assert_eq!(
        next(&h, "2026-03-07T15:00:00Z"),
        "2026-03-08T14:00:00Z",
        "24H is an exact duration: 10:00 EDT"
    );
}

#[test]
fn month_ends_leap_years_and_calendar_years() {
    let y = schedule("1Y", "2024-02-29T12:00:00Z", None);
    assert_eq!(
        next(&y, "2024-03-01T00:00:00Z"),
        "2025-02-28T12:00:00Z",
        "Feb 29 + 1 year clamps to Feb 28"
    );
    assert_eq!(
        next(&y, "2027-06-01T00:00:00Z"),
        "2028-02-29T12:00:00Z",
        "and counts from the start, so leap years get the 29th"
    );
    let w = schedule("2W", "2026-01-31T00:00:00Z", None);
    assert_eq!(next(&w, "2026-02-13T00:00:00Z"), "2026-02-14T00:00:00Z");
    let d = schedule("1d", "2026-01-31T06:00:00Z", None);
    assert_eq!(
        next(&d, "2026-02-28T06:00:00Z"),
        "2026-03-01T06:00:00Z",
        "across a month end"
    );
}

#[test]
fn start_on_a_cron_schedule_means_not_before() {
    let def = ScheduleDef {
        cron: Some("0 9 * * *".into()),
        start: Some("2026-12-10 00:00:00".into()),
        ..Default::default()
    };
    let s = Schedule::from_def(&def).unwrap();
    assert_eq!(next(&s, "2026-12-01T00:00:00Z"), "2026-12-10T09:00:00Z");
    assert_eq!(next(&s, "2026-12-10T09:00:00Z"), "2026-12-11T09:00:00Z");
}

#[test]
fn a_recurrence_started_in_a_skipped_hour_keeps_its_written_time() {
    // 02:30 does not exist in New York on 2026-03-08: the first run is at 03:00 EDT (the
    // first valid time after it); every later day runs at 02:30 again.
    let s = schedule("1D", "2026-03-08 02:30:00", Some("America/New_York"));
    assert_eq!(next(&s, "2026-03-01T00:00:00Z"), "2026-03-08T07:00:00Z");
    assert_eq!(next(&s, "2026-03-08T07:00:00Z"), "2026-03-09T06:30:00Z");
    assert_eq!(next(&s, "2026-06-01T00:00:00Z"), "2026-06-01T06:30:00Z");
}

#[test]
fn a_cron_that_never_matches_is_refused_naming_the_field() {
    let def = ScheduleDef {
        cron: Some("0 0 30 2 *".into()),
        ..Default::default()
    };
    let err = Schedule::from_def(&def).unwrap_err().to_string();
    assert!(
        err.starts_with("schedule.cron: `0 0 30 2 *` never matches"),
        "{err}"
    );
}

#[test]
fn bad_schedules_name_the_field() {
    let bad = |def: ScheduleDef, says: &str| {
        let err = Schedule::from_def(&def).unwrap_err().to_string();
        assert!(err.contains(says), "{err}");
    };
    bad(
        ScheduleDef {
            recurrence: Some("10X".into()),
            ..Default::default()
        },
        "schedule.recurrence `10X`: unit `X`",
    );
    bad(
        ScheduleDef {
            recurrence: Some("0D".into()),
            ..Default::default()
        },
        "schedule.recurrence",
    );
    bad(
        ScheduleDef {
            cron: Some("* *".into()),
            ..Default::default()
        },
        "schedule.cron",
    );
    bad(
        ScheduleDef {
            recurrence: Some("1D".into()),
            cron: Some("* * * * *".into()),
            ..Default::default()
        },
        "not both",
    );
    bad(
        ScheduleDef {
            recurrence: Some("1D".into()),
            timezone: Some("Mars/Base".into()),
            ..Default::default()
        },
        "schedule.timezone",
    );
    bad(
        ScheduleDef {
            recurrence: Some("1D".into()),
            start: Some("yesterday".into()),
            ..Default::default()
        },
        "schedule.start",
    );
    bad(
        ScheduleDef {
            recurrence: Some("1D".into()),
            overrun_policy: Some("SOMETIMES".into()),
            ..Default::default()
        },
        "schedule.overrun_policy",
    );
    bad(
        ScheduleDef {
            recurrence: Some("1D".into()),
            max_running_instances: Some(0),
            ..Default::default()
        },
        "max_running_instances",
    );
}

#[test]
fn cron_schedules_use_their_time_zone() {
    let def = ScheduleDef {
        cron: Some("0 9 * * *".into()),
        timezone: Some("Europe/Paris".into()),
        ..Default::default()
    };
    let s = Schedule::from_def(&def).unwrap();
    assert_eq!(
        s.next_after(ts("2026-07-01T00:00:00Z"))
            .unwrap()
            .to_string(),
        "2026-07-01T07:00:00Z"
    );
    assert_eq!(
        s.next_after(ts("2026-12-01T00:00:00Z"))
            .unwrap()
            .to_string(),
        "2026-12-01T08:00:00Z"
    );
}

#[test]
fn a_start_moved_by_whole_periods_is_the_same_schedule() {
    let w = crate::token::name::WorkflowName::parse("w").unwrap();
    let now = ts("2026-06-01T10:00:00Z");
    let data = |recurrence: &str, start: &str| {
        let def = ScheduleDef {
            recurrence: Some(recurrence.into()),
            start: Some(start.into()),
            ..Default::default()
        };
        ScheduleData::new(&w, &def, &[], now).unwrap()
    };
    let old = data("1D", "2026-01-01T02:00:00Z");
    assert!(old.corresponds_to(&data("1D", "2026-01-02T02:00:00Z"), now));
    assert!(old.corresponds_to(&data("1D", "2025-12-01T02:00:00Z"), now));
    assert!(!old.corresponds_to(&data("1D", "2026-01-01T03:00:00Z"), now));
    assert!(!old.corresponds_to(&data("2D", "2026-01-01T02:00:00Z"), now));
    // A first run still to come that moves is a change.
    let future = data("1D", "2026-07-01T02:00:00Z");
    assert!(!future.corresponds_to(&data("1D", "2026-07-02T02:00:00Z"), now));
}

#[test]
fn the_previous_run_is_found_for_every_kind_of_schedule() {
    let daily = schedule("1D", "2026-01-01T02:00:00Z", None);
    let prev = |s: &Schedule, t: &str| s.previous_before(ts(t)).map(|p| p.to_string());
    assert_eq!(
        prev(&daily, "2026-03-10T02:00:00Z").as_deref(),
        Some("2026-03-09T02:00:00Z")
    );
    assert_eq!(
        prev(&daily, "2026-03-10T02:00:01Z").as_deref(),
        Some("2026-03-10T02:00:00Z")
    );
    assert_eq!(
        prev(&daily, "2026-01-01T02:00:00Z"),
        None,
        "none before the start"
    );
    let cron = Schedule::from_def(&ScheduleDef {
        cron: Some("*/15 * * * *".into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        prev(&cron, "2026-03-10T10:07:00Z").as_deref(),
        Some("2026-03-10T10:00:00Z")
    );
    let yearly = schedule("1Y", "2020-06-01T00:00:00Z", None);
    assert_eq!(
        prev(&yearly, "2026-03-10T00:00:00Z").as_deref(),
        Some("2025-06-01T00:00:00Z")
    );
}
