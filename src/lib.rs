//! The `lore` application: everything above the engine crates. Data flows one way:
//! files → [`lore_ingest`] (parse + chunk) → [`embed`] (vectors) → [`lore_index`] (BM25 + HNSW)
//! → retrieval → (later) prompt → SLM → answer with citations → CLI / HTTP / portal.

pub mod embed;
