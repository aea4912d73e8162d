//! The integration tests: one binary, real SQLite files, a real MariaDB when
//! `PINBALL_TEST_MYSQL_URL` is set (CI sets it), real HTTP, real processes.

mod access_confinement;
mod access_master;
mod access_secrets;
mod access_ui;
mod access_ui_flood;
mod faults_commits;
mod faults_crash;
mod faults_full_disks;
mod faults_leases;
mod faults_lost_answers;
mod faults_one_master;
mod faults_outages;
mod faults_partition;
mod faults_soak;
mod faults_standby;
mod faults_stopping;
mod helpers;
mod master_api;
mod master_bad_input;
mod master_claims;
mod master_connections;
mod master_fuzz;
mod master_limits;
mod master_read_load;
mod master_schemathesis;
mod ops_cli;
mod ops_db_copy;
mod ops_deploy;
mod ops_hosts;
mod ops_metrics;
mod ops_processes;
mod ops_repair;
mod ops_reruns;
mod ops_retention;
mod ops_status;
mod ops_summaries;
mod ops_upgrade;
mod schedules_clock_steps;
mod schedules_policies;
mod schedules_scheduler;
mod storage_contract;
mod ui_api;
mod ui_browser;
mod ui_fixture;
mod ui_pages;
mod workflows_backfill;
mod workflows_core;
mod workflows_emails;
mod workflows_execution;
mod workflows_outbox;
mod workflows_params;
mod workflows_pool_slots;
mod workflows_pools;
mod workflows_process_tree;
mod workflows_queue;
mod workflows_remote_logs;
mod workflows_signals;
mod workflows_smtp_tls;
mod workflows_substitution;
mod workflows_trigger;
mod workflows_webhooks;

/// reqwest is built without a crypto provider of its own: the process's default (ring) is
/// installed before any test builds a client, as `pinball`'s `main` does.
#[used]
#[unsafe(link_section = ".init_array")]
static INSTALL_TLS_PROVIDER: extern "C" fn() = {
    extern "C" fn install() {
        pinball::config::install_tls_provider();
    }
    install
};
