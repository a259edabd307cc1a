//! The library: list documents (indexed and failed, with the reason), upload files (stored
//! under the data directory and ingested by a background job), follow the job, delete a
//! document, and serve the original file for citation links. Each within the caller's
//! scope: a document outside it answers 404 exactly as a missing one does.

use super::audited::Audited;
use super::common::{blocking, read_index, read_original, write_index};
use super::error::{ApiError, ApiMultipart, ApiPath, ErrorBody};
use super::SharedState;
use crate::auth::{Caller, Scope};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::{Extension, Json};
use lore_index::{DocumentRecord, FailureRecord};
use serde::Serialize;
use utoipa::ToSchema;

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

/// Every document the caller may see: indexed, and failed with the reason.
#[utoipa::path(get, path = "/api/documents", tag = "documents",
    responses(
        (status = 200, description = "The documents, by collection and path", body = DocumentList),
        (status = 500, description = "Internal error", body = ErrorBody),
    ))]
pub async fn list_documents(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
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
        views.retain(|v| caller.scope.allows(&v.collection));
        views.sort_by(|a, b| (&a.collection, &a.path).cmp(&(&b.collection, &b.path)));
        Ok(Json(DocumentList { documents: views }))
    })
    .await
}

/// The answer for an id that does not exist, and for one outside the caller's scope:
/// the same, so ids cannot be probed.
fn no_document(id: &str) -> ApiError {
    ApiError::NotFound(format!("no document with id {id:?}"))
}

