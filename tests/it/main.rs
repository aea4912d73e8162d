//! The integration tests: one binary, real SQLite files, a real MariaDB when
//! `PINBALL_TEST_MYSQL_URL` is set (CI sets it), real HTTP, real processes.

mod access;
mod api;
mod bad_input;
mod browser;
mod claims;
mod cli;
mod confinement;
mod crash;
mod emails;
mod execution;
mod faults;
mod full_disks;
mod fuzz;
mod helpers;
mod leases;
mod limits;
mod outages;
mod outbox;
mod processes;
mod repair;
mod scheduler;
mod schedules;
mod schemathesis;
mod signals;
mod smtp;
mod smtp_tls;
mod soak;
mod storage;
mod substitution;
mod ui_access;
mod ui_api;
mod ui_fixture;
mod ui_pages;
mod webdriver;
mod workflows;
