//! Assembles the running server: the data directory's lock, store, session
//! manager, MCP endpoint, management API, and an orderly shutdown that keeps
//! sessions for the next start.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use sessiongate_api::ApiState;
use sessiongate_core::lifecycle::SessionManager;
use sessiongate_core::reconnect::SigningKey;
use sessiongate_core::SharedClock;
use sessiongate_mcp::tools::with_builtin_tools;
use sessiongate_mcp::{Composite, Dispatcher, McpServer, McpState, ServerInfo};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::connections::{self, Listener};
use crate::datadir::{self, DataDirLock};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A server that is accepting connections.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub admin_token: String,
    pub admin_token_created: bool,
    pub manager: Arc<SessionManager>,
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
    /// Last, so it is released after everything else is dropped.
    _data_dir_lock: DataDirLock,
}

impl RunningServer {
    /// Stops accepting, finishes in-flight requests, writes everything queued.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.stop.send_replace(true);
        self.task.await.context("server task failed")?
    }

    /// Serves until `signal` resolves, then shuts down.
    pub async fn run_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        tokio::select! {
            _ = signal => {
                tracing::info!("shutting down; active sessions are kept for the next start");
                self.stop.send_replace(true);
            }
            result = &mut self.task => return result.context("server task failed")?,
        }
        (&mut self.task).await.context("server task failed")?
    }
}

/// The MCP server: its identity, and the services behind it — the built-in
/// one first, where later services (upstream servers) will join it.
fn mcp_server(conformance: bool) -> Dispatcher {
    let mut info = ServerInfo::new("sessiongate", VERSION);
    info.instructions = Some(
        "sessiongate keeps this session durable across restarts. Tools: echo, health_check, \
         session_info, list_sessions, get_reconnect_token, reconnect_session."
            .into(),
    );
    let builtin = with_builtin_tools(McpServer::new());
    let builtin = if conformance {
        sessiongate_mcp::tools::with_conformance_fixtures(builtin)
    } else {
        builtin
    };
    let services = Composite::new();
    services.add(Arc::new(builtin));
    Dispatcher::new(info, Arc::new(services))
}

/// Opens the store, restores sessions and starts serving.
pub async fn start(config: Config, clock: SharedClock) -> anyhow::Result<RunningServer> {
    // Before anything is counted.
    sessiongate_api::metrics::handle();
    // First of all: a second server must stop before it touches the store.
    let data_dir_lock = datadir::acquire(&config)?;
    let store = sessiongate_store::connect(&config.database)
        .await
        .with_context(|| format!("cannot open the session store {}", config.database))?;
    let mut lifecycle = config.lifecycle.clone();
    if lifecycle.reconnect.key.is_none() {
        // Tokens must outlive restarts: sign with a key kept on disk.
        let (key, _) = sessiongate_api::auth::load_or_create_secret(
            &config.data_dir,
            sessiongate_api::auth::RECONNECT_KEY_FILE,
        )
        .with_context(|| {
            format!(
                "cannot read or create the reconnect key in {}",
                config.data_dir.display()
            )
        })?;
        lifecycle.reconnect.key = Some(SigningKey::from_bytes(key.into_bytes()));
    }
    let manager = SessionManager::start(store, clock, lifecycle)
        .await
        .context("cannot restore sessions")?;

    let (admin_token, admin_token_created) = match &config.admin_token {
        Some(t) => (t.clone(), false),
        None => sessiongate_api::auth::load_or_create_admin_token(&config.data_dir).with_context(
            || {
                format!(
                    "cannot read or create the admin token in {}",
                    config.data_dir.display()
                )
            },
        )?,
    };

    let mcp = McpState::new(
        manager.clone(),
        mcp_server(config.conformance),
        config.transport.clone(),
    );
    let peers = mcp.peers.clone();
    let api = ApiState {
        manager: manager.clone(),
        admin_token: admin_token.clone().into(),
        on_terminate: Arc::new(move |id| peers.remove(id)),
        started_at: manager.now(),
        live: Arc::default(),
        known_tool: {
            let dispatcher = mcp.dispatcher.clone();
            Arc::new(move |name: &str| dispatcher.has_tool(name))
        },
    };
    let app = Router::new()
        .merge(sessiongate_dashboard::router())
        .merge(sessiongate_mcp::router(mcp.clone()))
        .merge(sessiongate_api::router(api));

    let fd_limit = connections::raise_fd_limit().context("cannot read the open-file limit")?;
    // A host name is resolved here; the first of its addresses that binds wins.
    let listener = TcpListener::bind(config.listen.host_port())
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let listener = Listener::new(listener, config.connections.clone(), fd_limit);
    let (stop, stopped) = watch::channel(false);

    let pruner = {
        let mcp = mcp.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tick.tick().await;
                mcp.prune_peers();
            }
        })
    };
    let task = tokio::spawn({
        let manager = manager.clone();
        async move {
            let close_streams = {
                let mut stopped = stopped.clone();
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                    // Open GET streams would hold the graceful shutdown forever.
                    mcp.close_streams();
                }
            };
            tokio::join!(listener.serve(app, stopped), close_streams);
            pruner.abort();
            manager.shutdown().await;
            Ok(())
        }
    });
    Ok(RunningServer {
        addr,
        admin_token,
        admin_token_created,
        manager,
        stop,
        task,
        _data_dir_lock: data_dir_lock,
    })
}
