use super::*;
use crate::schedule::{Schedule, ScheduleDef};
use jiff::Timestamp;

fn daily_berlin() -> Schedule {
    Schedule::from_def(&ScheduleDef {
        recurrence: Some("1D".into()),
        start: Some("2026-03-01T00:30:00".into()),
        timezone: Some("Europe/Berlin".into()),
        ..Default::default()
    })
    .unwrap()
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn fire_times_are_the_schedules_in_the_range_inclusive_across_a_dst_change() {
    let s = daily_berlin();
    // 00:30 in Berlin: 23:30Z in winter, 22:30Z from 29 March.
    let times = fire_times(&s, ts("2026-03-27T23:30:00Z"), ts("2026-03-30T22:30:00Z")).unwrap();
    let text: Vec<String> = times
        .iter()
        .map(|t| Timestamp::from_second(*t).unwrap().to_string())
        .collect();
    assert_eq!(
        text,
        [
            "2026-03-27T23:30:00Z",
            "2026-03-28T23:30:00Z",
            "2026-03-29T22:30:00Z",
            "2026-03-30T22:30:00Z"
        ]
    );
    let err = fire_times(&s, ts("2026-03-02T00:00:00Z"), ts("2026-03-01T00:00:00Z")).unwrap_err();
    assert!(err.contains("before"), "{err}");
    let every_second = Schedule::from_def(&ScheduleDef {
        recurrence: Some("1S".into()),
        start: Some("2026-01-01T00:00:00Z".into()),
        ..Default::default()
    })
    .unwrap();
    let err = fire_times(
        &every_second,
        ts("2026-01-01T00:00:00Z"),
        ts("2026-01-02T00:00:00Z"),
    )
    .unwrap_err();
    assert!(err.contains("more than 10000"), "{err}");
}

fn run(t: i64, created: u64, finished: bool, succeeded: bool) -> ExistingRun {
    ExistingRun {
        logical_time: t,
        created,
        finished,
        succeeded,
    }
}

#[test]
fn reprocess_decides_by_the_newest_run_and_never_starts_a_date_in_progress() {
    let times = [10, 20, 30, 40];
    let runs = [
        run(20, 1, true, false), // failed, then succeeded
        run(20, 2, true, true),
        run(30, 3, true, false),  // failed
        run(40, 4, false, false), // in progress
    ];
    let states =
        |r| -> Vec<DateState> { decide(&times, &runs, r).iter().map(|d| d.state).collect() };
    use DateState::*;
    assert_eq!(
        states(Reprocess::Missing),
        [Pending, HasRun, HasRun, InProgress]
    );
    assert_eq!(
        states(Reprocess::Failed),
        [Pending, Succeeded, Pending, InProgress]
    );
    assert_eq!(
        states(Reprocess::All),
        [Pending, Pending, Pending, InProgress]
    );
}

fn backfill(n: usize, max_active: u32) -> Backfill {
    Backfill {
        id: "1".into(),
        workflow: "w".into(),
        state: BackfillState::Running,
        from: 0,
        to: n as i64,
        reprocess: Reprocess::Missing,
        max_active,
        every: None,
        params: BTreeMap::new(),
        timezone: None,
        times: (0..n as i64).collect(),
        states: "p".repeat(n),
        running: BTreeMap::new(),
        created_by: "t".into(),
        created_at: 0,
        error: None,
    }
}

#[test]
fn starts_stay_within_max_active_in_order_and_the_backfill_ends_when_all_did() {
    let mut b = backfill(5, 2);
    assert_eq!(
        b.clone().next_starts(1),
        [0],
        "the workflow's run limit leaves room for one"
    );
    let first = b.next_starts(usize::MAX);
    assert_eq!(first, [0, 1]);
    for i in &first {
        b.started(*i, &format!("i{i}"));
    }
    assert!(b.next_starts(usize::MAX).is_empty(), "two run already");
    assert!(b.ended("i0", true));
    assert!(!b.ended("i0", true), "an end counts once");
    assert!(!b.ended("other", false));
    assert_eq!(b.next_starts(usize::MAX), [2]);
    b.started(2, "i2");
    assert!(b.ended("i1", false));
    assert!(b.ended("i2", true));
    let rest = b.next_starts(usize::MAX);
    assert_eq!(rest, [3, 4]);
    b.started(3, "i3");
    b.started(4, "i4");
    b.state = BackfillState::Paused;
    assert!(b.next_starts(usize::MAX).is_empty(), "paused");
    b.state = BackfillState::Running;
    b.ended("i3", true);
    b.ended("i4", true);
    b.finish_if_done();
    assert_eq!(b.state, BackfillState::Done);
    assert_eq!(
        b.counts(),
        Counts {
            done: 4,
            failed: 1,
            ..Default::default()
        }
    );
    let again = Backfill::from_token(&b.new_token()).unwrap();
    assert_eq!(again, b, "the token holds all of it");
}

#[test]
fn cancel_leaves_nothing_pending_and_names_the_runs_to_abort() {
    let mut b = backfill(4, 1);
    let s = b.next_starts(usize::MAX);
    b.started(s[0], "i0");
    assert_eq!(b.cancel(), ["i0"]);
    assert!(b.next_starts(usize::MAX).is_empty());
    let c = b.counts();
    assert_eq!((c.pending, c.running, c.cancelled), (0, 1, 3));
    assert!(b.is_active(), "the aborted run's end is still to come");
    b.ended("i0", false);
    assert!(!b.is_active());
}

#[test]
fn names_say_which_backfill_and_whether_a_mark() {
    assert_eq!(name::backfill_of("/backfill/12"), Some(("12", false)));
    assert_eq!(name::backfill_of("/backfill/12/end/34"), Some(("12", true)));
    assert_eq!(name::backfill_of("/backfill/12/x"), None);
    assert_eq!(name::backfill_of("/schedule/x"), None);
}

#[test]
fn the_times_are_stored_as_spans_and_read_back_whole() {
    let mut b = backfill(0, 1);
    // Hourly, then a DST-like jump, then irregular, then backward.
    b.times = (0..1000).map(|k| 3600 * k).collect();
    b.times
        .extend([3_600_000 + 7200, 3_600_000 + 10800, 5, 4, 3]);
    b.states = "p".repeat(b.times.len());
    b.states.replace_range(3..5, "dd");
    let data = b.to_data();
    assert!(data.contains(r#""states":"3p2d1000p""#), "{data}");
    assert!(data.len() < 400, "{} bytes: {data}", data.len());
    assert_eq!(Backfill::from_token(&b.new_token()).unwrap(), b);
    let huge = data.replace("[[0,3600,1000]", "[[0,3600,10001]");
    assert!(serde_json::from_str::<Backfill>(&huge).is_err());
    let huge = data.replace("1000p", "10001p");
    assert!(serde_json::from_str::<Backfill>(&huge).is_err());
}
