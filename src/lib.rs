//! Pinball: a workflow manager in one binary.
//!
//! Module map, and who may depend on whom:
//!
//! | module    | owns                                                          | may use           |
//! |-----------|---------------------------------------------------------------|-------------------|
//! | `master`  | LAYER 1, the token master: state, single writer, HTTP API, `MasterClient`; knows nothing about workflows | `storage` |
//! | `storage` | persistence behind one trait (SQLite, MySQL/MariaDB)           | (nothing)         |
//! | `config`  | the typed YAML configuration                                  | (nothing)         |
//! | `modes`   | runs the components a `-m` list names, in one process         | everything above  |
//! | `cli`     | the command line; reaches the master only via `MasterClient`  | `master::client`  |
//! | `timefmt` | UTC formatting                                                | (nothing)         |
//! | `workflow`| LAYER 2: names, job/signal data, workers, progress, definitions | `master::client`, `parser` |
//! | `parser`  | YAML/JSON workflow definitions -> validated graphs            | `workflow::name`, `scheduler::schedule` |
//! | `scheduler` | schedules, overrun policies, the loop (`-m scheduler`)     | `parser`, `workflow`, `master::client` |
//! | `ui`      | statuses shown to users (pages and read API: issue 5)          | `workflow`        |
//!
//! Only `master` writes through `storage`; the UI (to come) reads through it. Nothing depends
//! on `cli` or `modes`.

pub mod cli;
pub mod clock;
pub mod config;
pub mod email;
pub mod master;
pub mod modes;
pub mod ops;
pub mod parser;
pub mod schedule;
pub mod scheduler;
pub mod storage;
pub mod token;
pub mod ui;
pub mod workflow;
