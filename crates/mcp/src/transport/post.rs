//! A POST: read, admitted, and classified once — the stateless revision,
//! `initialize`, or a session's messages — then handed on.

use axum::extract::{Request as HttpRequest, State};
use axum::response::Response;

use super::inbound::{Inbound, Incoming, Messages};
use super::responses::unavailable;
use super::state::McpState;
use super::{initialize, sessionful, stateless};
use crate::protocol;

pub(super) async fn post(State(st): State<McpState>, req: HttpRequest) -> Response {
    let (inbound, messages) = match Inbound::receive(&st, req).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    if let Err(e) = st.request_log.admit().await {
        return unavailable(messages.request_id(), &e);
    }
    match messages {
        // Before `initialize`: 2026-07-28 removed it, so an `initialize`
        // that names that revision is answered as an unknown method there.
        Messages::Single(incoming) if is_stateless(&inbound, &incoming) => {
            stateless::stateless(&st, &inbound, incoming).await
        }
        Messages::Single(Incoming::Request { id, request }) if request.method == "initialize" => {
            initialize::initialize(&st, &inbound, id, request.raw.as_deref()).await
        }
        messages => sessionful::sessionful(&st, &inbound, messages).await,
    }
}

/// A message is the stateless revision's when its `_meta` names a protocol
/// version, or, without a session, when `MCP-Protocol-Version` names a
/// revision without sessions (for `initialize`: the stateless revision) or
/// the method is `server/discover`.
fn is_stateless(inbound: &Inbound, incoming: &Incoming) -> bool {
    let request = incoming.request();
    let modern_meta = request
        .and_then(|r| r.params.meta.as_ref())
        .is_some_and(|m| m.protocol_version.is_some());
    // A legacy client's `initialize` may name any version it likes; only
    // the stateless revision's own makes it that revision's request.
    let modern_header = inbound.protocol_version().is_some_and(|v| match request {
        Some(r) if r.method == "initialize" => protocol::is_stateless(v),
        _ => !protocol::is_sessionful(v),
    });
    let discover = request.is_some_and(|r| r.method == "server/discover");
    modern_meta || (!inbound.has_session_header() && (modern_header || discover))
}
