//! LAYER 2: workflows on top of the token master, reached only through `MasterClient`.
//! `name` builds and parses every token name; `job` and `signal` are the token data; `instance`
//! creates instances; `progress` moves them forward atomically; `executor` runs commands;
//! `worker` ties it together; `definition` keeps the workflow definitions in the master.

pub mod definition;
pub mod executor;
pub mod instance;
pub mod job;
pub mod progress;
pub mod signal;
pub mod status;
pub mod worker;
