//! A real MCP endpoint for this crate's HTTP tests: the session lifecycle
//! on a SQLite store in a temporary directory, driven by a manual clock,
//! behind `McpState` and `router`, served by axum on an ephemeral port; a
//! reqwest client with the usual MCP requests. SSE reading and waiting come
//! from the shared testkit.
// Each test file uses a part of this.
#![allow(dead_code, unused_imports)]

use std::sync::Arc;

use sessiongate_core::lifecycle::{Lifecycle, LifecycleConfig};
use sessiongate_core::{ManualClock, SharedClock};
use sessiongate_mcp::peers::Peers;
use sessiongate_mcp::tools::with_builtin_tools;
use sessiongate_mcp::{
    router, Composite, Dispatcher, McpServer, McpState, ServerInfo, TransportConfig,
};
pub use sessiongate_testkit::mcp::{stateless, McpEndpoint};
pub use sessiongate_testkit::sse::SseReader;
use sessiongate_testkit::store::TempStore;
pub use sessiongate_testkit::wait::eventually;

pub struct TestServer {
    pub lifecycle: Lifecycle,
    pub state: McpState,
    /// The services behind the endpoint; the built-in one comes first.
    pub services: Arc<Composite>,
    pub clock: ManualClock,
    /// Its `/mcp` endpoint; a test server derefs to it.
    pub endpoint: McpEndpoint,
    /// The store behind the lifecycle, for what a test reads back.
    pub store: TempStore,
}

impl std::ops::Deref for TestServer {
    type Target = McpEndpoint;

    fn deref(&self) -> &McpEndpoint {
        &self.endpoint
    }
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
        let endpoint = McpEndpoint::new(format!("http://{addr}"), lifecycle.sessions.clone());
        TestServer {
            lifecycle,
            state,
            services,
            clock,
            endpoint,
            store,
        }
    }

    /// Ends open streams and drains the lifecycle; the listener goes with
    /// the test's runtime.
    pub async fn stop(self) {
        self.state.close_streams();
        self.lifecycle.shutdown().await;
    }
}
