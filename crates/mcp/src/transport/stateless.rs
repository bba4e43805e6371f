//! The stateless revision (2026-07-28): no session. Headers must mirror the
//! body (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, and the
//! `Mcp-Param-*` a tool's `x-mcp-header` annotations ask for), the version
//! must be one served without sessions, and the request is attributed to
//! its client — the identity built from its `_meta`, kept per `clientInfo`
//! text by the identity cache — before it runs; `subscriptions/listen`
//! then opens its stream (`listen`), anything else runs. `initialize`,
//! which the revision removed, is an unknown method there.

use axum::http::StatusCode;
use axum::response::Response;
use rmcp::model::{ErrorCode, ErrorData, JsonObject};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::inbound::{Inbound, Incoming};
use super::listen::listen;
use super::responses::{accepted, oversized_metadata, rpc_error};
use super::run::{context, run};
use super::state::McpState;
use crate::context::Caller;
use crate::identity_cache::{Announced, Known};
use crate::jsonrpc::{self, Id};
use crate::protocol::{self, META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION};
use crate::request::{Request, RequestMeta};

const META_CLIENT_INFO_FIELD: &str = "params._meta[\"io.modelcontextprotocol/clientInfo\"]";
const META_CLIENT_CAPABILITIES_FIELD: &str =
    "params._meta[\"io.modelcontextprotocol/clientCapabilities\"]";

pub(super) async fn stateless(st: &McpState, inbound: &Inbound, incoming: Incoming) -> Response {
    let (id, request) = match incoming {
        Incoming::Request { id, request } => (Some(id), request),
        Incoming::Notification(request) => (None, request),
        Incoming::Response { id, .. } => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                Some(&id),
                jsonrpc::invalid_request("clients of 2026-07-28 do not send responses"),
            )
        }
    };
    let id_ref = id.as_ref();
    if let Err(mismatch) = mirrored(inbound, id_ref, &request) {
        return header_mismatch(id_ref, mismatch);
    }
    {
        let catalog = st.dispatcher.catalog().current();
        if let Some(tool) = request.tool_name().and_then(|name| catalog.tool(name)) {
            let arguments = request.params.arguments.as_ref();
            if let Err(mismatch) = mirrored_params(inbound, &tool.input_schema, arguments) {
                return header_mismatch(id_ref, mismatch);
            }
        }
    }
    if request.method == "initialize" {
        return removed_initialize(id_ref);
    }
    let meta = request.params.meta.as_ref();
    let Some(version) = meta
        .and_then(|m| m.protocol_version.as_ref())
        .and_then(Value::as_str)
    else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            id_ref,
            ErrorData::invalid_params(
                format!("params._meta[\"{META_PROTOCOL_VERSION}\"] is required"),
                None,
            ),
        );
    };
    if !protocol::is_stateless(version) {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            id_ref,
            ErrorData::new(
                ErrorCode::UNSUPPORTED_PROTOCOL_VERSION,
                "Unsupported protocol version",
                Some(json!({
                    "supported": protocol::supported_versions(),
                    "requested": version,
                })),
            ),
        );
    }
    let meta = meta.expect("a version was read from it");
    let Some(capabilities) = meta
        .client_capabilities
        .as_deref()
        .map(RawValue::get)
        .filter(|c| c.starts_with('{'))
    else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            id_ref,
            ErrorData::invalid_params(
                format!("params._meta[\"{META_CLIENT_CAPABILITIES}\"] must be an object"),
                None,
            ),
        );
    };
    for (field, raw) in [
        (META_CLIENT_INFO_FIELD, meta.client_info.as_deref()),
        (
            META_CLIENT_CAPABILITIES_FIELD,
            meta.client_capabilities.as_deref(),
        ),
    ] {
        let limit = st.config.max_client_metadata_bytes;
        if let Some(r) = oversized_metadata(limit, id_ref, field, raw) {
            return r;
        }
    }
    let Some(id) = id else {
        // 2026-07-28 defines no client notifications over HTTP; accept and ignore.
        return accepted();
    };

    let caller = identify(st, inbound, meta, capabilities, version);
    let ctx = context(st, caller, id, version.into(), &request);
    if let Caller::Client { key, identity } = &ctx.caller {
        // At the time its log row will carry, so the table restored from
        // the log after a restart says what it said before.
        st.stateless
            .touch(key, ctx.received_at, || identity.as_ref().clone());
    }
    if request.method == "subscriptions/listen" {
        return listen(st, ctx, request, inbound).await;
    }
    run(st, ctx, request, inbound.accept, inbound.size).await
}

