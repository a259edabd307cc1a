//! The JSON API handlers: ask (SSE or one JSON document), search, documents (list,
//! upload, delete, original file), jobs, health. Each validates its input, moves blocking
//! work to a blocking thread, and returns [`ApiError`] on failure.

use super::error::{
    ApiError, ApiJson, ApiMultipart, ApiPath, ErrorBody, JsonBodyErrors, QueueFull,
};
use super::{SharedState, MAX_QUESTION_CHARS};
use crate::llm::{ChatMessage, GenerationParams, LlmError};
use crate::rag::{self, Answer, AskOptions};
use crate::retrieval::{self, Passage};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lore_index::{DocumentRecord, FailureRecord, Filter, Index, SearchMode};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::ops::ControlFlow;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::ToSchema;

use crate::rag::MAX_ANSWER_TOKENS;
use crate::retrieval::MAX_K;

/// Seconds a client is told to wait when the answer queue is full.
const RETRY_AFTER_S: u64 = 10;
const MAX_HISTORY_MESSAGES: usize = 20;

/// Runs blocking work off the async workers; a panic becomes a 500.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("worker failed: {e}")))?
}

fn read_index(state: &SharedState) -> Result<std::sync::RwLockReadGuard<'_, Index>, ApiError> {
    state
        .index
        .read()
        .map_err(|_| ApiError::internal(anyhow::anyhow!("the index lock is poisoned")))
}

fn filter(collections: Option<Vec<String>>) -> Filter {
    Filter {
        collections: collections.filter(|c| !c.is_empty()),
    }
}

fn check_k(k: Option<usize>, default: usize) -> Result<usize, ApiError> {
    match k.unwrap_or(default) {
        k @ 1..=MAX_K => Ok(k),
        k => Err(ApiError::BadRequest(format!(
            "k must be between 1 and {MAX_K}, not {k}"
        ))),
    }
}

// ---------------------------------------------------------------------------- search

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
    /// Only these collections (default: all).
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
    ApiJson(request): ApiJson<SearchRequest>,
) -> Result<Json<SearchResponse>, ApiError> {
    let query = request.query.trim().to_string();
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
    let filter = filter(request.collections);
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
    Ok(Json(results))
}

// ------------------------------------------------------------------------------- ask

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
    /// Only these collections (default: all).
    pub collections: Option<Vec<String>>,
    /// Server-Sent Events (default) or one JSON document.
    #[serde(default = "default_stream")]
    pub stream: bool,
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
    ApiJson(request): ApiJson<AskRequest>,
) -> Result<Response, ApiError> {
    validate_ask(&request)?;
    let k = check_k(request.k, AskOptions::default().k)?;
    let options = ask_options(&state, k, request.max_tokens, request.collections.clone());
    let mut receiver = start_answer(
        &state,
        request.question.trim().to_string(),
        request.history,
        options,
    )?;
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
    collections: Option<Vec<String>>,
) -> AskOptions {
    AskOptions {
        k,
        generation: GenerationParams {
            max_tokens: max_tokens.unwrap_or(GenerationParams::default().max_tokens),
            ..GenerationParams::default()
        },
        filter: filter(collections),
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
/// events arrive on the returned receiver, the last one `Answer` or `Failed`.
pub(super) fn start_answer(
    state: &SharedState,
    question: String,
    history: Vec<ChatMessage>,
    options: AskOptions,
) -> Result<mpsc::Receiver<AskEvent>, ApiError> {
    let permit = state
        .answer_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Busy {
            retry_after_s: RETRY_AFTER_S,
        })?;
    let (sender, receiver) = mpsc::channel::<AskEvent>(64);
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let last = match answer(&state, &history, &question, &options, &sender) {
            Ok(answer) => AskEvent::Answer(Box::new(answer)),
            Err(error) => AskEvent::Failed(error),
        };
        // The slot is free once the work is done, before the client hears of it: a client
        // that reads /metrics right after its answer sees the queue it left, not its own
        // answer still in it.
        drop(permit);
        let _ = sender.blocking_send(last);
    });
    Ok(receiver)
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
    Err(ApiError::internal(anyhow::anyhow!(
        "the answer worker stopped without a result"
    )))
}

