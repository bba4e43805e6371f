//! A POST: read, admitted, and classified once — `initialize`, the
//! stateless revision, or a session's messages — then handed on.

use axum::extract::{Request as HttpRequest, State};
use axum::response::Response;

use super::inbound::{Inbound, Incoming, Messages, Posted};
use super::responses::unavailable;
use super::state::McpState;
use super::{initialize, sessionful, stateless};
use crate::protocol;

pub(super) async fn post(State(st): State<McpState>, req: HttpRequest) -> Response {
    let (inbound, posted) = match Inbound::receive(&st, req).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    if let Err(e) = st.request_log.admit().await {
        return unavailable(posted.request_id(), &e);
    }
    match posted {
        Posted::Initialize { id, params } => {
            initialize::initialize(&st, &inbound, id, params.as_deref()).await
        }
        Posted::Messages(Messages::Single(incoming)) if is_stateless(&inbound, &incoming) => {
            stateless::stateless(&st, &inbound, incoming).await
        }
        Posted::Messages(messages) => sessionful::sessionful(&st, &inbound, messages).await,
    }
}

/// A message is the stateless revision's when its `_meta` names a protocol
/// version, or, without a session, when `MCP-Protocol-Version` names a
/// revision without sessions or the method is `server/discover`.
fn is_stateless(inbound: &Inbound, incoming: &Incoming) -> bool {
    let request = incoming.request();
    let modern_meta = request
        .and_then(|r| r.params.meta.as_ref())
        .is_some_and(|m| m.protocol_version.is_some());
    let modern_header = inbound
        .protocol_version()
        .is_some_and(|v| !protocol::is_sessionful(v));
    let discover = request.is_some_and(|r| r.method == "server/discover");
    modern_meta || (!inbound.has_session_header() && (modern_header || discover))
}
