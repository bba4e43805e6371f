//! Schema mirrors of the core types the management API's responses carry
//! (`SessionRecord`, `RequestLogEntry`, the health figures, ...): core does
//! not depend on utoipa, so these structs exist only to describe the JSON
//! that core's `Serialize` writes. The handlers' response types point at
//! them and the OpenAPI document lists them; the integration tests check
//! that each mirror lists exactly the fields the real JSON has.

use std::collections::BTreeMap;

use utoipa::ToSchema;

/// A session, as stored and reported (core's `SessionRecord`). Token hashes
/// are never part of it.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = Session)]
pub struct SessionSchema {
    /// 32 lowercase hexadecimal digits, as in `Mcp-Session-Id`.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    session_id: String,
    /// Product detected from `client_name` (Claude Code, Cursor, Windsurf,
    /// Cline, Kiro, Augment, Gemini), else the raw name, else `unknown`.
    client_type: String,
    /// `clientInfo.name` from `initialize`.
    client_name: Option<String>,
    /// `clientInfo.version` from `initialize`.
    client_version: Option<String>,
    /// `capabilities` from `initialize`, as sent.
    #[schema(value_type = Object)]
    client_capabilities: serde_json::Value,
    /// The negotiated protocol revision.
    protocol_version: String,
    /// The authenticated user, when known.
    principal: Option<String>,
    /// The client's address at `initialize`.
    remote_addr: Option<String>,
    /// The client's `User-Agent` at `initialize`.
    user_agent: Option<String>,
    #[schema(format = DateTime)]
    connected_at: String,
    /// The last sign of life: a request, or the close of a stream.
    #[schema(format = DateTime)]
    last_activity: String,
    status: SessionStatusSchema,
    #[schema(format = DateTime)]
    disconnected_at: Option<String>,
    disconnect_reason: Option<DisconnectReasonSchema>,
    /// Seconds from connection to end; null while active.
    total_duration: Option<f64>,
    /// Requests made, `initialize` included.
    request_count: u64,
    /// The raw `clientInfo` and anything the transport adds.
    #[schema(value_type = Object)]
    metadata: serde_json::Value,
    /// How many times the session was reclaimed with a reconnect token.
    reconnect_count: u64,
}

/// Whether a session can still be used.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = SessionStatus)]
#[schema(rename_all = "snake_case")]
pub enum SessionStatusSchema {
    Active,
    Disconnected,
}

/// Why a session ended.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = DisconnectReason)]
#[schema(rename_all = "snake_case")]
pub enum DisconnectReasonSchema {
    ClientDisconnect,
    Timeout,
    AdminTerminated,
    ServerShutdown,
    Error,
}

/// How a request ended.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = RequestStatus)]
#[schema(rename_all = "snake_case")]
pub enum RequestStatusSchema {
    Success,
    Error,
}

/// One logged MCP request (core's `RequestLogEntry`).
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = RequestLogEntry)]
pub struct RequestLogSchema {
    /// The session, for sessionful traffic.
    session_id: Option<String>,
    /// The client key, for stateless traffic.
    client_key: Option<String>,
    /// The JSON-RPC method.
    method: String,
    /// The tool, for `tools/call`.
    tool_name: Option<String>,
    #[schema(format = DateTime)]
    started_at: String,
    /// Milliseconds from receipt to response, microsecond precision.
    duration_ms: f64,
    status: RequestStatusSchema,
    /// The JSON-RPC error code, for errors.
    error_code: Option<i64>,
    error_message: Option<String>,
    /// Request body size in bytes.
    bytes_in: u64,
    /// Response body size in bytes.
    bytes_out: u64,
    /// The upstream the request was relayed to; `null` for the built-in
    /// tools and the protocol's own methods.
    upstream: Option<String>,
}

/// Sessions by status, over the whole store.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = StatusBreakdown)]
pub struct StatusBreakdownSchema {
    active: u64,
    disconnected: u64,
    /// `active + disconnected`.
    total: u64,
}

