//! MCP Streamable HTTP at `/mcp`: POST, GET and DELETE, for both protocol
//! generations side by side.
//!
//! A POST is classified once: `initialize` opens a session (sessionful
//! revisions); a request whose `_meta` or `MCP-Protocol-Version` names a
//! stateless revision is served without one (2026-07-28); anything else must
//! carry a live `Mcp-Session-Id`. The answer is plain JSON unless the handler
//! talks to the client while it runs, in which case it becomes an SSE stream.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use bytes::Bytes;
use futures::StreamExt;
use rmcp::model::{ErrorCode, ErrorData};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use sessiongate_core::lifecycle::{
    LifecycleError, LiveSession, RateLimited, RateLimiter, ReconnectError, SessionManager,
};
use sessiongate_core::reconnect::IssuedToken;
use sessiongate_core::request_log::{RequestLogEntry, RequestStatus};
use sessiongate_core::store_health;
use sessiongate_core::stream::{EventId, StreamId, StreamKind};
use sessiongate_core::{DisconnectReason, SessionId};
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;

use crate::client_info::{self, ClientInfo, Origin};
use crate::context::{Caller, RequestContext};
use crate::guard::{self, OriginPolicy};
use crate::identity_cache::{Announced, IdentityCache, Known};
use crate::jsonrpc::{self, Body, Id, Invalid, Message};
use crate::metrics::RequestDurations;
use crate::peers::Peers;
use crate::protocol::{self, *};
use crate::server::{Answer, McpServer};
use crate::streams::{self, BodyOptions, Streams};

/// Transport settings.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    pub origins: OriginPolicy,
    /// Largest accepted POST body.
    pub max_body_bytes: usize,
    /// Interval of SSE keep-alive comments on open streams.
    pub keepalive: Duration,
    /// A sessionful request still running after this long answers on a
    /// resumable SSE stream instead of one JSON body, so a dropped
    /// connection does not lose its result.
    pub sse_after: Duration,
    /// The SSE `retry` hint: how long a client waits before reconnecting.
    pub retry: Duration,
    /// A standalone GET stream (2025-11-25) quiet for this long is closed
    /// with a `retry` hint, so the client polls instead of holding it open.
    pub stream_idle_close: Duration,
    /// Largest `clientInfo` and largest capabilities a client may announce,
    /// in `initialize` or a stateless request's `_meta`, as JSON bytes.
    pub max_client_metadata_bytes: usize,
    /// `initialize` requests per second per remote address, in the long run.
    pub initialize_per_second: f64,
    /// `initialize` requests a remote address may send at once.
    pub initialize_burst: u32,
    /// A request body not received in full after this long is refused (408).
    pub body_read_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            origins: OriginPolicy::default(),
            max_body_bytes: 4 * 1024 * 1024,
            keepalive: Duration::from_secs(15),
            sse_after: Duration::from_secs(1),
            retry: Duration::from_secs(1),
            stream_idle_close: Duration::from_secs(10 * 60),
            max_client_metadata_bytes: 64 * 1024,
            initialize_per_second: 20.0,
            initialize_burst: 200,
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

/// Everything the MCP endpoint needs.
#[derive(Clone)]
pub struct McpState {
    pub manager: Arc<SessionManager>,
    pub server: Arc<McpServer>,
    pub peers: Peers,
    pub streams: Streams,
    pub config: Arc<TransportConfig>,
    identities: Arc<IdentityCache>,
    durations: Arc<RequestDurations>,
    initialize_limiter: Arc<RateLimiter>,
}

impl McpState {
    pub fn new(manager: Arc<SessionManager>, server: McpServer, config: TransportConfig) -> Self {
        McpState {
            identities: Arc::new(IdentityCache::new(manager.config().max_stateless_clients)),
            initialize_limiter: Arc::new(RateLimiter::new(
                config.initialize_per_second,
                config.initialize_burst,
            )),
            manager,
            server: Arc::new(server),
            peers: Peers::default(),
            streams: Streams::default(),
            config: Arc::new(config),
            durations: Arc::default(),
        }
    }

    /// Ends every open stream, so a graceful shutdown is not held up by
    /// clients' standalone GET streams. Their sessions stay active.
    pub fn close_streams(&self) {
        self.peers.clear();
        self.streams.close_connections();
    }

    /// Forgets transport state of sessions that are no longer active.
    pub fn prune_peers(&self) {
        self.peers.retain(|id| self.manager.active(id).is_some());
    }
}

/// The `/mcp` route.
pub fn router(state: McpState) -> Router {
    Router::new().route("/mcp", any(handle)).with_state(state)
}

async fn handle(State(st): State<McpState>, req: Request) -> Response {
    // Origin and Host first, before anything else looks at the request.
    if let Some(refused) = guard::check(&st.config.origins, req.headers()) {
        return refused;
    }
    match *req.method() {
        Method::POST => post(st, req).await,
        Method::GET => get(st, req).await,
        Method::DELETE => delete(st, req).await,
        _ => method_not_allowed("GET, POST, DELETE"),
    }
}

// ---------------------------------------------------------------- responses

fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
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
fn rpc_error(status: StatusCode, id: Option<&Id>, error: ErrorData) -> Response {
    json_bytes(status, jsonrpc::error_bytes(id, &error))
}

/// 503 with `Retry-After` when the store (or the request log waiting on it)
/// cannot take a write, or the server is stopping: a JSON-RPC error whose
/// message names nothing internal; the error itself is logged.
fn unavailable(id: Option<&Id>, e: &LifecycleError) -> Response {
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

fn bad_request(message: impl Into<String>) -> Response {
    rpc_error(
        StatusCode::BAD_REQUEST,
        None,
        ErrorData::new(ErrorCode::INVALID_REQUEST, message.into(), None),
    )
}

fn session_not_found() -> Response {
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
fn reconnect_refused(e: ReconnectError) -> Response {
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
fn refused(limit: &'static str, response: Response) -> Response {
    metrics::counter!("sessiongate_limit_refusals_total", "limit" => limit).increment(1);
    response
}

/// Client metadata over its size limit: the 400 (invalid params, naming
/// the field and the limit) to answer with.
fn oversized_metadata(
    st: &McpState,
    id: Option<&Id>,
    field: &str,
    raw: Option<&RawValue>,
) -> Option<Response> {
    let limit = st.config.max_client_metadata_bytes;
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

fn set_token_header(response: &mut Response, token: &IssuedToken) {
    if let Ok(v) = HeaderValue::from_str(&token.token) {
        response.headers_mut().insert(HEADER_RECONNECT_TOKEN, v);
    }
}

fn method_not_allowed(allow: &'static str) -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, HeaderValue::from_static(allow))],
        "",
    )
        .into_response()
}

fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
}

/// An SSE response of plain messages, without ids (stateless callers).
fn sse_response<S>(stream: S, keepalive: Duration) -> Response
where
    S: futures::Stream<Item = Bytes> + Send + 'static,
{
    let events = stream
        .map(|frame| Ok::<_, Infallible>(Event::default().data(String::from_utf8_lossy(&frame))));
    sse_events(events, keepalive)
}

/// An SSE response whose messages are all known: one body of known length,
/// one write, no stream machinery.
fn sse_whole<'a>(messages: impl IntoIterator<Item = (Option<EventId>, &'a [u8])>) -> Response {
    let mut text = Vec::new();
    for (id, message) in messages {
        if let Some(id) = id {
            let _ = writeln!(text, "id: {id}");
        }
        // JSON has no raw line breaks, but SSE needs each line as its own field.
        for line in message.split(|&b| b == b'\n') {
            text.extend_from_slice(b"data: ");
            text.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
            text.push(b'\n');
        }
        text.push(b'\n');
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        text,
    )
        .into_response()
}

fn sse_events<S>(events: S, keepalive: Duration) -> Response
where
    S: futures::Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(keepalive))
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

// ------------------------------------------------------------------ headers

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// What the client's `Accept` allows.
#[derive(Clone, Copy)]
struct Accepts {
    json: bool,
    sse: bool,
}

fn accepts(headers: &HeaderMap) -> Accepts {
    let Some(accept) = header_str(headers, header::ACCEPT) else {
        // No Accept header means anything is acceptable.
        return Accepts {
            json: true,
            sse: true,
        };
    };
    let mut a = Accepts {
        json: false,
        sse: false,
    };
    // Bytes, not chars: this runs on every request.
    for item in accept.as_bytes().split(|&b| b == b',') {
        let media = item
            .split(|&b| b == b';')
            .next()
            .unwrap_or(b"")
            .trim_ascii();
        let is = |name: &str| media.eq_ignore_ascii_case(name.as_bytes());
        if is("application/json") || is("application/*") {
            a.json = true;
        } else if is("text/event-stream") || is("text/*") {
            a.sse = true;
        } else if media == b"*/*" {
            a.json = true;
            a.sse = true;
        }
    }
    a
}