/// The client a request comes from.
fn identify(
    st: &McpState,
    inbound: &Inbound,
    meta: &RequestMeta,
    capabilities: &str,
    version: &str,
) -> Caller {
    let origin = inbound.origin();
    let Known { key, identity } = st.identities.identify(&Announced {
        info: meta.client_info.as_deref().map(RawValue::get),
        capabilities,
        protocol_version: version,
        remote: origin.remote,
        user_agent: origin.user_agent,
    });
    Caller::Client { key, identity }
}

/// Whether the headers mirror the body; what disagrees if not.
fn mirrored(inbound: &Inbound, id: Option<&Id>, request: &Request) -> Result<(), String> {
    let differs = |header: &str, sent: &str, body: &str| {
        format!(
            "Header mismatch: {header} header value '{sent}' does not match body value '{body}'"
        )
    };
    let required = |header: &str| format!("Header mismatch: the {header} header is required");
    let meta_version = request
        .params
        .meta
        .as_ref()
        .and_then(|m| m.protocol_version.as_ref())
        .and_then(Value::as_str);
    match (inbound.protocol_version(), meta_version) {
        (Some(h), Some(m)) if h != m => return Err(differs("MCP-Protocol-Version", h, m)),
        (None, _) => return Err(required("MCP-Protocol-Version")),
        _ => {}
    }
    let method = &request.method;
    match inbound.mcp_method() {
        Some(h) if h == method => {}
        Some(h) => return Err(differs("Mcp-Method", h, method)),
        None if id.is_none() => {}
        None => return Err(required("Mcp-Method")),
    }
    let body_name = match method.as_str() {
        "tools/call" | "prompts/get" => request.params.name.as_ref(),
        "resources/read" => request.params.uri.as_ref(),
        // The tasks extension routes its methods by task (SEP-2663).
        "tasks/get" | "tasks/update" | "tasks/cancel" => request.params.task_id.as_ref(),
        _ => None,
    }
    .and_then(Value::as_str);
    if let Some(body_name) = body_name {
        match inbound.mcp_name() {
            Some(Some(h)) if h == body_name => {}
            Some(Some(h)) => return Err(differs("Mcp-Name", &h, body_name)),
            Some(None) => return Err("Header mismatch: Mcp-Name is not valid".into()),
            None => return Err(required("Mcp-Name")),
        }
    }
    Ok(())
}

/// Whether each argument the tool's `inputSchema` marks with `x-mcp-header`
/// (on a property reached through `properties` alone) is mirrored in its
/// `Mcp-Param-{name}` header. An argument absent or `null` needs none.
fn mirrored_params(
    inbound: &Inbound,
    schema: &JsonObject,
    arguments: Option<&Value>,
) -> Result<(), String> {
    let Some(Value::Object(properties)) = schema.get("properties") else {
        return Ok(());
    };
    for (key, property) in properties {
        let Value::Object(property) = property else {
            continue;
        };
        let value = arguments.and_then(|a| a.get(key)).filter(|v| !v.is_null());
        if let (Some(Value::String(name)), Some(value)) = (property.get("x-mcp-header"), value) {
            let header = format!("Mcp-Param-{name}");
            let sent = match inbound.mcp_param(name) {
                Some(Some(sent)) => sent,
                Some(None) => return Err(format!("Header mismatch: {header} is not valid")),
                None => return Err(format!("Header mismatch: the {header} header is required")),
            };
            let matches = match value {
                Value::String(s) => &sent == s,
                Value::Bool(b) => sent == b.to_string(),
                // Compared as numbers: `42.0` mirrors `42`.
                Value::Number(n) => sent.parse::<f64>().ok() == n.as_f64(),
                _ => true,
            };
            if !matches {
                return Err(format!(
                    "Header mismatch: {header} header value '{sent}' does not match body value '{value}'"
                ));
            }
        }
        mirrored_params(inbound, property, value)?;
    }
    Ok(())
}

/// 2026-07-28 removed the handshake: an unknown method, answered before
/// the `_meta` a legacy-shaped `initialize` lacks is asked for, naming the
/// versions served — the only diagnostic such a client may show.
fn removed_initialize(id: Option<&Id>) -> Response {
    rpc_error(
        StatusCode::NOT_FOUND,
        id,
        ErrorData::new(
            ErrorCode::METHOD_NOT_FOUND,
            "Method not found: initialize was removed in 2026-07-28; send each request with \
             its _meta, or initialize with an earlier protocol version",
            Some(json!({ "supported": protocol::supported_versions() })),
        ),
    )
}

fn header_mismatch(id: Option<&Id>, message: String) -> Response {
    rpc_error(
        StatusCode::BAD_REQUEST,
        id,
        ErrorData::new(ErrorCode::HEADER_MISMATCH, message, None),
    )
}