/// Active sessions by idle time (time since last activity); bounds are
/// configurable, 5 and 10 minutes by default.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = AgeDistribution)]
pub struct AgeDistributionSchema {
    /// Idle less than 5 minutes.
    healthy: u64,
    /// Idle 5 to 10 minutes.
    aging: u64,
    /// Idle 10 minutes or more.
    stale: u64,
}

/// Over the N sessions connected in the last 24 h (the health window).
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = ConnectionHealth)]
pub struct ConnectionHealthSchema {
    /// Mean of (end, or now while active) − connected_at, seconds, 1 decimal.
    avg_duration_seconds: f64,
    /// N / 24, 2 decimals.
    sessions_per_hour: f64,
    /// Ended / N × 100, 1 decimal.
    disconnect_rate_percent: f64,
    /// N.
    total_sessions_24h: u64,
}

/// One of the 10 sessions with the latest activity.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = RecentActivity)]
pub struct RecentActivitySchema {
    session_id: String,
    client_type: String,
    status: SessionStatusSchema,
    /// Minutes since the last activity, 1 decimal.
    age_minutes: f64,
    /// Minutes from connection to its end, or to now while active, 1 decimal.
    uptime_minutes: f64,
}

/// Over every session that ended in the period.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = DisconnectStats)]
pub struct DisconnectStatsSchema {
    total_disconnected: u64,
    /// Sessions per disconnect reason.
    disconnect_reasons: BTreeMap<String, u64>,
    /// Mean `total_duration`, seconds; 0 when none.
    avg_duration_seconds: f64,
    max_duration_seconds: f64,
    min_duration_seconds: f64,
}

/// A stateless (2026-07-28) client: its requests carry no session, so they
/// are attributed to a key made of the auth principal and `clientInfo`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = Client)]
pub struct ClientSchema {
    client_key: String,
    client_type: String,
    client_name: Option<String>,
    client_version: Option<String>,
    #[schema(value_type = Object)]
    client_capabilities: serde_json::Value,
    /// The protocol revision of its first request.
    protocol_version: String,
    principal: Option<String>,
    remote_addr: Option<String>,
    user_agent: Option<String>,
    #[schema(format = DateTime)]
    first_seen: String,
    #[schema(format = DateTime)]
    last_seen: String,
    /// Requests seen in the health window (those before a restart counted from the request log).
    request_count: u64,
}

/// How an upstream is doing (core's `UpstreamStatus`).
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = UpstreamStatus)]
#[schema(rename_all = "lowercase")]
pub enum UpstreamStatusSchema {
    /// Answering.
    Up,
    /// Answering, but it failed or restarted recently.
    Degraded,
    /// Not answering: it cannot be started or reached, or it backs off after
    /// crashing again and again.
    Down,
}

/// One upstream MCP server the gateway relays to (core's `UpstreamReport`).
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = UpstreamReport)]
pub struct UpstreamReportSchema {
    /// The configured name, which its tools are namespaced with.
    name: String,
    /// `stdio`, `streamable-http` or `sse`.
    transport: String,
    /// For stdio: `per-session` or `shared`.
    mode: Option<String>,
    status: UpstreamStatusSchema,
    /// Children running now (stdio), or upstream sessions held (HTTP).
    processes: u64,
    /// Upstream sessions started again after one was lost, since the start.
    restarts: u64,
    /// The last failure, with the upstream's last stderr line when a child
    /// exited.
    last_error: Option<String>,
    #[schema(format = DateTime)]
    last_error_at: Option<String>,
    /// Client sessions (and stateless clients) holding an upstream session.
    sessions_mapped: u64,
    /// Requests relayed since the start.
    requests: u64,
    /// Relayed requests that failed, since the start.
    errors: u64,
    /// Median latency of relayed requests, in milliseconds.
    p50_ms: Option<f64>,
    /// 99th-percentile latency of relayed requests, in milliseconds.
    p99_ms: Option<f64>,
}
