//! The scheduler (issue 4, in progress): schedules as pure functions of an explicit `now`
//! (`schedule`, `cron`). The loop that claims due schedule tokens and applies the overrun
//! policies is not built yet; the definitions' `schedule:` blocks are validated at import.

pub mod cron;
pub mod policy;
pub mod run;
pub mod schedule;
pub mod token;
