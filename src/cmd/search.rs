//! `lore search`: the best passages for a query, as text or JSON.

use super::parse_mode;
use crate::config::Config;
use crate::engine::Engine;
use crate::retrieval;
use anyhow::Result;
use lore_index::{Filter, SearchMode};
use std::io::Write;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to look for, in plain words.
    pub query: String,
    /// Number of passages.
    #[arg(long, short, default_value_t = 5, value_parser = super::passage_count())]
    pub k: usize,
    /// Retrieval mode.
    #[arg(long, short, default_value = "hybrid", value_parser = parse_mode)]
    pub mode: SearchMode,
    /// Restrict to these collections (repeatable).
    #[arg(long = "collection", value_name = "NAME")]
    pub collections: Vec<String>,
    /// Print full passages as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `lore search`.
pub fn run(config: &Config, args: &Args) -> Result<i32> {
    if args.query.trim().is_empty() {
        anyhow::bail!("the query is empty: give some words to search for");
    }
    let engine = Engine::open_read_only(config)?;
    super::require_documents(&engine, config)?;
    let filter = Filter {
        collections: (!args.collections.is_empty()).then(|| args.collections.clone()),
    };
    let results = retrieval::search(
        &engine.embedder,
        &engine.index,
        &args.query,
        args.mode,
        args.k,
        &filter,
    )?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = retrieval::SearchOutput {
            query: &args.query,
            mode: args.mode,
            results,
        };
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
        return Ok(0);
    }
    if results.is_empty() {
        // The index holds passages (checked above): the filter or the words rule them out.
        if args.collections.is_empty() {
            writeln!(
                out,
                "no passage holds these words (--mode hybrid also finds meaning)"
            )?;
        } else {
            writeln!(
                out,
                "no passages found in collection(s) {} (see `lore status --documents`)",
                args.collections.join(", ")
            )?;
        }
    }
    for p in &results {
        writeln!(out, "{:>2}. {:.4}  {}", p.rank, p.score, p.location())?;
        writeln!(out, "    {}", retrieval::snippet(&p.text, 240))?;
    }
    Ok(0)
}
