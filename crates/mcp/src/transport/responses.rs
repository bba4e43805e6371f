//! The endpoint's responses: JSON bodies and JSON-RPC errors, the refusals
//! (with `Retry-After` where waiting helps), and SSE bodies, whole or
//! streamed.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use rmcp::model::{ErrorCode, ErrorData};
use serde_json::json;
use serde_json::value::RawValue;
use sessiongate_core::lifecycle::{LifecycleError, ReconnectError};
use sessiongate_core::store_health;
use sessiongate_core::stream::EventId;
use sessiongate_core::token::IssuedToken;

use crate::jsonrpc::{self, Id};
use crate::protocol::HEADER_RECONNECT_TOKEN;
use crate::sse;

pub(super) fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// An HTTP error with a JSON-RPC error body.
pub(super) fn rpc_error(status: StatusCode, id: Option<&Id>, error: ErrorData) -> Response {
    json_bytes(status, jsonrpc::error_bytes(id, &error))
}

/// 503 with `Retry-After` when the store (or the request log waiting on it)
/// cannot take a write, or the server is stopping: a JSON-RPC error whose
/// message names nothing internal; the error itself is logged.
pub(super) fn unavailable(id: Option<&Id>, e: &LifecycleError) -> Response {
    tracing::warn!(error = %e, "refused a request: the session store is unavailable");
    let message = match e {
        LifecycleError::ShuttingDown => "the server is shutting down",
        _ => store_health::UNAVAILABLE,
    };
    let mut response = rpc_error(
        StatusCode::SERVICE_UNAVAILABLE,
        id,
        ErrorData::new(ErrorCode::INTERNAL_ERROR, message, None),
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(store_health::RETRY_AFTER_SECS),
    );
    response
}

pub(super) fn bad_request(message: impl Into<String>) -> Response {
    rpc_error(
        StatusCode::BAD_REQUEST,
        None,
        ErrorData::new(ErrorCode::INVALID_REQUEST, message.into(), None),
    )
}

pub(super) fn session_not_found() -> Response {
    rpc_error(
        StatusCode::NOT_FOUND,
        None,
        ErrorData::new(
            ErrorCode(-32001),
            "Session not found: it ended or never existed; send initialize to start a new one",
            None,
        ),
    )
}

/// A refused reconnect: 401 with the reason, or 429 with `Retry-After`.
pub(super) fn reconnect_refused(e: ReconnectError) -> Response {
    let (status, retry_after) = match &e {
        ReconnectError::Refused(_) => (StatusCode::UNAUTHORIZED, None),
        ReconnectError::RateLimited { retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            Some(retry_after.as_secs().max(1)),
        ),
        ReconnectError::Store(_) | ReconnectError::ShuttingDown => {
            tracing::warn!(error = %e, "a reconnect failed on the store");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Some(store_health::RETRY_AFTER_SECS),
            )
        }
    };
    let detail = match &e {
        ReconnectError::Store(_) => store_health::UNAVAILABLE.to_string(),
        e => e.to_string(),
    };
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json!({ "detail": detail }).to_string(),
    )
        .into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// A refused request because of a limit, counted by the limit's name.
pub(super) fn refused(limit: &'static str, response: Response) -> Response {
    metrics::counter!("sessiongate_limit_refusals_total", "limit" => limit).increment(1);
    response
}

/// The refusal of client metadata over its size limit: 400 (invalid
/// params, naming the field and the limit), if it is.
pub(super) fn oversized_metadata(
    limit: usize,
    id: Option<&Id>,
    field: &str,
    raw: Option<&RawValue>,
) -> Option<Response> {
    match raw.map(|r| r.get().len()) {
        Some(len) if len > limit => Some(refused(
            "client_metadata",
            rpc_error(
                StatusCode::BAD_REQUEST,
                id,
                ErrorData::invalid_params(
                    format!("{field} is {len} bytes; the limit is {limit} bytes"),
                    Some(json!({ "field": field, "size": len, "limit": limit })),
                ),
            ),
        )),
        _ => None,
    }
}

pub(super) fn set_token_header(response: &mut Response, token: &IssuedToken) {
    if let Ok(v) = HeaderValue::from_str(&token.token) {
        response.headers_mut().insert(HEADER_RECONNECT_TOKEN, v);
    }
}

pub(super) fn method_not_allowed(allow: &'static str) -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, HeaderValue::from_static(allow))],
        "",
    )
        .into_response()
}

pub(super) fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
}

/// An SSE response of plain messages, without ids (stateless callers).
pub(super) fn sse_response<S>(stream: S, keepalive: Duration) -> Response
where
    S: futures::Stream<Item = Bytes> + Send + 'static,
{
    sse_events(
        stream.map(|message| sse::event(None, None, &message)),
        keepalive,
    )
}

/// An SSE response whose messages are all known: one body of known length,
/// one write, no stream machinery.
pub(super) fn sse_whole<'a>(
    messages: impl IntoIterator<Item = (Option<EventId>, &'a [u8])>,
) -> Response {
    let mut text = Vec::new();
    for (id, message) in messages {
        sse::append(&mut text, id, message);
    }
    (SSE_HEADERS, text).into_response()
}

/// A streamed SSE response of encoded events, with a keep-alive comment
/// after every `keepalive` without one.
pub(super) fn sse_events<S>(events: S, keepalive: Duration) -> Response
where
    S: futures::Stream<Item = Bytes> + Send + 'static,
{
    let mut response = (
        SSE_HEADERS,
        Body::from_stream(sse::KeepAlive::new(events, keepalive)),
    )
        .into_response();
    // Proxies (nginx) must pass each event on as it comes.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

const SSE_HEADERS: [(header::HeaderName, HeaderValue); 2] = [
    (
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    ),
    (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
];

/// Keeps `guard` alive as long as the body is being sent.
pub(super) fn guarded<S: futures::Stream + Send + 'static, G: Send + 'static>(
    stream: S,
    guard: G,
) -> impl futures::Stream<Item = S::Item> + Send + 'static {
    stream.map(move |item| {
        let _alive = &guard;
        item
    })
}
