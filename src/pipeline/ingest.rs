//! The indexing loop and what it reports: [`ingest_paths`] and [`ingest_candidates`] take
//! each file through processing, commit the pending batch in atomic steps, show a progress
//! bar, tell observers the [`IngestProgress`], and return the [`Summary`] with every
//! file's outcome ([`FileIssue`]s for the skipped and failed). [`IndexAccess`] is what the
//! loop needs from an index: the CLI's own [`Index`], or the server's [`SharedIndex`].

use super::discovery::{discover, Candidate};
use super::process::{absolute_source, doc_id, process_file, unix_now, Outcome};
use super::{FileIssue, IndexAccess, PipelineError, Result};
use crate::config::Config;
use indicatif::{ProgressBar, ProgressStyle};
use lore_embed::Embedder;
use lore_index::{Batch, DocumentRecord, FailureRecord, Index, NewChunk};
use lore_ingest::chunk::ChunkOptions;
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Commit after this many pending chunks or documents: bounds memory and the work an
/// interruption can lose, while keeping commits (each an fsync'd tantivy commit) rare.
const COMMIT_EVERY_CHUNKS: usize = 2_000;
pub const COMMIT_EVERY_DOCS: usize = 100;

impl IndexAccess for Index {
    fn document(&self, doc_id: &str) -> Result<Option<DocumentRecord>> {
        Ok(Index::document(self, doc_id)?)
    }

    fn documents(&self) -> Result<Vec<DocumentRecord>> {
        Ok(Index::documents(self)?)
    }

    fn failures(&self) -> Result<Vec<FailureRecord>> {
        Ok(Index::failures(self)?)
    }

    fn chunks_of(&self, doc_id: &str) -> Result<Vec<NewChunk>> {
        Ok(Index::chunks_of(self, doc_id)?)
    }

    fn commit(&mut self, batch: Batch) -> Result<()> {
        Index::commit(self, batch).map_err(PipelineError::Commit)
    }
}

/// An index shared behind a lock (the server's): reads and commits take it briefly.
pub struct SharedIndex<'a>(pub &'a std::sync::RwLock<Index>);

impl SharedIndex<'_> {
    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, Index>> {
        self.0.read().map_err(|_| PipelineError::Poisoned)
    }
}

impl IndexAccess for SharedIndex<'_> {
    fn document(&self, doc_id: &str) -> Result<Option<DocumentRecord>> {
        Ok(self.read()?.document(doc_id)?)
    }

    fn documents(&self) -> Result<Vec<DocumentRecord>> {
        Ok(self.read()?.documents()?)
    }

    fn failures(&self) -> Result<Vec<FailureRecord>> {
        Ok(self.read()?.failures()?)
    }

    fn chunks_of(&self, doc_id: &str) -> Result<Vec<NewChunk>> {
        Ok(self.read()?.chunks_of(doc_id)?)
    }

    fn commit(&mut self, batch: Batch) -> Result<()> {
        let mut index = self.0.write().map_err(|_| PipelineError::Poisoned)?;
        index.commit(batch).map_err(PipelineError::Commit)
    }
}

#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Summary {
    pub ingested: Vec<String>,
    /// Of `ingested`: files whose content was already indexed under another path (renamed,
    /// moved or copied), re-filed with the stored passages and vectors, not embedded again.
    pub reused: Vec<String>,
    pub unchanged: Vec<String>,
    pub skipped: Vec<FileIssue>,
    pub failed: Vec<FileIssue>,
    pub warnings: Vec<FileIssue>,
    pub chunks: u64,
    pub pages: u64,
    pub seconds: f64,
}

/// Where a running ingestion stands, for observers (the server's job status).
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct IngestProgress {
    pub files_done: usize,
    pub files_total: usize,
    pub chunks: u64,
}

/// How one ingestion run behaves, beyond which files it takes.
pub struct IngestOptions<'a> {
    /// Commit at least every this many documents (and every `COMMIT_EVERY_CHUNKS`).
    pub commit_every_docs: usize,
    /// Show a progress bar on the terminal.
    pub progress: bool,
    /// Documents to delete in the run's last commit, together with its last upserts: the
    /// watcher's deleted and moved-away files, so a move is one atomic swap.
    pub removals: Vec<String>,
    /// Content hash → id of an indexed document with exactly that content. Its passages
    /// and vectors are re-filed under the new path instead of parsing and embedding the
    /// file again (renames, moves, copies).
    pub donor: &'a dyn Fn(&str) -> Option<String>,
}

