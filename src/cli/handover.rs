//! `pinball master handover` (CONTRACT §7.3): the leader gives its lease to a standby and
//! stands by itself; the command waits until a master leads under a greater epoch and says
//! which, and how long the handover took.

use std::time::{Duration, Instant};

use super::CliError;
use crate::config::Config;
use crate::master::api::handover::HandoverRequest;
use crate::master::{HttpMasterClient, MasterClient};

#[derive(Debug, clap::Args)]
pub struct MasterArgs {
    #[command(subcommand)]
    pub command: MasterCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum MasterCommand {
    /// The leader gives its lease to a standby and stands by itself (a planned switch, e.g.
    /// before the leader's machine is serviced); waits for the next leader.
    Handover,
}

pub async fn run(args: &MasterArgs, config: &Config) -> Result<String, CliError> {
    let MasterCommand::Handover = args.command;
    let client = HttpMasterClient::from_config(config);
    let asked = Instant::now();
    let req = HandoverRequest {
        actor: Some(super::os_user()),
    };
    let given = client.hand_over(&req).await?;
    tracing::info!(master = %given.master, epoch = given.epoch, standbys = %given.standbys.join(", "), "the leader gives its lease up");
    // A standby takes the lease within its next read of it (half a second at most), then
    // loads; two leases' length is far more than that.
    let within = Duration::from_secs(config.master_lease_sec.max(1) * 2 + 5);
    while asked.elapsed() < within {
        if let Ok(h) = client.health().await
            && h.role == "leader"
            && h.epoch.is_some_and(|e| e > given.epoch)
        {
            return Ok(format!(
                "master {}: the lease went from epoch {} to {}; the leader is {} ({:.2} s)\n",
                given.master,
                given.epoch,
                h.epoch.unwrap_or_default(),
                h.leader.unwrap_or_default(),
                asked.elapsed().as_secs_f64()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(CliError::failed(format!(
        "master {}: the leader gave up epoch {}, but no master leads under a greater one after {} s (standbys were: {})",
        given.master,
        given.epoch,
        within.as_secs(),
        given.standbys.join(", ")
    )))
}
