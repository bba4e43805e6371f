//! `subscriptions/listen` over HTTP (2026-07-28): the response is an SSE
//! stream that opens with the acknowledgement and stays open, carrying the
//! change notifications the client's filter asked for (see
//! [`listen`](crate::listen)). Task ids need the tasks extension declared
//! (-32021 otherwise); of them, the caller's own are honoured, and the
//! stream first tells how each stands. Closing it ends the subscription; at
//! shutdown the server ends it with the request's empty result. The request
//! is logged when the acknowledgement goes out: a stream's lifetime is not a
//! request's latency.

use axum::http::StatusCode;
use axum::response::Response;
use futures::StreamExt;
use rmcp::model::{ErrorCode, ErrorData};
use serde_json::{json, Value};

use super::finish::Finisher;
use super::inbound::Inbound;
use super::responses::{json_bytes, rpc_error, sse_response};
use super::state::McpState;
use crate::context::RequestContext;
use crate::jsonrpc;
use crate::listen::{self, NotificationFilter, Refused, META_SUBSCRIPTION_ID};
use crate::request::Request;
use crate::service::Answer;
use crate::tasks;

pub(super) async fn listen(
    st: &McpState,
    ctx: RequestContext,
    request: Request,
    inbound: &Inbound,
) -> Response {
    let id = ctx.request_id.clone();
    let finish = Finisher::start(
        st,
        id.clone(),
        &request.method,
        None,
        inbound.size,
        ctx.received_at,
    )
    .caller(&ctx.caller);
    let refuse = |finish: Finisher, error: ErrorData| async move {
        let (status, body) = finish.complete(Err(error)).await;
        json_bytes(status, body)
    };
    if !inbound.accept.sse {
        return refuse(
            finish,
            ErrorData::new(
                ErrorCode::INVALID_REQUEST,
                "subscriptions/listen answers with an SSE stream: Accept must allow text/event-stream",
                None,
            ),
        )
        .await;
    }
    let filter = match request
        .parse::<Value>()
        .and_then(|params| NotificationFilter::honoured(&params, st.dispatcher.offered()))
    {
        Ok(filter) => filter,
        Err(e) => return refuse(finish, e).await,
    };
    // Task notifications need the extension; they go to the task's owner.
    let owner = if filter.task_ids.is_empty() {
        None
    } else {
        match tasks::declared(&ctx) {
            Some(owner) => Some(owner),
            None => return refuse(finish, tasks::missing_capability()).await,
        }
    };
    let mut honoured = filter.clone();
    let last = st.dispatcher.stateless_result(json!({
        "_meta": { META_SUBSCRIPTION_ID: &id },
    }));
    let last = bytes::Bytes::from(jsonrpc::result_bytes(&id, &last));
    let opened = st.listeners.open(
        id.clone(),
        filter,
        owner.clone(),
        ctx.stateless_client(),
        inbound.remote,
        last,
    );
    let listening = match opened {
        Ok(listening) => listening,
        Err(refused) => {
            let status = match refused {
                Refused::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
                Refused::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            };
            let error = ErrorData::new(ErrorCode(-32000), refused.to_string(), None);
            // Logged like any refusal, answered with the status that says why.
            let _ = finish.complete(Err(error.clone())).await;
            return rpc_error(status, Some(&id), error);
        }
    };
    if let Some(owner) = &owner {
        // Looked up once the stream is open, so no change falls between
        // what it is told now and what it hears next: the client learns
        // how each task stands even if it changed before it listened.
        match tasks::views(&st.tasks, owner, &honoured.task_ids).await {
            Ok(views) => {
                honoured.task_ids = views.iter().map(|v| v.record.task_id).collect();
                listening.catch_up(&views);
            }
            Err(e) => return refuse(finish, e).await,
        }
    }
    let ack = listen::acknowledgement(&id, &honoured);
    let _ = finish.complete(Ok(Answer::Json(json!({})))).await;
    // Held while the stream is open, so a service that relays to a server
    // asks it for these resources' updates.
    let watches: Vec<_> = honoured
        .resource_uris
        .iter()
        .map(|uri| st.dispatcher.catalog().watch_resource(uri))
        .collect();
    // The stream goes with the body: a client that disconnects ends it.
    let stream = futures::stream::iter([ack])
        .chain(listening.into_stream())
        .map(move |frame| {
            let _ = &watches;
            frame
        });
    sse_response(stream, st.config.keepalive)
}