fn is_json_content(headers: &HeaderMap) -> bool {
    header_str(headers, header::CONTENT_TYPE)
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// The client's address; formatted only where it is recorded.
fn remote_addr(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

fn session_header(headers: &HeaderMap) -> Option<Result<SessionId, ()>> {
    headers.get(HEADER_SESSION_ID).map(|v| {
        v.to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or(())
    })
}

// --------------------------------------------------------------------- POST

/// The parts of `params._meta` the transport reads.
#[derive(Deserialize, Default)]
struct RequestMeta {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion")]
    protocol_version: Option<Value>,
    // Kept raw: a client repeats both on every request, and
    // [`IdentityCache`] reads them only when they change.
    #[serde(rename = "io.modelcontextprotocol/clientInfo")]
    client_info: Option<Box<RawValue>>,
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities")]
    client_capabilities: Option<Box<RawValue>>,
    #[serde(rename = "io.modelcontextprotocol/logLevel")]
    log_level: Option<String>,
    #[serde(rename = "progressToken")]
    progress_token: Option<Value>,
}

#[derive(Deserialize, Default)]
struct ParamsHead {
    #[serde(rename = "_meta")]
    meta: Option<RequestMeta>,
    name: Option<Value>,
    uri: Option<Value>,
}

fn params_head(params: Option<&RawValue>) -> ParamsHead {
    params
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or_default()
}

async fn post(st: McpState, req: Request) -> Response {
    if !is_json_content(req.headers()) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        )
            .into_response();
    }
    let accept = accepts(req.headers());
    if !accept.json && !accept.sse {
        return (
            StatusCode::NOT_ACCEPTABLE,
            "Accept must allow application/json or text/event-stream",
        )
            .into_response();
    }
    let remote = remote_addr(&req);
    let too_large = || {
        refused(
            "body_size",
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body exceeds the limit of {} bytes",
                    st.config.max_body_bytes
                ),
            )
                .into_response(),
        )
    };
    // A declared length over the limit is refused before a byte is read.
    let declared = header_str(req.headers(), header::CONTENT_LENGTH)
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > st.config.max_body_bytes as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    let read = axum::body::to_bytes(body, st.config.max_body_bytes);
    let bytes = match tokio::time::timeout(st.config.body_read_timeout, read).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => return too_large(),
        Err(_) => {
            return refused(
                "body_read_timeout",
                (
                    StatusCode::REQUEST_TIMEOUT,
                    [(header::CONNECTION, HeaderValue::from_static("close"))],
                    format!(
                        "the request body did not arrive within {:?}",
                        st.config.body_read_timeout
                    ),
                )
                    .into_response(),
            )
        }
    };
    let headers = parts.headers;
    let parsed = match jsonrpc::parse(&bytes) {
        Ok(p) => p,
        Err(Invalid { id, error }) => {
            return rpc_error(StatusCode::BAD_REQUEST, id.as_ref(), error)
        }
    };
    let bytes_in = bytes.len() as u64;
    if let Err(e) = st.manager.admit().await {
        let id = match &parsed {
            Body::Single(Message::Request { id, .. }) => Some(id),
            _ => None,
        };
        return unavailable(id, &e);
    }

    if let Body::Single(Message::Request { method, .. }) = &parsed {
        if method == "initialize" {
            let Body::Single(Message::Request { id, params, .. }) = parsed else {
                unreachable!()
            };
            return initialize(&st, &headers, remote, id, params, accept, bytes_in).await;
        }
    }

    let header_version = header_str(&headers, HEADER_PROTOCOL_VERSION);
    if let Body::Single(msg) = &parsed {
        let head = match msg {
            Message::Request { params, .. } | Message::Notification { params, .. } => {
                params_head(params.as_deref())
            }
            Message::Response { .. } => ParamsHead::default(),
        };
        let modern_meta = head
            .meta
            .as_ref()
            .is_some_and(|m| m.protocol_version.is_some());
        let modern_header = header_version.is_some_and(|v| !protocol::is_sessionful(v));
        let discover = msg.method() == Some("server/discover");
        let has_session = headers.contains_key(HEADER_SESSION_ID);
        if modern_meta || (modern_header && !has_session) || (discover && !has_session) {
            let Body::Single(msg) = parsed else {
                unreachable!()
            };
            return stateless(&st, &headers, remote, msg, head, accept, bytes_in).await;
        }
    }

    sessionful(&st, &headers, remote, parsed, accept, bytes_in).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InitializeParams {
    protocol_version: Option<String>,
    // Kept raw until their size is checked.
    #[serde(default)]
    capabilities: Option<Box<RawValue>>,
    client_info: Option<Box<RawValue>>,
}

