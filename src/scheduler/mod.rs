//! The scheduler (`-m scheduler`): the loop that claims due schedule tokens and starts, skips,
//! delays or aborts instances by their overrun policy. What a schedule is and when it runs next
//! is the pure `schedule` module below.

pub mod backfill;
mod outcomes;
pub mod run;
