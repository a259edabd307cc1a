//! Owns the tantivy side: the schema (document records and chunks live in one index, told
//! apart by a `kind` field), the English stemming analyzer, conversion between our records and
//! tantivy documents, and BM25 query construction that never fails on user input.

use std::collections::HashSet;

use tantivy::query::{BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    BytesOptions, Field, IndexRecordOption, NumericOptions, Schema, TantivyDocument,
    TextFieldIndexing, TextOptions, Value, FAST, STRING,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer,
};
use tantivy::Term;

use crate::{ChunkRecord, DocumentRecord, Error, FailureRecord, Filter, Result};

/// Name under which the analyzer is registered (tokenizers are not persisted by tantivy,
/// so it is registered again on every open).
pub const ANALYZER: &str = "lore_en";
/// Tokens longer than this are noise (base64, hashes, URLs) and are dropped.
const MAX_TOKEN_BYTES: usize = 40;
/// A pasted page as a query would build a huge boolean query; the first terms suffice.
const MAX_QUERY_TERMS: usize = 64;
const TITLE_BOOST: f32 = 1.5;
const HEADING_BOOST: f32 = 1.5;

const KIND_DOCUMENT: &str = "document";
const KIND_CHUNK: &str = "chunk";
const KIND_FAILURE: &str = "failure";
/// Failure records live under their own `doc_id` term, so deleting a document's term
/// leaves its failure alone and the other way round (the schema stays as it was).
const FAILURE_ID_PREFIX: &str = "failure:";

/// Field handles of the schema.
#[derive(Debug, Clone)]
pub struct Fields {
    /// "document", "chunk" or "failure"; raw, indexed.
    pub kind: Field,
    /// Raw, indexed on both kinds: one delete term removes a document and all its chunks.
    pub doc_id: Field,
    /// Raw, indexed on document records (find by path).
    pub path: Field,
    /// Raw, indexed and fast on chunks (collection filter; in-memory chunk directory).
    pub collection: Field,
    pub title: Field,
    pub heading: Field,
    pub text: Field,
    /// Chunk id shared with the HNSW graph; indexed and fast.
    pub chunk_id: Field,
    /// JSON of the `DocumentRecord` or `ChunkRecord`; stored only.
    pub payload: Field,
    /// Unit-length embedding, little-endian f32; stored only.
    pub vector: Field,
}

pub fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let analyzed = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        kind: builder.add_text_field("kind", STRING),
        doc_id: builder.add_text_field("doc_id", STRING),
        path: builder.add_text_field("path", STRING),
        collection: builder.add_text_field("collection", STRING | FAST),
        title: builder.add_text_field("title", analyzed.clone()),
        heading: builder.add_text_field("heading", analyzed.clone()),
        text: builder.add_text_field("text", analyzed),
        chunk_id: builder.add_u64_field(
            "chunk_id",
            NumericOptions::default().set_indexed().set_fast(),
        ),
        payload: builder.add_text_field("payload", TextOptions::default().set_stored()),
        vector: builder.add_bytes_field("vector", BytesOptions::default().set_stored()),
    };
    (builder.build(), fields)
}

/// simple tokenizer + long-token removal + lowercase + English (Porter) stemmer.
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(LowerCaser)
        .filter(Stemmer::new(Language::English))
        .build()
}

fn json_error(what: &str, e: serde_json::Error) -> Error {
    Error::Corrupt {
        path: "tantivy stored field".into(),
        reason: format!("{what}: {e}"),
    }
}

pub fn document_to_tantivy(fields: &Fields, record: &DocumentRecord) -> Result<TantivyDocument> {
    let mut doc = TantivyDocument::default();
    doc.add_text(fields.kind, KIND_DOCUMENT);
    doc.add_text(fields.doc_id, &record.doc_id);
    doc.add_text(fields.path, &record.path);
    let json = serde_json::to_string(record).map_err(|e| json_error("document record", e))?;
    doc.add_text(fields.payload, json);
    Ok(doc)
}

pub fn failure_to_tantivy(fields: &Fields, record: &FailureRecord) -> Result<TantivyDocument> {
    let mut doc = TantivyDocument::default();
    doc.add_text(fields.kind, KIND_FAILURE);
    doc.add_text(fields.doc_id, failure_id(&record.doc_id));
    doc.add_text(fields.path, &record.path);
    let json = serde_json::to_string(record).map_err(|e| json_error("failure record", e))?;
    doc.add_text(fields.payload, json);
    Ok(doc)
}

pub fn failure_from_tantivy(fields: &Fields, doc: &TantivyDocument) -> Result<FailureRecord> {
    from_payload(fields, doc, "failure")
}