#[allow(clippy::too_many_arguments)]
async fn initialize(
    st: &McpState,
    headers: &HeaderMap,
    remote: Option<IpAddr>,
    id: Id,
    params: Option<Box<RawValue>>,
    accept: Accepts,
    bytes_in: u64,
) -> Response {
    let started = Instant::now();
    let started_at = st.manager.now();
    // Each initialize writes a durable session: limited per address.
    if let Some(ip) = remote {
        if let Err(RateLimited { retry_after }) = st.initialize_limiter.acquire(ip, started_at) {
            let secs = retry_after.as_secs().max(1);
            let mut response = rpc_error(
                StatusCode::TOO_MANY_REQUESTS,
                Some(&id),
                ErrorData::new(
                    ErrorCode(-32000),
                    format!("Too many initialize requests from this address; retry in {secs}s"),
                    None,
                ),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return refused("initialize_rate", response);
        }
    }
    let p: InitializeParams = match crate::server::parse_params(params.as_deref()) {
        Ok(p) => p,
        Err(e) => return rpc_error(StatusCode::BAD_REQUEST, Some(&id), e),
    };
    for (field, raw) in [
        ("params.capabilities", &p.capabilities),
        ("params.clientInfo", &p.client_info),
    ] {
        if let Some(r) = oversized_metadata(st, Some(&id), field, raw.as_deref()) {
            return r;
        }
    }
    let capabilities = match p.capabilities.as_deref().map(RawValue::get) {
        None | Some("null") => json!({}),
        Some(raw) if raw.starts_with('{') => serde_json::from_str(raw).unwrap_or_default(),
        Some(_) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                Some(&id),
                ErrorData::invalid_params("capabilities must be an object", None),
            )
        }
    };
    let info: Option<ClientInfo> = match p.client_info.as_deref().map(RawValue::get) {
        None | Some("null") => None,
        Some(raw) => match serde_json::from_str(raw) {
            Ok(i) => Some(i),
            Err(e) => {
                return rpc_error(
                    StatusCode::BAD_REQUEST,
                    Some(&id),
                    ErrorData::invalid_params(format!("Invalid params: clientInfo: {e}"), None),
                )
            }
        },
    };
    let version = protocol::negotiate(p.protocol_version.as_deref());
    let identity = client_info::identity(
        info.as_ref(),
        capabilities,
        version,
        Origin {
            remote,
            user_agent: header_str(headers, header::USER_AGENT),
        },
    );
    let metadata = json!({
        "clientInfo": info,
        "requestedProtocolVersion": p.protocol_version,
    });
    let created = match st.manager.create(identity, metadata).await {
        Ok(c) => c,
        Err(e) => return unavailable(Some(&id), &e),
    };
    let session = created.session;
    let mut result = st.server.initialize_result(version);
    result["_meta"] = json!({
        META_RECONNECT_TOKEN: created.token.token,
        META_RECONNECT_EXPIRES_AT: created.token.expires_at(),
    });
    let body = jsonrpc::result_bytes(&id, &result);
    let bytes_out = body.len() as u64;
    let mut response = if accept.json {
        json_bytes(StatusCode::OK, body)
    } else {
        sse_whole([(None, &body[..])])
    };
    response.headers_mut().insert(
        HEADER_SESSION_ID,
        HeaderValue::from_str(&session.id().to_string()).expect("hex is a valid header"),
    );
    set_token_header(&mut response, &created.token);
    st.manager
        .log_request(RequestLogEntry {
            session_id: Some(session.id()),
            client_key: None,
            method: "initialize".into(),
            tool_name: None,
            started_at,
            duration: started.elapsed(),
            status: RequestStatus::Success,
            error_code: None,
            error_message: None,
            bytes_in,
            bytes_out,
        })
        .await;
    response
}

/// Decodes an `Mcp-Name`-style header value (`=?base64?...?=` for values
/// that are not plain ASCII).
fn decode_header_value(value: &str) -> Option<String> {
    use base64::Engine;
    match value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|b| String::from_utf8(b).ok()),
        None => Some(value.to_string()),
    }
}

const META_CLIENT_INFO_FIELD: &str = "params._meta[\"io.modelcontextprotocol/clientInfo\"]";
const META_CLIENT_CAPABILITIES_FIELD: &str =
    "params._meta[\"io.modelcontextprotocol/clientCapabilities\"]";

fn header_mismatch(id: Option<&Id>, message: String) -> Response {
    rpc_error(
        StatusCode::BAD_REQUEST,
        id,
        ErrorData::new(ErrorCode::HEADER_MISMATCH, message, None),
    )
}

