//! `lore serve`: the portal and the HTTP API until SIGINT/SIGTERM.

use crate::config::{Config, ConfigLayer};
use anyhow::Result;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address and port to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "LORE_BIND", value_name = "ADDR:PORT")]
    pub bind: Option<String>,
    /// Answers admitted at once (one runs, the rest wait); more get 429 Retry-After
    /// [default: 4]
    #[arg(long, env = "LORE_ANSWER_QUEUE", value_name = "N")]
    pub answer_queue: Option<usize>,
    /// Folder to keep the index in step with (repeatable; see `lore watch --help`)
    #[arg(
        long = "watch",
        env = "LORE_WATCH",
        value_name = "DIR",
        value_delimiter = ':'
    )]
    pub watch: Vec<PathBuf>,
    #[command(flatten)]
    pub watch_flags: super::watch::WatchFlags,
}

impl Args {
    pub(super) fn layer(&self, layer: &mut ConfigLayer) {
        layer.bind = self.bind.clone();
        layer.answer_queue = self.answer_queue;
        layer.watch = (!self.watch.is_empty()).then(|| self.watch.clone());
        self.watch_flags.layer(layer);
    }
}

/// `lore serve`.
pub fn run(config: &Config) -> Result<i32> {
    Ok(crate::serve::run_serve(config)?)
}
