//! Logging setup: tracing to stderr, filtered by `LORE_LOG` (or `RUST_LOG`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once. Default level: warnings (errors only with `--quiet`).
pub fn init(quiet: bool) {
    let default = if quiet { "error" } else { "warn" };
    let filter = std::env::var("LORE_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
