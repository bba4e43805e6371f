//! sessiongate's management API: the reference system's session paths and
//! JSON field names, behind an admin bearer token.
//!
//! This module owns the router and its shared state: which path goes to which
//! handler, which paths are public (`/api/health`, `/api/openapi.json`) and
//! which need the admin token (everything under `/api/mcp/`). The handlers
//! live in [`sessions`], [`health`], [`reconnect`], [`analytics`],
//! [`tasks`] and [`upstreams`], the
//! live event stream in [`live`], Prometheus in [`metrics`], authentication
//! in [`auth`], the error shape in [`error`] and the OpenAPI document in
//! [`openapi`] (its schema mirrors of core types in [`schema`]). The binary merges [`router`] with the MCP transport's and
//! the dashboard's routers.

pub mod analytics;
pub mod auth;
pub mod error;
pub mod health;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod reconnect;
pub mod schema;
pub mod sessions;
pub mod tasks;
pub mod upstreams;

use std::fmt;
use std::sync::Arc;

use axum::middleware::{from_fn_with_state, map_response};
use axum::routing::{any, get};
use axum::Router;
use sessiongate_core::analytics::Analytics;
use sessiongate_core::lifecycle::{
    Lifecycle, Reclaim, RequestLog, SessionManager, StatelessClients, Tasks,
};
use sessiongate_core::store::{RequestLogStore, SessionStore};
use sessiongate_core::store_health::{Monitored, StoreHealth};
use sessiongate_core::upstream::UpstreamMonitor;
use sessiongate_core::Timestamp;

pub use auth::load_or_create_admin_token;
pub use error::ApiError;

/// Whether the MCP server offers a tool of this name: the analytics routes
/// mark the others `unknown`, names clients tried rather than tools.
pub type ToolCatalog = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub manager: Arc<SessionManager>,
    /// Reconnect tokens, issued to admins and redeemed by clients.
    pub reclaim: Arc<Reclaim>,
    /// The request log's writer, for its queue depth.
    pub request_log: Arc<RequestLog>,
    /// Stateless clients, listed beside sessions.
    pub stateless: Arc<StatelessClients>,
    /// Tasks of the tasks extension.
    pub tasks: Arc<Tasks>,
    /// The analytics reports.
    pub analytics: Analytics,
    /// Ended sessions and their statistics, read straight from the store.
    pub sessions: Arc<dyn SessionStore>,
    /// The logged requests, for a session's latest ones.
    pub requests: Arc<dyn RequestLogStore>,
    /// Which store the server uses and whether it works, for `/api/health`.
    pub store_health: Arc<StoreHealth>,
    /// The bearer token that admits requests to `/api/mcp/...`. An empty
    /// token admits nothing.
    pub admin_token: Arc<str>,
    /// When the API started, by the manager's clock (for `uptime_seconds`).
    pub started_at: Timestamp,
    /// The live event stream's fan-out, shared by its subscribers.
    pub live: Arc<live::LiveHub>,
    /// The MCP server's tool catalog, for the analytics' `unknown` marks.
    pub known_tool: ToolCatalog,
    /// The gateway's upstreams, for their list, metrics and live events;
    /// `None` on a server without a gateway.
    pub upstreams: Option<Arc<dyn UpstreamMonitor>>,
}

impl ApiState {
    /// State over a running lifecycle, started now, reading `store` (the
    /// one the lifecycle writes) through the ports the handlers use.
    pub fn new(
        lifecycle: &Lifecycle,
        store: &Arc<Monitored>,
        admin_token: impl Into<Arc<str>>,
    ) -> Self {
        ApiState {
            manager: lifecycle.sessions.clone(),
            reclaim: lifecycle.reclaim.clone(),
            request_log: lifecycle.request_log.clone(),
            stateless: lifecycle.stateless.clone(),
            tasks: lifecycle.tasks.clone(),
            analytics: Analytics::new(store.clone(), lifecycle.sessions.clock().clone()),
            sessions: store.clone(),
            requests: store.clone(),
            store_health: store.health().clone(),
            admin_token: admin_token.into(),
            started_at: lifecycle.sessions.now(),
            live: Arc::default(),
            known_tool: Arc::new(|_| true),
            upstreams: None,
        }
    }