/// The record stored as JSON in a tantivy document's `payload` field.
fn from_payload<T: serde::de::DeserializeOwned>(
    fields: &Fields,
    doc: &TantivyDocument,
    what: &str,
) -> Result<T> {
    let json = doc
        .get_first(fields.payload)
        .and_then(|v| v.as_str())
        .ok_or_else(|| missing(&format!("{what} payload")))?;
    serde_json::from_str(json).map_err(|e| json_error(&format!("{what} record"), e))
}

fn failure_id(doc_id: &str) -> String {
    format!("{FAILURE_ID_PREFIX}{doc_id}")
}

pub fn chunk_to_tantivy(
    fields: &Fields,
    chunk_id: u64,
    record: &ChunkRecord,
    unit_vector: &[f32],
) -> Result<TantivyDocument> {
    let mut doc = TantivyDocument::default();
    doc.add_text(fields.kind, KIND_CHUNK);
    doc.add_text(fields.doc_id, &record.doc_id);
    doc.add_text(fields.collection, &record.collection);
    doc.add_text(fields.title, &record.title);
    if let Some(heading) = &record.heading {
        doc.add_text(fields.heading, heading);
    }
    doc.add_text(fields.text, &record.text);
    doc.add_u64(fields.chunk_id, chunk_id);
    let json = serde_json::to_string(record).map_err(|e| json_error("chunk record", e))?;
    doc.add_text(fields.payload, json);
    doc.add_bytes(fields.vector, &encode_vector(unit_vector));
    Ok(doc)
}

pub fn document_from_tantivy(fields: &Fields, doc: &TantivyDocument) -> Result<DocumentRecord> {
    from_payload(fields, doc, "document")
}

pub fn chunk_from_tantivy(fields: &Fields, doc: &TantivyDocument) -> Result<ChunkRecord> {
    from_payload(fields, doc, "chunk")
}

pub fn vector_from_tantivy(fields: &Fields, doc: &TantivyDocument) -> Result<Vec<f32>> {
    let bytes = doc
        .get_first(fields.vector)
        .and_then(|v| v.as_bytes())
        .ok_or_else(|| missing("chunk vector"))?;
    decode_vector(bytes)
}

fn missing(what: &str) -> Error {
    Error::Corrupt {
        path: "tantivy stored field".into(),
        reason: format!("{what} is missing"),
    }
}

pub fn encode_vector(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn decode_vector(bytes: &[u8]) -> Result<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(Error::Corrupt {
            path: "tantivy stored field".into(),
            reason: format!(
                "vector field has {} bytes, not a multiple of 4",
                bytes.len()
            ),
        });
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

pub fn kind_document_query(fields: &Fields) -> TermQuery {
    TermQuery::new(
        Term::from_field_text(fields.kind, KIND_DOCUMENT),
        IndexRecordOption::Basic,
    )
}

/// Document record with this id (at most one exists).
pub fn document_by_id_query(fields: &Fields, doc_id: &str) -> BooleanQuery {
    BooleanQuery::new(vec![
        (Occur::Must, Box::new(kind_document_query(fields))),
        (
            Occur::Must,
            Box::new(TermQuery::new(
                Term::from_field_text(fields.doc_id, doc_id),
                IndexRecordOption::Basic,
            )),
        ),
    ])
}

/// Every chunk stored under a document id.
pub fn chunks_of_document_query(fields: &Fields, doc_id: &str) -> BooleanQuery {
    BooleanQuery::new(vec![
        (
            Occur::Must,
            Box::new(TermQuery::new(
                Term::from_field_text(fields.kind, KIND_CHUNK),
                IndexRecordOption::Basic,
            )),
        ),
        (
            Occur::Must,
            Box::new(TermQuery::new(
                Term::from_field_text(fields.doc_id, doc_id),
                IndexRecordOption::Basic,
            )),
        ),
    ])
}

pub fn document_by_path_query(fields: &Fields, path: &str) -> BooleanQuery {
    BooleanQuery::new(vec![
        (Occur::Must, Box::new(kind_document_query(fields))),
        (
            Occur::Must,
            Box::new(TermQuery::new(
                Term::from_field_text(fields.path, path),
                IndexRecordOption::Basic,
            )),
        ),
    ])
}

pub fn doc_id_term(fields: &Fields, doc_id: &str) -> Term {
    Term::from_field_text(fields.doc_id, doc_id)
}

/// The term of the failure record of `doc_id` (deleting it clears the failure only).
pub fn failure_term(fields: &Fields, doc_id: &str) -> Term {
    Term::from_field_text(fields.doc_id, &failure_id(doc_id))
}

pub fn kind_failure_query(fields: &Fields) -> TermQuery {
    TermQuery::new(
        Term::from_field_text(fields.kind, KIND_FAILURE),
        IndexRecordOption::Basic,
    )
}

/// The failure record of `doc_id` (at most one exists).
pub fn failure_by_id_query(fields: &Fields, doc_id: &str) -> TermQuery {
    TermQuery::new(failure_term(fields, doc_id), IndexRecordOption::Basic)
}

/// Every term of `text` as the index analyses it (lower-cased, stemmed), in order, with
/// repeats: what BM25 would match a word of `text` by.
pub fn analyze(text: &str) -> Vec<String> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut terms = Vec::new();
    while stream.advance() {
        terms.push(stream.token().text.clone());
    }
    terms
}

