//! MCP over Streamable HTTP as tests speak it: an in-process endpoint's
//! usual requests, request bodies, and stream resumption.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use sessiongate_core::lifecycle::SessionManager;

use crate::sse::SseReader;
use crate::wait::eventually;

/// A server's `/mcp` endpoint under test, in this process: the requests
/// tests send most, and the session manager behind it, to wait on.
#[derive(Clone)]
pub struct McpEndpoint {
    pub http: reqwest::Client,
    /// `http://host:port`, without a path.
    pub base: String,
    pub manager: Arc<SessionManager>,
}

impl McpEndpoint {
    pub fn new(base: String, manager: Arc<SessionManager>) -> Self {
        McpEndpoint {
            http: reqwest::Client::new(),
            base,
            manager,
        }
    }

    /// Waits until none of the session's streams is open. A response's
    /// stream closes just after the client has read its body, and idle time
    /// counts from the close, so a test waits for it before moving the clock.
    pub async fn streams_closed(&self, session: &str) {
        let manager = self.manager.clone();
        let id = session.parse().expect("a session id");
        eventually(Duration::from_secs(5), || {
            let manager = manager.clone();
            async move { manager.active(id).map(|s| s.open_streams()) == Some(0) }
        })
        .await;
    }

    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    /// POSTs a raw body to /mcp with the usual MCP headers plus `extra`.
    pub async fn post_raw(
        &self,
        body: impl Into<reqwest::Body>,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert(
            "accept",
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        for (k, v) in extra {
            headers.insert(
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        self.http
            .post(self.mcp_url())
            .headers(headers)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, body: Value, extra: &[(&str, &str)]) -> reqwest::Response {
        self.post_raw(body.to_string(), extra).await
    }

    /// A 2026-07-28 request (see [`stateless`]) that names no tool, prompt
    /// or resource, with the headers that mirror it; its JSON body.
    pub async fn post_stateless(&self, method: &str, params: Value) -> Value {
        self.post(
            stateless(method, params),
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", method),
            ],
        )
        .await
        .json()
        .await
        .unwrap()
    }

    /// Opens a session at `version` and completes the handshake.
    pub async fn initialize(&self, version: &str, client_name: &str) -> String {
        self.initialize_with(version, client_name, json!({"sampling": {}}))
            .await
    }

    /// As [`initialize`](Self::initialize), for a client that declares
    /// `capabilities`.
    pub async fn initialize_with(
        &self,
        version: &str,
        client_name: &str,
        capabilities: Value,
    ) -> String {
        let response = self
            .post(
                json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                    "protocolVersion": version,
                    "capabilities": capabilities,
                    "clientInfo": {"name": client_name, "version": "1.2.3"}}}),
                &[],
            )
            .await;
        assert_eq!(response.status(), 200);
        let id = response.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_string();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["result"]["protocolVersion"], version);
        let ack = self
            .post(
                json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
                &[("mcp-session-id", &id), ("mcp-protocol-version", version)],
            )
            .await;
        assert_eq!(ack.status(), 202);
        id
    }

    /// Calls a tool on a session and returns the JSON-RPC response.
    pub async fn call_tool(&self, session: &str, name: &str, args: Value) -> Value {
        let response = self
            .post(
                json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":name,"arguments":args}}),
                &[("mcp-session-id", session)],
            )
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// `DELETE /mcp` for a session id.
    pub async fn delete(&self, session: &str) -> reqwest::Response {
        self.http
            .delete(self.mcp_url())
            .header("mcp-session-id", session)
            .send()
            .await
            .unwrap()
    }

    /// Opens the session's standalone stream (`GET /mcp`) on this
    /// endpoint's client; panics unless it is one.
    pub async fn open_stream(&self, session: &str) -> SseReader {
        SseReader::new(self.get_stream_on(&self.http, session).await)
    }

    /// The same on `http`: a client of its own is a connection of its own.
    pub async fn get_stream_on(&self, http: &reqwest::Client, session: &str) -> reqwest::Response {
        let stream = http
            .get(self.mcp_url())
            .header("accept", "text/event-stream")
            .header("mcp-session-id", session)
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), 200, "GET /mcp for session {session}");
        assert_eq!(stream.headers()["content-type"], "text/event-stream");
        stream
    }
}

/// A 2026-07-28 request body with the required `_meta`: a stateless request
/// from a client named `cursor-test` at version `9.9`.
pub fn stateless(method: &str, params: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "cursor-test", "version": "9.9"},
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    json!({"jsonrpc":"2.0","id":1,"method":method,"params":params})
}

/// Resumes a session's stream with `GET /mcp` and `Last-Event-ID`; returns
/// the messages it carries until the server ends it.
pub async fn resume(
    http: &reqwest::Client,
    base: &str,
    session: &str,
    last_event_id: &str,
) -> Vec<Value> {
    let response = http
        .get(format!("{base}/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .header("last-event-id", last_event_id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    SseReader::new(response).messages().await
}
