//! Pinball: a workflow manager in one binary.
//!
//! The modules, bottom to top, and which each may use (`layers::tests` reads this table and
//! fails when a module's `crate::` paths reach one it may not, or when the table has a cycle):
//!
//! | module      | owns                                                                  | may use |
//! |-------------|-----------------------------------------------------------------------|---------|
//! | `clock`     | the wall clock and UTC text (jiff)                                     | |
//! | `yaml`      | YAML text read with bounds (size, alias expansion)                     | |
//! | `metrics`   | the process's Prometheus recorder, metric names, the HTTP request layer | |
//! | `token`     | the token, the master API's types and errors, every token name (`name`) | |
//! | `config`    | the typed YAML configuration                                           | `token` `yaml` |
//! | `storage`   | persistence behind ports by consumer: SQLite, MySQL/MariaDB, migrations | `token` `clock` `metrics` |
//! | `web`       | the HTTP kit of the master and the UI: bounded serving, callers, errors, probes | `token` `clock` `config` `metrics` |
//! | `master`    | LAYER 1, the token master: state, single writer, HTTP API, `MasterClient` | `token` `clock` `config` `storage` `web` `metrics` |
//! | `email`     | notification emails: mailboxes, the SMTP transport (lettre), the durable outbox | `token` `config` `clock` `master` `metrics` |
//! | `schedule`  | the schedule model: recurrences, cron, policies, `fire(now)`           | `token` `clock` |
//! | `parser`    | YAML/JSON workflow definitions -> validated graphs                    | `token` `config` `schedule` `yaml` `email` |
//! | `workflow`  | LAYER 2 on `MasterClient`: job and signal data, statuses, planners, the worker | `token` `clock` `config` `master` `schedule` `parser` `email` `metrics` |
//! | `ops`       | the operator's commands (start, retry, ...) and the read model (`read`) | `token` `clock` `config` `master` `storage` `schedule` `parser` `email` `workflow` `metrics` |
//! | `scheduler` | the loops over schedule and backfill tokens (`-m scheduler`)           | `token` `clock` `config` `master` `storage` `schedule` `parser` `workflow` `ops` `email` `metrics` |
//! | `ui`        | the dashboard: pages, read API, actions and their JSON twin (`-m ui`)  | `token` `clock` `config` `master` `storage` `web` `schedule` `parser` `workflow` `ops` `metrics` |
//! | `trigger`   | the HTTP trigger `POST /api/v1/workflows/{wf}/runs`, on the master's listener | `token` `clock` `config` `master` `web` `parser` `workflow` `ops` |
//! | `cli`       | the command line: parses, confirms, calls `ops` and prints             | `token` `clock` `config` `master` `storage` `parser` `ops` `email` `metrics` |
//! | `modes`     | runs the components a `-m` list names, in one process                 | `token` `clock` `config` `master` `storage` `web` `schedule` `parser` `email` `workflow` `ops` `scheduler` `ui` `trigger` `metrics` |
//!
//! Storage is written by the master and read by the read model (`ops::read`: the dashboard,
//! `pinball status` and `pinball logs`) and, for archived instances only, by the other `ops`
//! and the scheduler; every other component reaches the master
//! through `MasterClient`. Nothing depends on `cli` or `modes`. The master and storage use no
//! workflow name (`token::name`, also checked by `layers::tests`): `modes` tells the master the
//! names it treats specially as `master::Naming` data, and the archive's grouping into
//! instances is passed to storage by its caller.

pub mod cli;
pub mod clock;
pub mod config;
pub mod email;
pub mod master;
pub mod metrics;
pub mod modes;
pub mod ops;
pub mod parser;
pub mod schedule;
pub mod scheduler;
pub mod storage;
pub mod token;
pub mod trigger;
pub mod ui;
pub mod web;
pub mod workflow;
pub mod yaml;

#[cfg(test)]
mod layers;
