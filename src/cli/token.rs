//! `pinball token ls|cat|rm|update`: the original pinball_util (PINBALL_SPEC §7.2), with its
//! output formats, against a running master.

use clap::{Args, ValueEnum};

use super::{CliError, confirm};
use crate::clock::utc as format_utc;
use crate::master::MasterClient;
use crate::token::*;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TokenOp {
    /// Print the token named PREFIX (with -r, every token under it).
    Cat,
    /// Count tokens under PREFIX grouped by the next path segment (with -r, by full name).
    Ls,
    /// Delete what `cat` would print.
    Rm,
    /// Insert (without -v) or update (with -v) the token -n NAME.
    Update,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    pub op: TokenOp,
    /// Name prefix for cat, ls and rm.
    pub prefix: Option<String>,
    /// Master host (default: master_host from the configuration).
    #[arg(short = 's', long = "host")]
    pub host: Option<String>,
    /// Master port (default: master_port from the configuration).
    #[arg(short = 'p', long = "port")]
    pub port: Option<u16>,
    /// Do not ask for confirmation.
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Recursive: every token under the prefix.
    #[arg(short = 'r', long = "recursive")]
    pub recursive: bool,
    #[arg(short = 'n', long = "name")]
    pub name: Option<String>,
    #[arg(short = 'v', long = "version")]
    pub version: Option<i64>,
    #[arg(short = 'o', long = "owner")]
    pub owner: Option<String>,
    /// Ownership expiration, seconds since the epoch.
    #[arg(short = 't', long = "expiration", allow_negative_numbers = true)]
    pub expiration: Option<i64>,
    #[arg(short = 'd', long = "data")]
    pub data: Option<String>,
    #[arg(
        short = 'i',
        long = "priority",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub priority: f64,
}

/// `Token(version=V, owner=O, expirationTime=..., priority=P, name=N, data=D)`, as the original.
pub fn describe(t: &Token) -> String {
    let expiration = match t.expiration_time {
        None => "None".to_owned(),
        Some(NEVER) => "inf (maxint)".to_owned(),
        Some(e) => format_utc(e),
    };
    format!(
        "Token(version={}, owner={}, expirationTime={}, priority={:.6}, name={}, data={})",
        t.version.map_or("None".to_owned(), |v| v.to_string()),
        t.owner.as_deref().unwrap_or("None"),
        expiration,
        t.priority,
        t.name,
        t.data.as_deref().unwrap_or("None"),
    )
}

/// Runs one token command and returns what it prints.
pub async fn run(args: &TokenArgs, client: &dyn MasterClient) -> Result<String, CliError> {
    match args.op {
        TokenOp::Cat => Ok(listing(&select(args, client).await?)),
        TokenOp::Ls => ls(args, client).await,
        TokenOp::Rm | TokenOp::Update => {
            use crate::ops::apply_raw;
            let what = args.prefix.as_deref().unwrap_or("");
            let actor = super::os_user();
            match args.op {
                TokenOp::Rm => apply_raw(client, "token rm", &actor, what, rm(args, client)).await,
                _ => {
                    let write = update(args, client);
                    apply_raw(client, "token update", &actor, what, write).await
                }
            }
        }
    }
}

fn prefix(args: &TokenArgs) -> Result<&str, CliError> {
    args.prefix
        .as_deref()
        .ok_or_else(|| CliError::usage("this command needs a PREFIX argument"))
}

async fn select(args: &TokenArgs, client: &dyn MasterClient) -> Result<Vec<Token>, CliError> {
    let prefix = prefix(args)?;
    let tokens = client.query_prefix(prefix).await?;
    Ok(if args.recursive {
        tokens
    } else {
        tokens.into_iter().filter(|t| t.name == prefix).collect()
    })
}

fn listing(tokens: &[Token]) -> String {
    let mut out = format!("total {}\n", tokens.len());
    for t in tokens {
        out.push_str(&describe(t));
        out.push('\n');
    }
    out
}

async fn ls(args: &TokenArgs, client: &dyn MasterClient) -> Result<String, CliError> {
    let req = GroupRequest {
        name_prefix: prefix(args)?.to_owned(),
        group_suffix: if args.recursive {
            None
        } else {
            Some("/".into())
        },
    };
    let counts = client.group(req).await?.counts;
    let mut out = format!("total {}\n", counts.len());
    for (group, n) in counts {
        out.push_str(&format!("{group} [{n} token(s)]\n"));
    }
    Ok(out)
}

async fn rm(args: &TokenArgs, client: &dyn MasterClient) -> Result<String, CliError> {
    let tokens = select(args, client).await?;
    if tokens.is_empty() {
        return Ok("no tokens found\nremoved 0 token(s)\n".into());
    }
    let mut out = listing(&tokens);
    if !confirm(&format!("remove {} token(s)", tokens.len()), args.force)? {
        out.push_str("removed 0 token(s)\n");
        return Ok(out);
    }
    let n = tokens.len();
    client.modify(ModifyRequest::delete(tokens)).await?;
    out.push_str(&format!("removed {n} token(s)\n"));
    Ok(out)
}

async fn update(args: &TokenArgs, client: &dyn MasterClient) -> Result<String, CliError> {
    let name = args
        .name
        .clone()
        .ok_or_else(|| CliError::usage("update needs -n NAME"))?;
    if args.owner.is_some() != args.expiration.is_some() {
        return Err(CliError::usage(
            "-o OWNER and -t EXPIRATION must be given together",
        ));
    }
    let token = Token {
        name,
        version: args.version,
        owner: args.owner.clone(),
        expiration_time: args.expiration,
        priority: args.priority,
        data: args.data.clone(),
    };
    let verb = if args.version.is_some() {
        "updated"
    } else {
        "inserted"
    };
    let mut response = client.modify(ModifyRequest::update(vec![token])).await?;
    let stored = response
        .updates
        .pop()
        .ok_or_else(|| CliError::failed("the master returned no token"))?;
    Ok(format!("{verb} {}\nupdated 1 token\n", describe(&stored)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_matches_the_original_format() {
        let t = Token {
            name: "/some_path/some_token".into(),
            version: Some(10),
            owner: Some("some_owner".into()),
            expiration_time: Some(10),
            priority: 0.0,
            data: Some("some_data".into()),
        };
        assert_eq!(
            describe(&t),
            "Token(version=10, owner=some_owner, expirationTime=1970-01-01 00:00:10 UTC, priority=0.000000, name=/some_path/some_token, data=some_data)"
        );
    }
}
