//! `lore revoke`: takes collections away from an account.

use crate::auth::{AuthStore, Scope};
use crate::config::Config;
use anyhow::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The account.
    pub name: String,
    /// Collections to take away (`*` takes away the grant of all).
    #[arg(required = true, value_name = "COLLECTION")]
    pub collections: Vec<String>,
}

pub fn run(config: &Config, args: &Args) -> Result<i32> {
    let scope = AuthStore::update(&config.data_dir, |s| {
        s.revoke(&args.name, &args.collections)?;
        Ok(s.scope(&args.name))
    })?;
    match scope {
        Scope::All => println!(
            "{} is an admin or holds `*`: still every collection",
            args.name
        ),
        Scope::Collections(c) if c.is_empty() => println!("{} may see no collection", args.name),
        s => println!("{} may now see: {}", args.name, s.names().join(", ")),
    }
    Ok(0)
}