#[allow(clippy::too_many_arguments)]
async fn stateless(
    st: &McpState,
    headers: &HeaderMap,
    remote: Option<IpAddr>,
    msg: Message,
    head: ParamsHead,
    accept: Accepts,
    bytes_in: u64,
) -> Response {
    let (id, method, params) = match msg {
        Message::Request { id, method, params } => (Some(id), method, params),
        Message::Notification { method, params } => (None, method, params),
        Message::Response { id, .. } => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                Some(&id),
                jsonrpc::invalid_request("clients of 2026-07-28 do not send responses"),
            )
        }
    };
    let id_ref = id.as_ref();
    let tool = tool_name(&method, &head);
    let meta = head.meta.unwrap_or_default();

    // Headers mirror the body; any disagreement is a HeaderMismatch.
    let meta_version = meta.protocol_version.as_ref().and_then(Value::as_str);
    match (header_str(headers, HEADER_PROTOCOL_VERSION), meta_version) {
        (Some(h), Some(m)) if h != m => {
            return header_mismatch(
                id_ref,
                format!("Header mismatch: MCP-Protocol-Version header value '{h}' does not match body value '{m}'"),
            )
        }
        (None, _) => {
            return header_mismatch(
                id_ref,
                "Header mismatch: the MCP-Protocol-Version header is required".into(),
            )
        }
        _ => {}
    }
    match header_str(headers, HEADER_METHOD) {
        Some(h) if h == method => {}
        Some(h) => {
            return header_mismatch(
                id_ref,
                format!("Header mismatch: Mcp-Method header value '{h}' does not match body value '{method}'"),
            )
        }
        None if id.is_none() => {}
        None => {
            return header_mismatch(
                id_ref,
                "Header mismatch: the Mcp-Method header is required".into(),
            )
        }
    }
    let body_name = match method.as_str() {
        "tools/call" | "prompts/get" => head.name.as_ref(),
        "resources/read" => head.uri.as_ref(),
        _ => None,
    }
    .and_then(Value::as_str);
    if let Some(body_name) = body_name {
        match header_str(headers, HEADER_NAME).map(decode_header_value) {
            Some(Some(h)) if h == body_name => {}
            Some(Some(h)) => {
                return header_mismatch(
                    id_ref,
                    format!("Header mismatch: Mcp-Name header value '{h}' does not match body value '{body_name}'"),
                )
            }
            Some(None) => {
                return header_mismatch(id_ref, "Header mismatch: Mcp-Name is not valid".into())
            }
            None => {
                return header_mismatch(
                    id_ref,
                    "Header mismatch: the Mcp-Name header is required".into(),
                )
            }
        }
    }
    let Some(version) = meta_version else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            id_ref,
            ErrorData::invalid_params(
                format!("params._meta[\"{META_PROTOCOL_VERSION}\"] is required"),
                None,
            ),
        );
    };
    if !protocol::is_stateless(version) {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            id_ref,
            ErrorData::new(
                ErrorCode::UNSUPPORTED_PROTOCOL_VERSION,
                "Unsupported protocol version",
                Some(json!({
                    "supported": protocol::supported_versions(),
                    "requested": version,
                })),
            ),
        );
    }
    let Some(capabilities) = meta
        .client_capabilities
        .as_deref()
        .map(RawValue::get)
        .filter(|c| c.starts_with('{'))
    else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            id_ref,
            ErrorData::invalid_params(
                format!("params._meta[\"{META_CLIENT_CAPABILITIES}\"] must be an object"),
                None,
            ),
        );
    };
    for (field, raw) in [
        (META_CLIENT_INFO_FIELD, meta.client_info.as_deref()),
        (
            META_CLIENT_CAPABILITIES_FIELD,
            meta.client_capabilities.as_deref(),
        ),
    ] {
        if let Some(r) = oversized_metadata(st, id_ref, field, raw) {
            return r;
        }
    }
    let Some(id) = id else {
        // 2026-07-28 defines no client notifications over HTTP; accept and ignore.
        return accepted();
    };

    let Known { key, identity } = st.identities.identify(&Announced {
        info: meta.client_info.as_deref().map(RawValue::get),
        capabilities,
        protocol_version: version,
        remote,
        user_agent: header_str(headers, header::USER_AGENT),
    });
    st.manager.touch_client(&key, || identity.as_ref().clone());

    let ctx = RequestContext {
        manager: st.manager.clone(),
        caller: Caller::Client { key, identity },
        request_id: id.clone(),
        protocol_version: version.into(),
        progress_token: meta.progress_token,
        stateless_log_level: meta.log_level,
        peers: st.peers.clone(),
        outbound: None,
        poll: None,
    };
    run(st, ctx, id, method, params, tool, accept, bytes_in).await
}

async fn sessionful(
    st: &McpState,
    headers: &HeaderMap,
    remote: Option<IpAddr>,
    parsed: Body,
    accept: Accepts,
    bytes_in: u64,
) -> Response {
    let (session, token) = match lookup(st, headers, remote, true).await {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let mut response = sessionful_body(st, headers, &session, parsed, accept, bytes_in).await;
    if let Some(token) = token {
        set_token_header(&mut response, &token);
    }
    response
}

async fn sessionful_body(
    st: &McpState,
    headers: &HeaderMap,
    session: &Arc<LiveSession>,
    parsed: Body,
    accept: Accepts,
    bytes_in: u64,
) -> Response {
    let negotiated = session.protocol_version().to_string();
    if let Some(v) = header_str(headers, HEADER_PROTOCOL_VERSION) {
        if !protocol::is_sessionful(v) {
            return bad_request(format!(
                "Bad Request: unsupported MCP-Protocol-Version {v}; this session speaks {negotiated}"
            ));
        }
    }
    match parsed {
        Body::Single(msg) => sessionful_message(st, session, msg, accept, bytes_in)
            .await
            .unwrap_or_else(accepted),
        Body::Batch(items) => {
            if !protocol::allows_batches(&negotiated) {
                return bad_request(format!(
                    "Invalid Request: JSON-RPC batches are not supported in protocol version {negotiated}"
                ));
            }
            let mut replies = Vec::new();
            for item in items {
                match item {
                    Err(Invalid { id, error }) => {
                        replies.push(jsonrpc::error_bytes(id.as_ref(), &error))
                    }
                    Ok(msg) => {
                        let is_request = matches!(msg, Message::Request { .. });
                        if let Some(r) = sessionful_message(
                            st,
                            session,
                            msg,
                            Accepts {
                                json: true,
                                sse: false,
                            },
                            0,
                        )
                        .await
                        {
                            if is_request {
                                let body = axum::body::to_bytes(r.into_body(), usize::MAX)
                                    .await
                                    .unwrap_or_default();
                                replies.push(body.to_vec());
                            }
                        }
                    }
                }
            }
            if replies.is_empty() {
                return accepted();
            }
            let mut out = b"[".to_vec();
            for (i, r) in replies.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(r);
            }
            out.push(b']');
            json_bytes(StatusCode::OK, out)
        }
    }
}

