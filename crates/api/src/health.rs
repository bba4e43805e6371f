//! The health of the server and of its sessions: the public liveness probe
//! `/api/health` (and whether the store works), and the admin health report
//! `/api/mcp/sessions/health`, which is also the live stream's snapshot.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use sessiongate_core::health::{
    AgeDistribution, ConnectionHealth, HealthReport, RecentActivity, StatusBreakdown,
};
use sessiongate_core::Timestamp;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::sessions::session_timeout;
use crate::ApiState;

// ---------------------------------------------------------------- /api/health

/// `GET /api/health`: the server is up, and whether its store works.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceHealth {
    /// `healthy`, or `degraded` while the session store is failing (the
    /// server answers, but creating and ending sessions gets 503).
    pub status: &'static str,
    /// Why the status is `degraded`; null when healthy.
    pub reason: Option<String>,
    /// The sessiongate version.
    pub version: &'static str,
    /// The session store backend: `sqlite` or `postgres`.
    pub store: &'static str,
    /// The session store's state, as the server's last calls to it found.
    pub store_health: StoreHealthBody,
    /// Sessions active now.
    pub active_sessions: u64,
    /// Whole seconds since the management API started.
    pub uptime_seconds: u64,
}

/// The session store's state in `/api/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoreHealthBody {
    /// False from a failed write (or read) until a later one succeeds.
    pub ok: bool,
    /// When the current failure began; null while ok.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub failing_since: Option<sessiongate_core::Timestamp>,
    /// Failed store calls since the server started.
    pub errors_total: u64,
    /// Request-log rows waiting for the store.
    pub request_log_queue_depth: u64,
}

/// Liveness probe. Public: it needs no token and reveals only counts and,
/// while the store fails, which kind of call fails (never the error).
#[utoipa::path(
    get,
    path = "/api/health",
    tag = "health",
    responses((status = 200, description = "The server is up", body = ServiceHealth))
)]
pub async fn service_health(State(state): State<ApiState>) -> Json<ServiceHealth> {
    let manager = &state.manager;
    let store = state.store_health.status();
    Json(ServiceHealth {
        status: if store.ok { "healthy" } else { "degraded" },
        reason: store.reason,
        version: env!("CARGO_PKG_VERSION"),
        store: state.store_health.backend(),
        store_health: StoreHealthBody {
            ok: store.ok,
            failing_since: store.failing_since,
            errors_total: store.errors_total,
            request_log_queue_depth: state.request_log.queue_depth() as u64,
        },
        active_sessions: manager.active_count() as u64,
        uptime_seconds: manager.now().since(state.started_at).as_secs(),
    })
}

// ----------------------------------------------- GET /api/mcp/sessions/health

/// `GET /api/mcp/sessions/health`: the reference system's health report,
/// plus stateless clients and the idle timeout.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionHealth {
    #[schema(value_type = crate::schema::StatusBreakdownSchema)]
    pub status_breakdown: StatusBreakdown,
    #[schema(value_type = crate::schema::AgeDistributionSchema)]
    pub age_distribution: AgeDistribution,
    #[schema(value_type = crate::schema::ConnectionHealthSchema)]
    pub connection_health: ConnectionHealth,
    /// The 10 sessions with the latest activity, latest first.
    #[schema(value_type = Vec<crate::schema::RecentActivitySchema>)]
    pub recent_activity: Vec<RecentActivity>,
    /// When the report was made.
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: Timestamp,
    pub stateless_clients: StatelessClients,
    /// The idle timeout, in seconds.
    pub session_timeout: u64,
}

/// Stateless (2026-07-28) clients, which have no session.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatelessClients {
    /// Clients seen within the idle timeout.
    pub active: u64,
    /// Clients seen within the health window (24 h by default).
    pub total_24h: u64,
}

/// Session health: status counts, idle-age buckets, 24 h connection
/// figures and recent activity.
#[utoipa::path(
    get,
    path = "/api/mcp/sessions/health",
    tag = "sessions",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The health report", body = SessionHealth),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 503, description = "Session store unavailable", body = ErrorBody),
    )
)]
pub async fn session_health(
    State(state): State<ApiState>,
) -> Result<Json<SessionHealth>, ApiError> {
    Ok(Json(health_report(&state).await?))
}

/// The health report of `GET /api/mcp/sessions/health`, also the live
/// stream's snapshot.
pub(crate) async fn health_report(state: &ApiState) -> Result<SessionHealth, ApiError> {
    let manager = &state.manager;
    let HealthReport {
        status_breakdown,
        age_distribution,
        connection_health,
        recent_activity,
        timestamp,
    } = manager.health().await?;
    let clients = state.stateless.list();
    let active_since = timestamp.saturating_sub(manager.config().idle_timeout);
    let stateless_clients = StatelessClients {
        active: clients
            .iter()
            .filter(|c| c.last_seen >= active_since)
            .count() as u64,
        total_24h: clients.len() as u64,
    };
    Ok(SessionHealth {
        status_breakdown,
        age_distribution,
        connection_health,
        recent_activity,
        timestamp,
        stateless_clients,
        session_timeout: session_timeout(state),
    })
}
