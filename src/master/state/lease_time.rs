//! A lease's end from when it was granted, and back: whole seconds, as `expiration_time` is.

/// The end of a lease of `secs` granted at `now` (whole seconds, as `expiration_time` is): one
/// second more, so the lease is never shorter than asked however far into `now` it is granted.
pub fn lease_end(now: i64, secs: u64) -> i64 {
    now.saturating_add(secs as i64).saturating_add(1)
}

/// The master's clock (in seconds) when it granted a claim of `secs` whose lease ends at
/// `end`: the inverse of [`lease_end`], which adds a second so that a lease counted in whole
/// seconds is never shorter than asked.
pub fn granted_at(end: i64, secs: u64) -> i64 {
    end.saturating_sub(secs as i64).saturating_sub(1)
}
