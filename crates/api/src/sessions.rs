//! The session handlers of the management API and their request and
//! response types.
//!
//! Owns the seed-compatible shapes: the session list, detail, admin
//! terminate, disconnected-session statistics and the stateless-client
//! list (the health endpoints are in [`health`](crate::health)). Every
//! figure comes from [`SessionManager`](sessiongate_core::lifecycle::SessionManager) (live for
//! active sessions) or from the store through it; nothing here scans the
//! store. Session JSON is the core `SessionRecord` serialization, so field
//! names match the reference system and the CLI.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use sessiongate_core::lifecycle::ClientActivity;
use sessiongate_core::request_log::{RequestLogEntry, RequestStatus};
use sessiongate_core::store::{DisconnectStats, SessionQuery};
use sessiongate_core::{DisconnectReason, SessionId, SessionRecord, SessionStatus, Timestamp};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody, Params};
use crate::ApiState;

/// Sessions per page when the query does not say.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page of `GET /api/mcp/sessions`.
pub const MAX_LIMIT: u32 = 500;
/// Request-log rows shown with one session.
pub const SESSION_REQUESTS: u32 = 100;
/// The longest period of `GET /api/mcp/sessions/disconnected`, in days.
pub const MAX_DISCONNECTED_DAYS: u32 = 90;
/// The largest page of `GET /api/mcp/sessions/disconnected`.
pub const MAX_DISCONNECTED_LIMIT: u32 = 1000;

const DAY: Duration = Duration::from_secs(24 * 3600);

// ------------------------------------------------------ GET /api/mcp/sessions

/// Filters and pagination of the session list. Give either `limit`/`offset`
/// or `page`/`per_page`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only sessions with this status: `active` or `disconnected`.
    #[param(value_type = Option<crate::schema::SessionStatusSchema>)]
    pub status: Option<String>,
    /// Only sessions of this client type (exact match, e.g. `Claude Code`).
    pub client_type: Option<String>,
    /// Sessions per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Sessions to skip (default 0).
    pub offset: Option<u64>,
    /// Page number from 1; an alternative to `offset` (offset = (page − 1) × per_page).
    #[param(minimum = 1)]
    pub page: Option<u64>,
    /// Sessions per page, 1 to 500; an alias of `limit`.
    #[param(minimum = 1, maximum = 500)]
    pub per_page: Option<u32>,
}

impl ListParams {
    /// The store query these parameters ask for, or why they are invalid.
    pub fn to_query(&self) -> Result<SessionQuery, ApiError> {
        let status = match non_empty(&self.status) {
            None => None,
            Some(s) => Some(s.parse::<SessionStatus>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "invalid status {s:?}: expected \"active\" or \"disconnected\""
                ))
            })?),
        };
        let limit = match (self.limit, self.per_page) {
            (Some(_), Some(_)) => {
                return Err(ApiError::BadRequest(
                    "give limit or per_page, not both".to_string(),
                ))
            }
            (Some(n), None) | (None, Some(n)) => n,
            (None, None) => DEFAULT_LIMIT,
        };
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::BadRequest(format!(
                "limit must be between 1 and {MAX_LIMIT}, got {limit}"
            )));
        }
        let offset = match (self.offset, self.page) {
            (Some(_), Some(_)) => {
                return Err(ApiError::BadRequest(
                    "give offset or page, not both".to_string(),
                ))
            }
            (Some(offset), None) => offset,
            (None, Some(0)) => {
                return Err(ApiError::BadRequest(
                    "page counts from 1, got 0".to_string(),
                ))
            }
            (None, Some(page)) => (page - 1)
                .checked_mul(u64::from(limit))
                .ok_or_else(|| ApiError::BadRequest(format!("page {page} is out of range")))?,
            (None, None) => 0,
        };
        if offset > i64::MAX as u64 {
            return Err(ApiError::BadRequest(format!(
                "offset {offset} is out of range"
            )));
        }
        Ok(SessionQuery {
            status,
            client_type: non_empty(&self.client_type).map(str::to_string),
            limit,
            offset,
        })
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// `GET /api/mcp/sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// This page of sessions, newest connection first.
    #[schema(value_type = Vec<crate::schema::SessionSchema>)]
    pub sessions: Vec<SessionRecord>,
    /// Sessions matching the filters, over all pages.
    pub total: u64,
    /// Sessions active now, whatever the filters.
    pub active_sessions: u64,
    /// The idle timeout, in seconds.
    pub session_timeout: u64,
    /// Page size used.
    pub limit: u32,
    /// Sessions skipped before this page.
    pub offset: u64,
}

