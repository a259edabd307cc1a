//! `lore token`: API tokens for programs (`Authorization: Bearer <token>`, or the OpenAI
//! client's `api_key`). A token is printed once and stored only hashed.

use crate::auth::store::MAX_TOKEN_DAYS;
use crate::auth::AuthStore;
use crate::config::Config;
use anyhow::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token acting as NAME (with NAME's role and grants); printed once.
    ///
    /// Examples:
    ///   lore token create ann --label laptop --expires 90
    ///   curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/api/search ...
    #[command(verbatim_doc_comment)]
    Create {
        name: String,
        /// What the token is for.
        #[arg(long, value_name = "L")]
        label: Option<String>,
        /// Days until it expires [default: never]
        #[arg(long, value_name = "DAYS",
            value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..=MAX_TOKEN_DAYS))]
        expires: Option<u64>,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token for good.
    Revoke { id: String },
}

fn date(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map_or_else(|| unix.to_string(), |d| d.format("%Y-%m-%d").to_string())
}

pub fn run(config: &Config, args: &Args) -> Result<i32> {
    let data = &config.data_dir;
    match &args.command {
        TokenCommand::Create {
            name,
            label,
            expires,
        } => {
            let (info, secret) =
                AuthStore::update(data, |s| s.create_token(name, label.as_deref(), *expires))?;
            eprintln!(
                "token {} for {name}{} (shown once; store it now):",
                info.id,
                info.expires_at
                    .map(|at| format!(", expires {}", date(at)))
                    .unwrap_or_default()
            );
            println!("{secret}");
        }
        TokenCommand::List { json } => {
            let tokens = AuthStore::load(&crate::auth::store_path(data))?.tokens();
            if *json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else if tokens.is_empty() {
                println!("no tokens");
            } else {
                for t in tokens {
                    println!(
                        "{:<14} {:<20} {:<8} created {}  expires {:<10}  {}",
                        t.id,
                        t.user,
                        t.state,
                        date(t.created_at),
                        t.expires_at.map_or("never".into(), date),
                        t.label.unwrap_or_default()
                    );
                }
            }
        }
        TokenCommand::Revoke { id } => {
            AuthStore::update(data, |s| s.revoke_token(id))?;
            println!("revoked token {id}");
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(super::date(0), "1970-01-01");
        assert_eq!(super::date(951_782_400), "2000-02-29");
        assert_eq!(super::date(1_796_083_200), "2026-12-01");
    }
}
