//! Retrieval: a question in, ranked passages out. Embeds the query, asks the index in the
//! chosen mode (BM25, vector or hybrid fusion), and shapes the hits as [`Passage`]s, what
//! every caller shows (the CLI, the API, the evaluation).

use lore_embed::Embedder;
use lore_index::{Filter, Hit, Index, SearchMode};
use serde::Serialize;

/// What searching can fail with: embedding the query, or reading the index.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("cannot embed the query: {0}")]
    Embed(#[from] lore_embed::EmbedError),
    #[error(transparent)]
    Index(#[from] lore_index::Error),
}

/// The most passages one search returns (the API and the CLI both refuse more).
pub const MAX_K: usize = 20;

/// One passage as shown to users and written by `lore search --json`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Passage {
    pub rank: usize,
    pub score: f32,
    /// Cosine similarity to the query (vector and hybrid modes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
    /// The document's path as ingested.
    pub doc: String,
    /// The document's id (for `/api/documents/{id}`).
    pub doc_id: String,
    pub page: Option<u32>,
    pub page_end: Option<u32>,
    pub heading: Option<String>,
    pub title: String,
    pub collection: String,
    pub char_start: u64,
    pub char_end: u64,
    pub text: String,
}

impl Passage {
    /// "handbook/vpn.pdf, p. 4 — Resetting tokens": where the passage is, for people.
    pub fn location(&self) -> String {
        let mut text = self.doc.clone();
        match (self.page, self.page_end) {
            (Some(a), Some(b)) if b != a => text.push_str(&format!(", p. {a}-{b}")),
            (Some(a), _) => text.push_str(&format!(", p. {a}")),
            _ => {}
        }
        if let Some(h) = self.heading.as_deref().filter(|h| !h.is_empty()) {
            text.push_str(&format!(" — {h}"));
        }
        text
    }
}

#[derive(Debug, Serialize)]
pub struct SearchOutput<'a> {
    pub query: &'a str,
    pub mode: SearchMode,
    pub results: Vec<Passage>,
}

/// Runs one query against the index.
pub fn search(
    embedder: &Embedder,
    index: &Index,
    query: &str,
    mode: SearchMode,
    k: usize,
    filter: &Filter,
) -> Result<Vec<Passage>, SearchError> {
    // Embedded in every mode: BM25 hits get their similarity too, which answering uses to
    // decide whether the evidence is strong enough.
    let vector = embedder.embed(&[query])?.pop();
    let hits = index.search(mode, query, vector.as_deref(), k, filter)?;
    Ok(hits
        .into_iter()
        .enumerate()
        .map(|(i, h)| passage(i + 1, h))
        .collect())
}

fn passage(rank: usize, hit: Hit) -> Passage {
    let c = hit.chunk;
    Passage {
        rank,
        score: hit.score,
        similarity: hit.similarity,
        doc: c.path,
        doc_id: c.doc_id,
        page: c.page_start,
        page_end: c.page_end,
        heading: c.heading,
        title: c.title,
        collection: c.collection,
        char_start: c.char_start,
        char_end: c.char_end,
        text: c.text,
    }
}

/// The passage on one line, cut at a word boundary.
pub fn snippet(text: &str, max_chars: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max_chars {
        return flat;
    }
    let cut: String = flat.chars().take(max_chars).collect();
    let cut = cut
        .rsplit_once(' ')
        .map_or(cut.as_str(), |(a, _)| a)
        .to_string();
    format!("{cut} …")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_cut_at_words() {
        assert_eq!(snippet("a  b\nc", 10), "a b c");
        let s = snippet("alpha beta gamma delta", 12);
        assert_eq!(s, "alpha beta …");
    }
}
