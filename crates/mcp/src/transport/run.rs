//! Running a request's handler. The answer is JSON if the handler finishes
//! without talking to the client; otherwise its messages and then the
//! result go out as SSE. A session's stream is resumable (see
//! [`streams`](crate::streams)); a sessionful request that runs longer than
//! `sse_after` switches to one too, so its result survives a dropped
//! connection.

use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use rmcp::model::ErrorData;
use sessiongate_core::lifecycle::ActiveSession;
use sessiongate_core::stream::{EventId, StreamId, StreamKind};
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;

use super::finish::Finisher;
use super::inbound::Accepts;
use super::responses::{guarded, json_bytes, sse_events, sse_response, sse_whole};
use super::state::McpState;
use crate::context::{Caller, RequestContext};
use crate::jsonrpc::Id;
use crate::request::Request;
use crate::service::Answer;
use crate::streams::{self, BodyOptions};

/// The context a request's handler runs in.
pub(super) fn context(
    st: &McpState,
    caller: Caller,
    request_id: Id,
    protocol_version: Arc<str>,
    request: &Request,
) -> RequestContext {
    let meta = request.params.meta.as_ref();
    // A session's log level is the session's; a stateless request brings its own.
    let stateless_log_level = match caller {
        Caller::Client { .. } => meta.and_then(|m| m.log_level.clone()),
        Caller::Session(_) => None,
    };
    RequestContext {
        manager: st.manager.clone(),
        reclaim: st.reclaim.clone(),
        tasks: st.tasks.clone(),
        caller,
        request_id,
        protocol_version,
        received_at: st.manager.now(),
        progress_token: request.params.progress_token().cloned(),
        stateless_log_level,
        peers: st.peers.clone(),
        outbound: None,
        poll: None,
        task: None,
        input: Default::default(),
    }
}

/// Runs `request` in `ctx` and answers it as `accept` allows.
pub(super) async fn run(
    st: &McpState,
    mut ctx: RequestContext,
    request: Request,
    accept: Accepts,
    bytes_in: u64,
) -> Response {
    let finish = Finisher::start(
        st,
        ctx.request_id.clone(),
        &request.method,
        request.tool_name(),
        bytes_in,
        ctx.received_at,
    )
    .caller(&ctx.caller)
    .upstream(st.dispatcher.upstream_of(&ctx, &request));
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    if accept.sse {
        ctx.outbound = Some(tx.clone());
    }
    let stateless = ctx.is_stateless();
    let resumable = ctx.session().filter(|_| accept.sse).cloned();
    let poll = resumable.as_ref().map(|_| Arc::new(Notify::new()));
    ctx.poll = poll.clone();
    let dispatcher = st.dispatcher.clone();
    // A session's client may cancel the request (`notifications/cancelled`).
    let running = ctx
        .session()
        .map(|s| st.peers.get_or_create(s).running(&ctx.request_id));
    let mut work = Box::pin(async move {
        let outcome = match running {
            None => dispatcher.dispatch(&ctx, request).await,
            Some(mut running) => tokio::select! {
                outcome = dispatcher.dispatch(&ctx, request) => outcome,
                () = running.cancelled() => Err(ErrorData::internal_error(
                    "the client cancelled the request",
                    None,
                )),
            },
        };
        drop(ctx);
        outcome
    });
    let (sse_after, switch_later) = (st.config.sse_after, resumable.is_some());
    let switch = async move {
        match switch_later {
            true => tokio::time::sleep(sse_after).await,
            false => std::future::pending().await,
        }
    };

    enum Next {
        Done(Result<Answer, ErrorData>),
        Stream(Option<Bytes>),
    }
    let next = tokio::select! {
        biased;
        outcome = &mut work => Next::Done(outcome),
        Some(first) = rx.recv() => Next::Stream(Some(first)),
        _ = switch => Next::Stream(None),
    };
    match next {
        Next::Done(outcome) => {
            let mut early = Vec::new();
            while let Ok(frame) = rx.try_recv() {
                early.push(frame);
            }
            let (status, body) = finish.complete(outcome).await;
            if early.is_empty() {
                if accept.json || !accept.sse {
                    return json_bytes(status, body);
                }
                // The answer is the stream's only message: sent whole, it
                // leaves nothing to resume. A client holding its id has it
                // all, one that lost the connection before it holds no id
                // of this stream, so neither a priming event nor the event
                // log would ever be read.
                let id = resumable.map(|_| EventId {
                    stream: StreamId::generate(StreamKind::Request),
                    seq: 1,
                });
                return sse_whole([(id, &body[..])]);
            }
            early.push(Bytes::from(body));
            match resumable {
                Some(session) => {
                    drop(tx);
                    resumable_response(st, session, early, rx, poll)
                }
                // 2026-07-28: no ids, nothing to resume, all of it at hand.
                None => sse_whole(early.iter().map(|m| (None, &m[..]))),
            }
        }
        Next::Stream(first) => {
            // The handler runs on whether or not the client stays connected.
            let task = tokio::spawn(async move {
                let outcome = work.await;
                let (_, body) = finish.complete(outcome).await;
                let _ = tx.send(Bytes::from(body)).await;
            });
            match resumable {
                Some(session) => {
                    resumable_response(st, session, first.into_iter().collect(), rx, poll)
                }
                None => {
                    // 2026-07-28: closing the response stream cancels the request.
                    let abort = stateless.then(|| AbortOnDrop(task));
                    let stream = futures::stream::iter(first)
                        .chain(ReceiverStream::new(rx))
                        .map(move |frame| {
                            let _keep = &abort;
                            frame
                        });
                    sse_response(stream, st.config.keepalive)
                }
            }
        }
    }
}

/// Whether a session's revision primes streams and may be asked to poll.
pub(super) fn polls(session: &ActiveSession) -> bool {
    session.protocol_version() >= "2025-11-25"
}

/// A request's resumable response stream: `first`, then what `rx` carries.
fn resumable_response(
    st: &McpState,
    session: Arc<ActiveSession>,
    first: Vec<Bytes>,
    rx: mpsc::Receiver<Bytes>,
    poll: Option<Arc<Notify>>,
) -> Response {
    let (stream, frames) = st.streams.open(
        st.event_log.clone(),
        session.id(),
        StreamKind::Request,
        first,
        rx,
        poll,
    );
    let options = BodyOptions {
        prime: polls(&session),
        retry: st.config.retry,
        idle_close: None,
    };
    let guard = st.manager.open_stream(session);
    let body = streams::body(stream, Vec::new(), 0, Some(frames), options);
    sse_events(guarded(body, guard), st.config.keepalive)
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
