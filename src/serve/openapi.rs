//! The OpenAPI document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! annotations and the request and response types, served at `GET /api/openapi.json`.

use super::{admin, ask, auth, documents, health, jobs, metrics, openai, search};
use axum::http::Method;
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
        auth::login,
        auth::logout,
        auth::me,
        admin::list_users,
        admin::add_user,
        admin::change_user,
        admin::remove_user,
        admin::set_grants,
        admin::list_tokens,
        admin::create_token,
        admin::revoke_token,
    ),
    components(schemas(jobs::JobState)),
    tags(
        (name = "ask", description = "Grounded answers"),
        (name = "search", description = "Passages"),
        (name = "documents", description = "The library: upload, list, delete, originals"),
        (name = "openai", description = "OpenAI-compatible chat"),
        (name = "health", description = "Liveness, readiness, metrics"),
        (name = "auth", description = "Signing in and out; who am I"),
        (name = "admin", description = "Users, grants and API tokens (admins)"),
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

/// Every route takes `Authorization: Bearer <token>` (or the portal's session cookie);
/// `/healthz`, `/readyz` and `/api/login` need none.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token from `lore token create NAME`"))
                    .build(),
            ),
        );
        // Each operation says what the authentication middleware may answer for it (from
        // the same table it enforces): public ones need no credential, the others may be
        // refused with 401 (no or a bad credential) or 403 (role, CSRF, scope).
        for (path, item) in &mut openapi.paths.paths {
            let operations = [
                (Method::GET, item.get.as_mut()),
                (Method::POST, item.post.as_mut()),
                (Method::PUT, item.put.as_mut()),
                (Method::PATCH, item.patch.as_mut()),
                (Method::DELETE, item.delete.as_mut()),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                if super::auth::access(&method, path) == Some(super::auth::Access::Public) {
                    operation.security = Some(Vec::new());
                    continue;
                }
                for (status, description) in [
                    ("401", "No credential, or a wrong, expired or revoked one"),
                    ("403", "Not allowed: role, collection or CSRF token"),
                ] {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error_response(description));
                }
            }
        }
    }
}

fn error_response(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
