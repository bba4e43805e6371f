//! Reconnect tokens over the management API: an admin asks for a session's
//! token (`GET /api/mcp/sessions/{id}/token`), a client redeems one
//! (`POST /api/mcp/sessions/{id}/reconnect`; the token is the credential, so
//! no admin token is needed). Refusals are 401 with the precise reason;
//! repeated failures are 429 with `Retry-After`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::Extensions;
use axum::Json;
use serde::{Deserialize, Serialize};
use sessiongate_core::{SessionId, Timestamp};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::sessions::session_id;
use crate::ApiState;

/// A session's new reconnect token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenIssued {
    #[schema(value_type = String)]
    pub session_id: SessionId,
    /// The token; any earlier one of the session stops working.
    pub reconnect_token: String,
    pub expires_in_minutes: u64,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
}

/// Issues a fresh reconnect token for a session (an admin's way to hand a
/// client its session back).
#[utoipa::path(
    get,
    path = "/api/mcp/sessions/{id}/token",
    tag = "reconnection",
    params(("id" = String, Path, description = "The session id: 32 hexadecimal digits")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "A new token", body = TokenIssued),
        (status = 401, description = "Missing or wrong admin token, or the session may not be reclaimed", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 503, description = "Session store unavailable", body = ErrorBody),
    )
)]
pub async fn issue_token(
    State(state): State<ApiState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Json<TokenIssued>, ApiError> {
    let id = session_id(path)?;
    let token = state.reclaim.issue_token(id).await?;
    Ok(Json(TokenIssued {
        session_id: id,
        reconnect_token: token.token.clone(),
        expires_in_minutes: state.reclaim.token_ttl().as_secs() / 60,
        expires_at: token.expires_at(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReconnectBody {
    /// The session's latest reconnect token.
    pub token: String,
}

/// A reclaimed session and its next token.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReconnectResult {
    pub success: bool,
    #[schema(value_type = String)]
    pub session_id: SessionId,
    /// How many times the session has been reclaimed, this time included.
    pub reconnect_count: u64,
    /// The next token; the one just used is spent.
    pub reconnect_token: String,
    pub expires_in_minutes: u64,
}

/// Reclaims a session with its reconnect token. A session that timed out
/// becomes active again with the same id and negotiated state.
#[utoipa::path(
    post,
    path = "/api/mcp/sessions/{id}/reconnect",
    tag = "reconnection",
    params(("id" = String, Path, description = "The session id: 32 hexadecimal digits")),
    request_body = ReconnectBody,
    responses(
        (status = 200, description = "Reclaimed", body = ReconnectResult),
        (status = 401, description = "The token was refused; `detail` says why", body = ErrorBody),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = ErrorBody),
        (status = 503, description = "Session store unavailable", body = ErrorBody),
    )
)]
pub async fn reconnect(
    State(state): State<ApiState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    extensions: Extensions,
    Json(body): Json<ReconnectBody>,
) -> Result<Json<ReconnectResult>, ApiError> {
    // A malformed id cannot hold a token: refuse like an unknown session.
    let id = session_id(path).map_err(|_| {
        ApiError::from(sessiongate_core::lifecycle::ReconnectError::Refused(
            sessiongate_core::token::Refusal::UnknownSession,
        ))
    })?;
    let remote = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let r = state
        .reclaim
        .reconnect(id, body.token.trim(), None, remote.as_deref())
        .await?;
    Ok(Json(ReconnectResult {
        success: true,
        session_id: id,
        reconnect_count: r.reconnect_count,
        reconnect_token: r.token.token,
        expires_in_minutes: state.reclaim.token_ttl().as_secs() / 60,
    }))
}
