//! What the JSON API's handlers share: running blocking work off the async workers
//! ([`blocking`]), the index's read lock, and the checks on `k`,
//! `max_tokens` and questions (which `/v1/chat/completions` applies too).

use super::error::ApiError;
use super::{SharedState, MAX_QUESTION_CHARS};
use lore_index::Index;
use lore_llm::ChatMessage;

use crate::rag::MAX_ANSWER_TOKENS;
use crate::retrieval::MAX_K;

pub(super) const MAX_HISTORY_MESSAGES: usize = 20;

/// Runs blocking work off the async workers; a panic becomes a 500.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
}

/// The shared index to read; a lock poisoned by a panic is recovered first (see
/// [`crate::pipeline::write_shared`]), so one panic never fails every later request.
pub(super) fn read_index(
    state: &SharedState,
) -> Result<std::sync::RwLockReadGuard<'_, Index>, ApiError> {
    crate::pipeline::read_shared(&state.index).map_err(ApiError::internal)
}

/// The shared index to change (recovered first after a panic, like [`read_index`]).
pub(super) fn write_index(
    state: &SharedState,
) -> Result<std::sync::RwLockWriteGuard<'_, Index>, ApiError> {
    crate::pipeline::write_shared(&state.index).map_err(ApiError::internal)
}

/// The bytes of an original, if it still resolves inside the upload area or a watched
/// folder, or is exactly the file recorded at ingestion (a file ingested from elsewhere:
/// its folder was resolved then, so only a link put in its place could lead elsewhere).
/// A link leading out is refused as not found, with the reason.
pub(super) async fn read_original(
    state: &SharedState,
    source: &str,
    doc_path: &str,
) -> Result<Vec<u8>, ApiError> {
    let state = state.clone();
    let source = std::path::PathBuf::from(source);
    let doc_path = doc_path.to_string();
    blocking(move || {
        let mut roots: Vec<std::path::PathBuf> = std::iter::once(state.config.data_dir.join("library"))
            .chain(state.config.watch.iter().cloned())
            .filter_map(|dir| std::fs::canonicalize(dir).ok())
            .collect();
        if !roots.iter().any(|root| source.starts_with(root)) {
            // For a file, "inside" the file itself means being it.
            roots = vec![source.clone()];
        }
        let mut file = crate::files::open_within(&source, &roots).map_err(|e| match e {
            crate::files::OpenWithinError::Outside { target, .. } => ApiError::NotFound(format!(
                "the original of {doc_path} is not served: it now leads to {}, outside the folder it was ingested from",
                target.display()
            )),
            other => ApiError::NotFound(format!("the original of {doc_path} is gone: {other}")),
        })?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes)
            .map_err(|e| ApiError::NotFound(format!("the original of {doc_path} is gone: {e}")))?;
        Ok(bytes)
    })
    .await
}

pub(super) fn check_k(k: Option<usize>, default: usize) -> Result<usize, ApiError> {
    match k.unwrap_or(default) {
        k @ 1..=MAX_K => Ok(k),
        k => Err(ApiError::BadRequest(format!(
            "k must be between 1 and {MAX_K}, not {k}"
        ))),
    }
}

/// An answer's token budget, when given, is 1..=[`MAX_ANSWER_TOKENS`].
pub(super) fn check_max_tokens(max_tokens: Option<usize>) -> Result<(), ApiError> {
    match max_tokens {
        Some(n) if !(1..=MAX_ANSWER_TOKENS).contains(&n) => Err(ApiError::BadRequest(format!(
            "max_tokens must be between 1 and {MAX_ANSWER_TOKENS}, not {n}"
        ))),
        _ => Ok(()),
    }
}

/// The checks every question gets: not empty, not too long, a short well-formed history.
pub(super) fn validate_question(question: &str, history: &[ChatMessage]) -> Result<(), ApiError> {
    let question = question.trim();
    if question.is_empty() {
        return Err(ApiError::BadRequest("question is empty".into()));
    }
    if question.chars().count() > MAX_QUESTION_CHARS {
        return Err(ApiError::BadRequest(format!(
            "question is longer than {MAX_QUESTION_CHARS} characters"
        )));
    }
    if history.len() > MAX_HISTORY_MESSAGES {
        return Err(ApiError::BadRequest(format!(
            "history holds more than {MAX_HISTORY_MESSAGES} messages"
        )));
    }
    if let Some(m) = history
        .iter()
        .find(|m| m.role != "user" && m.role != "assistant")
    {
        return Err(ApiError::BadRequest(format!(
            "history roles are \"user\" or \"assistant\", not {:?}",
            m.role
        )));
    }
    Ok(())
}
