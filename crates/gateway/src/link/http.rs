//! The client side of MCP's Streamable HTTP transport: [`HttpConnector`]
//! opens [`HttpLink`]s to one upstream, all sharing one pooled client.
//!
//! Each request is its own POST; its answer is a JSON body, or an SSE
//! stream whose messages before the response relate to that request. A
//! stream that drops before the response is resumed with GET and
//! `Last-Event-ID` (2025-11-25). Once the upstream gave a session id, a
//! standalone GET stream carries its messages that relate to no request,
//! reconnected while the link is open. 2026-07-28 upstreams have neither
//! session nor GET stream; their requests carry the revision in `_meta`,
//! mirrored in headers with the method and the name (or task) they call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde_json::Value;
use sessiongate_mcp::protocol::{
    HEADER_LAST_EVENT_ID, HEADER_METHOD, HEADER_NAME, HEADER_PROTOCOL_VERSION, HEADER_SESSION_ID,
    META_PROTOCOL_VERSION,
};
use sse_stream::SseStream;
use tokio::task::AbortHandle;

use super::http_wire::{self, HttpConfigError, Message};
use super::sse::SseConnector;
use super::{
    incoming_channel, Connector, Incoming, IncomingTx, Link, LinkError, Opened, OutboundId,
    RpcError,
};
use crate::config::{HttpConfig, HttpProtocol};

/// How many messages of the upstream's own wait for the relay to take them
/// before the link stops reading (backpressure, not loss).
pub(crate) const INCOMING_BUFFER: usize = 256;

/// The wait before reconnecting a stream when the upstream named none
/// (`retry:`).
pub(crate) const DEFAULT_RETRY: Duration = Duration::from_millis(100);

/// The standalone stream's waits after failed attempts: doubled each time,
/// up to the maximum.
const LISTEN_BACKOFF: Duration = Duration::from_millis(100);
const LISTEN_BACKOFF_MAX: Duration = Duration::from_secs(5);

const ACCEPT_POST: HeaderValue = HeaderValue::from_static("application/json, text/event-stream");
const ACCEPT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A connector for the upstream `config` names, of the transport it speaks.
pub fn connector_for(config: &HttpConfig) -> Result<Arc<dyn Connector>, HttpConfigError> {
    Ok(match config.protocol {
        HttpProtocol::StreamableHttp => Arc::new(HttpConnector::new(config)?),
        HttpProtocol::Sse => Arc::new(SseConnector::new(config)?),
    })
}

/// Opens Streamable HTTP links to one upstream.
pub struct HttpConnector {
    shared: Arc<Shared>,
}

/// What every link to the upstream shares.
struct Shared {
    client: reqwest::Client,
    url: Url,
    request_timeout: Duration,
}

impl HttpConnector {
    pub fn new(config: &HttpConfig) -> Result<Self, HttpConfigError> {
        let (client, url) = http_wire::client_for(config)?;
        Ok(HttpConnector {
            shared: Arc::new(Shared {
                client,
                url,
                request_timeout: config.request_timeout,
            }),
        })
    }
}

#[async_trait]
impl Connector for HttpConnector {
    async fn open(&self, resume: Option<&str>) -> Result<Opened, LinkError> {
        let session = resume
            .map(|id| {
                Session::new(id).ok_or_else(|| LinkError::Transport {
                    reason: format!("the session id {id:?} cannot be sent in a header"),
                    delivered: false,
                })
            })
            .transpose()?;
        let (tx, incoming) = incoming_channel(INCOMING_BUFFER);
        let link = HttpLink {
            inner: Arc::new(Inner {
                shared: self.shared.clone(),
                session: RwLock::new(session),
                version: RwLock::new(None),
                closed: AtomicBool::new(false),
                incoming: tx,
            }),
            listener: Mutex::new(None),
            listening: AtomicBool::new(false),
            ended: AtomicBool::new(false),
        };
        Ok(Opened {
            link: Arc::new(link),
            incoming,
        })
    }
}

