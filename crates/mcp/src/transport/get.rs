//! GET: a session's standalone SSE stream, where the server's own messages
//! to the client go, or with `Last-Event-ID` the resumption of one of the
//! session's streams where the client lost it (see
//! [`streams`](crate::streams)). While it is open the session does not
//! expire.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use sessiongate_core::lifecycle::ActiveSession;
use sessiongate_core::stream::{StreamId, StreamKind};
use tokio::sync::mpsc;

use super::inbound::Inbound;
use super::responses::{guarded, method_not_allowed, set_token_header, sse_events, unavailable};
use super::run::polls;
use super::sessionful::{lookup, Revive};
use super::state::McpState;
use crate::streams::{self, BodyOptions, Replay};

pub(super) async fn get(State(st): State<McpState>, inbound: Inbound) -> Response {
    if inbound.is_stateless() {
        return method_not_allowed("POST");
    }
    if !inbound.accept.sse {
        return (
            StatusCode::NOT_ACCEPTABLE,
            "Accept must allow text/event-stream",
        )
            .into_response();
    }
    let (session, token) = match lookup(&st, &inbound, Revive::WithToken).await {
        Ok(s) => s,
        Err(r) => return *r,
    };
    st.manager.keep_alive(&session);
    let polling = polls(&session);
    let options = |prime: bool, live: bool| BodyOptions {
        prime,
        retry: st.config.retry,
        idle_close: (polling && live).then_some(st.config.stream_idle_close),
    };
    let guard = st.manager.open_stream(session.clone());
    let keepalive = st.config.keepalive;
    let mut response = match inbound.last_event_id() {
        None => {
            let (stream, frames) = open_standalone(&st, &session);
            let body = streams::body(stream, Vec::new(), 0, Some(frames), options(polling, true));
            sse_events(guarded(body, guard), keepalive)
        }
        Some(from) => {
            let Replay { frames, live } = match st
                .streams
                .resume(&st.event_log, session.id(), from)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, session = %session.id().short(), "reading the event log failed");
                    return unavailable(None, &e.into());
                }
            };
            let standalone = from.stream.kind == StreamKind::Standalone;
            match live {
                Some(live) => {
                    let options = options(false, standalone);
                    let body = streams::body(from.stream, frames, from.seq, Some(live), options);
                    sse_events(guarded(body, guard), keepalive)
                }
                None if !standalone => {
                    // The request finished (or died with an earlier process):
                    // what it sent is all there is.
                    let body =
                        streams::body(from.stream, frames, from.seq, None, options(false, false));
                    sse_events(guarded(body, guard), keepalive)
                }
                None => {
                    // A standalone stream of an earlier process: replay it,
                    // then go on as a new one.
                    let old =
                        streams::body(from.stream, frames, from.seq, None, options(false, false));
                    let (stream, frames) = open_standalone(&st, &session);
                    let new =
                        streams::body(stream, Vec::new(), 0, Some(frames), options(polling, true));
                    sse_events(guarded(old.chain(new), guard), keepalive)
                }
            }
        }
    };
    if let Some(token) = token {
        set_token_header(&mut response, &token);
    }
    response
}

/// Opens the session's standalone stream, replacing (and so ending) an
/// earlier one: server-initiated messages go to it from now on.
fn open_standalone(
    st: &McpState,
    session: &ActiveSession,
) -> (StreamId, mpsc::Receiver<streams::Frame>) {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    st.peers.get_or_create(session).attach_stream(tx);
    st.streams.open(
        st.event_log.clone(),
        session.id(),
        StreamKind::Standalone,
        Vec::new(),
        rx,
        None,
    )
}