impl Default for IngestOptions<'_> {
    fn default() -> Self {
        IngestOptions {
            commit_every_docs: COMMIT_EVERY_DOCS,
            progress: false,
            removals: Vec::new(),
            donor: &|_| None,
        }
    }
}

/// Ingests `paths` into `index`, committing in atomic batches; `observe` is told after
/// each file.
pub fn ingest_paths(
    config: &Config,
    embedder: &Embedder,
    index: &mut dyn IndexAccess,
    paths: &[PathBuf],
    options: IngestOptions,
    observe: &mut dyn FnMut(IngestProgress),
) -> Result<Summary> {
    let (candidates, walk_failures) = discover(paths, &config.collection);
    let mut summary = ingest_candidates(config, embedder, index, &candidates, options, observe)?;
    summary.failed.extend(walk_failures);
    Ok(summary)
}

/// Ingests files already discovered (each with its document path and collection).
pub fn ingest_candidates(
    config: &Config,
    embedder: &Embedder,
    index: &mut dyn IndexAccess,
    candidates: &[Candidate],
    options: IngestOptions,
    observe: &mut dyn FnMut(IngestProgress),
) -> Result<Summary> {
    let IngestOptions {
        commit_every_docs,
        progress,
        removals,
        donor,
    } = options;
    let started = Instant::now();
    let mut summary = Summary::default();

    let bar = if progress {
        ProgressBar::new(candidates.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files · {msg} · ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));

    let limits = config.parse_limits();
    let chunk_opts = ChunkOptions {
        target_tokens: config.chunk_tokens,
        max_tokens: (config.chunk_tokens + config.chunk_tokens / 5)
            .min(embedder.max_seq_len().saturating_sub(8)),
        overlap_tokens: config.chunk_overlap,
    };
    let mut pending = Batch::default();
    let mut pending_chunks = 0usize;
    for (done, candidate) in candidates.iter().enumerate() {
        bar.set_message(format!(
            "{} chunks · {:.1} chunks/s",
            summary.chunks,
            summary.chunks as f64 / started.elapsed().as_secs_f64().max(1e-3)
        ));
        let outcome = process_file(
            candidate,
            embedder,
            &*index,
            &limits,
            &chunk_opts,
            donor,
            &mut pending,
        );
        match outcome {
            Outcome::Ingested {
                chunks,
                pages,
                warnings,
                reused,
            } => {
                summary.ingested.push(candidate.doc_path.clone());
                if reused {
                    summary.reused.push(candidate.doc_path.clone());
                }
                summary.chunks += chunks as u64;
                summary.pages += u64::from(pages);
                pending_chunks += chunks;
                for w in warnings {
                    tracing::warn!(path = %candidate.doc_path, "{w}");
                    summary.warnings.push(FileIssue {
                        path: candidate.doc_path.clone(),
                        reason: w,
                    });
                }
            }
            Outcome::Unchanged => summary.unchanged.push(candidate.doc_path.clone()),
            Outcome::Skipped(reason) => {
                tracing::info!(path = %candidate.doc_path, "skipped: {reason}");
                summary.skipped.push(FileIssue {
                    path: candidate.doc_path.clone(),
                    reason,
                });
            }
            Outcome::Failed {
                reason,
                content_hash,
            } => {
                tracing::warn!(path = %candidate.doc_path, "failed: {reason}");
                // Kept in the index, so the file is listed with its reason until it is fixed.
                pending.failures.push(FailureRecord {
                    doc_id: doc_id(&candidate.collection, &candidate.doc_path),
                    path: candidate.doc_path.clone(),
                    collection: candidate.collection.clone(),
                    content_hash,
                    reason: reason.clone(),
                    failed_at: unix_now(),
                    source: absolute_source(&candidate.fs_path),
                });
                summary.failed.push(FileIssue {
                    path: candidate.doc_path.clone(),
                    reason,
                });
            }
        }
        if pending_chunks >= COMMIT_EVERY_CHUNKS
            || pending.upserts.len() + pending.failures.len() >= commit_every_docs
        {
            index.commit(std::mem::take(&mut pending))?;
            pending_chunks = 0;
        }
        bar.inc(1);
        observe(IngestProgress {
            files_done: done + 1,
            files_total: candidates.len(),
            chunks: summary.chunks,
        });
    }
    pending.removals = removals;
    if !pending.is_empty() {
        index.commit(pending)?;
    }
    bar.finish_and_clear();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}
