//! `POST /api/search`: the passages for a query, best first, by hybrid, BM25 or vector
//! search, without generating an answer.

use super::audited::Audited;
use super::common::{blocking, check_k, read_index};
use super::error::{ApiError, ApiJson, JsonBodyErrors};
use super::{SharedState, MAX_QUESTION_CHARS};
use crate::auth::Caller;
use crate::retrieval::{self, Passage};
use axum::extract::State;
use axum::{Extension, Json};
use lore_index::SearchMode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    #[schema(
        min_length = 1,
        max_length = 4000,
        example = "How often are backups taken?"
    )]
    pub query: String,
    /// `hybrid` (default), `bm25` or `vector`.
    #[serde(default)]
    #[schema(pattern = "^(hybrid|bm25|vector)$")]
    pub mode: Option<String>,
    /// Passages to return (default 10).
    #[schema(minimum = 1, maximum = 20)]
    pub k: Option<usize>,
    /// Only these collections (default: all the caller may see; others are ignored).
    pub collections: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    pub query: String,
    #[schema(value_type = String, example = "hybrid")]
    pub mode: SearchMode,
    pub results: Vec<Passage>,
}

/// Passages for a query, best first.
#[utoipa::path(post, path = "/api/search", tag = "search",
    request_body = SearchRequest,
    responses(
        (status = 200, description = "Passages, best first", body = SearchResponse),
        JsonBodyErrors,
    ))]
pub async fn search(
    State(state): State<SharedState>,
    audit: Audited,
    Extension(caller): Extension<Caller>,
    ApiJson(request): ApiJson<SearchRequest>,
) -> Result<Json<SearchResponse>, ApiError> {
    let query = request.query.trim().to_string();
    let result = run_search(state.clone(), &caller, query.clone(), request).await;
    match &result {
        // The documents returned (not cited: a search cites nothing), best first.
        Ok(found) => state.audit.record(crate::audit::AuditEntry {
            question: Some(query),
            documents: found.results.iter().fold(Vec::new(), |mut ids, p| {
                if !ids.contains(&p.doc_id) {
                    ids.push(p.doc_id.clone());
                }
                ids
            }),
            outcome: "ok".into(),
            ..audit.entry()
        }),
        Err(e) => audit.record_error(&state, Some(query), Vec::new(), e),
    }
    result.map(Json)
}

async fn run_search(
    state: SharedState,
    caller: &Caller,
    query: String,
    request: SearchRequest,
) -> Result<SearchResponse, ApiError> {
    if query.is_empty() {
        return Err(ApiError::BadRequest("query is empty".into()));
    }
    if query.chars().count() > MAX_QUESTION_CHARS {
        return Err(ApiError::BadRequest(format!(
            "query is longer than {MAX_QUESTION_CHARS} characters"
        )));
    }
    let mode: SearchMode = match request.mode.as_deref() {
        None => SearchMode::Hybrid,
        Some(m) => m
            .parse()
            .map_err(|e: lore_index::Error| ApiError::BadRequest(e.to_string()))?,
    };
    let k = check_k(request.k, 10)?;
    // The caller's collections go into the index query itself: nothing else is ranked.
    let filter = caller.scope.filter(request.collections);
    let results = blocking(move || {
        let index = read_index(&state)?;
        retrieval::search(&state.embedder, &index, &query, mode, k, &filter)
            .map(|results| SearchResponse {
                query,
                mode,
                results,
            })
            .map_err(ApiError::internal)
    })
    .await?;
    Ok(results)
}
