//! Health and status: liveness (`/healthz`), readiness with the index's counts
//! (`/readyz`), the drop-folder watcher's status (`/api/watch`), and the JSON answers for
//! unknown routes and wrong methods.

use super::common::{blocking, read_index};
use super::error::{ApiError, ErrorBody};
use super::SharedState;
use crate::auth::Caller;
use axum::extract::State;
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

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

/// `GET /api/watch`: watched folders, queue, progress and throughput. Folder paths, file
/// names and errors (which name files of any collection) are for admins; others see the
/// counts.
#[utoipa::path(get, path = "/api/watch", tag = "documents",
    responses((status = 200, description = "The watcher's status", body = WatchReport)))]
pub async fn watch_status(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
) -> Json<WatchReport> {
    let status = state
        .watch
        .as_ref()
        .map(crate::watch::WatchHandle::snapshot)
        .map(|mut status| {
            if !caller.is_admin() {
                status.roots.clear();
                status.unavailable.clear();
                status.recent_failures.clear();
                status.last_error = None;
                status.last_panic = None;
            }
            status
        });
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

/// Ready: models loaded, index open; with counts. 503 while the models load and while
/// the server drains on shutdown.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 500, description = "Internal error", body = ErrorBody),
        (status = 503, description = "Starting (models loading) or shutting down", body = ErrorBody),
    ))]
pub async fn readyz(State(state): State<SharedState>) -> Result<Json<Ready>, ApiError> {
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(ApiError::Unavailable(
            "shutting down: finishing the requests in flight".into(),
        ));
    }
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
