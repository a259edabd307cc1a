//! `lore watch`: keeps the index in step with folders until SIGINT/SIGTERM, with the index
//! opened by this process.

use crate::config::{Config, ConfigLayer};
use crate::engine::Engine;
use crate::watch::{WatchHandle, WatchOptions, BATCH_FILES, OPEN_PATIENCE};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folders to watch [default: `watch` in lore.toml]
    #[arg(value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Files per atomic commit (tests set it low to crash between commits).
    #[arg(long, hide = true, default_value_t = BATCH_FILES)]
    pub batch_files: usize,
    #[command(flatten)]
    pub flags: WatchFlags,
}

/// How a watcher notices and takes changes (`lore watch`, `lore serve --watch`).
#[derive(Debug, clap::Args)]
pub struct WatchFlags {
    /// notify (filesystem notifications) or poll (network shares and Docker volume drivers
    /// that deliver none) [default: notify]
    #[arg(long, env = "LORE_WATCH_MODE", value_name = "notify|poll")]
    pub watch_mode: Option<crate::config::WatchMode>,
    /// Seconds between polls in poll mode [default: 10]
    #[arg(long, env = "LORE_WATCH_POLL_SECS", value_name = "SECS")]
    pub poll_secs: Option<u64>,
    /// Take a file once its size and times stayed the same this long [default: 2000]
    #[arg(long, env = "LORE_WATCH_SETTLE_MS", value_name = "MS")]
    pub settle_ms: Option<u64>,
    /// Seconds between full comparisons of the folders with the index [default: 600]
    #[arg(long, env = "LORE_WATCH_RESCAN_SECS", value_name = "SECS")]
    pub rescan_secs: Option<u64>,
}

impl WatchFlags {
    pub(super) fn layer(&self, o: &mut ConfigLayer) {
        o.watch_mode = self.watch_mode;
        o.watch_poll_secs = self.poll_secs;
        o.watch_settle_ms = self.settle_ms;
        o.watch_rescan_secs = self.rescan_secs;
    }
}

impl Args {
    pub(super) fn layer(&self, layer: &mut ConfigLayer) {
        layer.watch = (!self.dirs.is_empty()).then(|| self.dirs.clone());
        self.flags.layer(layer);
    }
}

/// `lore watch`: watches until SIGINT/SIGTERM, with the index opened by this process.
pub fn run(config: &Config, args: &Args) -> Result<i32> {
    let mut engine = Engine::open_waiting(config, OPEN_PATIENCE)?;
    let handle = WatchHandle::new();
    let stop = handle.stop.clone();
    ctrlc_stop(stop.clone())?;
    let options = WatchOptions {
        batch_files: args.batch_files,
        ..WatchOptions::from_config(config)
    };
    println!(
        "watching {} (Ctrl-C to stop; `lore status` shows progress)",
        config
            .watch
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    crate::watch::run_supervised(
        config,
        &engine.embedder,
        &options,
        &handle,
        &mut engine.index,
    )?;
    Ok(0)
}

/// Sets `stop` on SIGINT or SIGTERM (a small runtime thread waits for the signals).
fn ctrlc_stop(stop: Arc<AtomicBool>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the signal handler")?;
    std::thread::Builder::new()
        .name("lore-signals".into())
        .spawn(move || {
            runtime.block_on(crate::serve::shutdown_signal());
            stop.store(true, Ordering::Relaxed);
        })
        .context("cannot start the signal handler")?;
    Ok(())
}
