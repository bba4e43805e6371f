//! Upstreams for the HTTP links' tests: sessiongate's own `/mcp` endpoint in
//! this process (built-in tools, SQLite store), the rmcp baseline as a child
//! process on a port of its own, and the usual configuration and handshake.
// Each test file uses a part of this.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sessiongate_core::lifecycle::{Lifecycle, LifecycleConfig};
use sessiongate_core::{ManualClock, SharedClock};
use sessiongate_gateway::config::{HttpConfig, HttpProtocol};
use sessiongate_gateway::link::{Incoming, Link, Opened};
use sessiongate_mcp::peers::Peers;
use sessiongate_mcp::tools::{with_builtin_tools, with_conformance_fixtures};
use sessiongate_mcp::{router, Composite, Dispatcher, McpServer, McpState, ServerInfo};
use sessiongate_testkit::store::TempStore;

/// How long a test waits for something the upstream sends on its own.
pub const WAIT: Duration = Duration::from_secs(10);

/// sessiongate serving its built-in tools at `/mcp`, in this process.
pub struct Sessiongate {
    pub lifecycle: Lifecycle,
    pub state: McpState,
    pub services: Arc<Composite>,
    pub url: String,
    _store: TempStore,
}

impl Sessiongate {
    pub async fn start() -> Sessiongate {
        Self::serving(with_builtin_tools(McpServer::new())).await
    }

    /// With the conformance suite's fixtures beside the built-in tools.
    pub async fn with_conformance() -> Sessiongate {
        Self::serving(with_conformance_fixtures(with_builtin_tools(
            McpServer::new(),
        )))
        .await
    }

    async fn serving(server: McpServer) -> Sessiongate {
        let store = sessiongate_testkit::store::sqlite().await;
        let clock: SharedClock = Arc::new(ManualClock::starting_now());
        let peers = Peers::default();
        let lifecycle = Lifecycle::start(
            store.store.clone(),
            clock,
            LifecycleConfig::default(),
            vec![Arc::new(peers.clone())],
        )
        .await
        .unwrap();
        let services = Arc::new(Composite::new());
        services.add(Arc::new(server));
        let dispatcher = Dispatcher::new(ServerInfo::new("sessiongate", "test"), services.clone());
        let state = McpState::new(&lifecycle, peers, dispatcher, Default::default());
        let addr = sessiongate_testkit::http::spawn(router(state.clone())).await;
        Sessiongate {
            lifecycle,
            state,
            services,
            url: format!("http://{addr}/mcp"),
            _store: store,
        }
    }

    /// Whether the server holds `session` as active.
    pub fn has_session(&self, session: &str) -> bool {
        self.lifecycle
            .sessions
            .active(session.parse().unwrap())
            .is_some()
    }
}

/// `target/debug/rmcp-baseline` (`cargo build -p rmcp-baseline`), as a
/// child on `port`; killed when dropped.
pub struct RmcpBaseline {
    child: Child,
    pub url: String,
}

impl RmcpBaseline {
    pub async fn start(port: u16, args: &[&str]) -> RmcpBaseline {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
        let bin = target.join("debug/rmcp-baseline");
        assert!(
            bin.exists(),
            "{} is missing: run `cargo build -p rmcp-baseline`",
            bin.display()
        );
        let child = Command::new(bin)
            .arg(port.to_string())
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .expect("rmcp-baseline starts");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let started = tokio::time::Instant::now();
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(started.elapsed() < WAIT, "rmcp-baseline did not listen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        RmcpBaseline {
            child,
            url: format!("http://{addr}/mcp"),
        }
    }

    /// Kills the child and waits for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RmcpBaseline {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn config(url: &str, protocol: HttpProtocol) -> HttpConfig {
    HttpConfig {
        url: url.to_string(),
        protocol,
        headers: Default::default(),
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(4),
    }
}

/// The handshake as the relay performs it: `initialize`, the negotiated
/// revision set on the link, `notifications/initialized`. The result.
pub async fn initialize(link: &dyn Link, version: &str) -> Value {
    let result = link
        .request(
            0,
            "initialize",
            Some(&json!({
                "protocolVersion": version,
                "capabilities": {"sampling": {}},
                "clientInfo": {"name": "gateway-test", "version": "1.0"},
            })),
        )
        .await
        .expect("initialize");
    let negotiated = result["protocolVersion"].as_str().expect("a revision");
    link.set_protocol_version(negotiated);
    link.notify("notifications/initialized", None)
        .await
        .expect("notifications/initialized");
    result
}

/// `tools/call echo`; the text it echoed.
pub async fn echo(link: &dyn Link, id: u64, text: &str) -> String {
    let result = link
        .request(
            id,
            "tools/call",
            Some(&json!({"name": "echo", "arguments": {"text": text}})),
        )
        .await
        .expect("tools/call echo");
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {result}"))
        .to_string()
}

/// The next message the upstream sent on its own.
pub async fn next_incoming(opened: &mut Opened) -> Incoming {
    tokio::time::timeout(WAIT, opened.incoming.recv())
        .await
        .expect("an incoming message in time")
        .expect("the link is still open")
}
