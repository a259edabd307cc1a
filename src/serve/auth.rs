//! Authentication and route authorization for HTTP. The middleware ([`authenticate`])
//! identifies the caller, from `Authorization: Bearer <token>` (programs; the OpenAI
//! client's `api_key`), a trusted reverse proxy's user header (single sign-on) or the
//! portal's session cookie, checks the route's required role ([`access`], one table,
//! deny by default), demands the session's CSRF token on state-changing browser requests,
//! and hands the [`Caller`] to the handlers in the request's extensions (with the
//! [`ClientAddress`]); handlers cut retrieval and listings to `caller.scope`. The audit
//! log hooks in here: every handler has the caller, and the answering ones the cited ids.
//! Also: `POST /api/login`, `POST /api/logout`, `GET /api/me`, and the bind rule.

use super::error::{ApiError, ApiJson, ErrorBody, JsonBodyErrors};
use super::SharedState;
use crate::auth::{constant_time_eq, store::now, Caller, Credential, Role};
use crate::config::Config;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use utoipa::ToSchema;

/// The portal's session cookie.
pub const SESSION_COOKIE: &str = "lore_session";
/// The header carrying the CSRF token on state-changing browser requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, the portal's files, signing in and out.
    Public,
    /// A caller with at least this role.
    Role(Role),
}

/// The access rule of each route (`None`: not listed, which the middleware treats as
/// admin-only; the authorization-matrix test requires every documented route listed).
pub fn access(method: &Method, route: &str) -> Option<Access> {
    use Access::{Public, Role as Needs};
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    Some(match (method, route) {
        ("GET", "/healthz" | "/readyz" | "/" | "/app.js" | "/style.css") => Public,
        ("POST", "/api/login" | "/api/logout") => Public,
        ("GET", "/api/me") => Needs(Role::Reader),
        ("POST", "/api/ask" | "/api/search" | "/v1/chat/completions") => Needs(Role::Reader),
        (
            "GET",
            "/api/documents"
            | "/api/documents/{id}/raw"
            | "/api/watch"
            | "/v1/models"
            | "/metrics"
            | "/api/openapi.json",
        ) => Needs(Role::Reader),
        ("POST", "/api/documents") | ("DELETE", "/api/documents/{id}") => Needs(Role::Editor),
        ("GET", "/api/jobs/{id}") => Needs(Role::Editor),
        ("GET" | "POST", "/api/admin/users" | "/api/admin/tokens")
        | ("PATCH" | "DELETE", "/api/admin/users/{name}")
        | ("PUT", "/api/admin/users/{name}/grants")
        | ("DELETE", "/api/admin/tokens/{id}") => Needs(Role::Admin),
        _ => return None,
    })
}

/// The client's address (the peer's, or what a trusted proxy forwarded), for rate limits
/// and the audit log.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

/// `--bind` resolves to loopback addresses only.
pub fn bind_is_loopback(bind: &str) -> bool {
    use std::net::ToSocketAddrs;
    match bind.to_socket_addrs() {
        Ok(addresses) => {
            let addresses: Vec<SocketAddr> = addresses.collect();
            !addresses.is_empty() && addresses.iter().all(|a| a.ip().is_loopback())
        }
        Err(_) => false,
    }
}

/// Whether requests without a credential act as admin: only while no account exists,
/// and only on loopback or where the network is declared trusted.
fn anonymous_allowed(config: &Config) -> bool {
    config.insecure_no_auth || bind_is_loopback(&config.bind)
}

fn peer(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

fn trusted_proxy(config: &Config, peer: Option<IpAddr>) -> bool {
    peer.is_some_and(|p| config.auth_proxy_addresses.contains(&p))
}

fn client_address(config: &Config, request: &Request) -> ClientAddress {
    let peer = peer(request);
    if trusted_proxy(config, peer) {
        let forwarded = request
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok());
        if forwarded.is_some() {
            return ClientAddress(forwarded);
        }
    }
    ClientAddress(peer)
}

/// Served over TLS: only a trusted proxy can say so (Lore itself speaks plain HTTP).
fn over_https(config: &Config, request: &Request) -> bool {
    trusted_proxy(config, peer(request))
        && request
            .headers()
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::Unauthorized(message.to_string())
}

