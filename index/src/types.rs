//! Public value types of the index API: configuration, the records callers store,
//! the batch handed to [`crate::Index::commit`], search inputs and outputs, statistics.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// How an index is built and searched. `dim` and `model_id` are fixed at creation:
/// opening an index with another embedding model or dimension is an error, because
/// its stored vectors would be meaningless for the new model's queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexConfig {
    /// Dimension of every embedding vector.
    pub dim: usize,
    /// Identity of the embedding model that produced the vectors (e.g. a name plus revision).
    pub model_id: String,
    /// HNSW: maximum number of links per node.
    pub hnsw_m: usize,
    /// HNSW: candidate list width while inserting.
    pub ef_construction: usize,
    /// HNSW: candidate list width while searching (raised to at least the number of results asked).
    pub ef_search: usize,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            dim: 384,
            model_id: String::from("unspecified"),
            hnsw_m: 16,
            ef_construction: 200,
            ef_search: 64,
        }
    }
}

/// One ingested source document. Stored whole; `doc_id` is its identity for upserts and removals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentRecord {
    pub doc_id: String,
    pub path: String,
    pub collection: String,
    pub title: String,
    pub format: String,
    pub content_hash: String,
    pub pages: Option<u32>,
    pub chunks: u32,
    pub bytes: u64,
    /// Unix time in seconds.
    pub ingested_at: i64,
    pub warnings: Vec<String>,
    /// Where the file was read from (absolute), so the original can be served; absent in
    /// indexes written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Why the last attempt to ingest a file failed. Kept until the file is ingested or removed,
/// so a broken file is listed with its reason and retried only when its content changes.
/// Stored apart from the [`DocumentRecord`]: a file whose new version fails keeps its last
/// good version searchable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// The id the document has, or would have, once ingested.
    pub doc_id: String,
    pub path: String,
    pub collection: String,
    /// SHA-256 of the content that failed, when it could be read.
    pub content_hash: Option<String>,
    pub reason: String,
    /// Unix time in seconds.
    pub failed_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One searchable passage of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRecord {
    pub doc_id: String,
    pub path: String,
    pub collection: String,
    pub title: String,
    pub heading: Option<String>,
    pub text: String,
    pub page_start: Option<u32>,
    pub page_end: Option<u32>,
    pub char_start: u64,
    pub char_end: u64,
    pub ordinal: u32,
}

/// A chunk to store, with its embedding (any non-zero length; the index normalises it).
#[derive(Debug, Clone, PartialEq)]
pub struct NewChunk {
    pub record: ChunkRecord,
    pub vector: Vec<f32>,
}

/// Everything one [`crate::Index::commit`] applies atomically.
/// An upsert replaces the document record and *all* chunks stored under its `doc_id`.
/// Removals are applied before upserts, so removing and upserting one id in a batch upserts it.
/// Removing or upserting a document also clears its failure record; a failure replaces the
/// previous failure of the same id and leaves the document (if any) as it was.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub upserts: Vec<(DocumentRecord, Vec<NewChunk>)>,
    pub removals: Vec<String>,
    pub failures: Vec<FailureRecord>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.removals.is_empty() && self.failures.is_empty()
    }
}

/// Restricts search results. `collections: None` means every collection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    pub collections: Option<Vec<String>>,
}

impl Filter {
    /// A filter that keeps only the named collections.
    pub fn collections<I, S>(names: I) -> Filter
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Filter {
            collections: Some(names.into_iter().map(Into::into).collect()),
        }
    }

    pub(crate) fn allows(&self, collection: &str) -> bool {
        match &self.collections {
            None => true,
            Some(names) => names.iter().any(|name| name == collection),
        }
    }
}

/// Which retrieval a search runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// BM25 and vector results fused by reciprocal rank fusion.
    Hybrid,
    /// Keyword search only.
    Bm25,
    /// Embedding nearest neighbours only.
    Vector,
}

impl SearchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SearchMode::Hybrid => "hybrid",
            SearchMode::Bm25 => "bm25",
            SearchMode::Vector => "vector",
        }
    }
}

impl fmt::Display for SearchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SearchMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "hybrid" => Ok(SearchMode::Hybrid),
            "bm25" => Ok(SearchMode::Bm25),
            "vector" => Ok(SearchMode::Vector),
            _ => Err(Error::InvalidInput(format!(
                "unknown search mode {s:?} (expected hybrid, bm25 or vector)"
            ))),
        }
    }
}

/// One search result. `score` depends on the mode: BM25 score, cosine similarity, or
/// fused score. The ranks (1-based) say where the chunk stood in each retriever's list.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub chunk_id: u64,
    pub score: f32,
    pub chunk: ChunkRecord,
    pub bm25_rank: Option<usize>,
    pub vector_rank: Option<usize>,
    /// Cosine similarity between the query and the chunk (every mode given a query vector): an
    /// absolute measure of how well the best passages match (used to decide to abstain).
    pub similarity: Option<f32>,
}

/// Size and identity of an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub documents: u64,
    pub chunks: u64,
    /// Files whose last ingestion failed (see [`FailureRecord`]).
    #[serde(default)]
    pub failures: u64,
    pub disk_bytes: u64,
    /// Deleted chunks still present in the HNSW graph (filtered at query time until compaction).
    pub vector_tombstones: u64,
    pub model_id: String,
    pub dim: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_mode_parses_and_serialises_lowercase() {
        assert_eq!(
            "Hybrid".parse::<SearchMode>().ok(),
            Some(SearchMode::Hybrid)
        );
        assert_eq!(" bm25 ".parse::<SearchMode>().ok(), Some(SearchMode::Bm25));
        assert_eq!(
            "vector".parse::<SearchMode>().ok(),
            Some(SearchMode::Vector)
        );
        assert!(matches!(
            "semantic".parse::<SearchMode>(),
            Err(Error::InvalidInput(_))
        ));
        let json = serde_json::to_string(&SearchMode::Bm25).unwrap_or_default();
        assert_eq!(json, "\"bm25\"");
        let back: Option<SearchMode> = serde_json::from_str("\"vector\"").ok();
        assert_eq!(back, Some(SearchMode::Vector));
    }

    #[test]
    fn filter_allows_only_named_collections() {
        assert!(Filter::default().allows("any"));
        let filter = Filter::collections(["a", "b"]);
        assert!(filter.allows("a"));
        assert!(!filter.allows("c"));
        assert!(!Filter::collections(Vec::<String>::new()).allows("a"));
    }
}

/// Corpus statistics of some terms: in how many chunks each occurs, out of how many.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TermFrequencies {
    pub chunks: u64,
    /// Chunks holding each term (absent: not asked).
    pub doc_freq: std::collections::HashMap<String, u64>,
}

impl TermFrequencies {
    /// BM25's inverse document frequency of `term`: high for rare terms, near 0 for terms
    /// most chunks hold; a term no chunk holds gets the highest value.
    pub fn idf(&self, term: &str) -> f32 {
        let n = self.chunks as f32;
        let df = self.doc_freq.get(term).copied().unwrap_or(0) as f32;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }
}
