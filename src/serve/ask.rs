//! `POST /api/ask`: a grounded answer with citations, as Server-Sent Events (`retrieved`,
//! `token`s, then `answer` or `error`) or as one JSON document. Owns an answer's life:
//! admission to the answer queue ([`start_answer`]; a full queue is a 429), the worker
//! that retrieves, selects evidence and generates on a blocking thread, its events
//! ([`AskEvent`]) and the SSE response. `/v1/chat/completions` answers through the same
//! functions.

use super::audited::Audited;
use super::common::{check_k, check_max_tokens, read_index, validate_question};
use super::error::{ApiError, ApiJson, JsonBodyErrors, QueueFull};
use super::SharedState;
use crate::auth::Caller;
use crate::rag::{self, Answer, AskOptions, RagError};
use crate::retrieval::{self, Passage};
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use lore_llm::{ChatMessage, GenerationParams, LlmError};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::ops::ControlFlow;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::ToSchema;

/// Seconds a client is told to wait when the answer queue is full.
const RETRY_AFTER_S: u64 = 10;

fn default_stream() -> bool {
    true
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    #[schema(
        min_length = 1,
        max_length = 4000,
        example = "How often are backups taken?"
    )]
    pub question: String,
    /// Earlier turns of the conversation, oldest first (`user` / `assistant`).
    #[serde(default)]
    #[schema(max_items = 20)]
    pub history: Vec<ChatMessage>,
    /// Passages given to the model (default 5).
    #[schema(minimum = 1, maximum = 20)]
    pub k: Option<usize>,
    #[schema(minimum = 1, maximum = 2048)]
    pub max_tokens: Option<usize>,
    /// Only these collections (default: all the caller may see; others are ignored).
    pub collections: Option<Vec<String>>,
    /// Server-Sent Events (default) or one JSON document.
    #[serde(default = "default_stream")]
    pub stream: bool,
    /// Answer with the larger model (`escalate_url`) from anonymised passages instead of
    /// the local one: only when the user confirmed it for this question, and only where
    /// an admin allowed it (400 when escalation is off, 403 when the passages come from a
    /// collection not allowed; as an `error` event when streaming). No `token` events: the
    /// answer arrives whole, with the values mapped back. A local answer's `escalation`
    /// field says whether this is possible.
    #[serde(default)]
    pub escalate: bool,
}

/// What `/api/ask` streams: `retrieved` once, `token`s, then `answer` (or `error`).
#[derive(Debug)]
pub(super) enum AskEvent {
    Retrieved(Vec<Passage>),
    Token(String),
    Answer(Box<Answer>),
    Failed(ApiError),
}

impl AskEvent {
    fn into_sse(self) -> Event {
        let json = |name: &str, value: &dyn erased::Json| {
            Event::default()
                .event(name)
                .data(value.to_json().unwrap_or_else(|_| "{}".to_string()))
        };
        match self {
            AskEvent::Retrieved(passages) => json("retrieved", &RetrievedEvent { passages }),
            AskEvent::Token(text) => json("token", &TokenEvent { text }),
            AskEvent::Answer(answer) => json("answer", &*answer),
            AskEvent::Failed(error) => json("error", &error.body()),
        }
    }
}

/// Serialising values of different types through one closure.
mod erased {
    pub trait Json {
        fn to_json(&self) -> serde_json::Result<String>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> serde_json::Result<String> {
            serde_json::to_string(self)
        }
    }
}

/// One Server-Sent Event, as the OpenAPI document describes a stream's items.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the wire format; events are written by axum's `Event`
pub struct SseEvent {
    /// `/api/ask`: `retrieved` (data `{"passages": [...]}`), `token` (data `{"text"}`),
    /// then `answer` (data: the answer document) or `error` (data: the error body).
    /// Absent in `/v1/chat/completions` streams.
    event: Option<String>,
    /// JSON, or `[DONE]` at the end of an OpenAI-style stream.
    data: String,
}

#[derive(Serialize)]
struct RetrievedEvent {
    passages: Vec<Passage>,
}

