//! Rules of the 2026-07-28 revision over real HTTP: `initialize` is a
//! removed method there while the sessionful revisions keep their
//! handshake, the mirrored headers are read as HTTP field values, a
//! tool's JSON Schema 2020-12 reaches `tools/list` as written, a request
//! needing a capability the client did not declare is refused with -32021
//! and 400, and log messages come only at the `logLevel` a request asks for.

mod common;

use async_trait::async_trait;
use common::{stateless, TestServer};
use rmcp::model::{CallToolResult, ErrorData, JsonObject, Tool};
use serde_json::{json, Value};
use sessiongate_core::store::SessionQuery;
use sessiongate_mcp::tools::schema;
use sessiongate_mcp::{McpServer, RequestContext, ToolHandler};
use std::sync::Arc;

const MODERN: (&str, &str) = ("mcp-protocol-version", "2026-07-28");

async fn sessions_total(t: &TestServer) -> u64 {
    let query = SessionQuery {
        status: None,
        client_type: None,
        limit: 1,
        offset: 0,
    };
    t.manager.list(&query).await.unwrap().total
}

/// The HTTP status and the JSON-RPC error of a response.
async fn refusal(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    assert!(
        !response.headers().contains_key("mcp-session-id"),
        "a refusal opens no session"
    );
    let body: Value = response.json().await.unwrap();
    (status, body["error"].clone())
}

fn legacy_initialize(version: &str) -> Value {
    json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion": version,
        "capabilities": {},
        "clientInfo": {"name": "probe", "version": "1"}}})
}

#[tokio::test]
async fn initialize_is_a_removed_method_in_2026_07_28() {
    let t = TestServer::start().await;
    let method = ("mcp-method", "initialize");

    // With the revision in `_meta` and the headers that mirror it.
    let modern = stateless(
        "initialize",
        json!({"protocolVersion": "2026-07-28", "capabilities": {},
               "clientInfo": {"name": "probe", "version": "1"}}),
    );
    let (status, error) = refusal(t.post(modern.clone(), &[MODERN, method]).await).await;
    assert_eq!((status, &error["code"]), (404, &json!(-32601)), "{error}");
    let supported = error["data"]["supported"].as_array().unwrap();
    assert!(supported.contains(&json!("2026-07-28")), "{error}");
    assert!(supported.contains(&json!("2025-11-25")), "{error}");

    // Named by the header alone, the body shaped as a legacy handshake.
    let (status, error) = refusal(
        t.post(legacy_initialize("2026-07-28"), &[MODERN, method])
            .await,
    )
    .await;
    assert_eq!((status, &error["code"]), (404, &json!(-32601)), "{error}");

    // Named by `_meta` alone: the revision's header rules apply first.
    let (status, error) = refusal(t.post(modern, &[method]).await).await;
    assert_eq!((status, &error["code"]), (400, &json!(-32020)), "{error}");
    assert_eq!(sessions_total(&t).await, 0);

    // The sessionful revisions keep their handshake, whatever the header.
    for header in [None, Some("2025-11-25"), Some("2024-11-05")] {
        let headers: Vec<(&str, &str)> = header
            .map(|v| vec![("mcp-protocol-version", v)])
            .unwrap_or_default();
        let response = t.post(legacy_initialize("2025-06-18"), &headers).await;
        assert_eq!(response.status(), 200, "{header:?}");
        assert!(response.headers().contains_key("mcp-session-id"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["result"]["protocolVersion"], "2025-06-18");
    }
    // A legacy handshake asking for the stateless revision is offered the
    // newest sessionful one, as before.
    let response = t.post(legacy_initialize("2026-07-28"), &[]).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(sessions_total(&t).await, 4);
    t.stop().await;
}

#[tokio::test]
async fn mirrored_headers_are_read_as_http_field_values() {
    let t = TestServer::start().await;
    let call = stateless(
        "tools/call",
        json!({"name":"echo","arguments":{"text":"x"}}),
    );
    let post = |headers: Vec<(&'static str, &'static str)>| {
        let call = call.clone();
        let t = &t;
        async move { t.post(call, &headers).await }
    };
    let answered = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["result"]["content"][0]["text"], "x", "{body}");
    };

    // Whitespace around a field value is not part of it (RFC 9110 5.5).
    answered(
        post(vec![
            ("mcp-protocol-version", "  2026-07-28 "),
            ("mcp-method", " tools/call\t"),
            ("mcp-name", "  echo  "),
        ])
        .await,
    )
    .await;
    // The Base64 sentinel is decoded before the comparison.
    answered(
        post(vec![
            MODERN,
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?ZWNobw==?="),
        ])
        .await,
    )
    .await;

    // Each refused with -32020; the last two because Mcp-Name cannot be read.
    let refused = [
        // Values are case-sensitive.
        ("Tools/Call", "echo", None),
        ("tools/call", "ECHO", None),
        // Whitespace inside a value is part of it.
        ("tools/call", "ec ho", None),
        // A sentinel that is not Base64, and bytes that are not visible ASCII.
        (
            "tools/call",
            "=?base64?not base64?=",
            Some("Mcp-Name is not valid"),
        ),
        ("tools/call", "\u{e9}cho", Some("Mcp-Name is not valid")),
    ];
    for (method, name, says) in refused {
        let (status, error) =
            refusal(post(vec![MODERN, ("mcp-method", method), ("mcp-name", name)]).await).await;
        assert_eq!(
            (status, &error["code"]),
            (400, &json!(-32020)),
            "{name}: {error}"
        );
        if let Some(says) = says {
            let message = error["message"].as_str().unwrap();
            assert!(message.contains(says), "{name}: {message}");
        }
    }
    t.stop().await;
}

