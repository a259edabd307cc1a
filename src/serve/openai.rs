//! OpenAI-compatible endpoints, so existing chat clients can use Lore: `POST
//! /v1/chat/completions` (streaming or not) answers the last user message through the RAG
//! pipeline, earlier user/assistant messages being the conversation; `GET /v1/models`
//! lists the one model. Sources come inline (the answer's `[n]` markers plus a "Sources:"
//! list) and in an extra `sources` field.

use super::ask::{self, AskEvent};
use super::audited::Audited;
use super::common::{check_max_tokens, validate_question};
use super::error::{ApiError, ApiJson, JsonBodyErrors, QueueFull};
use super::SharedState;
use crate::auth::Caller;
use crate::rag::{Answer, AskOptions, Source};
use axum::extract::State;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use lore_llm::ChatMessage;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ChatRequest {
    /// Ignored: Lore answers with its configured model (any name is accepted).
    #[serde(default)]
    pub model: Option<String>,
    /// The conversation; the last message, the user's, is the question. System messages
    /// are ignored (Lore has its own grounding instructions).
    pub messages: Vec<ChatMessage>,
    /// Server-Sent Events of `chat.completion.chunk`s, ending with `[DONE]`.
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2048)]
    pub max_tokens: Option<usize>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2048)]
    pub max_completion_tokens: Option<usize>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Completion {
    id: String,
    object: &'static str,
    created: i64,
    model: String,
    choices: Vec<Choice>,
    usage: Usage,
    sources: Vec<Source>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Choice {
    index: usize,
    message: ChatMessage,
    finish_reason: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Usage {
    prompt_tokens: usize,
    completion_tokens: usize,
    total_tokens: usize,
}

#[derive(Serialize)]
struct Chunk {
    id: String,
    object: &'static str,
    created: i64,
    model: String,
    choices: Vec<ChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sources: Option<Vec<Source>>,
}

#[derive(Serialize)]
struct ChunkChoice {
    index: usize,
    delta: Delta,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

fn model_name(state: &SharedState) -> String {
    format!("lore-{}", state.generator.info().name)
}

/// The sources list appended to the answer text, for clients that show only `content`.
fn sources_text(answer: &Answer) -> String {
    if answer.citations.is_empty() {
        return String::new();
    }
    let mut text = String::from("\n\nSources:");
    for s in &answer.citations {
        text.push_str(&format!("\n[{}] {}", s.n, s.passage.location()));
    }
    if let Some(quote) = &answer.quote {
        text.push_str(&format!(
            "\n\nQuote [{}]: \"{}\"",
            quote.n,
            one_line(&quote.text)
        ));
    }
    text
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Splits the messages into (history, question): the question is the last message, which
/// must come from the user; system messages are Lore's own business and are dropped.
fn conversation(messages: Vec<ChatMessage>) -> Result<(Vec<ChatMessage>, String), ApiError> {
    let mut turns: Vec<ChatMessage> = messages
        .into_iter()
        .filter(|m| m.role != "system" && m.role != "developer")
        .collect();
    match turns.pop() {
        Some(last) if last.role == "user" => Ok((turns, last.content)),
        _ => Err(ApiError::BadRequest(
            "the last message must be the user's question".into(),
        )),
    }
}

/// OpenAI-compatible chat completion, answered from the documents.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai",
    request_body = ChatRequest,
    responses(
        (status = 200, description = "The completion (`stream: false`), or a stream of chunks",
            content((Completion = "application/json"), (super::ask::SseEvent = "text/event-stream"))),
        JsonBodyErrors,
        QueueFull,
    ))]
pub async fn chat_completions(
    State(state): State<SharedState>,
    audit: Audited,
    Extension(caller): Extension<Caller>,
    ApiJson(request): ApiJson<ChatRequest>,
) -> Result<Response, ApiError> {
    let (history, question) = match conversation(request.messages) {
        Ok(conversation) => conversation,
        Err(e) => {
            audit.record_error(&state, None, Vec::new(), &e);
            return Err(e);
        }
    };
    let question = question.trim().to_string();
    let max_tokens = request.max_completion_tokens.or(request.max_tokens);
    let admitted = validate_question(&question, &history)
        .and_then(|()| check_max_tokens(max_tokens))
        .and_then(|()| {
            let filter = caller.scope.filter(None);
            let options = ask::ask_options(&state, AskOptions::default().k, max_tokens, filter);
            ask::start_answer(
                &state,
                question.clone(),
                history,
                options,
                false,
                audit.clone(),
            )
        });
    let mut receiver = match admitted {
        Ok(receiver) => receiver,
        Err(e) => {
            audit.record_error(&state, Some(question), Vec::new(), &e);
            return Err(e);
        }
    };
    let id = format!("chatcmpl-lore-{}", now());
    let model = request.model.unwrap_or_else(|| model_name(&state));
    let created = now();
    if !request.stream {
        let answer = ask::final_answer(&mut receiver).await?;
        let usage = answer.generation.as_ref().map_or(
            Usage {
                prompt_tokens: 0,
                completion_tokens: 0,
                total_tokens: 0,
            },
            |g| Usage {
                prompt_tokens: g.prompt_tokens,
                completion_tokens: g.generated_tokens,
                total_tokens: g.prompt_tokens + g.generated_tokens,
            },
        );
        let content = format!("{}{}", answer.answer, sources_text(&answer));
        return Ok(Json(Completion {
            id,
            object: "chat.completion",
            created,
            model,
            choices: vec![Choice {
                index: 0,
                message: ChatMessage::new("assistant", content),
                finish_reason: "stop",
            }],
            usage,
            sources: answer.citations,
        })
        .into_response());
    }
    let chunk = move |delta: Delta, finish: Option<&'static str>, sources: Option<Vec<Source>>| {
        let body = Chunk {
            id: id.clone(),
            object: "chat.completion.chunk",
            created,
            model: model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish,
            }],
            sources,
        };
        Event::default().data(serde_json::to_string(&body).unwrap_or_else(|_| "{}".into()))
    };
    let (sender, out) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(64);
    tokio::spawn(async move {
        let first = chunk(
            Delta {
                role: Some("assistant"),
                ..Delta::default()
            },
            None,
            None,
        );
        if sender.send(Ok(first)).await.is_err() {
            return;
        }
        while let Some(event) = receiver.recv().await {
            let message = match event {
                AskEvent::Retrieved(_) => continue,
                AskEvent::Token(text) => chunk(
                    Delta {
                        content: Some(text),
                        ..Delta::default()
                    },
                    None,
                    None,
                ),
                AskEvent::Answer(answer) => {
                    // The streamed text lacks the citations attributed at the end: the
                    // final chunk carries them as the sources list.
                    let tail = sources_text(&answer);
                    chunk(
                        Delta {
                            content: (!tail.is_empty()).then_some(tail),
                            ..Delta::default()
                        },
                        Some("stop"),
                        Some(answer.citations),
                    )
                }
                AskEvent::Failed(error) => Event::default()
                    .data(serde_json::to_string(&error.body()).unwrap_or_else(|_| "{}".into())),
            };
            if sender.send(Ok(message)).await.is_err() {
                return; // client gone: dropping `receiver` cancels the generation
            }
        }
        let _ = sender.send(Ok(Event::default().data("[DONE]"))).await;
    });
    Ok(ask::sse_response(
        tokio_stream::wrappers::ReceiverStream::new(out),
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ModelList {
    object: &'static str,
    data: Vec<ModelEntry>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ModelEntry {
    id: String,
    object: &'static str,
    created: i64,
    owned_by: &'static str,
}

/// The one model Lore answers with.
#[utoipa::path(get, path = "/v1/models", tag = "openai",
    responses((status = 200, description = "The model list", body = ModelList)))]
pub async fn models(State(state): State<SharedState>) -> Json<ModelList> {
    Json(ModelList {
        object: "list",
        data: vec![ModelEntry {
            id: model_name(&state),
            object: "model",
            created: 0,
            owned_by: "lore",
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_user_message_is_the_question() {
        let (history, question) = conversation(vec![
            ChatMessage::new("system", "Be terse."),
            ChatMessage::new("user", "How often are backups taken?"),
            ChatMessage::new("assistant", "Nightly [1]."),
            ChatMessage::new("user", "And kept for how long?"),
        ])
        .expect("valid");
        assert_eq!(question, "And kept for how long?");
        assert_eq!(history.len(), 2);
        assert!(conversation(vec![ChatMessage::new("assistant", "Hi")]).is_err());
        assert!(conversation(Vec::new()).is_err());
    }
}
