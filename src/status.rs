//! `lore status`: what is indexed (documents, chunks, size on disk), with which models, and
//! which files failed to ingest and why.

use crate::config::Config;
use crate::pipeline::Engine;
use anyhow::Result;
use lore_index::{DocumentRecord, FailureRecord};
use serde::Serialize;

#[derive(Debug, Serialize)]
struct StatusReport {
    data_dir: String,
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

pub fn run_status(config: &Config, list_documents: bool, json: bool) -> Result<()> {
    let engine = Engine::open(config)?;
    let stats = engine.index.stats()?;
    let docs = if list_documents {
        Some(engine.index.documents()?)
    } else {
        None
    };
    let report = StatusReport {
        data_dir: config.data_dir.display().to_string(),
        documents: stats.documents,
        chunks: stats.chunks,
        index_bytes: stats.disk_bytes,
        embed_model: stats.model_id.clone(),
        embed_model_dir: config.embed_model_dir().display().to_string(),
        embed_dim: stats.dim,
        document_list: docs,
        failures: engine.index.failures()?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("data dir      {}", report.data_dir);
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
    Ok(())
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
