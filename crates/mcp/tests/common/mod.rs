//! A real MCP endpoint for this crate's HTTP tests: a session manager on a
//! SQLite store in a temporary directory, driven by a manual clock, behind
//! `McpState` and `router`, served by axum on an ephemeral port; a reqwest
//! client with the usual MCP requests; and an SSE reader.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use sessiongate_core::lifecycle::{LifecycleConfig, SessionManager};
use sessiongate_core::{ManualClock, SharedClock};
use sessiongate_mcp::tools::with_builtin_tools;
use sessiongate_mcp::{
    router, Composite, Dispatcher, McpServer, McpState, ServerInfo, TransportConfig,
};
use sessiongate_store::SqliteStore;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestServer {
    pub manager: Arc<SessionManager>,
    pub state: McpState,
    /// The services behind the endpoint; the built-in one comes first.
    pub services: Arc<Composite>,
    pub clock: ManualClock,
    pub http: reqwest::Client,
    pub base: String,
    stop: oneshot::Sender<()>,
    serving: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(TransportConfig::default(), LifecycleConfig::default()).await
    }

    /// Serves `/mcp` with the built-in tools on a fresh SQLite store.
    pub async fn start_with(transport: TransportConfig, lifecycle: LifecycleConfig) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("sessions.db"))
            .await
            .unwrap();
        let clock = ManualClock::starting_now();
        let shared: SharedClock = Arc::new(clock.clone());
        let manager = SessionManager::start(Arc::new(store), shared, lifecycle)
            .await
            .unwrap();
        let services = Arc::new(Composite::new());
        services.add(Arc::new(with_builtin_tools(McpServer::new())));
        let dispatcher = Dispatcher::new(ServerInfo::new("sessiongate", "test"), services.clone());
        let state = McpState::new(manager.clone(), dispatcher, transport);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let serving = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        TestServer {
            manager,
            state,
            services,
            clock,
            http: reqwest::Client::new(),
            base,
            stop,
            serving,
            _dir: dir,
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

    /// Stops serving (open streams end) and drains the session manager.
    pub async fn stop(self) {
        self.state.close_streams();
        let _ = self.stop.send(());
        self.serving.await.unwrap();
        self.manager.shutdown().await;
    }
}

/// A 2026-07-28 request body with the required `_meta`.
pub fn stateless(method: &str, params: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "cursor-test", "version": "9.9"},
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    json!({"jsonrpc":"2.0","id":1,"method":method,"params":params})
}

/// Waits until `check` holds, polling; panics after `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One server-sent event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub data: String,
    pub retry: Option<u64>,
}

impl SseEvent {
    /// The JSON-RPC message the event carries (`None` for priming events).
    pub fn message(&self) -> Option<Value> {
        (!self.data.is_empty()).then(|| serde_json::from_str(&self.data).unwrap())
    }
}

/// Reads server-sent events off a response as they arrive.
pub struct SseReader {
    response: reqwest::Response,
    buf: String,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        SseReader {
            response,
            buf: String::new(),
        }
    }

    /// The next event (comments skipped), or `None` when the stream ends.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut event = SseEvent::default();
                let mut fields = false;
                for line in block.lines() {
                    let (name, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match name {
                        "id" => event.id = Some(value.to_string()),
                        "data" => {
                            if !event.data.is_empty() {
                                event.data.push('\n');
                            }
                            event.data.push_str(value);
                        }
                        "retry" => event.retry = value.parse().ok(),
                        _ => continue,
                    }
                    fields = true;
                }
                if fields {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("no SSE data within 10 s")
                .ok()??;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Every remaining event until the server ends the stream.
    pub async fn rest(mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(e) = self.next().await {
            events.push(e);
        }
        events
    }
}
