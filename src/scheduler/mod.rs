//! The scheduler (`-m scheduler`): the loop that claims due schedule tokens and starts, skips,
//! delays or aborts instances by their overrun policy. What a schedule is and when it runs next
//! is the pure `schedule` module below. `backfill` and `queue` are the
//! process's other loops: they start a backfill's dates and the runs queued for room.

pub mod backfill;
mod claim;
pub mod deadlines;
mod outcomes;
pub mod queue;
pub mod run;
mod too_many;
