//! The client side of the 2024-11-05 HTTP+SSE transport: [`SseConnector`]
//! opens a link by GETting the upstream's event stream and waiting for its
//! `endpoint` event; every message goes to that endpoint as a POST
//! (answered 202), and every answer and message of the upstream's own
//! comes back on the one stream, responses matched to requests by id.
//! The stream is the session: when it closes the session is gone, and it
//! cannot be resumed.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use futures::{Stream, StreamExt};
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde_json::Value;
use sse_stream::{Sse, SseStream};
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use super::http::INCOMING_BUFFER;
use super::http_wire::{self, HttpConfigError, Message};
use super::{
    incoming_channel, Connector, IncomingTx, Link, LinkError, Opened, OutboundId, RpcError,
};
use crate::config::HttpConfig;

type Events = Pin<Box<dyn Stream<Item = Result<Sse, sse_stream::Error>> + Send>>;

/// Opens HTTP+SSE links to one upstream.
pub struct SseConnector {
    client: reqwest::Client,
    url: Url,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl SseConnector {
    pub fn new(config: &HttpConfig) -> Result<Self, HttpConfigError> {
        let (client, url) = http_wire::client_for(config)?;
        Ok(SseConnector {
            client,
            url,
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
        })
    }

    /// The event stream, read up to its `endpoint` event; the endpoint
    /// resolved against the stream's URL.
    async fn connect(&self) -> Result<(Events, Url), LinkError> {
        let unreachable = |reason: String| LinkError::Transport {
            reason: format!(
                "the upstream's event stream {} cannot open: {reason}",
                self.url
            ),
            delivered: false,
        };
        let response = self
            .client
            .get(self.url.clone())
            .header(ACCEPT, HeaderValue::from_static("text/event-stream"))
            .send()
            .await
            .map_err(|e| http_wire::send_error(&e))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(unreachable(format!(
                "HTTP {status}: {}",
                http_wire::excerpt(&body)
            )));
        }
        let mut events: Events = Box::pin(SseStream::from_bytes_stream(response.bytes_stream()));
        loop {
            let event = match events.next().await {
                Some(Ok(event)) => event,
                Some(Err(e)) => return Err(unreachable(e.to_string())),
                None => return Err(unreachable("it ended before naming its endpoint".into())),
            };
            if event.event.as_deref() == Some("endpoint") {
                let data = event.data.unwrap_or_default();
                let endpoint = self
                    .url
                    .join(data.trim())
                    .map_err(|e| unreachable(format!("its endpoint {data:?}: {e}")))?;
                // Messages carry the configured headers (credentials):
                // they go nowhere but where the stream came from.
                if endpoint.origin() != self.url.origin() {
                    return Err(unreachable(format!(
                        "its endpoint {endpoint} is not of the stream's origin"
                    )));
                }
                return Ok((events, endpoint));
            }
        }
    }
}

#[async_trait]
impl Connector for SseConnector {
    /// A new session always: the transport cannot resume one.
    async fn open(&self, _resume: Option<&str>) -> Result<Opened, LinkError> {
        let (events, endpoint) = tokio::time::timeout(self.connect_timeout, self.connect())
            .await
            .map_err(|_| LinkError::Transport {
                reason: format!(
                    "the upstream's event stream {} named no endpoint within {:?}",
                    self.url, self.connect_timeout
                ),
                delivered: false,
            })??;
        let session_id = endpoint
            .query_pairs()
            // `sessionId` in the TypeScript SDK, `session_id` in Python's.
            .find(|(k, _)| k == "sessionId" || k == "session_id")
            .map(|(_, v)| v.into_owned());
        let (tx, incoming) = incoming_channel(INCOMING_BUFFER);
        let state = Arc::new(State {
            pending: DashMap::new(),
            closed: AtomicBool::new(false),
            incoming: tx,
        });
        let reader = tokio::spawn(read_events(events, state.clone())).abort_handle();
        Ok(Opened {
            link: Arc::new(SseLink {
                client: self.client.clone(),
                endpoint,
                session_id,
                request_timeout: self.request_timeout,
                state,
                reader,
            }),
            incoming,
        })
    }
}

/// One upstream session over HTTP+SSE.
pub struct SseLink {
    client: reqwest::Client,
    /// Where messages are POSTed, as the `endpoint` event named it.
    endpoint: Url,
    session_id: Option<String>,
    request_timeout: Duration,
    state: Arc<State>,
    /// The task reading the event stream.
    reader: AbortHandle,
}

/// What the link shares with the task reading its stream.
struct State {
    /// Requests waiting for their response on the stream.
    pending: DashMap<OutboundId, oneshot::Sender<Result<Value, LinkError>>>,
    /// The stream ended, or the link was closed.
    closed: AtomicBool,
    incoming: IncomingTx,
}