/// A tool whose schemas use JSON Schema 2020-12 beyond `properties`.
struct Contact;

fn contact_input() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:example:contact",
        "$comment": "listed as written",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": { "street": { "type": "string" }, "city": { "type": "string" } },
                "unevaluatedProperties": false,
            },
        },
        "properties": {
            "name": { "type": "string", "minLength": 1 },
            "address": { "$ref": "#/$defs/address" },
            "home": { "$ref": "#addressDef" },
            "contactMethod": { "type": "string", "enum": ["phone", "email"] },
            "phone": { "type": "string", "pattern": "^[0-9+ ]+$" },
            "email": { "type": "string", "format": "email" },
            "tags": { "type": "array", "prefixItems": [{ "const": "primary" }], "items": false },
        },
        "allOf": [{ "anyOf": [{ "required": ["phone"] }, { "required": ["email"] }] }],
        "if": { "properties": { "contactMethod": { "const": "phone" } }, "required": ["contactMethod"] },
        "then": { "required": ["phone"] },
        "else": { "required": ["email"] },
        "dependentRequired": { "phone": ["name"] },
        "additionalProperties": false,
    })
}

fn contact_output() -> Value {
    json!({
        "type": "object",
        "$defs": { "id": { "$anchor": "contactId", "type": "string", "format": "uuid" } },
        "properties": { "id": { "$ref": "#contactId" }, "score": { "type": ["number", "null"] } },
        "oneOf": [{ "required": ["id"] }, { "not": { "required": ["score"] } }],
        "required": ["id"],
    })
}

#[async_trait]
impl ToolHandler for Contact {
    fn tool(&self) -> Tool {
        Tool::new("contact", "Stores a contact", schema(contact_input()))
            .with_raw_output_schema(schema(contact_output()))
    }

    async fn call(&self, _: &RequestContext, _: JsonObject) -> Result<CallToolResult, ErrorData> {
        unreachable!("only listed")
    }
}