/// Analyzes `query` with the index analyzer and returns distinct terms in query order.
/// Everything that is not a word (quotes, colons, operators) simply disappears, so no user
/// input can make the query fail.
pub fn query_terms(query: &str) -> Vec<String> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(query);
    let mut seen = HashSet::new();
    let mut terms = Vec::new();
    while stream.advance() {
        let text = stream.token().text.clone();
        if seen.insert(text.clone()) {
            terms.push(text);
            if terms.len() == MAX_QUERY_TERMS {
                break;
            }
        }
    }
    terms
}

/// BM25 query: any term in text (1.0), title (1.5) or heading (1.5); a MUST clause on the
/// collection field when filtered. `None` when nothing can match (no terms, empty filter).
pub fn bm25_query(fields: &Fields, query: &str, filter: &Filter) -> Option<Box<dyn Query>> {
    let terms = query_terms(query);
    if terms.is_empty() {
        return None;
    }
    let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(terms.len() * 3);
    for term in &terms {
        for (field, boost) in [
            (fields.text, 1.0),
            (fields.title, TITLE_BOOST),
            (fields.heading, HEADING_BOOST),
        ] {
            let term_query: Box<dyn Query> = Box::new(TermQuery::new(
                Term::from_field_text(field, term),
                IndexRecordOption::WithFreqs,
            ));
            let clause: Box<dyn Query> = if boost == 1.0 {
                term_query
            } else {
                Box::new(BoostQuery::new(term_query, boost))
            };
            should.push((Occur::Should, clause));
        }
    }
    let text_query: Box<dyn Query> = Box::new(BooleanQuery::new(should));
    let Some(collections) = &filter.collections else {
        return Some(text_query);
    };
    if collections.is_empty() {
        return None;
    }
    let collection_clauses: Vec<(Occur, Box<dyn Query>)> = collections
        .iter()
        .map(|name| {
            let q: Box<dyn Query> = Box::new(TermQuery::new(
                Term::from_field_text(fields.collection, name),
                IndexRecordOption::Basic,
            ));
            (Occur::Should, q)
        })
        .collect();
    // Constant zero score: the filter must not change the BM25 ranking.
    let collection_query =
        ConstScoreQuery::new(Box::new(BooleanQuery::new(collection_clauses)), 0.0);
    Some(Box::new(BooleanQuery::new(vec![
        (Occur::Must, text_query),
        (Occur::Must, Box::new(collection_query)),
    ])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analyzer_stems_lowercases_and_drops_long_tokens() {
        let long = "x".repeat(MAX_TOKEN_BYTES + 1);
        let terms = query_terms(&format!("Running RUNS runner {long} the"));
        assert_eq!(terms, vec!["run", "runner", "the"]);
    }

    #[test]
    fn query_syntax_is_just_words() {
        let terms = query_terms(r#"title:"foo bar" AND (baz OR -qux) ^2 ~ * \ [a TO b]"#);
        assert_eq!(
            terms,
            vec!["titl", "foo", "bar", "and", "baz", "or", "qux", "2", "a", "to", "b"]
        );
        let (_, fields) = schema();
        assert!(bm25_query(&fields, "\"\":()-!", &Filter::default()).is_none());
        assert!(bm25_query(&fields, "word", &Filter::collections(Vec::<String>::new())).is_none());
        assert!(bm25_query(&fields, "word", &Filter::collections(["a"])).is_some());
    }

    #[test]
    fn query_terms_are_capped() {
        let many: Vec<String> = (0..500).map(|i| format!("w{i}")).collect();
        assert_eq!(query_terms(&many.join(" ")).len(), MAX_QUERY_TERMS);
    }

    #[test]
    fn vector_bytes_round_trip_and_reject_truncation() {
        let v = vec![0.5f32, -1.25, 3.0];
        assert_eq!(decode_vector(&encode_vector(&v)).ok(), Some(v));
        assert!(matches!(
            decode_vector(&[0, 1, 2]),
            Err(Error::Corrupt { .. })
        ));
    }
}
