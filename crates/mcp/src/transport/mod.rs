//! MCP Streamable HTTP at `/mcp`: POST, GET and DELETE, for both protocol
//! generations side by side.
//!
//! Each request's facts are read once into an `Inbound` (after the
//! Origin/Host guard) and passed along. A POST is classified once (`post`):
//! `initialize` opens a session (`initialize`); a request whose `_meta` or
//! `MCP-Protocol-Version` names a stateless revision is served without one
//! (`stateless`); anything else must carry a live `Mcp-Session-Id`
//! (`sessionful`). `run` runs the handler: the answer is plain JSON unless
//! the handler talks to the client while it runs, in which case it becomes
//! an SSE stream; `finish` writes the answer and accounts for the request.
//! GET opens or resumes a session's stream (`get`), DELETE ends the session
//! (`delete`), and a change of the catalog reaches the sessions' standalone
//! streams (`list_changed`).

mod delete;
mod finish;
mod get;
mod inbound;
mod initialize;
mod list_changed;
mod post;
mod responses;
mod run;
mod sessionful;
mod stateless;

use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use axum::routing::post as on_post;
use axum::Router;
use sessiongate_core::lifecycle::{RateLimiter, SessionManager};

use crate::dispatch::Dispatcher;
use crate::guard::OriginPolicy;
use crate::identity_cache::IdentityCache;
use crate::metrics::RequestDurations;
use crate::peers::Peers;
use crate::streams::Streams;
use inbound::Inbound;

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
    pub dispatcher: Arc<Dispatcher>,
    pub peers: Peers,
    pub streams: Streams,
    pub config: Arc<TransportConfig>,
    identities: Arc<IdentityCache>,
    durations: Arc<RequestDurations>,
    initialize_limiter: Arc<RateLimiter>,
}

impl McpState {
    /// The endpoint's state. Starts telling sessions of catalog changes,
    /// so it must be called within a Tokio runtime.
    pub fn new(
        manager: Arc<SessionManager>,
        dispatcher: Dispatcher,
        config: TransportConfig,
    ) -> Self {
        let state = McpState {
            identities: Arc::new(IdentityCache::new(manager.config().max_stateless_clients)),
            initialize_limiter: Arc::new(RateLimiter::new(
                config.initialize_per_second,
                config.initialize_burst,
            )),
            manager,
            dispatcher: Arc::new(dispatcher),
            peers: Peers::default(),
            streams: Streams::default(),
            config: Arc::new(config),
            durations: Arc::default(),
        };
        list_changed::announce(&state);
        state
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

/// The `/mcp` route: one handler per verb, and for any other verb the
/// same 405 the handlers give, after the same guard.
pub fn router(state: McpState) -> Router {
    let verbs = on_post(post::post)
        .get(get::get)
        .delete(delete::delete)
        // Not GET's: axum would answer HEAD with the GET handler.
        .head(not_allowed)
        .fallback(not_allowed);
    Router::new().route("/mcp", verbs).with_state(state)
}

/// Reading the [`Inbound`] checks the guard; a refusal is the answer.
async fn not_allowed(_: Inbound) -> Response {
    responses::method_not_allowed("GET, POST, DELETE")
}
