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
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
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
        inject_commit_faults(&batch);
        Index::commit(self, batch).map_err(PipelineError::Commit)
    }

    fn recover(&mut self) -> Result<()> {
        Ok(Index::recover(self)?)
    }
}

/// Test builds: a panic armed for a file of the batch fires inside the commit.
fn inject_commit_faults(batch: &Batch) {
    for (document, _) in &batch.upserts {
        crate::fault::hit(crate::fault::Stage::Commit, &document.path);
    }
}

/// The server's shared index, to read. Only a writer's panic poisons the lock (readers'
/// panics do not); the state is then brought back to the last commit ([`write_shared`])
/// before anything is read.
pub fn read_shared(lock: &RwLock<Index>) -> Result<RwLockReadGuard<'_, Index>, lore_index::Error> {
    if lock.is_poisoned() {
        drop(write_shared(lock)?);
    }
    Ok(lock.read().unwrap_or_else(PoisonError::into_inner))
}

/// The server's shared index, to change. A lock poisoned by a panic is taken back rather
/// than failing every later request: a commit is atomic on disk, so the files hold the
/// last commit whatever the panic interrupted, and [`Index::recover`] brings the memory
/// (the tantivy writer's pending operations, the generation, the reader, the graph) back
/// to it before the poison is cleared. If recovery fails the lock stays poisoned and the
/// next caller tries again.
pub fn write_shared(
    lock: &RwLock<Index>,
) -> Result<RwLockWriteGuard<'_, Index>, lore_index::Error> {
    match lock.write() {
        Ok(guard) => Ok(guard),
        Err(poisoned) => {
            let mut guard = poisoned.into_inner();
            guard.recover()?;
            lock.clear_poison();
            Ok(guard)
        }
    }
}

/// An index shared behind a lock (the server's): reads and commits take it briefly.
pub struct SharedIndex<'a>(pub &'a RwLock<Index>);

impl SharedIndex<'_> {
    fn read(&self) -> Result<RwLockReadGuard<'_, Index>> {
        Ok(read_shared(self.0)?)
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
        let mut index = write_shared(self.0)?;
        inject_commit_faults(&batch);
        index.commit(batch).map_err(PipelineError::Commit)
    }

    fn recover(&mut self) -> Result<()> {
        // Taking the write lock recovers a poisoned index.
        drop(write_shared(self.0)?);
        Ok(())
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
    let found = discover(paths, &config.collection);
    for s in &found.skipped {
        tracing::info!(path = %s.path, "skipped: {}", s.reason);
    }
    let mut summary =
        ingest_candidates(config, embedder, index, &found.candidates, options, observe)?;
    summary.skipped.extend(found.skipped);
    summary.failed.extend(found.failed);
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
        // A panic anywhere in the file's processing (a parser, chunker or embedder bug on
        // a hostile file) costs that file: `pending` is only extended at the very end, so
        // an unwound file leaves nothing of itself in the batch.
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            process_file(
                candidate,
                embedder,
                &*index,
                &limits,
                &chunk_opts,
                donor,
                &mut pending,
            )
        }))
        .unwrap_or_else(|payload| Outcome::Failed {
            reason: format!(
                "ingestion crashed on this file: {}",
                crate::fault::panic_message(&*payload)
            ),
            content_hash: None,
        });
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
            commit_guarded(index, std::mem::take(&mut pending), &mut summary)?;
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
        commit_guarded(index, pending, &mut summary)?;
    }
    bar.finish_and_clear();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Commits `batch`; if the commit panics, the index is recovered and the batch's documents
/// are committed one at a time, so a document the commit crashes on fails alone (recorded
/// as a failure, moved from `ingested` to `failed` in the summary) and the others go in.
/// The batch's failure records and removals follow in one last commit.
fn commit_guarded(index: &mut dyn IndexAccess, batch: Batch, summary: &mut Summary) -> Result<()> {
    // The copy is what a retry commits: the first attempt consumes the batch. It costs the
    // pending batch's size once more, next to the embedding work that built it.
    let retry = batch.clone();
    let payload = match catch_unwind(AssertUnwindSafe(|| index.commit(batch))) {
        Ok(result) => return result,
        Err(payload) => payload,
    };
    tracing::error!(
        "index commit crashed ({}); committing its documents one at a time",
        crate::fault::panic_message(&*payload)
    );
    index.recover()?;
    let Batch {
        upserts,
        removals,
        mut failures,
    } = retry;
    for (record, chunks) in upserts {
        let single = Batch {
            upserts: vec![(record.clone(), chunks)],
            ..Batch::default()
        };
        match catch_unwind(AssertUnwindSafe(|| index.commit(single))) {
            Ok(result) => result?,
            Err(payload) => {
                index.recover()?;
                let reason = format!(
                    "the index commit crashed on this file: {}",
                    crate::fault::panic_message(&*payload)
                );
                tracing::warn!(path = %record.path, "failed: {reason}");
                summary.ingested.retain(|p| *p != record.path);
                summary.reused.retain(|p| *p != record.path);
                summary.chunks = summary.chunks.saturating_sub(u64::from(record.chunks));
                summary.failed.push(FileIssue {
                    path: record.path.clone(),
                    reason: reason.clone(),
                });
                failures.push(FailureRecord {
                    doc_id: record.doc_id,
                    path: record.path,
                    collection: record.collection,
                    content_hash: Some(record.content_hash),
                    reason,
                    failed_at: unix_now(),
                    source: record.source,
                });
            }
        }
    }
    let rest = Batch {
        removals,
        failures,
        ..Batch::default()
    };
    if rest.is_empty() {
        return Ok(());
    }
    match catch_unwind(AssertUnwindSafe(|| index.commit(rest))) {
        Ok(result) => result,
        Err(payload) => {
            index.recover()?;
            Err(PipelineError::Crashed(format!(
                "the index commit crashed: {}",
                crate::fault::panic_message(&*payload)
            )))
        }
    }
}
