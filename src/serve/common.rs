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

pub(super) fn read_index(
    state: &SharedState,
) -> Result<std::sync::RwLockReadGuard<'_, Index>, ApiError> {
    state
        .index
        .read()
        .map_err(|_| ApiError::internal("the index lock is poisoned"))
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
