//! `/api/admin/...`: users, grants and API tokens over HTTP (what `lore user`, `lore
//! grant` and `lore token` do on the command line), for admins. Every change goes through
//! [`AuthStore::update`] (locked, atomic, 0600) off the async workers (argon2 is slow on
//! purpose). Each change, refused ones included, goes to the audit log (never a password
//! or a token's secret).

use super::audited::Audited;
use super::common::blocking;
use super::error::{ApiError, ApiJson, ApiPath, ErrorBody, JsonBodyErrors};
use super::SharedState;
use crate::auth::store::generate_password;
use crate::auth::{AuthError, AuthStore, Role, TokenInfo, UserInfo};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Invalid(m) => ApiError::BadRequest(m),
            AuthError::NoSuchUser(_) | AuthError::NoSuchToken(_) => {
                ApiError::NotFound(e.to_string())
            }
            AuthError::UserExists(_) => ApiError::Conflict(e.to_string()),
            AuthError::Read { .. }
            | AuthError::Corrupt { .. }
            | AuthError::Write { .. }
            | AuthError::Hash(_)
            | AuthError::Random(_) => ApiError::internal(e),
        }
    }
}

/// Runs a change of the account store off the async workers.
async fn change<T: Send + 'static>(
    state: &SharedState,
    f: impl FnOnce(&mut AuthStore) -> crate::auth::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let data_dir = state.config.data_dir.clone();
    blocking(move || AuthStore::update(&data_dir, f).map_err(ApiError::from)).await
}

fn user_info(store: &AuthStore, name: &str) -> Result<UserInfo, AuthError> {
    store
        .users()
        .into_iter()
        .find(|u| u.name == name)
        .ok_or_else(|| AuthError::NoSuchUser(name.to_string()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserInfo>,
}

/// Every account, with role and grants.
#[utoipa::path(get, path = "/api/admin/users", tag = "admin",
    responses((status = 200, description = "The accounts", body = UserList)))]
pub async fn list_users(State(state): State<SharedState>) -> Result<Json<UserList>, ApiError> {
    let store = state.auth.current().map_err(ApiError::internal)?;
    Ok(Json(UserList {
        users: store.users(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    pub role: Role,
    /// Omitted: one is generated and returned once.
    pub password: Option<String>,
    /// Collections to grant (`*` = all).
    #[serde(default)]
    pub grants: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedUser {
    pub user: UserInfo,
    /// The generated password, shown this once.
    pub password: Option<String>,
}

/// Adds an account.
#[utoipa::path(post, path = "/api/admin/users", tag = "admin",
    request_body = NewUser,
    responses(
        (status = 201, description = "Added", body = CreatedUser),
        (status = 409, description = "The name is taken", body = ErrorBody),
        JsonBodyErrors,
    ))]
pub async fn add_user(
    State(state): State<SharedState>,
    audit: Audited,
    ApiJson(request): ApiJson<NewUser>,
) -> Result<Response, ApiError> {
    let what = serde_json::json!({"add_user": &request.name, "role": request.role, "grants": &request.grants});
    let result = add(&state, request).await;
    audit.record_outcome(&state, None, Some(what), &result);
    result
}

async fn add(state: &SharedState, request: NewUser) -> Result<Response, ApiError> {
    let (password, generated) = match request.password {
        Some(p) => (p, false),
        None => (generate_password()?, true),
    };
    let shown = generated.then(|| password.clone());
    let user = change(state, move |store| {
        store.add_user(&request.name, request.role, &password)?;
        store.grant(&request.name, &request.grants)?;
        user_info(store, &request.name)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user,
            password: shown,
        }),
    )
        .into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    pub role: Option<Role>,
    /// A new password (the user's sessions end).
    pub password: Option<String>,
}

/// Changes an account's role or password.
#[utoipa::path(patch, path = "/api/admin/users/{name}", tag = "admin",
    params(("name" = String, Path, description = "User name")),
    request_body = UserChange,
    responses(
        (status = 200, description = "The account", body = UserInfo),
        (status = 404, description = "No such user", body = ErrorBody),
        JsonBodyErrors,
    ))]