/// Who is calling; `Ok(None)` when nobody is signed in. A credential that is presented
/// and wrong is an error, never a silent fall back to anonymous.
fn identify(state: &SharedState, request: &Request) -> Result<Option<Caller>, ApiError> {
    let auth = &state.auth;
    let store = auth.current().map_err(ApiError::internal)?;
    // No accounts: nothing to check a credential against (an OpenAI client always sends
    // some api_key). Everyone is the anonymous admin, where that is allowed at all.
    if !store.has_users() && anonymous_allowed(&state.config) {
        return Ok(Some(Caller::anonymous()));
    }
    let headers = request.headers();
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value.to_str().ok().and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
        return match token.and_then(|t| store.verify_token(t, now())) {
            Some(caller) => Ok(Some(caller)),
            None => Err(unauthorized(
                "the bearer token is invalid, expired or revoked",
            )),
        };
    }
    if let Some(name_header) = &state.config.auth_proxy_header {
        let from_proxy = trusted_proxy(&state.config, peer(request));
        let named = headers
            .get(name_header.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|n| !n.is_empty());
        match (from_proxy, named) {
            (true, Some(name)) => {
                let credential = Credential::Proxy {
                    csrf: auth.proxy_csrf(name),
                };
                return store.caller(name, credential).map(Some).ok_or_else(|| {
                    ApiError::Forbidden(format!(
                        "{name:?} has no Lore account: an admin adds it with `lore user add {name} --role reader`"
                    ))
                });
            }
            (false, Some(_)) => {
                tracing::warn!(
                    peer = ?peer(request),
                    "ignoring the SSO user header from an address not in auth_proxy_addresses"
                );
            }
            _ => {}
        }
    }
    if let Some(id) = session_cookie(headers) {
        if let Some(session) = auth.sessions.get(&id) {
            let current = store
                .user(&session.user)
                .is_some_and(|u| constant_time_eq(&u.epoch, &session.epoch));
            if current {
                let credential = Credential::Session { csrf: session.csrf };
                return Ok(store.caller(&session.user, credential));
            }
            // The user is gone or changed their password.
            auth.sessions.close(&id);
        }
    }
    Ok(None)
}

fn state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Middleware on every route: identify, authorize, check CSRF, pass the caller on.
pub async fn authenticate(
    State(state): State<SharedState>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let method = request.method().clone();
    let needed = access(&method, &route).unwrap_or(Access::Role(Role::Admin));
    let caller = match identify(&state, &request) {
        Ok(caller) => caller,
        // A bad credential on a public route (health, the portal's files) is no caller.
        Err(_) if needed == Access::Public => None,
        Err(e) => return e.into_response(),
    };
    match (needed, &caller) {
        (Access::Role(_), None) => {
            let message = if state.auth.current().is_ok_and(|s| s.has_users()) {
                "sign in, or send Authorization: Bearer <token>"
            } else {
                "no accounts exist: add an admin with `lore user add admin --role admin`"
            };
            return unauthorized(message).into_response();
        }
        (Access::Role(role), Some(c)) if c.role < role => {
            return ApiError::Forbidden(format!("this needs the {role} role")).into_response();
        }
        _ => {}
    }
    if let Some(caller) = &caller {
        // Browsers send cookies (and the proxy's sign-in) on their own: a state-changing
        // request must also show the token only the portal's own pages can read.
        // Signing in needs none (there is no session yet).
        if let Some(expected) = caller.csrf() {
            if state_changing(&method) && route != "/api/login" {
                let presented = request
                    .headers()
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !constant_time_eq(presented, expected) {
                    return ApiError::Forbidden(format!(
                        "missing or wrong {CSRF_HEADER} header (the token is in GET /api/me)"
                    ))
                    .into_response();
                }
            }
        }
        request
            .extensions_mut()
            .insert(super::AuditUser(caller.user.clone()));
        request.extensions_mut().insert(caller.clone());
    }
    let address = client_address(&state.config, &request);
    let https = OverHttps(over_https(&state.config, &request));
    request.extensions_mut().insert(address);
    request.extensions_mut().insert(https);
    next.run(request).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "ann")]
    pub user: String,
    pub password: String,
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// Absent when no accounts exist (anonymous on loopback).
    pub user: Option<String>,
    pub role: Role,
    /// Collections the caller may see (`*` = all).
    pub collections: Vec<String>,
    /// Send it as `X-CSRF-Token` with state-changing requests made with the session
    /// cookie (or through the SSO proxy).
    pub csrf_token: Option<String>,
    /// `anonymous`, `token`, `session` or `proxy`.
    #[schema(value_type = String)]
    pub credential: &'static str,
}

impl Me {
    fn of(caller: &Caller) -> Me {
        Me {
            user: caller.user.clone(),
            role: caller.role,
            collections: caller.scope.names(),
            csrf_token: caller.csrf().map(str::to_string),
            credential: match caller.credential {
                Credential::Anonymous => "anonymous",
                Credential::Token(_) => "token",
                Credential::Session { .. } => "session",
                Credential::Proxy { .. } => "proxy",
            },
        }
    }
}

/// Signs in: a session cookie (HttpOnly, SameSite=Strict; Secure behind an HTTPS proxy)
/// and the CSRF token to send with state-changing requests. Rate limited per account and
/// per address.
#[utoipa::path(post, path = "/api/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; the cookie is set", body = Me),
        (status = 401, description = "Wrong user name or password", body = ErrorBody),
        JsonBodyErrors,
        (status = 429, description = "Too many failed sign-ins (see Retry-After)", body = ErrorBody),
    ))]
