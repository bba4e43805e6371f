//! `initialize` over HTTP: the per-address rate limit, the size of what the
//! client announces, and the session it opens — durable before its id goes
//! out in `Mcp-Session-Id`, with its first reconnect token. What
//! `initialize` means (the revision, the result) is the dispatcher's.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use rmcp::model::{ErrorCode, ErrorData};
use serde_json::json;
use serde_json::value::RawValue;
use sessiongate_core::lifecycle::RateLimited;

use super::finish::Finisher;
use super::inbound::Inbound;
use super::responses::{
    json_bytes, oversized_metadata, refused, rpc_error, set_token_header, sse_whole, unavailable,
};
use super::state::McpState;
use crate::context::Caller;
use crate::dispatch::InitializeParams;
use crate::jsonrpc::Id;
use crate::protocol::{HEADER_SESSION_ID, META_RECONNECT_EXPIRES_AT, META_RECONNECT_TOKEN};
use crate::service::Answer;

pub(super) async fn initialize(
    st: &McpState,
    inbound: &Inbound,
    id: Id,
    params: Option<&RawValue>,
) -> Response {
    let finish = Finisher::start(
        st,
        id.clone(),
        "initialize",
        None,
        inbound.size,
        st.manager.now(),
    );
    // Each initialize writes a durable session: limited per address.
    if let Some(ip) = inbound.remote {
        if let Err(RateLimited { retry_after }) =
            st.initialize_limiter.acquire(ip, finish.started_at())
        {
            let secs = retry_after.as_secs().max(1);
            let mut response = rpc_error(
                StatusCode::TOO_MANY_REQUESTS,
                Some(&id),
                ErrorData::new(
                    ErrorCode(-32000),
                    format!("Too many initialize requests from this address; retry in {secs}s"),
                    None,
                ),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return refused("initialize_rate", response);
        }
    }
    let params = match InitializeParams::read(params) {
        Ok(p) => p,
        Err(e) => return rpc_error(StatusCode::BAD_REQUEST, Some(&id), e),
    };
    let limit = st.config.max_client_metadata_bytes;
    for (field, raw) in params.metadata() {
        if let Some(r) = oversized_metadata(limit, Some(&id), field, raw) {
            return r;
        }
    }
    let handshake = match params.negotiate() {
        Ok(h) => h,
        Err(e) => return rpc_error(StatusCode::BAD_REQUEST, Some(&id), e),
    };
    let version = handshake.version;
    let (identity, metadata) = handshake.into_session(inbound.origin());
    let created = match st.manager.create(identity, metadata).await {
        Ok(c) => c,
        Err(e) => return unavailable(Some(&id), &e),
    };
    let mut result = st.dispatcher.initialize_result(version);
    result["_meta"] = json!({
        META_RECONNECT_TOKEN: created.token.token,
        META_RECONNECT_EXPIRES_AT: created.token.expires_at(),
    });
    let session_id = created.session.id();
    let (_, body) = finish
        .caller(&Caller::Session(created.session))
        .complete(Ok(Answer::Json(result)))
        .await;
    let mut response = if inbound.accept.json {
        json_bytes(StatusCode::OK, body)
    } else {
        sse_whole([(None, &body[..])])
    };
    response.headers_mut().insert(
        HEADER_SESSION_ID,
        HeaderValue::from_str(&session_id.to_string()).expect("hex is a valid header"),
    );
    set_token_header(&mut response, &created.token);
    response
}
