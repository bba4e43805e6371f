//! The cli crate's test harness: the whole app assembled in-process on an
//! ephemeral port ([`TestServer`]), and the path of the real binary for
//! tests that run it as a child process. The generic pieces live in
//! `sessiongate-testkit`; the ones every test file used are re-exported.
// Each test file uses a part of this.
#![allow(dead_code, unused_imports)]

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use sessiongate::app::{self, RunningServer};
use sessiongate::config::Settings;
use sessiongate_core::lifecycle::EndSubscriber;
use sessiongate_core::{ManualClock, SharedClock};

pub use sessiongate_testkit::mcp::{resume, stateless};
pub use sessiongate_testkit::{eventually, SseEvent, SseReader};

/// The `sessiongate` binary, for [`sessiongate_testkit::process::Gateway`].
pub const BIN: &str = env!("CARGO_BIN_EXE_sessiongate");

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct TestServer {
    pub server: RunningServer,
    pub clock: ManualClock,
    pub http: reqwest::Client,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(Settings::default()).await
    }

    /// Starts a server on a fresh SQLite store with a manual clock.
    pub async fn start_with(settings: Settings) -> TestServer {
        Self::start_observed(settings, Vec::new()).await
    }

    /// [`Self::start_with`], with `ends` told of every session end.
    pub async fn start_observed(
        settings: Settings,
        ends: Vec<Arc<dyn EndSubscriber>>,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            data_dir: Some(dir.path().to_path_buf()),
            admin_token: Some(ADMIN_TOKEN.into()),
            ..settings
        };
        let clock = ManualClock::starting_now();
        let shared: SharedClock = Arc::new(clock.clone());
        let server = app::start_with(settings.resolve().unwrap(), shared, ends)
            .await
            .unwrap();
        let base = format!("http://{}", server.addr);
        TestServer {
            server,
            clock,
            http: reqwest::Client::new(),
            base,
            _dir: dir,
        }
    }

    /// Waits until none of the session's streams is open. A response's
    /// stream closes just after the client has read its body, and idle time
    /// counts from the close, so a test waits for it before moving the clock.
    pub async fn streams_closed(&self, session: &str) {
        let manager = self.server.manager.clone();
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

    pub async fn admin_get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{}", self.base, path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    pub async fn stop(self) {
        self.server.shutdown().await.unwrap();
    }
}