/// Retrieval (under the index's read lock, released before generation) then answering;
/// events go to `sender`, and a closed receiver (client gone) cancels generation.
fn answer(
    state: &SharedState,
    history: &[ChatMessage],
    question: &str,
    options: &AskOptions,
    sender: &mpsc::Sender<AskEvent>,
) -> Result<Answer, ApiError> {
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
    if sender
        .blocking_send(AskEvent::Retrieved(retrieved.clone()))
        .is_err()
    {
        return Err(ApiError::BadRequest("the client went away".into()));
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
            match sender.blocking_send(AskEvent::Token(text.to_string())) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            }
        },
    );
    match result {
        Ok(mut answer) => {
            let generated = answer.generation.as_ref().map_or(0, |g| g.generated_tokens);
            state.metrics.answered(generated, first_token);
            answer.retrieval_s = retrieval_s;
            Ok(answer)
        }
        Err(e) => Err(match e.downcast_ref::<LlmError>() {
            Some(LlmError::Busy { .. }) => ApiError::Busy {
                retry_after_s: RETRY_AFTER_S,
            },
            Some(LlmError::ContextOverflow { .. }) => ApiError::BadRequest(format!("{e:#}")),
            _ => ApiError::internal(e),
        }),
    }
}

// ------------------------------------------------------------------------- documents

/// A document as listed: its indexed version if any, and the last ingestion error if
/// the latest attempt failed (a file whose new version is broken stays searchable in its
/// last good version, listed as failed with the reason).
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentView {
    pub id: String,
    pub path: String,
    pub title: String,
    pub collection: String,
    pub format: Option<String>,
    pub pages: Option<u32>,
    pub chunks: u32,
    pub bytes: Option<u64>,
    /// Unix seconds of the indexed version; absent when the file never ingested.
    pub ingested_at: Option<i64>,
    /// `indexed`, `indexed_with_warnings` or `failed`.
    #[schema(value_type = String)]
    pub status: &'static str,
    pub warnings: Vec<String>,
    pub last_error: Option<String>,
    pub failed_at: Option<i64>,
}

impl DocumentView {
    fn new(document: Option<DocumentRecord>, failure: Option<FailureRecord>) -> Option<Self> {
        let status = match (&document, &failure) {
            (_, Some(_)) => "failed",
            (Some(d), None) if d.warnings.is_empty() => "indexed",
            (Some(_), None) => "indexed_with_warnings",
            (None, None) => return None,
        };
        let (last_error, failed_at) = match &failure {
            Some(f) => (Some(f.reason.clone()), Some(f.failed_at)),
            None => (None, None),
        };
        Some(match (document, failure) {
            (Some(d), _) => DocumentView {
                id: d.doc_id,
                path: d.path,
                title: d.title,
                collection: d.collection,
                format: Some(d.format),
                pages: d.pages,
                chunks: d.chunks,
                bytes: Some(d.bytes),
                ingested_at: Some(d.ingested_at),
                status,
                warnings: d.warnings,
                last_error,
                failed_at,
            },
            (None, Some(f)) => DocumentView {
                title: f.path.clone(),
                id: f.doc_id,
                path: f.path,
                collection: f.collection,
                format: None,
                pages: None,
                chunks: 0,
                bytes: None,
                ingested_at: None,
                status,
                warnings: Vec::new(),
                last_error,
                failed_at,
            },
            (None, None) => return None,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentList {
    pub documents: Vec<DocumentView>,
}

/// Every document: indexed, and failed with the reason.
#[utoipa::path(get, path = "/api/documents", tag = "documents",
    responses(
        (status = 200, description = "The documents, by collection and path", body = DocumentList),
        (status = 500, description = "Internal error", body = ErrorBody),
    ))]
pub async fn list_documents(
    State(state): State<SharedState>,
) -> Result<Json<DocumentList>, ApiError> {
    blocking(move || {
        let index = read_index(&state)?;
        let documents = index.documents().map_err(ApiError::internal)?;
        let mut failures: std::collections::HashMap<String, FailureRecord> = index
            .failures()
            .map_err(ApiError::internal)?
            .into_iter()
            .map(|f| (f.doc_id.clone(), f))
            .collect();
        let mut views: Vec<DocumentView> = documents
            .into_iter()
            .filter_map(|d| {
                let failure = failures.remove(&d.doc_id);
                DocumentView::new(Some(d), failure)
            })
            .collect();
        views.extend(
            failures
                .into_values()
                .filter_map(|f| DocumentView::new(None, Some(f))),
        );
        views.sort_by(|a, b| (&a.collection, &a.path).cmp(&(&b.collection, &b.path)));
        Ok(Json(DocumentList { documents: views }))
    })
    .await
}

fn find_document(state: &SharedState, id: &str) -> Result<DocumentRecord, ApiError> {
    let index = read_index(state)?;
    index
        .document(id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::NotFound(format!("no document with id {id:?}")))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub id: String,
    pub path: String,
    pub chunks: u32,
}

/// Removes a document (its passages, its failure record, and the original if it was
/// uploaded).
#[utoipa::path(delete, path = "/api/documents/{id}", tag = "documents",
    params(("id" = String, Path, description = "Document id")),
    responses(
        (status = 200, description = "What was removed", body = Deleted),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such document", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody),
    ))]
