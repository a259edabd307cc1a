//! The OpenAPI document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! annotations and the request and response types, served at `GET /api/openapi.json`.

use super::{ask, documents, health, jobs, metrics, openai, search};
use axum::Json;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lore",
        description = "Questions answered from your own documents, with citations, by a local model.",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        ask::ask,
        search::search,
        documents::list_documents,
        documents::upload_documents,
        documents::delete_document,
        documents::raw_document,
        documents::job_status,
        health::watch_status,
        health::healthz,
        health::readyz,
        metrics::exposition,
        openai::chat_completions,
        openai::models,
        openapi_json,
    ),
    components(schemas(jobs::JobState)),
    tags(
        (name = "ask", description = "Grounded answers"),
        (name = "search", description = "Passages"),
        (name = "documents", description = "The library: upload, list, delete, originals"),
        (name = "openai", description = "OpenAI-compatible chat"),
        (name = "health", description = "Liveness, readiness, metrics"),
    )
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
