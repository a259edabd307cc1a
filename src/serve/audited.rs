//! What the HTTP handlers write to the audit log: the [`Audited`] extractor captures who is
//! asking (the signed-in user, from the request's [`AuditUser`] extension), from where,
//! on which route and since when; handlers finish it with the question, the documents
//! and the outcome. Writing is queued ([`crate::audit::AuditLog::record`]): no handler
//! waits for the disk. A login handler records the same way: `Audited::entry()` with the
//! account as `user` and an outcome of `ok` or [`error_outcome`].

use super::error::ApiError;
use super::SharedState;
use crate::audit::AuditEntry;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use std::net::SocketAddr;
use std::time::Instant;

/// The signed-in user as the audit log names them. The authentication middleware inserts
/// it into the request's extensions next to its `Caller` (`None`: authentication is off);
/// a request without it is recorded with no user.
#[derive(Debug, Clone, Default)]
pub struct AuditUser(pub Option<String>);

/// A request's audit context, taken before its body is read.
#[derive(Debug, Clone)]
pub struct Audited {
    user: Option<String>,
    address: Option<String>,
    route: String,
    started: Instant,
}

impl<S: Send + Sync> FromRequestParts<S> for Audited {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let address = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .ok()
            .map(|c| c.0.ip().to_string());
        Ok(Audited {
            user: parts
                .extensions
                .get::<AuditUser>()
                .and_then(|u| u.0.clone()),
            address,
            route: parts
                .extensions
                .get::<MatchedPath>()
                .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string()),
            started: Instant::now(),
        })
    }
}

impl Audited {
    /// An entry for this request, its latency up to now; callers add what happened.
    pub fn entry(&self) -> AuditEntry {
        AuditEntry {
            user: self.user.clone(),
            address: self.address.clone(),
            latency_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            ..AuditEntry::new(self.route.clone())
        }
    }

    /// Records the outcome of a request that names no question or document: `ok`, or the
    /// error; `user` overrides the caller's name (a sign-in names the account it tried),
    /// `extra` says what was changed.
    pub fn record_outcome<T>(
        &self,
        state: &SharedState,
        user: Option<String>,
        extra: Option<serde_json::Value>,
        result: &Result<T, ApiError>,
    ) {
        let entry = self.entry();
        state.audit.record(AuditEntry {
            user: user.or(entry.user.clone()),
            outcome: match result {
                Ok(_) => "ok".into(),
                Err(e) => error_outcome(e),
            },
            extra,
            ..entry
        });
    }

    /// Records a refused or failed request.
    pub fn record_error(
        &self,
        state: &SharedState,
        question: Option<String>,
        documents: Vec<String>,
        error: &ApiError,
    ) {
        state.audit.record(AuditEntry {
            question,
            documents,
            outcome: error_outcome(error),
            ..self.entry()
        });
    }
}

/// `error 429 busy: the answer queue is full; ...`: the status, code and the message the
/// client was given (never an internal error's details).
pub fn error_outcome(error: &ApiError) -> String {
    let body = error.body();
    format!(
        "error {} {}: {}",
        error.status().as_u16(),
        body.error.code,
        body.error.message
    )
}