/// The live session named by `Mcp-Session-Id`, or the response to send.
/// A session that is no longer active is reclaimed in place when the request
/// carries its reconnect token (`Mcp-Reconnect-Token`); the new token comes
/// back with it.
async fn lookup(
    st: &McpState,
    headers: &HeaderMap,
    remote: Option<IpAddr>,
    revive: bool,
) -> Result<(Arc<LiveSession>, Option<IssuedToken>), Box<Response>> {
    let id = match session_header(headers) {
        None => {
            return Err(Box::new(bad_request(
                "Bad Request: the Mcp-Session-Id header is required; send initialize first",
            )))
        }
        Some(Err(())) => return Err(Box::new(session_not_found())),
        Some(Ok(id)) => id,
    };
    if let Some(session) = st.manager.active(id) {
        return Ok((session, None));
    }
    let Some(token) = header_str(headers, HEADER_RECONNECT_TOKEN).filter(|_| revive) else {
        return Err(Box::new(session_not_found()));
    };
    let remote = remote.map(|ip| ip.to_string());
    match st
        .manager
        .reconnect(id, token.trim(), None, remote.as_deref())
        .await
    {
        Ok(r) => Ok((r.session, Some(r.token))),
        Err(e) => Err(Box::new(reconnect_refused(e))),
    }
}

/// Handles one message of a session; `None` means "accepted, no body".
async fn sessionful_message(
    st: &McpState,
    session: &Arc<LiveSession>,
    msg: Message,
    accept: Accepts,
    bytes_in: u64,
) -> Option<Response> {
    if matches!(msg, Message::Request { .. }) {
        st.manager.touch(session);
    } else {
        st.manager.keep_alive(session);
    }
    match msg {
        Message::Request { id, method, params } => {
            if method == "initialize" {
                return Some(rpc_error(
                    StatusCode::BAD_REQUEST,
                    Some(&id),
                    jsonrpc::invalid_request("initialize must not be sent in a batch"),
                ));
            }
            let head = params_head(params.as_deref());
            let tool = tool_name(&method, &head);
            let ctx = RequestContext {
                manager: st.manager.clone(),
                caller: Caller::Session(session.clone()),
                request_id: id.clone(),
                protocol_version: session.protocol_version().into(),
                progress_token: head.meta.and_then(|m| m.progress_token),
                stateless_log_level: None,
                peers: st.peers.clone(),
                outbound: None,
                poll: None,
            };
            Some(run(st, ctx, id, method, params, tool, accept, bytes_in).await)
        }
        Message::Notification { .. } => None,
        Message::Response { id, outcome } => {
            if let Some(peer) = st.peers.get(session.id()) {
                peer.answer(&id, outcome);
            }
            None
        }
    }
}

/// Runs a request. Answers with JSON if the handler finishes without talking
/// to the client; otherwise streams its messages and the result as SSE. A
/// session's stream is resumable (see [`streams`]); a sessionful request
/// that runs longer than `sse_after` switches to one too, so its result
/// survives a dropped connection.
#[allow(clippy::too_many_arguments)]
async fn run(
    st: &McpState,
    mut ctx: RequestContext,
    id: Id,
    method: String,
    params: Option<Box<RawValue>>,
    tool_name: Option<String>,
    accept: Accepts,
    bytes_in: u64,
) -> Response {
    let started = Instant::now();
    let started_at = st.manager.now();
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    if accept.sse {
        ctx.outbound = Some(tx.clone());
    }
    let stateless = ctx.is_stateless();
    let resumable = ctx.session().filter(|_| accept.sse).cloned();
    let poll = resumable.as_ref().map(|_| Arc::new(Notify::new()));
    ctx.poll = poll.clone();
    let finish = Finisher {
        manager: st.manager.clone(),
        session: ctx.session().map(|s| s.id()),
        client_key: match &ctx.caller {
            Caller::Client { key, .. } => Some(key.to_string()),
            Caller::Session(_) => None,
        },
        known_tool: tool_name.as_deref().is_some_and(|t| st.server.has_tool(t)),
        tool_name,
        method: method.clone(),
        id,
        started,
        started_at,
        bytes_in,
        stateless,
        durations: st.durations.clone(),
    };
    let server = st.server.clone();
    let mut work = Box::pin(async move {
        let outcome = server.dispatch(&ctx, &method, params.as_deref()).await;
        drop(ctx);
        outcome
    });
    let (sse_after, switch_later) = (st.config.sse_after, resumable.is_some());
    let switch = async move {
        match switch_later {
            true => tokio::time::sleep(sse_after).await,
            false => std::future::pending().await,
        }
    };

    enum Next {
        Done(Result<Answer, ErrorData>),
        Stream(Option<Bytes>),
    }
    let next = tokio::select! {
        biased;
        outcome = &mut work => Next::Done(outcome),
        Some(first) = rx.recv() => Next::Stream(Some(first)),
        _ = switch => Next::Stream(None),
    };
    match next {
        Next::Done(outcome) => {
            let mut early = Vec::new();
            while let Ok(frame) = rx.try_recv() {
                early.push(frame);
            }
            let (status, body) = finish.complete(outcome).await;
            if early.is_empty() {
                if accept.json || !accept.sse {
                    return json_bytes(status, body);
                }
                // The answer is the stream's only message: sent whole, it
                // leaves nothing to resume. A client holding its id has it
                // all, one that lost the connection before it holds no id
                // of this stream, so neither a priming event nor the event
                // log would ever be read.
                let id = resumable.map(|_| EventId {
                    stream: StreamId::generate(StreamKind::Request),
                    seq: 1,
                });
                return sse_whole([(id, &body[..])]);
            }
            early.push(Bytes::from(body));
            match resumable {
                Some(session) => {
                    drop(tx);
                    resumable_response(st, session, early, rx, poll)
                }
                // 2026-07-28: no ids, nothing to resume, all of it at hand.
                None => sse_whole(early.iter().map(|m| (None, &m[..]))),
            }
        }
        Next::Stream(first) => {
            // The handler runs on whether or not the client stays connected.
            let task = tokio::spawn(async move {
                let outcome = work.await;
                let (_, body) = finish.complete(outcome).await;
                let _ = tx.send(Bytes::from(body)).await;
            });
            match resumable {
                Some(session) => {
                    resumable_response(st, session, first.into_iter().collect(), rx, poll)
                }
                None => {
                    // 2026-07-28: closing the response stream cancels the request.
                    let abort = stateless.then(|| AbortOnDrop(task));
                    let stream = futures::stream::iter(first)
                        .chain(ReceiverStream::new(rx))
                        .map(move |frame| {
                            let _keep = &abort;
                            frame
                        });
                    sse_response(stream, st.config.keepalive)
                }
            }
        }
    }
}

