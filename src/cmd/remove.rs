//! `lore remove`: documents out of the index, by path as ingested or by folder prefix.

use crate::config::Config;
use crate::engine::Engine;
use crate::pipeline;
use anyhow::Result;
use lore_index::{Batch, DocumentRecord, FailureRecord};
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Document paths as ingested (see `lore status --documents`), or folder prefixes.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
}

/// `lore remove`: deletes documents by path as ingested, or every document under a folder
/// prefix, in one atomic commit.
pub fn run(config: &Config, args: &Args) -> Result<i32> {
    let paths = &args.paths;
    let mut engine = Engine::open(config)?;
    let docs = engine.index.documents()?;
    let failures = engine.index.failures()?;
    let mut removals = Vec::new();
    let mut missing = Vec::new();
    for p in paths {
        let wanted = pipeline::clean_path(Path::new(p));
        let prefix = format!("{}/", wanted.trim_end_matches('/'));
        let matches = |path: &str| path == wanted || path.starts_with(&prefix);
        let matched_docs: Vec<&DocumentRecord> = docs.iter().filter(|d| matches(&d.path)).collect();
        let matched_failures: Vec<&FailureRecord> =
            failures.iter().filter(|f| matches(&f.path)).collect();
        if matched_docs.is_empty() && matched_failures.is_empty() {
            missing.push(p.clone());
        }
        for d in matched_docs {
            println!("removed  {} ({} chunks)", d.path, d.chunks);
            removals.push(d.doc_id.clone());
        }
        // Removing a document id also clears its failure record.
        for f in matched_failures {
            if !removals.contains(&f.doc_id) {
                println!("removed  {} (failed: {})", f.path, f.reason);
                removals.push(f.doc_id.clone());
            }
        }
    }
    if !removals.is_empty() {
        engine.index.commit(Batch {
            removals,
            ..Batch::default()
        })?;
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "no indexed document matches {} (see `lore status --documents`)",
            missing.join(", ")
        );
    }
    Ok(0)
}