    /// Sets the gateway whose upstreams the API reports (`None`: a server
    /// without upstreams).
    pub fn upstreams(mut self, monitor: Option<Arc<dyn UpstreamMonitor>>) -> Self {
        self.upstreams = monitor;
        self
    }

    /// Sets the tool catalog the analytics routes check names against
    /// (without one, every name counts as a tool).
    pub fn known_tool(mut self, known: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.known_tool = Arc::new(known);
        self
    }
}

impl fmt::Debug for ApiState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiState")
            .field("admin_token", &"<redacted>")
            .field("started_at", &self.started_at)
            .finish_non_exhaustive()
    }
}

/// The management API's routes:
///
/// * public: `GET /api/health`, `GET /api/openapi.json`;
/// * admin token required: `GET /api/mcp/sessions`,
///   `GET /api/mcp/sessions/health`, `GET /api/mcp/sessions/disconnected`,
///   `GET|DELETE /api/mcp/sessions/{id}`, `GET /api/mcp/sessions/{id}/token`,
///   `GET /api/mcp/clients`, `GET /api/mcp/tasks`, `GET /api/mcp/tasks/{id}`,
///   `GET /api/mcp/upstreams`,
///   `GET /api/mcp/analytics`,
///   `GET /api/mcp/usage/summary`, `GET /api/mcp/sessions/timeline`,
///   `GET /metrics` (Prometheus);
/// * the reconnect token as credential: `POST /api/mcp/sessions/{id}/reconnect`;
/// * the admin token as a bearer header or WebSocket subprotocol:
///   `GET /api/mcp/ws/sessions` (the live event stream).
///
/// Any other path under `/api` is a JSON 404 (after authentication under
/// `/api/mcp`). The router sets no fallback, so it merges freely.
pub fn router(state: ApiState) -> Router {
    // Static segments win over `{id}` in axum's router, so
    // `/sessions/health`, `/sessions/disconnected` and `/sessions/timeline`
    // are never taken as ids.
    let admin = Router::new()
        .route("/api/mcp/sessions", get(sessions::list_sessions))
        .route("/api/mcp/sessions/health", get(health::session_health))
        .route(
            "/api/mcp/sessions/disconnected",
            get(sessions::disconnected_sessions),
        )
        .route(
            "/api/mcp/sessions/{id}",
            get(sessions::show_session).delete(sessions::terminate_session),
        )
        .route("/api/mcp/sessions/{id}/token", get(reconnect::issue_token))
        .route("/api/mcp/sessions/timeline", get(analytics::timeline))
        .route("/api/mcp/clients", get(sessions::list_clients))
        .route("/api/mcp/tasks", get(tasks::list_tasks))
        .route("/api/mcp/tasks/{id}", get(tasks::show_task))
        .route("/api/mcp/upstreams", get(upstreams::list_upstreams))
        .route("/api/mcp/analytics", get(analytics::analytics))
        .route("/api/mcp/usage/summary", get(analytics::usage_summary))
        .route("/metrics", get(metrics::render))
        .route("/api/mcp", any(sessions::not_found))
        .route("/api/mcp/{*rest}", any(sessions::not_found))
        .route_layer(from_fn_with_state(state.clone(), auth::require_admin));

    Router::new()
        .route("/api/health", get(health::service_health))
        .route("/api/openapi.json", get(openapi::openapi_json))
        // Authenticates itself: browsers put the token in a subprotocol.
        .route("/api/mcp/ws/sessions", get(live::ws_sessions))
        // The reconnect token is this route's credential.
        .route(
            "/api/mcp/sessions/{id}/reconnect",
            axum::routing::post(reconnect::reconnect),
        )
        .route("/api/{*rest}", any(sessions::not_found))
        .merge(admin)
        .layer(map_response(error::json_errors))
        .with_state(state)
}
