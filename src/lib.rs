//! Pinball: a workflow manager in one binary.
//!
//! Module map, and who may depend on whom:
//! - `master`  LAYER 1: the token master (state, single writer, HTTP API, `MasterClient`).
//!             Knows nothing about workflows. Uses `storage`.
//! - `storage` persistence behind one trait (SQLite, MySQL/MariaDB). Used by `master` (writes)
//!             and the UI's read side only.
//! - `config`  the typed YAML configuration. Used by everyone.
//! - `modes`   runs the components a `-m` list names, in one process.
//! - `cli`     the command line (`token`, later `util` and `import`); reaches the master only
//!             through `MasterClient`. Nothing depends on `cli`.
//! - `timefmt` UTC formatting helpers.

pub mod cli;
pub mod config;
pub mod master;
pub mod modes;
pub mod storage;
pub mod timefmt;
