//! `lore ingest`: files and folders into the index, with a progress bar and a per-file
//! summary.

use crate::config::{Config, ConfigLayer};
use crate::engine::Engine;
use crate::pipeline::{self, ingest_paths, IngestOptions, Summary};
use anyhow::Result;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or folders to ingest.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Collection the documents belong to [default: default]
    #[arg(long, env = "LORE_COLLECTION")]
    pub collection: Option<String>,
    /// Files larger than this many MiB are skipped [default: 100]
    #[arg(long, env = "LORE_MAX_FILE_MB", value_name = "MIB")]
    pub max_file_mb: Option<u64>,
    /// Target chunk size in embedding tokens [default: 200]
    #[arg(long, env = "LORE_CHUNK_TOKENS", value_name = "N")]
    pub chunk_tokens: Option<usize>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Commit after this many documents (each commit becomes visible atomically).
    #[arg(long, hide = true, default_value_t = pipeline::COMMIT_EVERY_DOCS)]
    pub commit_every: usize,
}

impl Args {
    pub(super) fn layer(&self, layer: &mut ConfigLayer) {
        layer.collection = self.collection.clone();
        layer.max_file_mb = self.max_file_mb;
        layer.chunk_tokens = self.chunk_tokens;
    }
}

/// `lore ingest`: returns the process exit code (2 when some files failed).
pub fn run(config: &Config, args: &Args, quiet: bool) -> Result<i32> {
    let mut engine = Engine::open(config)?;
    let progress = !(quiet || args.json);
    let options = IngestOptions {
        commit_every_docs: args.commit_every.max(1),
        progress,
        ..IngestOptions::default()
    };
    let summary = ingest_paths(
        config,
        &engine.embedder,
        &mut engine.index,
        &args.paths,
        options,
        &mut |_| {},
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if !quiet {
        print_summary(&summary);
    }
    Ok(if summary.failed.is_empty() { 0 } else { 2 })
}

fn print_summary(s: &Summary) {
    let rate = |n: u64| n as f64 / s.seconds.max(1e-3);
    let reused = if s.reused.is_empty() {
        String::new()
    } else {
        format!(" ({} re-filed without embedding)", s.reused.len())
    };
    println!(
        "ingested {}{reused} · unchanged {} · skipped {} · failed {} — {} chunks, {} pages in {:.1} s ({:.1} chunks/s, {:.1} pages/s)",
        s.ingested.len(),
        s.unchanged.len(),
        s.skipped.len(),
        s.failed.len(),
        s.chunks,
        s.pages,
        s.seconds,
        rate(s.chunks),
        rate(s.pages)
    );
    for w in &s.warnings {
        println!("warning  {}: {}", w.path, w.reason);
    }
    for f in &s.skipped {
        println!("skipped  {}: {}", f.path, f.reason);
    }
    for f in &s.failed {
        println!("failed   {}: {}", f.path, f.reason);
    }
}
