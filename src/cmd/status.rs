//! `lore status`: what is indexed (documents, chunks, size on disk), with which models, and
//! which files failed to ingest and why, and how a folder watcher is getting on.

use crate::config::Config;
use crate::engine::{Engine, EngineError};
use crate::watch::journal::WatchStatus;
use anyhow::Result;
use lore_index::{DocumentRecord, FailureRecord};
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// List every document.
    #[arg(long)]
    pub documents: bool,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct StatusReport {
    data_dir: String,
    /// What the index holds (read-only, so also while `lore serve` or `lore watch` runs);
    /// absent when nothing has been ingested here yet.
    #[serde(flatten)]
    index: Option<IndexReport>,
    /// Why there is no index to report on (nothing ingested yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    no_index: Option<String>,
    /// The drop-folder watcher's progress, from its journal, when one has run here.
    #[serde(skip_serializing_if = "Option::is_none")]
    watch: Option<WatchStatus>,
}

#[derive(Debug, Serialize)]
struct IndexReport {
    documents: u64,
    chunks: u64,
    index_bytes: u64,
    embed_model: String,
    embed_model_dir: String,
    embed_dim: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    document_list: Option<Vec<DocumentRecord>>,
    /// Files whose last ingestion failed: always listed, they need someone's attention.
    failures: Vec<FailureRecord>,
}

/// `lore status`.
pub fn run(config: &Config, args: &Args) -> Result<i32> {
    let (list_documents, json) = (args.documents, args.json);
    let (index, no_index) = match Engine::open_read_only(config) {
        Ok(engine) => (Some(index_report(config, &engine, list_documents)?), None),
        // Nothing ingested yet: the data dir and a watcher's journal still say something.
        Err(
            e @ EngineError::Index {
                source: lore_index::Error::NoIndex(_),
                ..
            },
        ) => (None, Some(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let report = StatusReport {
        data_dir: config.data_dir.display().to_string(),
        index,
        no_index,
        watch: crate::watch::journal::read_status(&config.data_dir),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(0);
    }
    println!("data dir      {}", report.data_dir);
    if let Some(reason) = &report.no_index {
        println!("index         none: {reason}");
    }
    if let Some(index) = &report.index {
        print_index(index);
    }
    if let Some(w) = &report.watch {
        print_watch(w);
    }
    Ok(0)
}

fn index_report(config: &Config, engine: &Engine, list_documents: bool) -> Result<IndexReport> {
    let stats = engine.index.stats()?;
    Ok(IndexReport {
        documents: stats.documents,
        chunks: stats.chunks,
        index_bytes: stats.disk_bytes,
        embed_model: stats.model_id.clone(),
        embed_model_dir: config.embed_model_dir().display().to_string(),
        embed_dim: stats.dim,
        document_list: if list_documents {
            Some(engine.index.documents()?)
        } else {
            None
        },
        failures: engine.index.failures()?,
    })
}

fn print_index(report: &IndexReport) {
    println!("documents     {}", report.documents);
    println!("chunks        {}", report.chunks);
    println!("index size    {}", human_bytes(report.index_bytes));
    println!(
        "embed model   {} ({}-d, {})",
        report.embed_model, report.embed_dim, report.embed_model_dir
    );
    if let Some(docs) = &report.document_list {
        println!();
        for d in docs {
            let pages = d.pages.map(|p| format!("{p} p. · ")).unwrap_or_default();
            let warn = if d.warnings.is_empty() {
                String::new()
            } else {
                format!(" · ⚠ {}", d.warnings.join("; "))
            };
            println!(
                "{:<10} {}  ({}{} chunks · {}){warn}",
                d.collection, d.path, pages, d.chunks, d.format
            );
        }
    }
    if !report.failures.is_empty() {
        println!();
        println!("failed        {} files", report.failures.len());
        for f in &report.failures {
            println!("{:<10} {}  {}", f.collection, f.path, f.reason);
        }
    }
}

fn print_watch(w: &WatchStatus) {
    let age = crate::pipeline::unix_now().saturating_sub(w.updated_at);
    println!();
    println!(
        "watch         {} ({}; pid {}, updated {age} s ago)",
        w.roots.join(", "),
        w.mode,
        w.pid
    );
    println!(
        "              {} · queue {} · {} files done ({} indexed, {} re-filed, {} removed, {} failed) · {:.1} files/s, {:.1} chunks/s",
        format!("{:?}", w.state).to_lowercase(), w.queue, w.files_done, w.ingested, w.reused, w.removed, w.failed, w.files_per_sec, w.chunks_per_sec
    );
    for root in &w.unavailable {
        println!("              ⚠ {root} is empty or unreadable: its documents are kept");
    }
    if let Some(e) = &w.last_error {
        println!("              last error: {e}");
    }
    if w.restarts > 0 {
        println!(
            "              ⚠ crashed and restarted {} times; last: {}",
            w.restarts,
            w.last_panic.as_deref().unwrap_or("?")
        );
    }
    for f in &w.recent_failures {
        println!("              failed: {}  {}", f.path, f.reason);
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_bytes_scales() {
        assert_eq!(super::human_bytes(512), "512 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
