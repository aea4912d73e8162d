//! `pinball pool set NAME --slots N [--description T] | pool ls | pool rm NAME` (CONTRACT §1,
//! §4.4): pools with slots, changed without a restart.

use clap::Subcommand;

use super::CliError;
use crate::config::Config;
use crate::master::MasterClient;
use crate::ops::Ops;

#[derive(Debug, clap::Args)]
pub struct PoolArgs {
    #[command(subcommand)]
    pub command: PoolCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum PoolCommand {
    /// Create or change a pool: its jobs hold at most N slots at once.
    Set {
        name: String,
        /// The slots its running jobs may hold together (omit for unlimited).
        #[arg(long)]
        slots: Option<u32>,
        /// What the pool is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// Every pool: slots, used, waiting jobs.
    Ls,
    /// Remove a pool: its jobs run without a limit.
    Rm { name: String },
}

pub async fn run(
    args: &PoolArgs,
    config: &Config,
    client: &dyn MasterClient,
) -> Result<String, CliError> {
    let ops = Ops::from_config(client, config);
    let actor = super::os_user();
    let done = match &args.command {
        PoolCommand::Set {
            name,
            slots,
            description,
        } => {
            ops.set_pool(name, *slots, description.clone(), &actor)
                .await?
        }
        PoolCommand::Rm { name } => ops.remove_pool(name, &actor).await?,
        PoolCommand::Ls => {
            let rows = ops.pools().await?;
            if rows.is_empty() {
                return Ok("no pools\n".into());
            }
            let mut out = String::new();
            for r in rows {
                let slots = r.slots.map_or("unlimited".to_owned(), |n| n.to_string());
                out.push_str(&format!(
                    "{} slots {slots} used {} waiting {}{}\n",
                    r.pool,
                    r.used,
                    r.waiting,
                    if r.description.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", r.description)
                    }
                ));
            }
            return Ok(out);
        }
    };
    if done.refused {
        return Err(CliError::failed(done.message.trim_end()));
    }
    Ok(done.message)
}