pub async fn delete_document(
    State(state): State<SharedState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Deleted>, ApiError> {
    blocking(move || {
        let mut index = state
            .index
            .write()
            .map_err(|_| ApiError::internal(anyhow::anyhow!("the index lock is poisoned")))?;
        let document = index.document(&id).map_err(ApiError::internal)?;
        let failure = index.failure(&id).map_err(ApiError::internal)?;
        // A file that only ever failed is listed too, so it can be deleted the same way.
        let (path, collection, source, chunks) = match (document, failure) {
            (Some(d), _) => (d.path, d.collection, d.source, d.chunks),
            (None, Some(f)) => (f.path, f.collection, f.source, 0),
            (None, None) => return Err(ApiError::NotFound(format!("no document with id {id:?}"))),
        };
        // Removing the id clears the document, its chunks and its failure record at once.
        index
            .commit(lore_index::Batch {
                removals: vec![id.clone()],
                ..lore_index::Batch::default()
            })
            .map_err(ApiError::internal)?;
        drop(index);
        // An uploaded original goes too; a file ingested from elsewhere is not ours to delete.
        if let Some(source) = &source {
            let library = state.jobs.collection_dir(&collection);
            let source = std::path::Path::new(source);
            if std::fs::canonicalize(&library).is_ok_and(|lib| source.starts_with(lib)) {
                if let Err(e) = std::fs::remove_file(source) {
                    tracing::warn!(path = %source.display(), "cannot delete the uploaded file: {e}");
                }
            }
        }
        Ok(Json(Deleted { id, path, chunks }))
    })
    .await
}

/// The original file, for citation links (append `#page=N` for a PDF page).
#[utoipa::path(get, path = "/api/documents/{id}/raw", tag = "documents",
    params(("id" = String, Path, description = "Document id")),
    responses(
        (status = 200, description = "The file as ingested", content(
            (Vec<u8> = "application/pdf"), (String = "text/html"), (String = "text/markdown"),
            (String = "text/plain"),
            (Vec<u8> = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"))),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such document, or its original is gone", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody),
    ))]
pub async fn raw_document(
    State(state): State<SharedState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let doc = {
        let state = state.clone();
        blocking(move || find_document(&state, &id)).await?
    };
    let Some(source) = doc.source.clone() else {
        return Err(ApiError::NotFound(format!(
            "the original of {} was not recorded when it was ingested; ingest it again to serve it",
            doc.path
        )));
    };
    let bytes = tokio::fs::read(&source)
        .await
        .map_err(|e| ApiError::NotFound(format!("the original of {} is gone: {e}", doc.path)))?;
    let content_type = match doc.format.as_str() {
        "pdf" => "application/pdf",
        "html" => "text/html; charset=utf-8",
        "markdown" => "text/markdown; charset=utf-8",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        _ => "text/plain; charset=utf-8",
    };
    let file_name = std::path::Path::new(&doc.path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("document")
        .replace(['"', '\\'], "_");
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // HTML from a document must not run as part of the portal's origin.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadAccepted {
    pub job_id: String,
    pub files: Vec<String>,
    pub status_url: String,
}

/// The multipart form of an upload.
#[derive(ToSchema)]
#[allow(dead_code)] // describes the form for the OpenAPI document; parsed field by field
pub struct UploadForm {
    /// Collection to file the documents under (default: the configured one).
    collection: Option<String>,
    /// One or more files (PDF, DOCX, HTML, Markdown, text), each with a file name.
    #[schema(value_type = Vec<String>, format = Binary)]
    file: Vec<Vec<u8>>,
}

/// Stores the files under the data directory and ingests them in the background.
#[utoipa::path(post, path = "/api/documents", tag = "documents",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "Stored; ingestion runs as a job", body = UploadAccepted),
        (status = 400, description = "Malformed upload, no file, or an empty file", body = ErrorBody),
        (status = 413, description = "Upload too large", body = ErrorBody),
        (status = 415, description = "A file of an unsupported type", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody),
    ))]