/// Whether a session's revision primes streams and may be asked to poll.
fn polls(session: &LiveSession) -> bool {
    session.protocol_version() >= "2025-11-25"
}

/// A request's resumable response stream: `first`, then what `rx` carries.
fn resumable_response(
    st: &McpState,
    session: Arc<LiveSession>,
    first: Vec<Bytes>,
    rx: mpsc::Receiver<Bytes>,
    poll: Option<Arc<Notify>>,
) -> Response {
    let (stream, frames) = st.streams.open(
        st.manager.clone(),
        session.id(),
        StreamKind::Request,
        first,
        rx,
        poll,
    );
    let options = BodyOptions {
        prime: polls(&session),
        retry: st.config.retry,
        idle_close: None,
    };
    let guard = st.manager.open_stream(session);
    let body = streams::body(stream, Vec::new(), 0, Some(frames), options);
    sse_events(guarded(body, guard), st.config.keepalive)
}

/// Keeps `guard` alive as long as the body is being sent.
fn guarded<S: futures::Stream + Send + 'static, G: Send + 'static>(
    stream: S,
    guard: G,
) -> impl futures::Stream<Item = S::Item> + Send + 'static {
    stream.map(move |item| {
        let _alive = &guard;
        item
    })
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The tool a `tools/call` names, for the request log.
fn tool_name(method: &str, head: &ParamsHead) -> Option<String> {
    (method == "tools/call")
        .then(|| head.name.as_ref()?.as_str().map(str::to_string))
        .flatten()
}

/// Turns a handler's outcome into the response body and logs the request.
struct Finisher {
    manager: Arc<SessionManager>,
    session: Option<SessionId>,
    client_key: Option<String>,
    method: String,
    tool_name: Option<String>,
    id: Id,
    started: Instant,
    started_at: sessiongate_core::Timestamp,
    bytes_in: u64,
    stateless: bool,
    /// Whether `tool_name` is one of the server's tools.
    known_tool: bool,
    durations: Arc<RequestDurations>,
}

impl Finisher {
    async fn complete(self, outcome: Result<Answer, ErrorData>) -> (StatusCode, Vec<u8>) {
        let (status, body, error) = match &outcome {
            Ok(answer) => (
                StatusCode::OK,
                answer.response_bytes(&self.id),
                answer.tool_error().map(|text| (None, text)),
            ),
            Err(e) => (
                error_status(e, self.stateless),
                jsonrpc::error_bytes(Some(&self.id), e),
                Some((Some(e.code.0 as i64), Some(e.message.to_string()))),
            ),
        };
        // Labels only from the server's own vocabulary: a client naming
        // made-up methods or tools must not mint new time series.
        let unknown_method = matches!(&outcome, Err(e) if e.code == ErrorCode::METHOD_NOT_FOUND);
        let tool = match &self.tool_name {
            Some(t) if self.known_tool => t.as_str(),
            Some(_) => "unknown",
            None => "",
        };
        self.durations.record(
            if unknown_method {
                "unknown"
            } else {
                &self.method
            },
            tool,
            error.is_some(),
            self.stateless,
            self.started.elapsed(),
        );
        self.manager
            .log_request(RequestLogEntry {
                session_id: self.session,
                client_key: self.client_key,
                method: self.method,
                tool_name: self.tool_name,
                started_at: self.started_at,
                duration: self.started.elapsed(),
                status: if error.is_some() {
                    RequestStatus::Error
                } else {
                    RequestStatus::Success
                },
                error_code: error.as_ref().and_then(|e| e.0),
                error_message: error.and_then(|e| e.1),
                bytes_in: self.bytes_in,
                bytes_out: body.len() as u64,
            })
            .await;
        (status, body)
    }
}

