//! The ingestion pipeline: files → `lore_ingest` (parse, chunk) → embedder → `lore_index`.
//!
//! It owns discovery (recursive walk, hidden files, symlink loops), change detection
//! (content hash), batching of atomic index commits, progress, and the per-file outcome
//! summary. One bad file never stops the batch: every failure is recorded with its reason,
//! a panic included (in parsing, chunking, embedding or the commit: see `ingest`).
//!
//! The flow, one module a step:
//!
//! 1. `discovery`: the paths given become [`Candidate`]s (a file on disk and the path and
//!    collection it is indexed under); folders are walked, loops and unreadable entries
//!    become [`FileIssue`]s.
//! 2. `ingest`: [`ingest_paths`] / [`ingest_candidates`] run the loop over the candidates,
//!    reporting [`IngestProgress`], committing the pending batch every
//!    [`COMMIT_EVERY_DOCS`] documents (or so many chunks) through [`IndexAccess`], and
//!    tallying the [`Summary`].
//! 3. `process`: each file is read and hashed; an unchanged one is left alone, content
//!    already indexed under another path is re-filed, anything else is parsed, chunked and
//!    embedded into the pending batch. Its [`doc_id`] is its collection and path.

mod discovery;
mod ingest;
mod process;

/// What stops an ingestion run (a file that fails is recorded in the [`Summary`], not an
/// error): the index refusing a read or a commit.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("index commit failed: {0}")]
    Commit(#[source] lore_index::Error),
    #[error(transparent)]
    Index(#[from] lore_index::Error),
    /// A panic the run could not pin on one file (a commit of failure records and removals,
    /// an upload job's runner): what crashed and the panic's message.
    #[error("{0}")]
    Crashed(String),
}

use lore_index::{Batch, DocumentRecord, FailureRecord, NewChunk};
use serde::Serialize;

pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

pub use discovery::{
    clean_path, discover, is_ignored_name, outside_reason, walk, Candidate, Discovered, Walked,
};
pub use ingest::{
    ingest_candidates, ingest_paths, read_shared, write_shared, IngestOptions, IngestProgress,
    SharedIndex, Summary, COMMIT_EVERY_DOCS,
};
pub use process::{doc_id, unix_now};

/// What ingestion needs from an index: look up a document's stored record (for change
/// detection) and commit a batch. The CLI owns its [`Index`](lore_index::Index); the server shares one behind a
/// lock and takes it only for these short calls, never while parsing or embedding.
pub trait IndexAccess {
    fn document(&self, doc_id: &str) -> Result<Option<DocumentRecord>>;
    fn documents(&self) -> Result<Vec<DocumentRecord>>;
    fn failures(&self) -> Result<Vec<FailureRecord>>;
    /// A document's stored chunks and vectors (to re-file identical content elsewhere).
    fn chunks_of(&self, doc_id: &str) -> Result<Vec<NewChunk>>;
    fn commit(&mut self, batch: Batch) -> Result<()>;
    /// Brings the index back to its last commit after a panic cut a commit short (see
    /// [`lore_index::Index::recover`]).
    fn recover(&mut self) -> Result<()>;
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FileIssue {
    pub path: String,
    pub reason: String,
}
