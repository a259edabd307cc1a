//! `lore-index` owns Lore's hybrid index: BM25 over chunk text, title and heading
//! (tantivy, English stemming) and cosine nearest neighbours over chunk embeddings
//! (hnsw_rs), sharing chunk ids, fused (convex score mix or RRF), persisted crash-safely.
//! It knows nothing of parsing, models or HTTP: callers hand it records and vectors.
//!
//! A commit is atomic: after a crash the index reopens with the last committed batch
//! complete and nothing of a half-written one. See `ARCHITECTURE.md` for the on-disk
//! layout and the commit protocol.
//!
//! One writer ([`Index::open`], holding the directory's lock) at a time; any number of
//! readers ([`Index::open_read_only`]: no lock, nothing written) beside it, in any process,
//! each following the writer's commits with [`Index::refresh`].
//!
//! ```
//! use lore_index::{Batch, ChunkRecord, DocumentRecord, Filter, Index, IndexConfig, NewChunk, SearchMode};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let config = IndexConfig { dim: 3, model_id: "toy-3d".into(), ..IndexConfig::default() };
//! let mut index = Index::open(dir.path(), config.clone())?;
//!
//! let doc = DocumentRecord {
//!     doc_id: "notes/otters.md".into(), path: "notes/otters.md".into(),
//!     collection: "notes".into(), title: "Otters".into(), format: "markdown".into(),
//!     content_hash: "c0ffee".into(), pages: None, chunks: 2, bytes: 120,
//!     ingested_at: 1_700_000_000, warnings: vec![], source: None,
//! };
//! let chunk = |ordinal: u32, text: &str, vector: Vec<f32>| NewChunk {
//!     record: ChunkRecord {
//!         doc_id: doc.doc_id.clone(), path: doc.path.clone(), collection: doc.collection.clone(),
//!         title: doc.title.clone(), heading: Some("Habits".into()), text: text.into(),
//!         page_start: None, page_end: None, char_start: 0, char_end: text.len() as u64, ordinal,
//!     },
//!     vector,
//! };
//! let chunks = vec![
//!     chunk(0, "Sea otters hold hands while sleeping.", vec![1.0, 0.0, 0.0]),
//!     chunk(1, "They use rocks to crack shellfish.", vec![0.0, 1.0, 0.0]),
//! ];
//! index.commit(Batch { upserts: vec![(doc.clone(), chunks)], ..Batch::default() })?;
//!
//! // Stemming matches "sleep" with "sleeping"; query syntax is never an error.
//! let hits = index.search_bm25("sleep (AND \"", 5, &Filter::default())?;
//! assert_eq!(hits[0].chunk.ordinal, 0);
//!
//! let hits = index.search(SearchMode::Hybrid, "shellfish", Some(&[0.1, 0.9, 0.0]), 5, &Filter::default())?;
//! assert_eq!(hits[0].chunk.ordinal, 1);
//! assert_eq!((hits[0].bm25_rank, hits[0].vector_rank), (Some(1), Some(1)));
//!
//! // Everything survives a reopen; another embedding model is refused.
//! drop(index);
//! let other = IndexConfig { model_id: "other-model".into(), ..config.clone() };
//! assert!(matches!(Index::open(dir.path(), other), Err(lore_index::Error::ModelMismatch { .. })));
//! let mut index = Index::open(dir.path(), config.clone())?;
//! assert_eq!(index.stats()?.chunks, 2);
//!
//! // Another process (say `lore search` beside `lore serve`) opens it read-only, lock-free.
//! let mut reader = Index::open_read_only(dir.path(), config)?;
//! index.commit(Batch { removals: vec![doc.doc_id.clone()], ..Batch::default() })?;
//! assert!(index.search_vector(&[1.0, 0.0, 0.0], 5, &Filter::default())?.is_empty());
//! assert_eq!(reader.stats()?.chunks, 2); // its snapshot, until it refreshes
//! assert!(reader.refresh()?);
//! assert!(reader.search_vector(&[1.0, 0.0, 0.0], 5, &Filter::default())?.is_empty());
//! assert!(matches!(reader.commit(Batch::default()), Err(lore_index::Error::ReadOnly(_))));
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};

mod fusion;
mod index;
mod layout;
mod text;
mod types;
mod vectors;

pub use fusion::{fuse, Candidate, Fused, Fusion, RRF_K};
pub use index::Index;
pub use layout::FORMAT_VERSION;
pub use text::analyze;
pub use types::{
    Batch, ChunkRecord, DocumentRecord, FailureRecord, Filter, Hit, IndexConfig, NewChunk,
    SearchMode, Stats, TermFrequencies,
};

/// Everything that can go wrong in the index.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "index at {0} is already open by another process or handle (lock held): if `lore serve` runs on it, use its API or portal, or stop it first"
    )]
    Locked(PathBuf),
    /// [`Index::open_read_only`] found no index: nothing has been ingested there yet.
    #[error("no index at {0} yet: ingest documents first (lore ingest PATH)")]
    NoIndex(PathBuf),
    /// A change was asked of an index opened with [`Index::open_read_only`].
    #[error(
        "index at {0} is open read-only: only the process holding its lock (lore serve, watch or ingest) can change it"
    )]
    ReadOnly(PathBuf),
    #[error(
        "index was built with embedding model {index_model:?} ({index_dim} dimensions), \
         but {requested_model:?} ({requested_dim} dimensions) was requested; \
         re-index into a new directory to change models"
    )]
    ModelMismatch {
        index_model: String,
        index_dim: usize,
        requested_model: String,
        requested_dim: usize,
    },
    #[error(
        "index format version {found} is newer than this build supports ({supported}); \
         upgrade Lore"
    )]
    UnsupportedFormat { found: u32, supported: u32 },
    #[error("{path} is not a Lore index: {reason}")]
    NotAnIndex { path: PathBuf, reason: String },
    #[error("index data at {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("vector index error: {0}")]
    Vector(String),
    #[error("text index error: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_explain_themselves() {
        let e = Error::ModelMismatch {
            index_model: "a".into(),
            index_dim: 384,
            requested_model: "b".into(),
            requested_dim: 768,
        };
        let text = e.to_string();
        assert!(text.contains("\"a\"") && text.contains("768") && text.contains("re-index"));
    }
}