#[derive(Serialize)]
struct TokenEvent {
    text: String,
}

/// The text retrieval searches with: a follow-up ("and on the backup server?") carries
/// little on its own, so the previous user turn is folded in.
pub(super) fn standalone_query(history: &[ChatMessage], question: &str) -> String {
    match history.iter().rev().find(|m| m.role == "user") {
        Some(previous) if !previous.content.trim().is_empty() => {
            format!("{} {}", previous.content.trim(), question)
        }
        _ => question.to_string(),
    }
}

fn validate_ask(request: &AskRequest) -> Result<(), ApiError> {
    validate_question(&request.question, &request.history)?;
    check_max_tokens(request.max_tokens)
}

/// A grounded answer with citations: Server-Sent Events (`retrieved`, `token`s, then
/// `answer` or `error`) or, with `"stream": false`, one JSON document.
#[utoipa::path(post, path = "/api/ask", tag = "ask",
    request_body = AskRequest,
    responses(
        (status = 200, description = "The answer, or its event stream",
            content((Answer = "application/json"), (SseEvent = "text/event-stream"))),
        JsonBodyErrors,
        QueueFull,
    ))]
pub async fn ask(
    State(state): State<SharedState>,
    audit: Audited,
    Extension(caller): Extension<Caller>,
    ApiJson(request): ApiJson<AskRequest>,
) -> Result<Response, ApiError> {
    let question = request.question.trim().to_string();
    let admitted = validate_ask(&request)
        .and_then(|()| match state.escalator {
            None if request.escalate => Err(escalate_error(crate::escalate::EscalateError::Off)),
            _ => Ok(()),
        })
        .and_then(|()| check_k(request.k, AskOptions::default().k))
        .and_then(|k| {
            let filter = caller.scope.filter(request.collections);
            let options = ask_options(&state, k, request.max_tokens, filter);
            start_answer(
                &state,
                question.clone(),
                request.history,
                options,
                request.escalate,
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
    if request.stream {
        let events = ReceiverStream::new(receiver);
        let events = tokio_stream::StreamExt::map(events, |e| Ok::<_, Infallible>(e.into_sse()));
        return Ok(sse_response(events));
    }
    final_answer(&mut receiver)
        .await
        .map(|a| Json(a).into_response())
}

pub(super) fn ask_options(
    state: &SharedState,
    k: usize,
    max_tokens: Option<usize>,
    filter: lore_index::Filter,
) -> AskOptions {
    AskOptions {
        k,
        generation: GenerationParams {
            max_tokens: max_tokens.unwrap_or(GenerationParams::default().max_tokens),
            ..GenerationParams::default()
        },
        // The caller's scope: retrieval, evidence and citations see nothing outside it.
        filter,
        ..state.config.ask_options()
    }
}

/// An SSE response that proxies must not buffer.
pub(super) fn sse_response<S>(events: S) -> Response
where
    S: tokio_stream::Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Admits an answer (a permit per answer running or waiting, so a full queue is a 429
/// before any byte of the response is sent) and starts it on a blocking thread; its
/// events arrive on the returned receiver, the last one `Answer` or `Failed`. The answer's
/// audit entry is queued before that last event is sent; a refusal here is the caller's to
/// record.
pub(super) fn start_answer(
    state: &SharedState,
    question: String,
    history: Vec<ChatMessage>,
    options: AskOptions,
    escalate: bool,
    audit: Audited,
) -> Result<mpsc::Receiver<AskEvent>, ApiError> {
    let permit = state
        .answer_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Busy {
            retry_after_s: RETRY_AFTER_S,
        })?;
    let (sender, receiver) = mpsc::channel::<AskEvent>(EVENT_BUFFER);
    let sink = EventSink {
        sender,
        runtime: tokio::runtime::Handle::current(),
        stall: Duration::from_secs(state.config.stream_idle_secs),
        given_up: Default::default(),
    };
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let last = match answer(&state, &history, &question, &options, escalate, &sink) {
            Ok((answer, escalation_sent)) => {
                state.audit.record(crate::audit::AuditEntry {
                    question: Some(question),
                    documents: crate::audit::cited_documents(&answer.citations),
                    outcome: if answer.abstained {
                        "abstained"
                    } else {
                        "answered"
                    }
                    .into(),
                    // What went to the larger model, masked, exactly as sent.
                    extra: escalation_sent
                        .map(|sent| serde_json::json!({ "escalation_request": sent })),
                    ..audit.entry()
                });
                AskEvent::Answer(Box::new(answer))
            }
            Err(error) => {
                audit.record_error(&state, Some(question), Vec::new(), &error);
                AskEvent::Failed(error)
            }
        };
        // The slot is free once the work is done, before the client hears of it: a client
        // that reads /metrics right after its answer sees the queue it left, not its own
        // answer still in it.
        drop(permit);
        sink.send(last);
    });
    Ok(receiver)
}

/// Events an answer may have written ahead of its reader.
const EVENT_BUFFER: usize = 64;

/// Where an answer's worker sends its events. A client that stops reading fills the
/// buffer; the worker waits at most `stall` (`stream_idle_secs`) for room, then gives up,
/// so the answer stops and its slot is freed instead of being held for ever.
pub(super) struct EventSink {
    sender: mpsc::Sender<AskEvent>,
    runtime: tokio::runtime::Handle,
    stall: Duration,
    /// Set once a send timed out: the client is not waited for again.
    given_up: std::sync::atomic::AtomicBool,
}

impl EventSink {
    /// Whether the event was taken: `false` when the client went away or stalled.
    fn send(&self, event: AskEvent) -> bool {
        use std::sync::atomic::Ordering;
        if self.given_up.load(Ordering::Relaxed) {
            return false;
        }
        // The worker runs on a blocking thread, where waiting on the runtime is allowed.
        match self
            .runtime
            .block_on(self.sender.send_timeout(event, self.stall))
        {
            Ok(()) => true,
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                self.given_up.store(true, Ordering::Relaxed);
                tracing::warn!(
                    stall_s = self.stall.as_secs(),
                    "an answer's client stopped reading; the answer is cancelled"
                );
                false
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => false,
        }
    }
}

/// Waits for the end of an answer started by [`start_answer`].
pub(super) async fn final_answer(
    receiver: &mut mpsc::Receiver<AskEvent>,
) -> Result<Answer, ApiError> {
    while let Some(event) = receiver.recv().await {
        match event {
            AskEvent::Answer(answer) => return Ok(*answer),
            AskEvent::Failed(error) => return Err(error),
            AskEvent::Retrieved(_) | AskEvent::Token(_) => {}
        }
    }
    Err(ApiError::internal(
        "the answer worker stopped without a result",
    ))
}

/// Retrieval (under the index's read lock, released before generation) then answering;
/// events go to `sink`, and a client gone or not reading cancels generation.
fn answer(
    state: &SharedState,
    history: &[ChatMessage],
    question: &str,
    options: &AskOptions,
    escalate: bool,
    sink: &EventSink,
) -> Result<(Answer, Option<Vec<serde_json::Value>>), ApiError> {
    let query = standalone_query(history, question);
    let started = std::time::Instant::now();
    let (retrieved, evidence) = {
        let index = read_index(state)?;
        let retrieved = retrieval::search(
            &state.embedder,
            &index,
            &query,
            options.mode,
            options.k,
            &options.filter,
        )
        .map_err(ApiError::internal)?;
        let evidence = rag::select_evidence(&state.embedder, &index, &query, &retrieved, options)
            .map_err(ApiError::internal)?;
        (retrieved, evidence)
    };
    let retrieval_s = started.elapsed().as_secs_f64();
    let mut first_token: Option<f64> = None;
    if !sink.send(AskEvent::Retrieved(retrieved.clone())) {
        return Err(ApiError::BadRequest(
            "the client went away or stopped reading".into(),
        ));
    }
    if escalate {
        let escalator = state
            .escalator
            .as_ref()
            .ok_or_else(|| escalate_error(crate::escalate::EscalateError::Off))?;
        let escalation = escalator
            .escalate(
                &state.embedder,
                question,
                history,
                retrieved,
                &evidence,
                options,
            )
            .map_err(escalate_error)?;
        let mut answer = escalation.answer;
        answer.retrieval_s = retrieval_s;
        return Ok((answer, Some(escalation.sent)));
    }
    let result = rag::answer_from(
        &state.embedder,
        &state.generator,
        question,
        history,
        retrieved,
        &evidence,
        options,
        |text| {
            first_token.get_or_insert_with(|| started.elapsed().as_secs_f64());
            if sink.send(AskEvent::Token(text.to_string())) {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        },
    );
    match result {
        Ok(mut answer) => {
            let generated = answer.generation.as_ref().map_or(0, |g| g.generated_tokens);
            state.metrics.answered(generated, first_token);
            answer.retrieval_s = retrieval_s;
            answer.escalation = state.escalator.as_ref().map(|e| e.offer(&answer));
            Ok((answer, None))
        }
        Err(e) => Err(rag_error(e)),
    }
}

fn rag_error(e: RagError) -> ApiError {
    match e {
        RagError::EmptyQuestion | RagError::QuestionTooLong { .. } => {
            ApiError::BadRequest(e.to_string())
        }
        RagError::Model(LlmError::Busy { .. }) => ApiError::Busy {
            retry_after_s: RETRY_AFTER_S,
        },
        RagError::Model(LlmError::ContextOverflow { .. }) => ApiError::BadRequest(e.to_string()),
        RagError::Model(_) | RagError::Search(_) => ApiError::internal(e),
    }
}

fn escalate_error(e: crate::escalate::EscalateError) -> ApiError {
    use crate::escalate::EscalateError;
    match e {
        EscalateError::Off => ApiError::BadRequest(e.to_string()),
        EscalateError::NotAllowed(_) => ApiError::Forbidden(e.to_string()),
        EscalateError::Mask(_) => ApiError::BadRequest(e.to_string()),
        // The larger model's failure: its detail (which may name internal hosts) goes to
        // the log, the client hears that it did not answer.
        EscalateError::Answer(RagError::Model(LlmError::Remote(detail))) => {
            tracing::warn!(%detail, "the larger model failed");
            ApiError::Unavailable("the larger model did not answer; try again later".into())
        }
        EscalateError::Answer(e) => rag_error(e),
        EscalateError::Config(_) => ApiError::internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that stops reading costs the worker the stall time once, then the answer
    /// is given up (and with it its slot).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_stops_reading_is_given_up_after_the_stall_time() {
        let (sender, receiver) = mpsc::channel::<AskEvent>(2);
        let sink = EventSink {
            sender,
            runtime: tokio::runtime::Handle::current(),
            stall: Duration::from_millis(300),
            given_up: Default::default(),
        };
        let worker = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let mut taken = 0;
            while sink.send(AskEvent::Token("word".into())) {
                taken += 1;
                assert!(taken <= 2, "the buffer holds two events, nobody reads");
            }
            let stalled = started.elapsed();
            // Given up: the final event is not waited for again.
            let started = std::time::Instant::now();
            assert!(!sink.send(AskEvent::Token("last".into())));
            let again = started.elapsed();
            drop(receiver);
            (taken, stalled, again)
        });
        let (taken, stalled, gone) = worker.await.expect("worker");
        assert_eq!(taken, 2);
        assert!(
            stalled >= Duration::from_millis(300) && stalled < Duration::from_secs(5),
            "{stalled:?}"
        );
        assert!(gone < Duration::from_millis(100), "{gone:?}");
    }

    #[test]
    fn follow_ups_fold_in_the_previous_question() {
        let history = vec![
            ChatMessage::new("user", "How often is the mail server backed up?"),
            ChatMessage::new("assistant", "Nightly [1]."),
        ];
        assert_eq!(
            standalone_query(&history, "And the backup server?"),
            "How often is the mail server backed up? And the backup server?"
        );
        assert_eq!(standalone_query(&[], "Why?"), "Why?");
    }
}
