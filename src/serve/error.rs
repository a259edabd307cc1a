//! The one place where errors become HTTP: every handler returns [`ApiError`], and this
//! exhaustive match picks the status and the JSON body `{"error": {"code", "message"}}`.
//! A 500 says little to the client and logs the detail.

use axum::extract::multipart::MultipartError;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug)]
pub enum ApiError {
    /// Malformed or invalid request: the message says what is wrong.
    BadRequest(String),
    NotFound(String),
    /// Identified and not allowed to do this, or refused at the network edge (a cross-site
    /// request that would change something): 403.
    Forbidden(String),
    /// The Host header names a host this server does not answer to (not in `allowed_hosts`).
    MisdirectedRequest(String),
    /// No credential, or a wrong, expired or revoked one (401, `WWW-Authenticate: Bearer`).
    Unauthorized(String),
    /// The request clashes with what exists (409), e.g. a user name taken.
    Conflict(String),
    /// Too many failed sign-ins; retry after this many seconds.
    TooManyAttempts {
        retry_after_s: u64,
    },
    /// The route exists, not with this method.
    MethodNotAllowed,
    PayloadTooLarge(String),
    UnsupportedMediaType(String),
    /// The answer queue is full; retry after this many seconds.
    Busy {
        retry_after_s: u64,
    },
    /// The ingestion queue is full; retry after this many seconds (503).
    IngestBusy {
        retry_after_s: u64,
    },
    /// The request body paused longer than `body_timeout_secs` (408).
    BodyTimeout,
    /// The response did not start within `request_timeout_secs` (503).
    Timeout,
    /// Not ready yet (models loading) or shutting down.
    Unavailable(String),
    /// Anything else: logged in full, reported as "internal error".
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

/// Every error response: `{"error": {"code", "message"}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: bad_request, not_found, unauthorized, forbidden, conflict,
    /// misdirected_request, too_many_attempts, method_not_allowed, payload_too_large,
    /// unsupported_media_type, busy, request_timeout, timeout, unavailable, internal.
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        ApiError::Internal(e.into())
    }

    /// Status, machine-readable code and message.
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m.clone()),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.clone()),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m.clone()),
            ApiError::MisdirectedRequest(m) => (
                StatusCode::MISDIRECTED_REQUEST,
                "misdirected_request",
                m.clone(),
            ),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m.clone()),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m.clone()),
            ApiError::TooManyAttempts { retry_after_s } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!("too many failed sign-ins; retry in {retry_after_s} s"),
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method".to_string(),
            ),
            ApiError::PayloadTooLarge(m) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                m.clone(),
            ),
            ApiError::UnsupportedMediaType(m) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                m.clone(),
            ),
            ApiError::Busy { retry_after_s } => (
                StatusCode::TOO_MANY_REQUESTS,
                "busy",
                format!("the answer queue is full; retry in {retry_after_s} s"),
            ),
            ApiError::IngestBusy { retry_after_s } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!("the ingestion queue is full (ingest_queue); retry in {retry_after_s} s"),
            ),
            ApiError::BodyTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request body paused too long (body_timeout_secs)".to_string(),
            ),
            ApiError::Timeout => (
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "no response within the time allowed (request_timeout_secs); try again later"
                    .to_string(),
            ),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", m.clone()),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error (details are in the server log)".to_string(),
            ),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    pub fn body(&self) -> ErrorBody {
        let (_, code, message) = self.parts();
        ErrorBody {
            error: ErrorDetail { code, message },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            // The whole chain of causes, as anyhow's `{:#}` prints it.
            let mut message = e.to_string();
            let mut cause = e.source();
            while let Some(c) = cause {
                message.push_str(": ");
                message.push_str(&c.to_string());
                cause = c.source();
            }
            tracing::error!("request failed: {message}");
        }
        let (status, _, _) = self.parts();
        let mut response = (status, axum::Json(self.body())).into_response();
        match self {
            ApiError::Busy { retry_after_s }
            | ApiError::TooManyAttempts { retry_after_s }
            | ApiError::IngestBusy { retry_after_s } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_s.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            ApiError::Unauthorized(_) => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"lore\""),
                );
            }
            _ => {}
        }
        response
    }
}

/// Whether `error` or one of its causes is the request body's idle timeout
/// (`tower_http`'s, as the body-timeout layer raises it).
fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        current = e.source();
    }
    false
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if is_body_timeout(&rejection) {
            return ApiError::BodyTimeout;
        }
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                "send JSON with the header Content-Type: application/json".into(),
            ),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge(e.body_text())
            }
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<MultipartError> for ApiError {
    fn from(e: MultipartError) -> Self {
        if is_body_timeout(&e) {
            ApiError::BodyTimeout
        } else if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(e.body_text())
        } else {
            ApiError::BadRequest(e.body_text())
        }
    }
}

/// A JSON body whose rejections are [`ApiError`]s (so they get the JSON error format).
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// A path parameter whose rejections are [`ApiError`]s.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

impl From<MultipartRejection> for ApiError {
    fn from(rejection: MultipartRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

/// A multipart body whose rejections (not multipart, no boundary) are [`ApiError`]s.
pub struct ApiMultipart(pub axum::extract::Multipart);

impl<S: Send + Sync> axum::extract::FromRequest<S> for ApiMultipart {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        axum::extract::Multipart::from_request(request, state)
            .await
            .map(ApiMultipart)
            .map_err(ApiError::from)
    }
}

/// The error responses of every route that takes a JSON body, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // describes responses; errors are built as `ApiError`
pub enum JsonBodyErrors {
    #[response(status = 400, description = "Malformed or invalid request")]
    BadRequest(ErrorBody),
    #[response(status = 413, description = "Body too large")]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "Not JSON")]
    NotJson(ErrorBody),
    #[response(status = 500, description = "Internal error")]
    Internal(ErrorBody),
}

/// The answer queue is full (see Retry-After): the extra error of the answering routes.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 429,
    description = "The answer queue is full (see Retry-After)"
)]
#[allow(dead_code)]
pub struct QueueFull(ErrorBody);
