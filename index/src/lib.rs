//! `lore-index` owns Lore's hybrid index: BM25 over chunk text, title and heading
//! (tantivy, English stemming) and cosine nearest neighbours over chunk embeddings
//! (hnsw_rs), sharing chunk ids, fused by reciprocal rank fusion, persisted crash-safely.
//! It knows nothing of parsing, models or HTTP: callers hand it records and vectors.
//!
//! API sketch (the implementation may refine it, keeping the shape):
//!
//! ```ignore
//! let mut index = Index::open(dir, IndexConfig { dim: 384, ..Default::default() })?;
//! index.commit(Batch { upserts: vec![(doc, chunks)], removals: vec![] })?; // atomic
//! let hits = index.search_hybrid("query text", &query_vector, 10, &Filter::default())?;
//! ```

// TODO(index helper): implement.
