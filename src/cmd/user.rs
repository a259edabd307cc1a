//! `lore user`: accounts in `<data_dir>/auth.json` (add, list, remove, passwd). Works while
//! `lore serve` runs: the server reads the file again when it changes.

use crate::auth::store::{check_password, generate_password};
use crate::auth::{AuthStore, Role};
use crate::config::Config;
use anyhow::{Context, Result};
use std::io::Read;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Add an account. Without --password-stdin a password is generated and printed once.
    ///
    /// Examples:
    ///   lore user add admin --role admin
    ///   printf '%s\n' "$PW" | lore user add ann --role reader --password-stdin
    #[command(verbatim_doc_comment)]
    Add {
        name: String,
        /// admin (everything), editor (upload and delete in granted collections) or
        /// reader (ask and search granted collections)
        #[arg(long, value_parser = parse_role, value_name = "admin|editor|reader")]
        role: Role,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts with their roles and grants.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove an account, its tokens and its sessions.
    Remove { name: String },
    /// Set a new password (the account's open sessions end). Without --password-stdin a
    /// password is generated and printed once.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

pub(super) fn parse_role(s: &str) -> std::result::Result<Role, String> {
    s.parse().map_err(|e: crate::auth::AuthError| e.to_string())
}

/// The password: the first line of stdin, or a generated one (returned to be printed).
fn password(from_stdin: bool) -> Result<(String, bool)> {
    if !from_stdin {
        return Ok((generate_password()?, true));
    }
    let mut input = String::new();
    std::io::stdin()
        .take(16 * 1024)
        .read_to_string(&mut input)
        .context("cannot read the password from standard input")?;
    let line = input.lines().next().unwrap_or("").to_string();
    check_password(&line)?;
    Ok((line, false))
}

pub fn run(config: &Config, args: &Args) -> Result<i32> {
    let data = &config.data_dir;
    match &args.command {
        UserCommand::Add {
            name,
            role,
            password_stdin,
        } => {
            let (password, generated) = password(*password_stdin)?;
            AuthStore::update(data, |s| s.add_user(name, *role, &password))?;
            println!("added {name} ({role})");
            if generated {
                println!("password (shown once): {password}");
            }
            if *role != Role::Admin {
                println!("grant collections with: lore grant {name} COLLECTION...");
            }
        }
        UserCommand::List { json } => {
            let store = AuthStore::load(&crate::auth::store_path(data))?;
            let users = store.users();
            if *json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else if users.is_empty() {
                println!("no accounts (lore serve answers anyone on loopback only)");
            } else {
                for u in users {
                    let grants = match u.role {
                        Role::Admin => "every collection".to_string(),
                        _ if u.grants.is_empty() => "no collections".to_string(),
                        _ => u.grants.join(", "),
                    };
                    println!("{:<24} {:<7} {grants}", u.name, u.role.as_str());
                }
            }
        }
        UserCommand::Remove { name } => {
            AuthStore::update(data, |s| s.remove_user(name))?;
            println!("removed {name}");
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let (password, generated) = password(*password_stdin)?;
            AuthStore::update(data, |s| s.set_password(name, &password))?;
            println!("new password set for {name}; their sessions have ended");
            if generated {
                println!("password (shown once): {password}");
            }
        }
    }
    Ok(0)
}
