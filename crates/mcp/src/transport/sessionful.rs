//! The sessionful revisions (2025-03-26 .. 2025-11-25): every message must
//! name a live session in `Mcp-Session-Id`, which it keeps alive; a session
//! that timed out comes back in place when the request carries its
//! reconnect token. 2025-03-26 may send batches.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use sessiongate_core::lifecycle::ActiveSession;
use sessiongate_core::token::IssuedToken;

use super::inbound::{Accepts, Inbound, Incoming, Messages, SessionHeader};
use super::responses::{
    accepted, bad_request, json_bytes, reconnect_refused, rpc_error, session_not_found,
    set_token_header,
};
use super::run::{context, run};
use super::state::McpState;
use crate::context::Caller;
use crate::jsonrpc::{self, Invalid};
use crate::protocol;

pub(super) async fn sessionful(st: &McpState, inbound: &Inbound, messages: Messages) -> Response {
    let (session, token) = match lookup(st, inbound, Revive::WithToken).await {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let mut response = answer(st, inbound, &session, messages).await;
    if let Some(token) = token {
        set_token_header(&mut response, &token);
    }
    response
}

async fn answer(
    st: &McpState,
    inbound: &Inbound,
    session: &Arc<ActiveSession>,
    messages: Messages,
) -> Response {
    let negotiated = session.protocol_version();
    if let Some(v) = inbound.protocol_version() {
        if !protocol::is_sessionful(v) {
            return bad_request(format!(
                "Bad Request: unsupported MCP-Protocol-Version {v}; this session speaks {negotiated}"
            ));
        }
    }
    let items = match messages {
        Messages::Single(incoming) => {
            return message(st, session, incoming, inbound.accept, inbound.size)
                .await
                .unwrap_or_else(accepted)
        }
        Messages::Batch(items) => items,
    };
    if !protocol::allows_batches(negotiated) {
        return bad_request(format!(
            "Invalid Request: JSON-RPC batches are not supported in protocol version {negotiated}"
        ));
    }
    let mut replies = Vec::new();
    for item in items {
        match item {
            Err(Invalid { id, error }) => replies.push(jsonrpc::error_bytes(id.as_ref(), &error)),
            Ok(incoming) => {
                let is_request = matches!(incoming, Incoming::Request { .. });
                if let Some(r) = message(st, session, incoming, Accepts::JSON, 0).await {
                    if is_request {
                        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
                            .await
                            .unwrap_or_default();
                        replies.push(body.to_vec());
                    }
                }
            }
        }
    }
    if replies.is_empty() {
        return accepted();
    }
    let mut out = b"[".to_vec();
    for (i, r) in replies.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(r);
    }
    out.push(b']');
    json_bytes(StatusCode::OK, out)
}

/// Whether a request for a session that is no longer active may reclaim it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Revive {
    /// With `Mcp-Reconnect-Token`, the session comes back in place.
    WithToken,
    Never,
}

/// The live session named by `Mcp-Session-Id`, or the response to send.
/// A session that is no longer active is reclaimed in place when the request
/// carries its reconnect token (`Mcp-Reconnect-Token`) and `revive` allows
/// it; the new token comes back with it.
pub(super) async fn lookup(
    st: &McpState,
    inbound: &Inbound,
    revive: Revive,
) -> Result<(Arc<ActiveSession>, Option<IssuedToken>), Box<Response>> {
    let id = match inbound.session {
        SessionHeader::Absent => {
            return Err(Box::new(bad_request(
                "Bad Request: the Mcp-Session-Id header is required; send initialize first",
            )))
        }
        SessionHeader::Malformed => return Err(Box::new(session_not_found())),
        SessionHeader::Id(id) => id,
    };
    if let Some(session) = st.manager.active(id) {
        return Ok((session, None));
    }
    let Some(token) = inbound
        .reconnect_token()
        .filter(|_| revive == Revive::WithToken)
    else {
        return Err(Box::new(session_not_found()));
    };
    let remote = inbound.remote.map(|ip| ip.to_string());
    match st
        .reclaim
        .reconnect(id, token.trim(), None, remote.as_deref())
        .await
    {
        Ok(r) => Ok((r.session, Some(r.token))),
        Err(e) => Err(Box::new(reconnect_refused(e))),
    }
}

/// A client's `notifications/cancelled`: the handler of the request it
/// names stops (what it had sent upstream is cancelled in turn by the
/// handler's own clean-up); the request answers an error.
fn cancel(st: &McpState, session: &ActiveSession, notification: &crate::request::Request) {
    #[derive(serde::Deserialize)]
    struct Cancelled {
        #[serde(rename = "requestId")]
        request_id: jsonrpc::Id,
    }
    let Ok(cancelled) = notification.parse::<Cancelled>() else {
        return;
    };
    if let Some(peer) = st.peers.get(session.id()) {
        peer.cancel(&cancelled.request_id);
    }
}

/// Handles one message of a session; `None` means "accepted, no body".
async fn message(
    st: &McpState,
    session: &Arc<ActiveSession>,
    incoming: Incoming,
    accept: Accepts,
    bytes_in: u64,
) -> Option<Response> {
    if matches!(incoming, Incoming::Request { .. }) {
        st.manager.touch(session);
    } else {
        st.manager.keep_alive(session);
    }
    match incoming {
        Incoming::Request { id, request } => {
            if request.method == "initialize" {
                return Some(rpc_error(
                    StatusCode::BAD_REQUEST,
                    Some(&id),
                    jsonrpc::invalid_request("initialize must not be sent in a batch"),
                ));
            }
            let caller = Caller::Session(session.clone());
            let ctx = context(st, caller, id, session.protocol_version().into(), &request);
            Some(run(st, ctx, request, accept, bytes_in).await)
        }
        Incoming::Notification(notification) => {
            if notification.method == "notifications/cancelled" {
                cancel(st, session, &notification);
            }
            None
        }
        Incoming::Response { id, outcome } => {
            if let Some(peer) = st.peers.get(session.id()) {
                peer.answer(&id, outcome);
            }
            None
        }
    }
}