impl State {
    /// No more responses will come: every waiting request fails.
    fn end(&self, reason: &str) {
        self.closed.store(true, Ordering::SeqCst);
        let ids: Vec<OutboundId> = self.pending.iter().map(|e| *e.key()).collect();
        for id in ids {
            if let Some((_, waiter)) = self.pending.remove(&id) {
                let _ = waiter.send(Err(LinkError::Gone {
                    reason: reason.to_string(),
                    delivered: true,
                }));
            }
        }
    }

    fn check_open(&self) -> Result<(), LinkError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(LinkError::Gone {
                reason: "the upstream's event stream is closed".into(),
                delivered: false,
            });
        }
        Ok(())
    }
}

/// Takes the pending entry back when a request ends any way but by its
/// response.
struct Waiting<'a> {
    state: &'a State,
    id: OutboundId,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.state.pending.remove(&self.id);
    }
}

impl SseLink {
    /// POSTs one message to the endpoint, which accepts it with 202.
    async fn post(&self, body: bytes::Bytes) -> Result<(), LinkError> {
        let response = self
            .client
            .post(self.endpoint.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body)
            .send()
            .await
            .map_err(|e| http_wire::send_error(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status == StatusCode::NOT_FOUND {
            self.state.closed.store(true, Ordering::SeqCst);
            return Err(LinkError::Gone {
                reason: format!("the upstream does not know the endpoint {}", self.endpoint),
                delivered: false,
            });
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(http_wire::status_error(status, &body))
    }

    async fn timed<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, LinkError>>,
    ) -> Result<T, LinkError> {
        tokio::time::timeout(self.request_timeout, work)
            .await
            .unwrap_or(Err(LinkError::Timeout(self.request_timeout)))
    }
}

impl Drop for SseLink {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[async_trait]
impl Link for SseLink {
    async fn request(
        &self,
        id: OutboundId,
        method: &str,
        params: Option<&Value>,
    ) -> Result<Value, LinkError> {
        let (tx, rx) = oneshot::channel();
        self.state.pending.insert(id, tx);
        let _waiting = Waiting {
            state: &self.state,
            id,
        };
        // Checked after the entry is in: the reader fails every entry it
        // finds once it has marked the stream closed.
        self.state.check_open()?;
        let body = http_wire::encode_request(Some(id), method, params);
        self.timed(async {
            self.post(body).await?;
            rx.await.unwrap_or_else(|_| {
                Err(LinkError::Gone {
                    reason: "the upstream's event stream is closed".into(),
                    delivered: true,
                })
            })
        })
        .await
    }

    async fn notify(&self, method: &str, params: Option<&Value>) -> Result<(), LinkError> {
        self.state.check_open()?;
        let body = http_wire::encode_request(None, method, params);
        self.timed(self.post(body)).await
    }

    async fn respond(&self, id: Value, outcome: Result<Value, RpcError>) -> Result<(), LinkError> {
        self.state.check_open()?;
        let body = http_wire::encode_response(&id, &outcome);
        self.timed(self.post(body)).await
    }

    /// The endpoint's session id parameter, if it has one: for logs only.
    fn session_id(&self) -> Option<String> {
        self.session_id.clone()
    }

    /// 2024-11-05 has no version header.
    fn set_protocol_version(&self, _version: &str) {}

    fn is_closed(&self) -> bool {
        self.state.closed.load(Ordering::SeqCst)
    }

    /// Closing the event stream ends the session.
    async fn close(&self) {
        self.reader.abort();
        self.state.end("the link was closed");
    }
}

/// Reads the event stream until it ends: responses to their requests, the
/// rest to the relay.
async fn read_events(mut events: Events, state: Arc<State>) {
    let reason = loop {
        let event = match events.next().await {
            Some(Ok(event)) => event,
            Some(Err(e)) => break format!("the upstream's event stream failed: {e}"),
            None => break "the upstream closed its event stream".to_string(),
        };
        if !matches!(event.event.as_deref(), None | Some("message")) {
            continue;
        }
        let Some(data) = event.data.filter(|d| !d.is_empty()) else {
            continue;
        };
        match http_wire::decode(data.as_bytes(), None) {
            Ok(Message::Response {
                id: Some(id),
                outcome,
            }) => {
                if let Some((_, waiter)) = state.pending.remove(&id) {
                    let _ = waiter.send(outcome);
                }
            }
            Ok(Message::Response { id: None, .. }) => {
                tracing::debug!("a response to no request of the gateway's")
            }
            Ok(Message::Incoming(message)) => {
                // The relay gone means nobody wants the messages.
                let _ = state.incoming.send(message).await;
            }
            Err(e) => tracing::warn!(error = %e, "the upstream's event stream"),
        }
    };
    state.end(&reason);
}
