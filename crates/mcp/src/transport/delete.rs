//! DELETE: the client ends its session.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sessiongate_core::DisconnectReason;

use super::inbound::Inbound;
use super::responses::{method_not_allowed, session_not_found, unavailable};
use super::sessionful::{lookup, Revive};
use super::state::McpState;

pub(super) async fn delete(State(st): State<McpState>, inbound: Inbound) -> Response {
    if inbound.is_stateless() {
        return method_not_allowed("POST");
    }
    let id = match lookup(&st, &inbound, Revive::Never).await {
        Ok((session, _)) => session.id(),
        Err(r) => return *r,
    };
    match st.manager.end(id, DisconnectReason::ClientDisconnect).await {
        Ok(Some(_)) => StatusCode::OK.into_response(),
        Ok(None) => session_not_found(),
        Err(e) => unavailable(None, &e),
    }
}
