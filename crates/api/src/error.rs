//! Errors of the management API and how they reach the client.
//!
//! Every failure is answered as JSON `{"detail": "..."}` with a fitting
//! status, as the reference system did: [`ApiError`] for the handlers'
//! own failures, [`Params`] for query strings that do not parse, and
//! [`json_errors`] for the few responses axum itself produces (such as 405).
//! Store failures are logged here with their cause; the client sees only a
//! generic message.

use axum::extract::{FromRequestParts, Query};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sessiongate_core::lifecycle::{LifecycleError, ReconnectError};
use sessiongate_core::store::StoreError;
use sessiongate_core::store_health;
use sessiongate_core::token::Refusal;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub detail: String,
}

/// A failed management-API request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query parameter is malformed or out of range (400).
    #[error("{0}")]
    BadRequest(String),
    /// No `Authorization: Bearer` header (401).
    #[error("Missing admin token: send Authorization: Bearer <token>")]
    MissingToken,
    /// A bearer token that is not the admin token (401).
    #[error("Invalid admin token")]
    InvalidToken,
    /// No session with that id, or not a session id at all (404).
    #[error("Session not found")]
    SessionNotFound,
    /// No such management-API path (404).
    #[error("Not found")]
    NotFound,
    /// The session exists but has already ended (409).
    #[error("Session already disconnected")]
    AlreadyDisconnected,
    /// The store failed (503 if it is unreachable, 500 if its data is bad).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server is shutting down and no longer writes (503).
    #[error("The server is shutting down")]
    ShuttingDown,
    /// A reconnect token was refused (401), with the reason.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Too many failed reconnect attempts (429 with `Retry-After`).
    #[error("Too many failed reconnect attempts; retry in {} s", .0.as_secs().max(1))]
    RateLimited(std::time::Duration),
}

impl From<ReconnectError> for ApiError {
    fn from(e: ReconnectError) -> Self {
        match e {
            ReconnectError::Refused(Refusal::UnknownSession) => ApiError::SessionNotFound,
            ReconnectError::Refused(r) => ApiError::Refused(r),
            ReconnectError::RateLimited { retry_after } => ApiError::RateLimited(retry_after),
            ReconnectError::Store(e) => ApiError::Store(e),
            ReconnectError::ShuttingDown => ApiError::ShuttingDown,
        }
    }
}

impl From<LifecycleError> for ApiError {
    fn from(e: LifecycleError) -> Self {
        match e {
            LifecycleError::Store(e) => ApiError::Store(e),
            LifecycleError::ShuttingDown => ApiError::ShuttingDown,
            e @ LifecycleError::RequestLogFull => {
                ApiError::Store(StoreError::Database(e.to_string()))
            }
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::MissingToken | ApiError::InvalidToken | ApiError::Refused(_) => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::SessionNotFound | ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::AlreadyDisconnected => StatusCode::CONFLICT,
            ApiError::Store(StoreError::Database(_)) | ApiError::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Store(StoreError::Corrupt(_) | StoreError::Migration(_)) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn detail(&self) -> String {
        match self {
            ApiError::Store(StoreError::Database(_)) => store_health::UNAVAILABLE.to_string(),
            ApiError::Store(_) => "Session store error".to_string(),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Store(e) = &self {
            tracing::error!(error = %e, "management API: store failure");
        }
        let mut response = (
            self.status(),
            Json(ErrorBody {
                detail: self.detail(),
            }),
        )
            .into_response();
        match self {
            ApiError::MissingToken => {
                response.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"sessiongate\""),
                );
            }
            ApiError::InvalidToken => {
                response.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Bearer realm=\"sessiongate\", error=\"invalid_token\"",
                    ),
                );
            }
            ApiError::Store(StoreError::Database(_)) | ApiError::ShuttingDown => {
                response.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    HeaderValue::from(store_health::RETRY_AFTER_SECS),
                );
            }
            ApiError::RateLimited(wait) => {
                response.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    HeaderValue::from(wait.as_secs().max(1)),
                );
            }
            _ => {}
        }
        response
    }
}

/// Query-string parameters, like axum's `Query`, but a string that does not
/// parse is a 400 `{"detail": ...}` naming the parameter and the problem.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<T, S> FromRequestParts<S> for Params<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Params(value)),
            Err(rejection) => Err(ApiError::BadRequest(rejection.body_text())),
        }
    }
}

/// Turns an error response that axum produced itself (405 Method Not
/// Allowed, ...) into the `{"detail": ...}` shape, keeping its headers.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return response;
    }
    let detail = status.canonical_reason().unwrap_or("Error").to_string();
    let mut replaced = (status, Json(ErrorBody { detail })).into_response();
    for (name, value) in response.headers() {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            replaced.headers_mut().append(name.clone(), value.clone());
        }
    }
    replaced
}
