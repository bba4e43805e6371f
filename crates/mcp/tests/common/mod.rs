//! A real MCP endpoint for this crate's HTTP tests: the session lifecycle
//! on a SQLite store in a temporary directory, driven by a manual clock,
//! behind `McpState` and `router`, served by axum on an ephemeral port; a
//! reqwest client with the usual MCP requests. SSE reading and waiting come
//! from the shared testkit.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use sessiongate_core::lifecycle::{Lifecycle, LifecycleConfig, SessionManager};
use sessiongate_core::{ManualClock, SharedClock};
use sessiongate_mcp::peers::Peers;
use sessiongate_mcp::tools::with_builtin_tools;
use sessiongate_mcp::{
    router, Composite, Dispatcher, McpServer, McpState, ServerInfo, TransportConfig,
};
pub use sessiongate_testkit::mcp::stateless;
pub use sessiongate_testkit::sse::SseReader;
use sessiongate_testkit::store::TempStore;
pub use sessiongate_testkit::wait::eventually;

pub struct TestServer {
    pub lifecycle: Lifecycle,
    pub manager: Arc<SessionManager>,
    pub state: McpState,
    /// The services behind the endpoint; the built-in one comes first.
    pub services: Arc<Composite>,
    pub clock: ManualClock,
    pub http: reqwest::Client,
    pub base: String,
    /// The store behind the lifecycle, for what a test reads back.
    pub store: TempStore,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(TransportConfig::default(), LifecycleConfig::default()).await
    }

    /// Serves `/mcp` with the built-in tools on a fresh SQLite store.
    pub async fn start_with(transport: TransportConfig, config: LifecycleConfig) -> TestServer {
        let store = sessiongate_testkit::store::sqlite().await;
        let clock = ManualClock::starting_now();
        let shared: SharedClock = Arc::new(clock.clone());
        // As the assembly does: the transport's per-session state goes
        // with each session that ends.
        let peers = Peers::default();
        let lifecycle = Lifecycle::start(
            store.store.clone(),
            shared,
            config,
            vec![Arc::new(peers.clone())],
        )
        .await
        .unwrap();
        let services = Arc::new(Composite::new());
        services.add(Arc::new(with_builtin_tools(McpServer::new())));
        let dispatcher = Dispatcher::new(ServerInfo::new("sessiongate", "test"), services.clone());
        let state = McpState::new(&lifecycle, peers, dispatcher, transport);
        let addr = sessiongate_testkit::http::spawn(router(state.clone())).await;
        TestServer {
            manager: lifecycle.sessions.clone(),
            lifecycle,
            state,
            services,
            clock,
            http: reqwest::Client::new(),
            base: format!("http://{addr}"),
            store,
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

    /// Opens a session at `version` and completes the handshake.
    pub async fn initialize(&self, version: &str, client_name: &str) -> String {
        let response = self
            .post(
                json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                    "protocolVersion": version,
                    "capabilities": {"sampling": {}},
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

    /// Ends open streams and drains the lifecycle; the listener goes with
    /// the test's runtime.
    pub async fn stop(self) {
        self.state.close_streams();
        self.lifecycle.shutdown().await;
    }
}
