//! The seam to one upstream server session: a [`Link`] carries JSON-RPC
//! both ways as the transport requires, and a [`Connector`] opens links to
//! one configured upstream. Above links everything is transport-neutral:
//! the handshake, routing, id rewriting and healing are the relay's.

pub mod http;
mod http_wire;
pub mod sse;
pub mod stdio;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::mpsc;

pub use http::{connector_for, HttpConnector, HttpLink};
pub use http_wire::HttpConfigError;
pub use sse::{SseConnector, SseLink};

/// The gateway's id for a request it sent upstream. Unique per link, so a
/// shared child's requests from many client sessions never collide.
pub type OutboundId = u64;

/// A message the upstream sent on its own.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A notification (progress, log message, list changed, resource updated,
    /// cancelled).
    Notification {
        method: String,
        params: Option<Value>,
        /// The request it relates to, when the transport tells (a message
        /// on a Streamable HTTP request's response stream); stdio never does.
        related: Option<OutboundId>,
    },
    /// A request to the client (sampling, elicitation, roots, ping),
    /// answered with [`Link::respond`] using `id` as sent.
    Request {
        id: Value,
        method: String,
        params: Option<Value>,
        related: Option<OutboundId>,
    },
    /// The upstream ended the response stream of request `related` before
    /// answering, for the client to poll (2025-11-25, SEP-1699): the link
    /// resumes it; whoever relays the request may end its own client's
    /// stream the same way.
    StreamClosed { related: OutboundId },
}

/// What the upstream answered with a JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i32,
    pub message: String,
    pub data: Option<Value>,
}

/// Why a link could not carry a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkError {
    /// The upstream answered with a JSON-RPC error.
    #[error("{}", .0.message)]
    Rpc(RpcError),
    /// The upstream session is gone: the child exited, or the HTTP upstream
    /// answered 404 for its session id. `delivered` is false only when the
    /// request certainly never reached the upstream, so it is safe to send
    /// again on a new session.
    #[error("the upstream session is gone: {reason}")]
    Gone { reason: String, delivered: bool },
    /// No answer within the timeout.
    #[error("the upstream did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The upstream could not be reached or spoke something other than
    /// JSON-RPC; `delivered` as for [`LinkError::Gone`].
    #[error("{reason}")]
    Transport { reason: String, delivered: bool },
}

/// One upstream server session. Cheap to share; every method may be called
/// concurrently.
#[async_trait]
pub trait Link: Send + Sync + 'static {
    /// Sends request `id` and waits for its result (the `result` member of
    /// the response).
    async fn request(
        &self,
        id: OutboundId,
        method: &str,
        params: Option<&Value>,
    ) -> Result<Value, LinkError>;

    /// As [`request`](Self::request), with headers that mirror members of
    /// `params` (2026-07-28's `Mcp-Param-*`, by name without the prefix,
    /// and the member's text) where the transport has headers.
    async fn request_mirrored(
        &self,
        id: OutboundId,
        method: &str,
        params: Option<&Value>,
        _mirrored: &[(String, String)],
    ) -> Result<Value, LinkError> {
        self.request(id, method, params).await
    }

    /// Sends a notification.
    async fn notify(&self, method: &str, params: Option<&Value>) -> Result<(), LinkError>;

    /// Answers a request the upstream sent ([`Incoming::Request`]).
    async fn respond(&self, id: Value, outcome: Result<Value, RpcError>) -> Result<(), LinkError>;

    /// The upstream's session id (Streamable HTTP's `Mcp-Session-Id`), once
    /// it gave one.
    fn session_id(&self) -> Option<String>;

    /// The revision negotiated, sent on every later HTTP request
    /// (`MCP-Protocol-Version`); stdio ignores it.
    fn set_protocol_version(&self, version: &str);

    /// Whether the link is gone for good (the child exited, the HTTP session
    /// was refused): a new one must be opened.
    fn is_closed(&self) -> bool;

    /// Why it is closed, once it is and the transport knows (a child's
    /// exit status and last stderr line), for the upstream's last error.
    fn closed_reason(&self) -> Option<String> {
        None
    }

    /// Ends the upstream session: kills the child, or DELETEs the HTTP
    /// session. Idempotent.
    async fn close(&self);
}

/// A link just opened, and the messages its upstream will send on its own.
pub struct Opened {
    pub link: Arc<dyn Link>,
    pub incoming: IncomingRx,
}

/// A channel for what an upstream sends on its own, bounded to `buffer`
/// messages (backpressure, not loss).
pub fn incoming_channel(buffer: usize) -> (IncomingTx, IncomingRx) {
    let (tx, rx) = mpsc::channel(buffer);
    let sent = Arc::new(AtomicU64::new(0));
    (
        IncomingTx {
            tx,
            sent: sent.clone(),
        },
        IncomingRx { rx, sent },
    )
}

/// A link's end of [`incoming_channel`]. It counts what it sends, so the
/// relay can tell, when a response arrives, whether everything the upstream
/// sent before it was taken: a link sends a message before it delivers a
/// response that followed it.
#[derive(Clone)]
pub struct IncomingTx {
    tx: mpsc::Sender<Incoming>,
    sent: Arc<AtomicU64>,
}

impl IncomingTx {
    /// Waits for room; fails when the relay let go of the link.
    pub async fn send(&self, message: Incoming) -> Result<(), mpsc::error::SendError<Incoming>> {
        // Room first, then counted and queued with no await between: a
        // count read after a response includes every message sent ahead
        // of it, and a send dropped while waiting for room (its request
        // timed out or was cancelled) counts nothing the relay would wait
        // for in vain.
        let Ok(permit) = self.tx.reserve().await else {
            return Err(mpsc::error::SendError(message));
        };
        self.sent.fetch_add(1, Ordering::Release);
        permit.send(message);
        Ok(())
    }
}

/// The relay's end of [`incoming_channel`].
pub struct IncomingRx {
    rx: mpsc::Receiver<Incoming>,
    sent: Arc<AtomicU64>,
}

impl IncomingRx {
    /// The next message; `None` once the link is gone.
    pub async fn recv(&mut self) -> Option<Incoming> {
        self.rx.recv().await
    }

    /// How many messages the link has sent (or is sending) so far.
    pub fn sent(&self) -> Arc<AtomicU64> {
        self.sent.clone()
    }
}

/// Opens links to one configured upstream.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// A new link. `resume` names an upstream session id to use again (after
    /// the gateway restarted); a connector without sessions ignores it.
    /// Nothing is sent yet: the relay performs the handshake.
    async fn open(&self, resume: Option<&str>) -> Result<Opened, LinkError>;
}