fn find_document(state: &SharedState, id: &str, scope: &Scope) -> Result<DocumentRecord, ApiError> {
    let index = read_index(state)?;
    index
        .document(id)
        .map_err(ApiError::internal)?
        .filter(|d| scope.allows(&d.collection))
        .ok_or_else(|| no_document(id))
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
    audit: Audited,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Deleted>, ApiError> {
    let result = remove_document(state.clone(), caller, id.clone()).await;
    match &result {
        Ok(deleted) => state.audit.record(crate::audit::AuditEntry {
            documents: vec![id],
            outcome: "ok".into(),
            extra: Some(serde_json::json!({ "path": deleted.path, "chunks": deleted.chunks })),
            ..audit.entry()
        }),
        Err(e) => audit.record_error(&state, None, vec![id], e),
    }
    result.map(Json)
}

async fn remove_document(
    state: SharedState,
    caller: Caller,
    id: String,
) -> Result<Deleted, ApiError> {
    blocking(move || {
        let mut index = write_index(&state)?;
        let document = index.document(&id).map_err(ApiError::internal)?;
        let failure = index.failure(&id).map_err(ApiError::internal)?;
        // A file that only ever failed is listed too, so it can be deleted the same way.
        let (path, collection, source, chunks) = match (document, failure) {
            (Some(d), _) => (d.path, d.collection, d.source, d.chunks),
            (None, Some(f)) => (f.path, f.collection, f.source, 0),
            (None, None) => return Err(no_document(&id)),
        };
        if !caller.scope.allows(&collection) {
            return Err(no_document(&id));
        }
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
        Ok(Deleted { id, path, chunks })
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
    audit: Audited,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    // Reading an original is reading the document: it is recorded like an answer citing it.
    let result = original(state.clone(), caller, id.clone()).await;
    match &result {
        Ok(_) => state.audit.record(crate::audit::AuditEntry {
            documents: vec![id],
            outcome: "ok".into(),
            ..audit.entry()
        }),
        Err(e) => audit.record_error(&state, None, vec![id], e),
    }
    result
}

async fn original(state: SharedState, caller: Caller, id: String) -> Result<Response, ApiError> {
    let doc = {
        let state = state.clone();
        blocking(move || find_document(&state, &id, &caller.scope)).await?
    };
    let Some(source) = doc.source.clone() else {
        return Err(ApiError::NotFound(format!(
            "the original of {} was not recorded when it was ingested; ingest it again to serve it",
            doc.path
        )));
    };
    crate::fault::hit(crate::fault::Stage::Raw, &doc.path);
    let bytes = read_original(&state, &source, &doc.path).await?;
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

/// Stores the files under the data directory and ingests them in the background (one
/// job queue, one worker; jobs survive restarts).
#[utoipa::path(post, path = "/api/documents", tag = "documents",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "Stored; ingestion runs as a job", body = UploadAccepted),
        (status = 400, description = "Malformed upload, no file, or an empty file", body = ErrorBody),
        (status = 408, description = "The body paused longer than body_timeout_secs", body = ErrorBody),
        (status = 413, description = "A file over max_file_mb, or more than max_upload_files files", body = ErrorBody),
        (status = 415, description = "A file of an unsupported type", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody),
        (status = 503, description = "The ingestion queue is full (see Retry-After)", body = ErrorBody),
    ))]
pub async fn upload_documents(
    State(state): State<SharedState>,
    audit: Audited,
    Extension(caller): Extension<Caller>,
    ApiMultipart(multipart): ApiMultipart,
) -> Result<(StatusCode, Json<UploadAccepted>), ApiError> {
    let result = upload(state.clone(), caller, multipart).await;
    match &result {
        Ok((accepted, collection)) => state.audit.record(crate::audit::AuditEntry {
            documents: accepted
                .files
                .iter()
                .map(|path| crate::pipeline::doc_id(collection, path))
                .collect(),
            outcome: "ok".into(),
            extra: Some(serde_json::json!({
                "job_id": accepted.job_id,
                "collection": collection,
                "files": accepted.files,
            })),
            ..audit.entry()
        }),
        Err(e) => audit.record_error(&state, None, Vec::new(), e),
    }
    result.map(|(accepted, _)| (StatusCode::ACCEPTED, Json(accepted)))
}

/// Seconds a client is told to wait when the ingestion queue is full.
const INGEST_RETRY_AFTER_S: u64 = 30;
/// Bytes of a file's start kept to recognise its type (the rest streams to disk).
const SNIFF_BYTES: usize = 64 * 1024;
/// Longest `collection` field accepted.
const MAX_COLLECTION_BYTES: usize = 1024;

/// Stores and queues an upload; what was accepted and into which collection. A place in
/// the ingestion queue is taken before the body is read (503 when there is none), and
/// each file streams to a staging folder, never whole in memory.
async fn upload(
    state: SharedState,
    caller: Caller,
    mut multipart: axum::extract::Multipart,
) -> Result<(UploadAccepted, String), ApiError> {
    let slot = state.jobs.reserve().ok_or(ApiError::IngestBusy {
        retry_after_s: INGEST_RETRY_AFTER_S,
    })?;
    let staging = {
        let state = state.clone();
        blocking(move || state.jobs.staging().map_err(ApiError::internal)).await?
    };
    let max_files = state.config.max_upload_files;
    let max_bytes = state.config.max_file_mb.saturating_mul(1 << 20);
    let mut collection = state.config.collection.clone();
    let mut staged: Vec<(String, std::path::PathBuf)> = Vec::new();
    while let Some(mut field) = multipart.next_field().await? {
        match field.name() {
            Some("collection") => {
                let text = read_small_field(&mut field, MAX_COLLECTION_BYTES).await?;
                let text = text.trim();
                if !text.is_empty() {
                    collection = super::names::collection_name(text)?;
                }
                // Refused before any more of the body is read.
                check_scope(&caller, &collection)?;
            }
            _ => {
                let Some(name) = field.file_name().map(str::to_string) else {
                    return Err(ApiError::BadRequest(
                        "every file part needs a file name (multipart filename=)".into(),
                    ));
                };
                super::names::check_upload_name(&name)?;
                if staged.len() >= max_files {
                    return Err(ApiError::PayloadTooLarge(format!(
                        "more than {max_files} files in one upload (max_upload_files); \
                         send them in several uploads"
                    )));
                }
                let path = staging.path().join(staged.len().to_string());
                stream_file(&mut field, &name, &path, max_bytes).await?;
                staged.push((name, path));
            }
        }
    }
    check_scope(&caller, &collection)?;
    if staged.is_empty() {
        return Err(ApiError::BadRequest(
            "no file in the upload (send multipart/form-data with one or more file parts)".into(),
        ));
    }
    let worker_state = state.clone();
    let stored_collection = collection.clone();
    let owner = caller.user.clone();
    let accepted = blocking(move || {
        let job_id = worker_state
            .jobs
            .enqueue(slot, &collection, &staged, owner)
            .map_err(ApiError::internal)?;
        // The staging folder goes once its files have moved.
        drop(staging);
        let docs: Vec<String> = staged
            .iter()
            .map(|(name, _)| super::jobs::clean_name(name))
            .collect();
        Ok((job_id, docs))
    })
    .await?;
    let (job_id, docs) = accepted;
    Ok((
        UploadAccepted {
            status_url: format!("/api/jobs/{job_id}"),
            job_id,
            files: docs,
        },
        stored_collection,
    ))
}

fn check_scope(caller: &Caller, collection: &str) -> Result<(), ApiError> {
    if caller.scope.allows(collection) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "you may not add documents to the collection {collection:?}"
        )))
    }
}