/// One upstream session over Streamable HTTP (or, for 2026-07-28, the
/// upstream without a session).
pub struct HttpLink {
    inner: Arc<Inner>,
    /// The standalone GET stream's task, once started.
    listener: Mutex<Option<AbortHandle>>,
    /// Whether it was started: checked on every answer without the lock.
    listening: AtomicBool,
    /// Whether `close` ran.
    ended: AtomicBool,
}

/// The link's state, shared with its standalone stream's task.
struct Inner {
    shared: Arc<Shared>,
    session: RwLock<Option<Session>>,
    /// `MCP-Protocol-Version`, once negotiated.
    version: RwLock<Option<HeaderValue>>,
    /// The upstream refused the session (404), or the link was closed.
    closed: AtomicBool,
    incoming: IncomingTx,
}

/// The upstream's session id, and as the header that carries it.
#[derive(Clone)]
struct Session {
    id: String,
    header: HeaderValue,
}

impl Session {
    fn new(id: &str) -> Option<Session> {
        Some(Session {
            id: id.to_string(),
            header: HeaderValue::from_str(id).ok()?,
        })
    }
}

impl HttpLink {
    /// Starts the standalone GET stream, once, if there is a session.
    /// Called once the session is known to be initialized: after
    /// `notifications/initialized`, or, for a session used again by id,
    /// after the first message the upstream accepted on it.
    fn listen(&self) {
        if self.listening.load(Ordering::Acquire) || read(&self.inner.session).is_none() {
            return;
        }
        let mut listener = self.listener.lock().unwrap_or_else(|e| e.into_inner());
        if listener.is_some() || self.ended.load(Ordering::Acquire) {
            return;
        }
        *listener = Some(tokio::spawn(listen(self.inner.clone())).abort_handle());
        self.listening.store(true, Ordering::Release);
    }

    fn stop_listening(&self) {
        if let Some(task) = self
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
    }

    /// POSTs a notification or a response, which the upstream accepts with
    /// 202.
    async fn post_message(
        &self,
        method: Option<&str>,
        body: bytes::Bytes,
    ) -> Result<(), LinkError> {
        let inner = &self.inner;
        inner.check_open()?;
        let headers = inner.post_headers(method, None);
        let exchange = async { inner.post(headers, body).await.map(drop) };
        let timeout = inner.shared.request_timeout;
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(LinkError::Timeout(timeout)))
    }
}

impl Drop for HttpLink {
    fn drop(&mut self) {
        self.stop_listening();
    }
}

#[async_trait]
impl Link for HttpLink {
    async fn request(
        &self,
        id: OutboundId,
        method: &str,
        params: Option<&Value>,
    ) -> Result<Value, LinkError> {
        self.request_mirrored(id, method, params, &[]).await
    }

    async fn request_mirrored(
        &self,
        id: OutboundId,
        method: &str,
        params: Option<&Value>,
        mirrored: &[(String, String)],
    ) -> Result<Value, LinkError> {
        self.inner.check_open()?;
        let timeout = self.inner.shared.request_timeout;
        let exchange = self.inner.exchange(id, method, params, mirrored);
        let answer = tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(LinkError::Timeout(timeout)));
        if answer.is_ok() && method != "initialize" {
            self.listen();
        }
        answer
    }

    async fn notify(&self, method: &str, params: Option<&Value>) -> Result<(), LinkError> {
        let body = http_wire::encode_request(None, method, params);
        self.post_message(Some(method), body).await?;
        self.listen();
        Ok(())
    }

    async fn respond(&self, id: Value, outcome: Result<Value, RpcError>) -> Result<(), LinkError> {
        let body = http_wire::encode_response(&id, &outcome);
        self.post_message(None, body).await
    }

    fn session_id(&self) -> Option<String> {
        read(&self.inner.session).as_ref().map(|s| s.id.clone())
    }

    fn set_protocol_version(&self, version: &str) {
        match HeaderValue::from_str(version) {
            Ok(v) => {
                *self
                    .inner
                    .version
                    .write()
                    .unwrap_or_else(|e| e.into_inner()) = Some(v)
            }
            Err(_) => tracing::warn!(version, "a protocol version that cannot be a header"),
        }
    }

    fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    async fn close(&self) {
        if self.ended.swap(true, Ordering::AcqRel) {
            return;
        }
        self.stop_listening();
        self.inner.closed.store(true, Ordering::Release);
        let Some(session) = read(&self.inner.session).clone() else {
            return;
        };
        let mut headers = self.inner.version_headers();
        headers.insert(HEADER_SESSION_ID, session.header);
        let delete = self
            .inner
            .shared
            .client
            .delete(self.inner.shared.url.clone())
            .headers(headers)
            .send();
        // 405: the upstream does not let clients end sessions; then it
        // expires them itself.
        match tokio::time::timeout(self.inner.shared.request_timeout, delete).await {
            Ok(Ok(r))
                if r.status().is_success() || r.status() == StatusCode::METHOD_NOT_ALLOWED => {}
            Ok(Ok(r)) => tracing::debug!(status = %r.status(), "the upstream refused DELETE"),
            Ok(Err(e)) => tracing::debug!(error = %e, "DELETE of the upstream session failed"),
            Err(_) => tracing::debug!("DELETE of the upstream session timed out"),
        }
    }
}

