//! The `lore` application: everything above the engine crates. Data flows one way:
//! files → [`lore_ingest`] (parse + chunk, driven by [`pipeline`]) → [`lore_embed`] (vectors)
//! → [`lore_index`] (BM25 + HNSW) → [`retrieval`] → [`rag`] (prompt, citations, abstention)
//! on [`lore_llm`] (the quantized SLM) → answer with citations → CLI ([`cmd`]) / HTTP / portal.

pub mod audit;
pub mod auth;
pub mod cmd;
pub mod config;
pub mod engine;
pub mod escalate;
pub mod eval;
pub mod fault;
pub mod files;
pub mod hosts;
pub mod logging;
pub mod pipeline;
pub mod rag;
pub mod retrieval;
pub mod serve;
pub mod watch;