/// Lists sessions, newest first, with live figures for active ones.
#[utoipa::path(
    get,
    path = "/api/mcp/sessions",
    tag = "sessions",
    params(ListParams),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "A page of sessions", body = SessionList),
        (status = 400, description = "Malformed or out-of-range query", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 503, description = "Session store unavailable", body = ErrorBody),
    )
)]
pub async fn list_sessions(
    State(state): State<ApiState>,
    Params(params): Params<ListParams>,
) -> Result<Json<SessionList>, ApiError> {
    let query = params.to_query()?;
    let page = state.manager.list(&query).await?;
    Ok(Json(SessionList {
        sessions: page.sessions,
        total: page.total,
        active_sessions: state.manager.active_count() as u64,
        session_timeout: session_timeout(&state),
        limit: query.limit,
        offset: query.offset,
    }))
}

pub(crate) fn session_timeout(state: &ApiState) -> u64 {
    state.manager.config().idle_timeout.as_secs()
}

// ------------------------------------------------- GET /api/mcp/sessions/{id}

/// `GET /api/mcp/sessions/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDetail {
    #[schema(value_type = crate::schema::SessionSchema)]
    pub session: SessionRecord,
    /// The session's latest logged requests (at most 100), newest first.
    #[schema(value_type = Vec<crate::schema::RequestLogSchema>)]
    pub requests: Vec<RequestLogEntry>,
    pub summary: RequestSummary,
}

/// Figures about a session's requests.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestSummary {
    /// Requests the session made over its life (its `request_count`),
    /// including `initialize`.
    pub total_requests: u64,
    /// Rows in `requests`.
    pub logged_requests: u64,
    /// Rows in `requests` whose status is `error`.
    pub errors: u64,
    /// Mean `duration_ms` of the rows in `requests`, 2 decimals; 0 when none.
    pub avg_duration_ms: f64,
    /// `started_at` of the newest row in `requests`; null when none.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_request_at: Option<Timestamp>,
}

impl RequestSummary {
    pub fn new(session: &SessionRecord, requests: &[RequestLogEntry]) -> Self {
        let errors = requests
            .iter()
            .filter(|r| r.status == RequestStatus::Error)
            .count() as u64;
        let avg_duration_ms = if requests.is_empty() {
            0.0
        } else {
            let total_ms: f64 = requests
                .iter()
                .map(|r| r.duration.as_secs_f64() * 1000.0)
                .sum();
            round(total_ms / requests.len() as f64, 2)
        };
        RequestSummary {
            total_requests: session.request_count,
            logged_requests: requests.len() as u64,
            errors,
            avg_duration_ms,
            last_request_at: requests.iter().map(|r| r.started_at).max(),
        }
    }
}

fn round(value: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (value * f).round() / f
}

/// A session id from the path; anything malformed is an unknown session.
pub(crate) fn session_id(
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<SessionId, ApiError> {
    let Path(raw) = path.map_err(|_| ApiError::SessionNotFound)?;
    raw.parse().map_err(|_| ApiError::SessionNotFound)
}

/// One session with its latest requests.
#[utoipa::path(
    get,
    path = "/api/mcp/sessions/{id}",
    tag = "sessions",
    params(("id" = String, Path, description = "The session id: 32 hexadecimal digits")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The session", body = SessionDetail),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 503, description = "Session store unavailable", body = ErrorBody),
    )
)]
pub async fn show_session(
    State(state): State<ApiState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Json<SessionDetail>, ApiError> {
    let id = session_id(path)?;
    let session = state
        .manager
        .session(id)
        .await?
        .ok_or(ApiError::SessionNotFound)?;
    let requests = state
        .requests
        .session_requests(id, SESSION_REQUESTS)
        .await?;
    let summary = RequestSummary::new(&session, &requests);
    Ok(Json(SessionDetail {
        session,
        requests,
        summary,
    }))
}

// ---------------------------------------------- DELETE /api/mcp/sessions/{id}

/// `DELETE /api/mcp/sessions/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Terminated {
    pub success: bool,
    #[schema(value_type = String, pattern = "^[0-9a-f]{32}$")]
    pub session_id: SessionId,
    /// Always `disconnected`.
    #[schema(value_type = crate::schema::SessionStatusSchema)]
    pub status: SessionStatus,
    /// Always `admin_terminated`.
    #[schema(value_type = crate::schema::DisconnectReasonSchema)]
    pub disconnect_reason: DisconnectReason,
    /// When the session ended.
    #[schema(value_type = String, format = DateTime)]
    pub disconnected_at: Timestamp,
    /// Seconds from connection to end.
    pub total_duration: f64,
}

