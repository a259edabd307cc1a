//! `lore grant`: lets an account see collections (`*` = all).

use crate::auth::AuthStore;
use crate::config::Config;
use anyhow::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The account.
    pub name: String,
    /// Collections to grant; `*` (quoted in the shell) means all.
    #[arg(required = true, value_name = "COLLECTION")]
    pub collections: Vec<String>,
}

pub fn run(config: &Config, args: &Args) -> Result<i32> {
    let grants = AuthStore::update(&config.data_dir, |s| {
        s.grant(&args.name, &args.collections)?;
        Ok(s.scope(&args.name).names())
    })?;
    println!("{} may now see: {}", args.name, grants.join(", "));
    Ok(0)
}