pub async fn change_user(
    State(state): State<SharedState>,
    audit: Audited,
    ApiPath(name): ApiPath<String>,
    ApiJson(request): ApiJson<UserChange>,
) -> Result<Json<UserInfo>, ApiError> {
    // The new password itself is never written down, only that there was one.
    let what = serde_json::json!({"change_user": &name, "role": request.role, "password": request.password.is_some()});
    let result = change(&state, move |store| {
        if let Some(role) = request.role {
            store.set_role(&name, role)?;
        }
        if let Some(password) = &request.password {
            store.set_password(&name, password)?;
        }
        user_info(store, &name)
    })
    .await;
    audit.record_outcome(&state, None, Some(what), &result);
    result.map(Json)
}

/// Removes an account and its tokens (its sessions end).
#[utoipa::path(delete, path = "/api/admin/users/{name}", tag = "admin",
    params(("name" = String, Path, description = "User name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "The last admin cannot go", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
pub async fn remove_user(
    State(state): State<SharedState>,
    audit: Audited,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let what = serde_json::json!({ "remove_user": &name });
    let result = change(&state, move |store| store.remove_user(&name)).await;
    audit.record_outcome(&state, None, Some(what), &result);
    result.map(|()| StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// The collections the user may see from now on (`*` = all).
    pub collections: Vec<String>,
}

/// Replaces an account's grants.
#[utoipa::path(put, path = "/api/admin/users/{name}/grants", tag = "admin",
    params(("name" = String, Path, description = "User name")),
    request_body = Grants,
    responses(
        (status = 200, description = "The account", body = UserInfo),
        (status = 404, description = "No such user", body = ErrorBody),
        JsonBodyErrors,
    ))]
pub async fn set_grants(
    State(state): State<SharedState>,
    audit: Audited,
    ApiPath(name): ApiPath<String>,
    ApiJson(request): ApiJson<Grants>,
) -> Result<Json<UserInfo>, ApiError> {
    let what = serde_json::json!({"set_grants": &name, "collections": &request.collections});
    let result = change(&state, move |store| {
        store.set_grants(&name, &request.collections)?;
        user_info(store, &name)
    })
    .await;
    audit.record_outcome(&state, None, Some(what), &result);
    result.map(Json)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

/// Every API token (never the secrets).
#[utoipa::path(get, path = "/api/admin/tokens", tag = "admin",
    responses((status = 200, description = "The tokens", body = TokenList)))]
pub async fn list_tokens(State(state): State<SharedState>) -> Result<Json<TokenList>, ApiError> {
    let store = state.auth.current().map_err(ApiError::internal)?;
    Ok(Json(TokenList {
        tokens: store.tokens(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub user: String,
    pub label: Option<String>,
    /// Days until it expires (default: never).
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_days: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub token: TokenInfo,
    /// `Authorization: Bearer <secret>`; shown this once, stored only hashed.
    pub secret: String,
}

/// Creates an API token for a user.
#[utoipa::path(post, path = "/api/admin/tokens", tag = "admin",
    request_body = NewToken,
    responses(
        (status = 201, description = "Created; the secret is shown once", body = CreatedToken),
        (status = 404, description = "No such user", body = ErrorBody),
        JsonBodyErrors,
    ))]
pub async fn create_token(
    State(state): State<SharedState>,
    audit: Audited,
    ApiJson(request): ApiJson<NewToken>,
) -> Result<Response, ApiError> {
    let user = request.user.clone();
    let result = change(&state, move |store| {
        store.create_token(
            &request.user,
            request.label.as_deref(),
            request.expires_days,
        )
    })
    .await;
    // The token's id, never its secret.
    let what = serde_json::json!({
        "create_token": result.as_ref().ok().map(|(t, _)| t.id.clone()),
        "for": user,
    });
    audit.record_outcome(&state, None, Some(what), &result);
    let (token, secret) = result?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, secret })).into_response())
}

/// Revokes a token for good.
#[utoipa::path(delete, path = "/api/admin/tokens/{id}", tag = "admin",
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 200, description = "The revoked token", body = TokenInfo),
        (status = 404, description = "No such token", body = ErrorBody),
    ))]
pub async fn revoke_token(
    State(state): State<SharedState>,
    audit: Audited,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    let what = serde_json::json!({ "revoke_token": &id });
    let result = change(&state, move |store| store.revoke_token(&id)).await;
    audit.record_outcome(&state, None, Some(what), &result);
    result.map(Json)
}