/// 2026-07-28 puts protocol-level failures in the HTTP status; earlier
/// revisions answer 200 with a JSON-RPC error.
fn error_status(e: &ErrorData, stateless: bool) -> StatusCode {
    if !stateless {
        return StatusCode::OK;
    }
    match e.code {
        ErrorCode::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        ErrorCode::HEADER_MISMATCH
        | ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
        | ErrorCode::UNSUPPORTED_PROTOCOL_VERSION => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

// ---------------------------------------------------------------------- GET

async fn get(st: McpState, req: Request) -> Response {
    let remote = remote_addr(&req);
    let headers = req.headers();
    if header_str(headers, HEADER_PROTOCOL_VERSION).is_some_and(protocol::is_stateless) {
        return method_not_allowed("POST");
    }
    if !accepts(headers).sse {
        return (
            StatusCode::NOT_ACCEPTABLE,
            "Accept must allow text/event-stream",
        )
            .into_response();
    }
    let (session, token) = match lookup(&st, headers, remote, true).await {
        Ok(s) => s,
        Err(r) => return *r,
    };
    st.manager.keep_alive(&session);
    // An id that is not ours (or garbage) resumes nothing: a fresh stream.
    let resume = header_str(headers, HEADER_LAST_EVENT_ID).and_then(|v| v.parse::<EventId>().ok());
    let polling = polls(&session);
    let options = |prime: bool, live: bool| BodyOptions {
        prime,
        retry: st.config.retry,
        idle_close: (polling && live).then_some(st.config.stream_idle_close),
    };
    let guard = st.manager.open_stream(session.clone());
    let keepalive = st.config.keepalive;
    let mut response = match resume {
        None => {
            let (stream, frames) = open_standalone(&st, &session);
            let body = streams::body(stream, Vec::new(), 0, Some(frames), options(polling, true));
            sse_events(guarded(body, guard), keepalive)
        }
        Some(from) => {
            // Attach (taking the in-memory tail) before reading the log, so
            // nothing falls in between; the union, by position, is the replay.
            let (tail, live) = match st.streams.attach(session.id(), from.stream, from.seq) {
                Some((tail, rx)) => (tail, Some(rx)),
                None => (Vec::new(), None),
            };
            let logged = match st
                .manager
                .events()
                .after(session.id(), from.stream, from.seq)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, session = %session.id().short(), "reading the event log failed");
                    return unavailable(None, &e.into());
                }
            };
            let mut replay: BTreeMap<u64, streams::Frame> =
                logged.into_iter().map(|e| (e.seq, e.into())).collect();
            replay.extend(tail.into_iter().map(|f| (f.seq, f)));
            let replay: Vec<streams::Frame> = replay.into_values().collect();
            let standalone = from.stream.kind == StreamKind::Standalone;
            match live {
                Some(frames) => {
                    let live_options = options(false, standalone);
                    let body =
                        streams::body(from.stream, replay, from.seq, Some(frames), live_options);
                    sse_events(guarded(body, guard), keepalive)
                }
                None if !standalone => {
                    // The request finished (or died with an earlier process):
                    // what it sent is all there is.
                    let body =
                        streams::body(from.stream, replay, from.seq, None, options(false, false));
                    sse_events(guarded(body, guard), keepalive)
                }
                None => {
                    // A standalone stream of an earlier process: replay it,
                    // then go on as a new one.
                    let old =
                        streams::body(from.stream, replay, from.seq, None, options(false, false));
                    let (stream, frames) = open_standalone(&st, &session);
                    let new =
                        streams::body(stream, Vec::new(), 0, Some(frames), options(polling, true));
                    sse_events(guarded(old.chain(new), guard), keepalive)
                }
            }
        }
    };
    if let Some(token) = token {
        set_token_header(&mut response, &token);
    }
    response
}

/// Opens the session's standalone stream, replacing (and so ending) an
/// earlier one: server-initiated messages go to it from now on.
fn open_standalone(
    st: &McpState,
    session: &LiveSession,
) -> (StreamId, mpsc::Receiver<streams::Frame>) {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    st.peers.get_or_create(session.id()).attach_stream(tx);
    st.streams.open(
        st.manager.clone(),
        session.id(),
        StreamKind::Standalone,
        Vec::new(),
        rx,
        None,
    )
}

// ------------------------------------------------------------------- DELETE

async fn delete(st: McpState, req: Request) -> Response {
    let headers = req.headers();
    if header_str(headers, HEADER_PROTOCOL_VERSION).is_some_and(protocol::is_stateless) {
        return method_not_allowed("POST");
    }
    let session = match lookup(&st, headers, None, false).await {
        Ok((s, _)) => s,
        Err(r) => return *r,
    };
    let id = session.id();
    drop(session);
    st.peers.remove(id);
    match st.manager.end(id, DisconnectReason::ClientDisconnect).await {
        Ok(Some(_)) => StatusCode::OK.into_response(),
        Ok(None) => session_not_found(),
        Err(e) => unavailable(None, &e),
    }
}
