//! The `lore` application: everything above the engine crates. Data flows one way:
//! files → [`lore_ingest`] (parse + chunk, driven by [`pipeline`]) → [`embed`] (vectors)
//! → [`lore_index`] (BM25 + HNSW) → [`retrieval`] → (later) prompt → SLM → answer with
//! citations → CLI / HTTP / portal.

pub mod cli;
pub mod config;
pub mod embed;
pub mod logging;
pub mod pipeline;
pub mod retrieval;
pub mod status;