impl Inner {
    /// POSTs `body`; a success's response, else why not: a 404 for the
    /// session id is the session gone (refused unrun), any other failure
    /// status its error.
    async fn post(
        &self,
        headers: HeaderMap,
        body: impl Into<reqwest::Body>,
    ) -> Result<reqwest::Response, LinkError> {
        let sent_session = headers.contains_key(HEADER_SESSION_ID);
        let response = self
            .shared
            .client
            .post(self.shared.url.clone())
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| http_wire::send_error(&e))?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND && sent_session {
            return Err(self.session_gone(false));
        }
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(http_wire::status_error(status, &body));
        }
        Ok(response)
    }

    fn check_open(&self) -> Result<(), LinkError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(LinkError::Gone {
                reason: "the link is closed".into(),
                delivered: false,
            });
        }
        Ok(())
    }

    /// The upstream answered 404 for the session: it is gone for good.
    fn session_gone(&self, delivered: bool) -> LinkError {
        self.closed.store(true, Ordering::Release);
        let id = read(&self.session)
            .as_ref()
            .map(|s| s.id.clone())
            .unwrap_or_default();
        LinkError::Gone {
            reason: format!("the upstream does not know session {id} (HTTP 404)"),
            delivered,
        }
    }

    /// `MCP-Protocol-Version` and `Mcp-Session-Id`, as every request has
    /// them once known.
    fn version_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(6);
        if let Some(v) = read(&self.version).clone() {
            headers.insert(HEADER_PROTOCOL_VERSION, v);
        }
        if let Some(s) = read(&self.session).as_ref() {
            headers.insert(HEADER_SESSION_ID, s.header.clone());
        }
        headers
    }

    /// A POST's headers. A 2026-07-28 request names its revision in
    /// `_meta`, which the header must match, and mirrors its method and the
    /// name it calls.
    fn post_headers(&self, method: Option<&str>, params: Option<&Value>) -> HeaderMap {
        let mut headers = self.version_headers();
        headers.insert(ACCEPT, ACCEPT_POST);
        headers.insert(CONTENT_TYPE, JSON);
        let meta_version = params
            .and_then(|p| p.get("_meta"))
            .and_then(|m| m.get(META_PROTOCOL_VERSION))
            .and_then(Value::as_str)
            .and_then(|v| HeaderValue::from_str(v).ok());
        if let Some(v) = meta_version {
            headers.insert(HEADER_PROTOCOL_VERSION, v);
        }
        if let Some(method) = method {
            if let Ok(v) = HeaderValue::from_str(method) {
                headers.insert(HEADER_METHOD, v);
            }
            let name_field = match method {
                "tools/call" | "prompts/get" => Some("name"),
                "resources/read" => Some("uri"),
                "tasks/get" | "tasks/update" | "tasks/cancel" => Some("taskId"),
                _ => None,
            };
            let name = name_field
                .and_then(|f| params?.get(f))
                .and_then(Value::as_str);
            if let Some(name) = name {
                headers.insert(HEADER_NAME, header_text(name));
            }
        }
        headers
    }

    /// One request's POST and its answer.
    async fn exchange(
        &self,
        id: OutboundId,
        method: &str,
        params: Option<&Value>,
        mirrored: &[(String, String)],
    ) -> Result<Value, LinkError> {
        let mut headers = self.post_headers(Some(method), params);
        for (name, value) in mirrored {
            if let Ok(name) = HeaderName::from_bytes(format!("mcp-param-{name}").as_bytes()) {
                headers.insert(name, header_text(value));
            }
        }
        let body = http_wire::encode_request(Some(id), method, params);
        let response = self.post(headers, body).await?;
        if method == "initialize" {
            if let Some(session) = response
                .headers()
                .get(HEADER_SESSION_ID)
                .and_then(|v| Session::new(v.to_str().ok()?))
            {
                *self.session.write().unwrap_or_else(|e| e.into_inner()) = Some(session);
            }
        }
        if is_event_stream(response.headers()) {
            return self.read_response_stream(id, response).await;
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| http_wire::read_error(&e))?;
        match http_wire::decode(&body, Some(id))? {
            Message::Response { outcome, .. } => outcome,
            Message::Incoming(_) => Err(LinkError::Transport {
                reason: format!(
                    "the upstream answered a request with a message of its own: {}",
                    http_wire::excerpt(&body)
                ),
                delivered: true,
            }),
        }
    }

    /// Reads a request's SSE stream until its response: the messages before
    /// it are the upstream's own, related to the request. A stream that
    /// ends first is resumed from the last event id it gave.
    async fn read_response_stream(
        &self,
        id: OutboundId,
        mut response: reqwest::Response,
    ) -> Result<Value, LinkError> {
        let mut last_event: Option<String> = None;
        let mut retry = DEFAULT_RETRY;
        loop {
            let mut events = SseStream::from_bytes_stream(response.bytes_stream());
            let mut failure = None;
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(e) => {
                        failure = Some(http_wire::read_error(&e));
                        break;
                    }
                };
                if let Some(ms) = event.retry {
                    retry = Duration::from_millis(ms);
                }
                if let Some(event_id) = event.id {
                    last_event = (!event_id.is_empty()).then_some(event_id);
                }
                let Some(data) = event.data.filter(|d| !d.is_empty()) else {
                    continue;
                };
                match http_wire::decode(data.as_bytes(), Some(id))? {
                    Message::Response {
                        id: Some(answered),
                        outcome,
                    } if answered == id => return outcome,
                    Message::Response { .. } => {
                        tracing::debug!("a response to another request on a request's stream")
                    }
                    Message::Incoming(message) => {
                        // The relay gone means nobody wants the messages.
                        let _ = self.incoming.send(message).await;
                    }
                }
            }
            let Some(last) = last_event.as_deref() else {
                return Err(failure.unwrap_or_else(|| LinkError::Transport {
                    reason: "the upstream ended the response stream before the response".into(),
                    delivered: true,
                }));
            };
            if failure.is_none() {
                // Ended on purpose, to be polled.
                let _ = self
                    .incoming
                    .send(Incoming::StreamClosed { related: id })
                    .await;
            }
            tokio::time::sleep(retry).await;
            response = self.resume(last).await?;
        }
    }

    /// GET with `Last-Event-ID`: the rest of a stream that dropped. The
    /// request was delivered, so every failure says so.
    async fn resume(&self, last_event: &str) -> Result<reqwest::Response, LinkError> {
        let unresumable = |reason: String| LinkError::Transport {
            reason: format!("the response stream dropped and could not be resumed: {reason}"),
            delivered: true,
        };
        let response = self
            .stream_request(Some(last_event))
            .ok_or_else(|| unresumable("the event id cannot be sent in a header".into()))?
            .send()
            .await
            .map_err(|e| unresumable(e.to_string()))?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND && read(&self.session).is_some() {
            return Err(self.session_gone(true));
        }
        if !status.is_success() || !is_event_stream(response.headers()) {
            let body = response.bytes().await.unwrap_or_default();
            return Err(unresumable(format!(
                "HTTP {status}: {}",
                http_wire::excerpt(&body)
            )));
        }
        Ok(response)
    }

    /// A GET for an event stream, resuming after `last_event` if given;
    /// `None` when that id cannot be a header.
    fn stream_request(&self, last_event: Option<&str>) -> Option<reqwest::RequestBuilder> {
        let mut headers = self.version_headers();
        headers.insert(ACCEPT, ACCEPT_STREAM);
        if let Some(last) = last_event {
            headers.insert(HEADER_LAST_EVENT_ID, HeaderValue::from_str(last).ok()?);
        }
        Some(
            self.shared
                .client
                .get(self.shared.url.clone())
                .headers(headers),
        )
    }
}

