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
//!
//! Only `master` writes through `storage`; the UI (to come) reads through it. Nothing depends
//! on `cli` or `modes`.

pub mod cli;
pub mod config;
pub mod master;
pub mod modes;
pub mod storage;
pub mod timefmt;
