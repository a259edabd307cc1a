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

/// Stores and starts ingesting an upload; what was accepted and into which collection.
async fn upload(
    state: SharedState,
    caller: Caller,
    mut multipart: axum::extract::Multipart,
) -> Result<(UploadAccepted, String), ApiError> {
    let mut collection = state.config.collection.clone();
    let mut files: Vec<(String, axum::body::Bytes)> = Vec::new();
    while let Some(field) = multipart.next_field().await? {
        match field.name() {
            Some("collection") => {
                let text = field.text().await?;
                let text = text.trim();
                if !text.is_empty() {
                    collection = super::names::collection_name(text)?;
                }
            }
            _ => {
                let Some(name) = field.file_name().map(str::to_string) else {
                    return Err(ApiError::BadRequest(
                        "every file part needs a file name (multipart filename=)".into(),
                    ));
                };
                super::names::check_upload_name(&name)?;
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
    if !caller.scope.allows(&collection) {
        return Err(ApiError::Forbidden(format!(
            "you may not add documents to the collection {collection:?}"
        )));
    }
    if files.is_empty() {
        return Err(ApiError::BadRequest(
            "no file in the upload (send multipart/form-data with one or more file parts)".into(),
        ));
    }
    let worker_state = state.clone();
    let stored_collection = collection.clone();
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
        let job_id = worker_state.jobs.start(docs.clone(), caller.user.clone());
        Ok((job_id, docs, candidates))
    })
    .await?;
    let (job_id, docs, candidates) = accepted;
    let job_state = state.clone();
    let id = job_id.clone();
    tokio::task::spawn_blocking(move || job_state.jobs.run(&id, &job_state, &candidates));
    Ok((
        UploadAccepted {
            status_url: format!("/api/jobs/{job_id}"),
            job_id,
            files: docs,
        },
        stored_collection,
    ))
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
