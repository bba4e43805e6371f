//! The endpoint's settings and state: what every request handler reads
//! (the session manager, the dispatcher, per-session transport state, live
//! streams) and the caches and limits the transport keeps.

use std::sync::Arc;
use std::time::Duration;

use sessiongate_core::lifecycle::{
    EventLog, Lifecycle, RateLimiter, Reclaim, RequestLog, SessionManager, StatelessClients, Tasks,
};

use super::announce;
use crate::dispatch::Dispatcher;
use crate::guard::OriginPolicy;
use crate::identity_cache::IdentityCache;
use crate::input::{self, RequestStates, StateKey};
use crate::listen::Listeners;
use crate::metrics::RequestDurations;
use crate::peers::Peers;
use crate::streams::Streams;

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
    /// `subscriptions/listen` streams one remote address (an IPv6 /64) may
    /// hold open at once; past it, 429.
    pub max_listen_streams: usize,
    /// Signs the `requestState` of 2026-07-28 requests that ask for input;
    /// `None` generates one that lasts as long as the process.
    pub request_state_key: Option<StateKey>,
    /// How long a `requestState` is honoured after it is issued.
    pub request_state_ttl: Duration,
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
            max_listen_streams: 32,
            request_state_key: None,
            request_state_ttl: input::DEFAULT_TTL,
        }
    }
}

/// Everything the MCP endpoint needs. Every request takes a clone, so it
/// is one reference count, not one per service.
#[derive(Clone)]
pub struct McpState(Arc<Shared>);

/// What [`McpState`] shares between requests.
pub struct Shared {
    pub manager: Arc<SessionManager>,
    pub request_log: Arc<RequestLog>,
    pub event_log: Arc<EventLog>,
    pub reclaim: Arc<Reclaim>,
    pub stateless: Arc<StatelessClients>,
    pub tasks: Arc<Tasks>,
    pub dispatcher: Arc<Dispatcher>,
    pub peers: Peers,
    pub streams: Streams,
    /// The open `subscriptions/listen` streams.
    pub listeners: Listeners,
    pub config: Arc<TransportConfig>,
    pub(super) identities: Arc<IdentityCache>,
    pub(super) durations: Arc<RequestDurations>,
    pub(super) initialize_limiter: Arc<RateLimiter>,
}

impl McpState {
    /// The endpoint's state. Starts telling clients of catalog and task
    /// changes, so it must be called within a Tokio runtime. `peers` must be
    /// subscribed to the lifecycle's end-of-session notification, so an
    /// ended session's transport state goes with it.
    pub fn new(
        lifecycle: &Lifecycle,
        peers: Peers,
        dispatcher: Dispatcher,
        config: TransportConfig,
    ) -> Self {
        let manager = lifecycle.sessions.clone();
        let key = config
            .request_state_key
            .clone()
            .unwrap_or_else(StateKey::generate);
        let dispatcher =
            dispatcher.with_request_states(RequestStates::new(&key, config.request_state_ttl));
        let state = McpState(Arc::new(Shared {
            identities: Arc::new(IdentityCache::new(manager.config().max_stateless_clients)),
            initialize_limiter: Arc::new(RateLimiter::new(
                config.initialize_per_second,
                config.initialize_burst,
            )),
            manager,
            request_log: lifecycle.request_log.clone(),
            event_log: lifecycle.event_log.clone(),
            reclaim: lifecycle.reclaim.clone(),
            stateless: lifecycle.stateless.clone(),
            tasks: lifecycle.tasks.clone(),
            dispatcher: Arc::new(dispatcher),
            peers,
            streams: Streams::default(),
            listeners: Listeners::new(
                config.max_listen_streams,
                lifecycle.tasks.config().poll_interval,
            ),
            config: Arc::new(config),
            durations: Arc::default(),
        }));
        announce::announce(
            state.dispatcher.catalog(),
            state.peers.clone(),
            state.listeners.clone(),
        );
        announce::announce_tasks(
            lifecycle.sessions.observe(),
            &state.tasks,
            state.listeners.clone(),
        );
        state
    }

    /// Ends every open stream, so a graceful shutdown is not held up by
    /// clients' standalone GET streams or listen streams (which get their
    /// final empty result). Sessions stay active.
    pub fn close_streams(&self) {
        self.listeners.close_all();
        self.peers.clear();
        self.streams.close_connections();
    }
}

impl std::ops::Deref for McpState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