/// The standalone GET stream: the upstream's messages that relate to no
/// request, for as long as the link is open. 405 means the upstream offers
/// none; 404 that the session is gone.
async fn listen(inner: Arc<Inner>) {
    let mut last_event: Option<String> = None;
    let mut retry = DEFAULT_RETRY;
    let mut backoff = LISTEN_BACKOFF;
    while !inner.closed.load(Ordering::Acquire) {
        let Some(request) = inner.stream_request(last_event.as_deref()) else {
            last_event = None;
            continue;
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "the upstream's standalone stream cannot open");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
                continue;
            }
        };
        match response.status() {
            StatusCode::METHOD_NOT_ALLOWED => return,
            StatusCode::NOT_FOUND => {
                inner.closed.store(true, Ordering::Release);
                return;
            }
            s if !s.is_success() || !is_event_stream(response.headers()) => {
                tracing::debug!(status = %s, "the upstream refused its standalone stream");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
                continue;
            }
            _ => backoff = LISTEN_BACKOFF,
        }
        let mut events = SseStream::from_bytes_stream(response.bytes_stream());
        while let Some(Ok(event)) = events.next().await {
            if let Some(ms) = event.retry {
                retry = Duration::from_millis(ms);
            }
            if let Some(event_id) = event.id {
                last_event = (!event_id.is_empty()).then_some(event_id);
            }
            let Some(data) = event.data.filter(|d| !d.is_empty()) else {
                continue;
            };
            match http_wire::decode(data.as_bytes(), None) {
                Ok(Message::Incoming(message)) => {
                    if inner.incoming.send(message).await.is_err() {
                        return;
                    }
                }
                Ok(Message::Response { .. }) => {
                    tracing::debug!("a response on the standalone stream")
                }
                Err(e) => tracing::warn!(error = %e, "the upstream's standalone stream"),
            }
        }
        tokio::time::sleep(retry).await;
    }
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().starts_with("text/event-stream"))
}

/// A value for `Mcp-Name` and `Mcp-Param-*`: as is when it is visible ASCII, else in the
/// spec's Base64 sentinel form.
fn header_text(value: &str) -> HeaderValue {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| (0x21..0x7f).contains(&b) || b == b' ')
        && !value.starts_with(' ')
        && !value.ends_with(' ');
    if plain {
        if let Ok(v) = HeaderValue::from_str(value) {
            return v;
        }
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(value);
    // Base64's alphabet is visible ASCII.
    HeaderValue::from_str(&format!("=?base64?{encoded}?=")).unwrap_or(HeaderValue::from_static(""))
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_outside_visible_ascii_go_as_base64() {
        assert_eq!(header_text("echo"), "echo");
        assert_eq!(header_text("file:///a b.txt"), "file:///a b.txt");
        assert_eq!(header_text("héllo"), "=?base64?aMOpbGxv?=");
        assert_eq!(header_text(" lead"), "=?base64?IGxlYWQ=?=");
    }
}