#[tokio::test]
async fn json_schema_2020_12_keywords_survive_into_tools_list() {
    let t = TestServer::start().await;
    t.services
        .add(Arc::new(McpServer::new().with_tool(Contact)));
    let listed = |body: Value| {
        let tools = body["result"]["tools"].as_array().unwrap();
        tools
            .iter()
            .find(|tool| tool["name"] == "contact")
            .unwrap()
            .clone()
    };

    let modern = t
        .post(
            stateless("tools/list", json!({})),
            &[MODERN, ("mcp-method", "tools/list")],
        )
        .await;
    let tool = listed(modern.json().await.unwrap());
    assert_eq!(tool["inputSchema"], contact_input());
    assert_eq!(tool["outputSchema"], contact_output());

    let session = t.initialize("2025-11-25", "claude-code").await;
    let legacy = t
        .post(
            json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}),
            &[
                ("mcp-session-id", &session),
                ("mcp-protocol-version", "2025-11-25"),
            ],
        )
        .await;
    let tool = listed(legacy.json().await.unwrap());
    assert_eq!(tool["inputSchema"], contact_input());
    assert_eq!(tool["outputSchema"], contact_output());
    t.stop().await;
}

/// A tool that asks for some of its arguments in `Mcp-Param-*` headers.
struct Query;

#[async_trait]
impl ToolHandler for Query {
    fn tool(&self) -> Tool {
        let input = json!({
            "type": "object",
            "properties": {
                "region": { "type": "string", "x-mcp-header": "Region" },
                "limit": { "type": "integer", "x-mcp-header": "Limit" },
                "dry": { "type": "boolean", "x-mcp-header": "Dry" },
                "target": {
                    "type": "object",
                    "properties": { "zone": { "type": "string", "x-mcp-header": "Zone" } },
                },
                "query": { "type": "string" },
            },
        });
        Tool::new("query", "Runs a query", schema(input))
    }

    async fn call(&self, _: &RequestContext, _: JsonObject) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![]))
    }
}

#[tokio::test]
async fn x_mcp_header_arguments_must_be_mirrored() {
    let t = TestServer::start().await;
    t.services.add(Arc::new(McpServer::new().with_tool(Query)));
    let call = |arguments: Value, params: &[(&str, &str)]| {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (format!("mcp-param-{k}"), v.to_string()))
            .collect();
        let body = stateless(
            "tools/call",
            json!({"name": "query", "arguments": arguments}),
        );
        let t = &t;
        async move {
            let mut headers = vec![MODERN, ("mcp-method", "tools/call"), ("mcp-name", "query")];
            headers.extend(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let response = t.post(body, &headers).await;
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (status, body["error"]["code"].clone())
        }
    };
    let ok = (200, Value::Null);
    let mismatch = (400, json!(-32020));
    let all = json!({"region": "Hello", "limit": 42, "dry": false, "target": {"zone": "a"}});
    let mirrored = [
        ("region", "Hello"),
        ("limit", "42"),
        ("dry", "false"),
        ("zone", "a"),
    ];

    assert_eq!(call(all.clone(), &mirrored).await, ok);
    // Base64 decoded first; integers compared as numbers.
    let encoded = [
        ("region", "=?base64?SGVsbG8=?="),
        ("limit", "42.0"),
        ("dry", "false"),
        ("zone", "a"),
    ];
    assert_eq!(call(all.clone(), &encoded).await, ok);
    // Absent or null arguments need no header; unannotated ones never do.
    assert_eq!(call(json!({"region": null, "query": "q"}), &[]).await, ok);

    let without = |name: &str| -> Vec<(&str, &str)> {
        mirrored
            .iter()
            .copied()
            .filter(|(k, _)| *k != name)
            .collect()
    };
    for name in ["region", "limit", "dry", "zone"] {
        assert_eq!(call(all.clone(), &without(name)).await, mismatch, "{name}");
    }
    let with = |name: &'static str, value: &'static str| -> Vec<(&'static str, &'static str)> {
        let mut headers = without(name);
        headers.push((name, value));
        headers
    };
    for (name, value) in [
        ("region", "hello"),
        ("region", "=?base64?SGVsbG8?="),
        ("region", "=?base64?SGVs!!!bG8=?="),
        ("limit", "43"),
        ("dry", "False"),
        ("zone", "b"),
    ] {
        assert_eq!(
            call(all.clone(), &with(name, value)).await,
            mismatch,
            "{name}: {value}"
        );
    }
    // Without the sentinel's suffix a value is literal.
    let literal = json!({"region": "=?base64?SGVsbG8="});
    assert_eq!(call(literal, &[("region", "=?base64?SGVsbG8=")]).await, ok);
    t.stop().await;
}