pub async fn upload_documents(
    State(state): State<SharedState>,
    ApiMultipart(mut multipart): ApiMultipart,
) -> Result<(StatusCode, Json<UploadAccepted>), ApiError> {
    let mut collection = state.config.collection.clone();
    let mut files: Vec<(String, axum::body::Bytes)> = Vec::new();
    while let Some(field) = multipart.next_field().await? {
        match field.name() {
            Some("collection") => {
                let text = field.text().await?;
                let text = text.trim();
                if !text.is_empty() {
                    collection = super::jobs::clean_name(text);
                }
            }
            _ => {
                let Some(name) = field.file_name().map(str::to_string) else {
                    return Err(ApiError::BadRequest(
                        "every file part needs a file name (multipart filename=)".into(),
                    ));
                };
                let bytes = field.bytes().await?;
                if bytes.is_empty() {
                    return Err(ApiError::BadRequest(format!("{name} is empty")));
                }
                let probe = std::path::Path::new(&name);
                if let Err(e) = lore_ingest::DocumentFormat::detect(probe, &bytes) {
                    return Err(ApiError::UnsupportedMediaType(format!("{name}: {e}")));
                }
                files.push((name, bytes));
            }
        }
    }
    if files.is_empty() {
        return Err(ApiError::BadRequest(
            "no file in the upload (send multipart/form-data with one or more file parts)".into(),
        ));
    }
    let worker_state = state.clone();
    let accepted = blocking(move || {
        let mut candidates = Vec::new();
        for (name, bytes) in &files {
            let candidate = worker_state
                .jobs
                .store(&collection, name, bytes)
                .map_err(ApiError::internal)?;
            candidates.push(candidate);
        }
        let docs: Vec<String> = candidates.iter().map(|c| c.doc_path.clone()).collect();
        let job_id = worker_state.jobs.start(docs.clone());
        Ok((job_id, docs, candidates))
    })
    .await?;
    let (job_id, docs, candidates) = accepted;
    let job_state = state.clone();
    let id = job_id.clone();
    tokio::task::spawn_blocking(move || job_state.jobs.run(&id, &job_state, &candidates));
    Ok((
        StatusCode::ACCEPTED,
        Json(UploadAccepted {
            status_url: format!("/api/jobs/{job_id}"),
            job_id,
            files: docs,
        }),
    ))
}

/// Progress and outcome of an upload's ingestion.
#[utoipa::path(get, path = "/api/jobs/{id}", tag = "documents",
    params(("id" = String, Path, description = "Job id from the upload")),
    responses(
        (status = 200, description = "The job", body = super::jobs::JobStatus),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    ))]
pub async fn job_status(
    State(state): State<SharedState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<super::jobs::JobStatus>, ApiError> {
    state
        .jobs
        .get(&id)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no job with id {id:?}")))
}

// ---------------------------------------------------------------------------- health

/// Alive (the process answers).
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// The drop-folder watcher, when `lore serve --watch` runs one.
#[derive(Debug, Serialize, ToSchema)]
pub struct WatchReport {
    pub watching: bool,
    pub status: Option<crate::watch::journal::WatchStatus>,
}

/// `GET /api/watch`: watched folders, queue, progress and throughput.
#[utoipa::path(get, path = "/api/watch", tag = "documents",
    responses((status = 200, description = "The watcher's status", body = WatchReport)))]
pub async fn watch_status(State(state): State<SharedState>) -> Json<WatchReport> {
    let status = state
        .watch
        .as_ref()
        .map(crate::watch::WatchHandle::snapshot);
    Json(WatchReport {
        watching: status.is_some(),
        status,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    pub ready: bool,
    pub documents: u64,
    pub chunks: u64,
    pub embed_model: String,
    pub llm_model: String,
    pub answers_in_flight: usize,
}

/// Ready: models loaded, index open; with counts.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 500, description = "Internal error", body = ErrorBody),
    ))]
pub async fn readyz(State(state): State<SharedState>) -> Result<Json<Ready>, ApiError> {
    blocking(move || {
        let stats = read_index(&state)?.stats().map_err(ApiError::internal)?;
        let free = state.answer_slots.available_permits();
        Ok(Json(Ready {
            ready: true,
            documents: stats.documents,
            chunks: stats.chunks,
            embed_model: stats.model_id,
            llm_model: state.generator.info().name.clone(),
            answers_in_flight: state.answer_capacity.saturating_sub(free),
        }))
    })
    .await
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

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