/// Ends an active session as `admin_terminated`; its client's next request
/// gets 404 and its open streams are closed.
#[utoipa::path(
    delete,
    path = "/api/mcp/sessions/{id}",
    tag = "sessions",
    params(("id" = String, Path, description = "The session id: 32 hexadecimal digits")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The session was ended", body = Terminated),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 409, description = "The session had already ended", body = ErrorBody),
        (status = 503, description = "Session store unavailable or shutting down", body = ErrorBody),
    )
)]
pub async fn terminate_session(
    State(state): State<ApiState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Terminated>, ApiError> {
    let id = session_id(path)?;
    let reason = DisconnectReason::AdminTerminated;
    match state.manager.end(id, reason).await? {
        Some(record) => {
            tracing::info!(session = %id.short(), "session terminated by an administrator");
            Ok(Json(Terminated {
                success: true,
                session_id: id,
                status: record.status,
                disconnect_reason: reason,
                disconnected_at: record
                    .disconnected_at
                    .unwrap_or_else(|| state.manager.now()),
                total_duration: record
                    .total_duration
                    .map_or(0.0, |d| d.as_millis() as f64 / 1000.0),
            }))
        }
        None => match state.manager.session(id).await? {
            Some(_) => Err(ApiError::AlreadyDisconnected),
            None => Err(ApiError::SessionNotFound),
        },
    }
}

// ----------------------------------------- GET /api/mcp/sessions/disconnected

/// Period and size of the disconnected-session list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DisconnectedParams {
    /// Sessions that ended within this many days, 1 to 90 (default 1).
    #[param(minimum = 1, maximum = 90)]
    pub days: Option<u32>,
    /// Sessions listed, 1 to 1000 (default 50); the statistics cover all.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// `GET /api/mcp/sessions/disconnected`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DisconnectedSessions {
    /// Sessions that ended in the period, latest end first.
    #[schema(value_type = Vec<crate::schema::SessionSchema>)]
    pub sessions: Vec<SessionRecord>,
    /// Over every session that ended in the period, not only those listed.
    #[schema(value_type = crate::schema::DisconnectStatsSchema)]
    pub statistics: DisconnectStats,
    pub period: Period,
}

/// The period covered.
#[derive(Debug, Serialize, ToSchema)]
pub struct Period {
    pub days: u32,
    /// `end` minus `days` days.
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    /// Now.
    #[schema(value_type = String, format = DateTime)]
    pub end: Timestamp,
}

/// Sessions that ended recently, with statistics by reason and duration.
#[utoipa::path(
    get,
    path = "/api/mcp/sessions/disconnected",
    tag = "sessions",
    params(DisconnectedParams),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Recently ended sessions", body = DisconnectedSessions),
        (status = 400, description = "Malformed or out-of-range query", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 503, description = "Session store unavailable", body = ErrorBody),
    )
)]
pub async fn disconnected_sessions(
    State(state): State<ApiState>,
    Params(params): Params<DisconnectedParams>,
) -> Result<Json<DisconnectedSessions>, ApiError> {
    let days = params.days.unwrap_or(1);
    if !(1..=MAX_DISCONNECTED_DAYS).contains(&days) {
        return Err(ApiError::BadRequest(format!(
            "days must be between 1 and {MAX_DISCONNECTED_DAYS}, got {days}"
        )));
    }
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_DISCONNECTED_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_DISCONNECTED_LIMIT}, got {limit}"
        )));
    }
    let end = state.manager.now();
    let start = end.saturating_sub(DAY * days);
    let (sessions, statistics) = state.sessions.disconnected_since(start, limit).await?;
    Ok(Json(DisconnectedSessions {
        sessions,
        statistics,
        period: Period { days, start, end },
    }))
}

// --------------------------------------------------------- GET /api/mcp/clients

/// `GET /api/mcp/clients`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientList {
    /// Stateless clients seen within the health window, most recent first.
    #[schema(value_type = Vec<crate::schema::ClientSchema>)]
    pub clients: Vec<ClientActivity>,
}

/// Stateless (2026-07-28) clients, which make requests without a session.
#[utoipa::path(
    get,
    path = "/api/mcp/clients",
    tag = "clients",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Recently seen stateless clients", body = ClientList),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub async fn list_clients(State(state): State<ApiState>) -> Json<ClientList> {
    Json(ClientList {
        clients: state.stateless.list(),
    })
}

/// Any other path under `/api`.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}