/// A text field of at most `max` bytes (read piece by piece: a huge one is refused, not
/// buffered).
async fn read_small_field(
    field: &mut axum::extract::multipart::Field<'_>,
    max: usize,
) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await? {
        if bytes.len() + chunk.len() > max {
            return Err(ApiError::BadRequest(format!(
                "the {} field is longer than {max} bytes",
                field.name().unwrap_or("form")
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes)
        .map_err(|_| ApiError::BadRequest("a form field is not valid UTF-8".into()))
}

/// Streams one file part to `path` (synced to disk), refusing an empty file, one over
/// `max_bytes` (413) and one whose type is not supported (415, judged on its name and
/// first bytes, as soon as they have arrived).
async fn stream_file(
    field: &mut axum::extract::multipart::Field<'_>,
    name: &str,
    path: &std::path::Path,
    max_bytes: u64,
) -> Result<(), ApiError> {
    use tokio::io::AsyncWriteExt;
    let file = tokio::fs::File::create(path)
        .await
        .map_err(ApiError::internal)?;
    let mut file = tokio::io::BufWriter::with_capacity(256 * 1024, file);
    let mut head: Vec<u8> = Vec::new();
    let mut sniffed = false;
    let mut size: u64 = 0;
    while let Some(chunk) = field.chunk().await? {
        size += chunk.len() as u64;
        if size > max_bytes {
            return Err(ApiError::PayloadTooLarge(format!(
                "{name} is larger than {} MiB (max_file_mb)",
                max_bytes >> 20
            )));
        }
        if !sniffed {
            let take = (SNIFF_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
            if head.len() >= SNIFF_BYTES {
                check_format(name, &head)?;
                sniffed = true;
            }
        }
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    if size == 0 {
        return Err(ApiError::BadRequest(format!("{name} is empty")));
    }
    if !sniffed {
        check_format(name, &head)?;
    }
    file.flush().await.map_err(ApiError::internal)?;
    file.into_inner()
        .sync_all()
        .await
        .map_err(ApiError::internal)?;
    Ok(())
}

fn check_format(name: &str, head: &[u8]) -> Result<(), ApiError> {
    lore_ingest::DocumentFormat::detect(std::path::Path::new(name), head)
        .map(drop)
        .map_err(|e| ApiError::UnsupportedMediaType(format!("{name}: {e}")))
}

/// Progress and outcome of an upload's ingestion (the uploader's own jobs; every job for
/// admins).
#[utoipa::path(get, path = "/api/jobs/{id}", tag = "documents",
    params(("id" = String, Path, description = "Job id from the upload")),
    responses(
        (status = 200, description = "The job", body = super::jobs::JobStatus),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    ))]
pub async fn job_status(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<super::jobs::JobStatus>, ApiError> {
    state
        .jobs
        .get(&id)
        .filter(|job| caller.is_admin() || job.owner == caller.user)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no job with id {id:?}")))
}