pub async fn login(
    State(state): State<SharedState>,
    audit: super::audited::Audited,
    Extension(address): Extension<ClientAddress>,
    Extension(https): Extension<OverHttps>,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    // Every sign-in, failed ones included, is in the audit log under the name it tried
    // (cut to the 64 characters a name may have).
    let tried: String = request.user.chars().take(64).collect();
    let result = sign_in(&state, address, https, request).await;
    audit.record_outcome(&state, Some(tried), None, &result);
    result
}

async fn sign_in(
    state: &SharedState,
    address: ClientAddress,
    https: OverHttps,
    request: LoginRequest,
) -> Result<Response, ApiError> {
    if request.user.len() > 64
        || request.password.len() > 4 * crate::auth::store::MAX_PASSWORD_CHARS
    {
        return Err(ApiError::BadRequest(
            "user name or password too long".into(),
        ));
    }
    let address = address.0.map(|a| a.to_string());
    if let Err(wait) = state.auth.limiter.check(&request.user, address.as_deref()) {
        return Err(ApiError::TooManyAttempts {
            retry_after_s: wait,
        });
    }
    let store = state.auth.current().map_err(ApiError::internal)?;
    let user = request.user.clone();
    let epoch = super::common::blocking(move || {
        Ok(store
            .verify_password(&request.user, &request.password)
            .map(|u| u.epoch.clone()))
    })
    .await?;
    let Some(epoch) = epoch else {
        state.auth.limiter.failed(&user, address.as_deref());
        tracing::info!(user = %user, address = ?address, "failed sign-in");
        return Err(unauthorized("wrong user name or password"));
    };
    state.auth.limiter.succeeded(&user);
    let ttl = state.auth.session_ttl;
    let (id, session) = state
        .auth
        .sessions
        .open(&user, &epoch, ttl)
        .map_err(ApiError::internal)?;
    let store = state.auth.current().map_err(ApiError::internal)?;
    let caller = store
        .caller(&user, Credential::Session { csrf: session.csrf })
        .ok_or_else(|| unauthorized("wrong user name or password"))?;
    let cookie = format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        ttl.as_secs(),
        if https.0 { "; Secure" } else { "" }
    );
    let mut response = Json(Me::of(&caller)).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// Whether the request came over HTTPS (as a trusted proxy says), for the cookie's
/// `Secure` attribute.
#[derive(Debug, Clone, Copy)]
pub struct OverHttps(pub bool);

/// Signs out: ends the session and clears the cookie.
#[utoipa::path(post, path = "/api/logout", tag = "auth",
    responses(
        (status = 204, description = "Signed out (also when no session was open)"),
        (status = 403, description = "Missing or wrong X-CSRF-Token", body = ErrorBody),
    ))]
pub async fn logout(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    if let Some(id) = session_cookie(&headers) {
        state.auth.sessions.close(&id);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("lore_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// The signed-in caller: user, role, collections, and the CSRF token of a session.
#[utoipa::path(get, path = "/api/me", tag = "auth",
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
pub async fn me(Extension(caller): Extension<Caller>) -> Json<Me> {
    Json(Me::of(&caller))
}

/// The bind rule: without accounts, only loopback, unless the network is declared trusted.
pub fn check_bind(config: &Config, has_accounts: bool) -> Result<(), String> {
    if has_accounts || config.insecure_no_auth || bind_is_loopback(&config.bind) {
        return Ok(());
    }
    Err(format!(
        "refusing to serve on {} without accounts: anyone who can reach it could read, upload \
         and delete every document. Add an admin first:\n    lore user add admin --role admin\n\
         or, on a network you trust completely, pass --insecure-no-auth.",
        config.bind
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_binds_without_accounts() {
        let mut config = crate::config::Config::load(None, Default::default()).expect("config");
        for (bind, loopback) in [
            ("127.0.0.1:8080", true),
            ("[::1]:8080", true),
            ("localhost:8080", true),
            ("0.0.0.0:8080", false),
            ("[::]:8080", false),
            ("192.0.2.7:80", false),
            ("not an address", false),
        ] {
            config.bind = bind.into();
            assert_eq!(bind_is_loopback(bind), loopback, "{bind}");
            let checked = check_bind(&config, false);
            assert_eq!(checked.is_ok(), loopback, "{bind}");
            if let Err(message) = checked {
                assert!(
                    message.contains("lore user add admin --role admin"),
                    "{message}"
                );
            }
            assert!(check_bind(&config, true).is_ok());
        }
        config.bind = "0.0.0.0:8080".into();
        config.insecure_no_auth = true;
        assert!(check_bind(&config, false).is_ok());
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; lore_session=abc123 ; x=y"),
        );
        assert_eq!(session_cookie(&headers).as_deref(), Some("abc123"));
        headers.insert(header::COOKIE, HeaderValue::from_static("lore_session="));
        assert_eq!(session_cookie(&headers), None);
    }
}
