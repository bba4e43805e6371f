//! Upstream MCP servers as the domain sees them: their names, how healthy
//! they are, and the durable mapping from a client session to the upstream
//! session the gateway holds for it. The connectors themselves live in
//! `sessiongate-gateway`; the mapping is stored through
//! [`UpstreamMappingStore`](crate::store::UpstreamMappingStore).

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::clock::Timestamp;
use crate::ids::SessionId;

/// An upstream's configured name: what its tools are namespaced with
/// (`NAME__tool`). Letters, digits, `-` and `_`; 1 to 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UpstreamName(String);

/// A name that cannot name an upstream.
#[derive(Debug, thiserror::Error)]
#[error("invalid upstream name {0:?}: use 1 to 64 letters, digits, '-' or '_'")]
pub struct InvalidUpstreamName(pub String);

impl UpstreamName {
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidUpstreamName> {
        let name = name.into();
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(UpstreamName(name))
        } else {
            Err(InvalidUpstreamName(name))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UpstreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How an upstream is doing, as operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamStatus {
    /// Answering.
    Up,
    /// Answering, but it failed or restarted recently.
    Degraded,
    /// Not answering: it cannot be started or reached, or it is backing off
    /// after crashing again and again.
    Down,
}

impl UpstreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamStatus::Up => "up",
            UpstreamStatus::Degraded => "degraded",
            UpstreamStatus::Down => "down",
        }
    }
}

/// What the gateway holds for one client session at one upstream: enough
/// to use the upstream session again after the gateway restarts, or to
/// start a new one the same way.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamMapping {
    pub session_id: SessionId,
    pub upstream: UpstreamName,
    /// The upstream's `Mcp-Session-Id`; `None` for stdio and for upstreams
    /// that issue none.
    pub upstream_session_id: Option<String>,
    /// The revision the upstream negotiated.
    pub protocol_version: String,
    /// The `params` of the `initialize` the gateway sent.
    pub initialize_params: Value,
    /// What the client set that must survive a new upstream session: the
    /// log level it asked for, and the resources it subscribed to (as the
    /// upstream names them).
    pub log_level: Option<String>,
    pub subscriptions: Vec<String>,
    pub updated_at: Timestamp,
}

/// One upstream as `GET /api/mcp/upstreams` and `/metrics` report it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpstreamReport {
    pub name: UpstreamName,
    /// `stdio`, `streamable-http` or `sse`.
    pub transport: &'static str,
    /// For stdio: `per-session` or `shared`.
    pub mode: Option<&'static str>,
    pub status: UpstreamStatus,
    /// Children running now (stdio), or upstream sessions held (HTTP).
    pub processes: u64,
    /// Upstream sessions started again after one was lost, since the start.
    pub restarts: u64,
    /// The last failure, with the upstream's last stderr line when a child
    /// exited.
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
    /// Client sessions (and stateless clients) holding an upstream session.
    pub sessions_mapped: u64,
    /// Requests relayed and failed, since the start.
    pub requests: u64,
    pub errors: u64,
    /// Latency of relayed requests, in milliseconds; `None` before the
    /// first.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// What happened to an upstream, for the live event stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum UpstreamEvent {
    /// An upstream session was started again after it was lost (a child
    /// exited, an HTTP upstream forgot the session); `session_id` is the
    /// client session it serves, if any.
    UpstreamRestarted {
        upstream: UpstreamName,
        session_id: Option<SessionId>,
        reason: String,
        at: Timestamp,
    },
    /// The upstream cannot be used: it failed to start, is unreachable, or
    /// backs off after crashing again and again.
    UpstreamDown {
        upstream: UpstreamName,
        error: String,
        at: Timestamp,
    },
    /// It answers again (or for the first time).
    UpstreamUp {
        upstream: UpstreamName,
        at: Timestamp,
    },
}

/// The gateway as monitoring sees it: implemented by the gateway, read by
/// the management API, `/metrics` and the live stream.
pub trait UpstreamMonitor: Send + Sync + 'static {
    /// Every configured upstream, in configuration order.
    fn reports(&self) -> Vec<UpstreamReport>;

    /// Events from now on. Lossy like the lifecycle's: a receiver that falls
    /// behind misses some and reads [`reports`](Self::reports) again.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<UpstreamEvent>;
}
