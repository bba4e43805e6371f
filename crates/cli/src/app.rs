//! Assembles the running server: the data directory's lock, store, session
//! lifecycle, MCP endpoint, management API, and an orderly shutdown that
//! keeps sessions for the next start.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use sessiongate_api::ApiState;
use sessiongate_core::lifecycle::{EndSubscriber, Lifecycle, SessionManager};
use sessiongate_core::store::Store;
use sessiongate_core::store_health::Monitored;
use sessiongate_core::token::SigningKey;
use sessiongate_core::upstream::UpstreamMonitor;
use sessiongate_core::SharedClock;
use sessiongate_gateway::{Gateway, GatewayOptions, Reserved};
use sessiongate_mcp::peers::Peers;
use sessiongate_mcp::tools::with_builtin_tools;
use sessiongate_mcp::{Composite, Dispatcher, McpServer, McpState, ServerInfo, Service, StateKey};
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
    /// The store, every call to it observed for the health endpoint.
    pub store: Arc<dyn Store>,
    /// The lifecycle's services, the manager's among them.
    pub lifecycle: Lifecycle,
    /// The upstream servers, as monitoring sees them.
    pub upstreams: Arc<dyn UpstreamMonitor>,
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

/// The built-in service, unless turned off: its tools, with the
/// conformance fixtures in conformance mode.
fn builtin(config: &Config) -> Option<McpServer> {
    let builtin = with_builtin_tools(McpServer::new());
    if config.conformance {
        Some(sessiongate_mcp::tools::with_conformance_fixtures(builtin))
    } else {
        config.builtin_tools.then_some(builtin)
    }
}

/// The tool and prompt names of the built-in service, which a lone
/// upstream must not take to go unprefixed.
fn reserved(builtin: Option<&McpServer>) -> Reserved {
    let Some(catalog) = builtin.map(|b| b.catalog().current()) else {
        return Reserved::default();
    };
    Reserved {
        tools: catalog.tools.iter().map(|t| t.name.to_string()).collect(),
        prompts: catalog
            .prompts
            .iter()
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect(),
    }
}

/// The MCP server: its identity, and the services behind it — the built-in
/// one first (unless turned off), then the upstream servers.
fn mcp_server(
    config: &Config,
    builtin: Option<McpServer>,
    upstreams: Vec<Arc<dyn Service>>,
) -> Dispatcher {
    let mut info = ServerInfo::new("sessiongate", VERSION);
    info.instructions = Some(
        "sessiongate keeps this session durable across restarts. Tools: echo, health_check, \
         session_info, list_sessions, get_reconnect_token, reconnect_session."
            .into(),
    );
    let services = Composite::new();
    if let Some(builtin) = builtin {
        services.add(Arc::new(builtin));
    }
    if config.conformance {
        services.add(sessiongate_mcp::tools::conformance_list_changes());
    }
    for upstream in upstreams {
        services.add(upstream);
    }
    Dispatcher::new(info, Arc::new(services))
}

/// The `what` key kept in the data directory's `file`, created on first use.
fn data_dir_secret(config: &Config, file: &str, what: &str) -> anyhow::Result<String> {
    let (key, _) = sessiongate_api::auth::load_or_create_secret(&config.data_dir, file)
        .with_context(|| {
            format!(
                "cannot read or create the {what} key in {}",
                config.data_dir.display()
            )
        })?;
    Ok(key)
}

/// Opens the store, restores sessions and starts serving.
pub async fn start(config: Config, clock: SharedClock) -> anyhow::Result<RunningServer> {
    start_with(config, clock, Vec::new()).await
}

/// [`start`], with `ends` told of every session that leaves the registry
/// besides the transport.
pub async fn start_with(
    config: Config,
    clock: SharedClock,
    mut ends: Vec<Arc<dyn EndSubscriber>>,
) -> anyhow::Result<RunningServer> {
    // Before anything is counted.
    sessiongate_api::metrics::handle();
    // First of all: a second server must stop before it touches the store.
    let data_dir_lock = datadir::acquire(&config)?;
    let store = sessiongate_store::connect(&config.database)
        .await
        .with_context(|| format!("cannot open the session store {}", config.database))?;
    // Every port of the store is observed, whoever holds it.
    let store = Arc::new(Monitored::new(store, clock.clone()));
    let mut lifecycle = config.lifecycle.clone();
    if lifecycle.reconnect.key.is_none() {
        // Tokens must outlive restarts: sign with a key kept on disk.
        let key = data_dir_secret(
            &config,
            sessiongate_api::auth::RECONNECT_KEY_FILE,
            "reconnect",
        )?;
        lifecycle.reconnect.key = Some(SigningKey::from_bytes(key.into_bytes()));
    }
    // A retry after a restart still opens the state issued before it.
    let mut transport = config.transport.clone();
    let key = data_dir_secret(
        &config,
        sessiongate_api::auth::REQUEST_STATE_KEY_FILE,
        "request-state",
    )?;
    let state_key = StateKey::from_bytes(key.into_bytes());
    transport.request_state_key = Some(state_key.clone());
    // An ended session's transport state (streams, pending requests) goes
    // with it.
    let peers = Peers::default();
    ends.push(Arc::new(peers.clone()));
    let builtin = builtin(&config);
    // Upstream sessions end with their client sessions; the mappings are
    // stored beside the sessions, so a session goes on after a restart.
    let gateway = Gateway::start(
        config.upstreams.clone(),
        GatewayOptions {
            tool_separator: config.tool_separator.clone(),
            // The conformance fixtures make tasks of their own, whose ids a
            // bare upstream would claim.
            bare_names: !config.conformance,
            reserved: reserved(builtin.as_ref()),
            pool_idle: config.upstream_idle_timeout,
            task_key: state_key,
        },
        store.clone(),
        peers.clone(),
        &config.data_dir,
        clock.clone(),
    )
    .await;
    ends.push(gateway.clone());
    let lifecycle = Lifecycle::start(store.clone(), clock, lifecycle, ends)
        .await
        .context("cannot restore sessions")?;
    let manager = lifecycle.sessions.clone();

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
        &lifecycle,
        peers,
        mcp_server(&config, builtin, gateway.services()),
        transport,
    );
    let api = ApiState::new(&lifecycle, &store, admin_token.clone())
        .known_tool({
            let dispatcher = mcp.dispatcher.clone();
            move |name: &str| dispatcher.has_tool(name)
        })
        .upstreams(Some(gateway.clone()));
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

    let task = tokio::spawn({
        let lifecycle = lifecycle.clone();
        let gateway = gateway.clone();
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
            lifecycle.shutdown().await;
            gateway.shutdown().await;
            Ok(())
        }
    });
    Ok(RunningServer {
        addr,
        admin_token,
        admin_token_created,
        manager,
        store,
        lifecycle,
        upstreams: gateway,
        stop,
        task,
        _data_dir_lock: data_dir_lock,
    })
}
