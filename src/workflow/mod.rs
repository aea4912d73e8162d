//! LAYER 2: workflows on top of the token master, reached only through `MasterClient`.
//! `job` and `signal` are the data inside tokens; `instance` builds an instance's tokens;
//! `status` says what users see; `plan` decides, as pure functions, what each step of
//! progress writes, and `progress` and `settle` read, ask `plan`, and write; `executor` runs a
//! command; `mail` builds the notification emails; `worker` ties it together; `definition` keeps the workflow definitions in the
//! master; `queue` holds the runs that wait for room.

pub mod backfill;
pub mod deadlines;
pub mod definition;
mod downstream;
pub mod error;
pub mod executor;
pub mod instance;
pub mod job;
pub mod launch;
pub mod links;
pub mod logroot;
pub mod logs;
pub mod mail;
pub mod notices;
pub mod plan;
pub mod progress;
pub mod queue;
pub mod reaper;
pub mod run_info;
pub mod settle;
pub mod signal;
pub mod spawn;
pub mod status;
pub mod view;
pub mod worker;