/// Needs the client's sampling capability, and logs once it runs.
struct Careful;

#[async_trait]
impl ToolHandler for Careful {
    fn tool(&self) -> Tool {
        Tool::new(
            "careful",
            "Needs sampling",
            schema(json!({ "type": "object" })),
        )
    }

    async fn call(&self, ctx: &RequestContext, _: JsonObject) -> Result<CallToolResult, ErrorData> {
        ctx.require_client_capability("sampling")?;
        ctx.log("info", None, json!("careful ran")).await;
        Ok(CallToolResult::success(vec![
            rmcp::model::ContentBlock::text("done"),
        ]))
    }
}

/// A stateless `tools/call` of `careful`, with these client capabilities
/// and, if given, a `logLevel` in `_meta`.
async fn call_careful(
    t: &TestServer,
    capabilities: Value,
    log_level: Option<&str>,
) -> reqwest::Response {
    let mut body = stateless("tools/call", json!({ "name": "careful", "arguments": {} }));
    let meta = &mut body["params"]["_meta"];
    meta["io.modelcontextprotocol/clientCapabilities"] = capabilities;
    if let Some(level) = log_level {
        meta["io.modelcontextprotocol/logLevel"] = json!(level);
    }
    t.post(
        body,
        &[
            MODERN,
            ("mcp-method", "tools/call"),
            ("mcp-name", "careful"),
        ],
    )
    .await
}

/// The JSON-RPC messages of a response, whether JSON or SSE.
async fn messages(response: reqwest::Response) -> Vec<Value> {
    let sse = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream");
    if !sse {
        return vec![response.json().await.unwrap()];
    }
    common::SseReader::new(response).messages().await
}

#[tokio::test]
async fn an_undeclared_capability_is_refused_with_32021_and_400() {
    let t = TestServer::start().await;
    t.services
        .add(Arc::new(McpServer::new().with_tool(Careful)));

    let (status, error) = refusal(call_careful(&t, json!({}), None).await).await;
    assert_eq!((status, &error["code"]), (400, &json!(-32021)), "{error}");
    assert_eq!(
        error["data"]["requiredCapabilities"],
        json!({ "sampling": {} }),
        "an object keyed by the capability: {error}"
    );

    let declared = call_careful(&t, json!({ "sampling": {} }), None).await;
    assert_eq!(declared.status(), 200);
    let answer = messages(declared).await;
    assert_eq!(
        answer[0]["result"]["content"][0]["text"], "done",
        "{answer:?}"
    );
    t.stop().await;
}

#[tokio::test]
async fn a_stateless_request_gets_log_messages_only_at_its_log_level() {
    let t = TestServer::start().await;
    t.services
        .add(Arc::new(McpServer::new().with_tool(Careful)));
    let sampling = json!({ "sampling": {} });
    let logs = |messages: &[Value]| {
        messages
            .iter()
            .filter(|m| m["method"] == "notifications/message")
            .count()
    };

    let silent = messages(call_careful(&t, sampling.clone(), None).await).await;
    assert_eq!(logs(&silent), 0, "no logLevel, no log messages: {silent:?}");
    assert_eq!(
        silent.last().unwrap()["result"]["content"][0]["text"],
        "done"
    );

    let above = messages(call_careful(&t, sampling.clone(), Some("error")).await).await;
    assert_eq!(logs(&above), 0, "info is below error: {above:?}");

    let heard = messages(call_careful(&t, sampling, Some("debug")).await).await;
    assert_eq!(logs(&heard), 1, "{heard:?}");
    assert_eq!(heard[0]["params"]["data"], "careful ran", "{heard:?}");
    assert_eq!(
        heard.last().unwrap()["result"]["content"][0]["text"],
        "done"
    );
    t.stop().await;
}
