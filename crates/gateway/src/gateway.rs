//! Every configured upstream together: started from their configuration
//! (orphans of a previous run reaped first), handed to the assembly as
//! services, told of ending sessions so their upstream sessions end too,
//! and reported to monitoring.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sessiongate_core::lifecycle::{EndKind, EndSubscriber, SessionEnded};
use sessiongate_core::store::UpstreamMappingStore;
use sessiongate_core::upstream::{UpstreamEvent, UpstreamMonitor, UpstreamReport};
use sessiongate_core::SharedClock;
use sessiongate_mcp::peers::Peers;
use sessiongate_mcp::{Service, StateKey};
use tokio::sync::broadcast;

use crate::config::{HttpProtocol, ProcessMode, Transport, UpstreamConfig};
use crate::link::stdio::{reap_orphans, StdioConnector};
use crate::link::{Connector, LinkError, Opened};
use crate::relay::{NamingRule, Reserved, Upstream, UpstreamSettings};

/// Events queued for a slow monitoring subscriber before it misses some.
const EVENTS_QUEUED: usize = 1024;

/// How the gateway presents its upstreams.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Between an upstream's name and its tools' and prompts' names.
    pub tool_separator: String,
    /// Whether one upstream alone may go unprefixed, its names as it gives
    /// them unless one of its tool or prompt names is `reserved`.
    pub bare_names: bool,
    /// The tool and prompt names served beside the upstreams (the
    /// built-ins').
    pub reserved: Reserved,
    /// How long a 2026-07-28 client's upstream session is kept idle.
    pub pool_idle: Duration,
    /// Signs the owner into the ids of an upstream's tasks the gateway
    /// hands out: the upstream sees every client as the gateway, so the
    /// gateway keeps one client from another's tasks. Kept on disk, so
    /// the ids work after a restart.
    pub task_key: StateKey,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            tool_separator: "__".to_string(),
            bare_names: false,
            reserved: Reserved::default(),
            pool_idle: Duration::from_secs(300),
            task_key: StateKey::generate(),
        }
    }
}

/// The upstreams, as services and as monitoring sees them.
pub struct Gateway {
    upstreams: Vec<Arc<Upstream>>,
    store: Arc<dyn UpstreamMappingStore>,
    events: broadcast::Sender<UpstreamEvent>,
}

impl Gateway {
    /// Starts every upstream: kills the children a previous run left in
    /// `data_dir/children`, then reads each upstream's catalog. An upstream
    /// that cannot be started is logged and reported down, retried in the
    /// background, and does not keep the others from serving.
    pub async fn start(
        configs: Vec<UpstreamConfig>,
        options: GatewayOptions,
        store: Arc<dyn UpstreamMappingStore>,
        peers: Peers,
        data_dir: &Path,
        clock: SharedClock,
    ) -> Arc<Gateway> {
        let children_dir = data_dir.join("children");
        let reaped = reap_orphans(&children_dir);
        if !reaped.is_empty() {
            tracing::warn!(
                count = reaped.len(),
                "killed upstream children a previous run left behind"
            );
        }
        let (events, _) = broadcast::channel(EVENTS_QUEUED);
        let bare = options.bare_names && configs.len() == 1;
        let reserved = Arc::new(options.reserved.clone());
        let upstreams: Vec<_> = configs
            .into_iter()
            .map(|config| {
                let prefix = format!("{}{}", config.name, options.tool_separator);
                let naming = match bare {
                    true => NamingRule::BareUnlessReserved {
                        prefix,
                        reserved: reserved.clone(),
                    },
                    false => NamingRule::Prefixed(prefix),
                };
                let (connector, settings) = connector(&config, &children_dir, naming, &options);
                Upstream::new(
                    config.name,
                    settings,
                    connector,
                    store.clone(),
                    peers.clone(),
                    clock.clone(),
                    events.clone(),
                )
            })
            .collect();
        let probes = upstreams.iter().map(|u| async move {
            if u.probe().await.is_err() {
                tokio::spawn(u.clone().probe_until_up());
            }
        });
        futures::future::join_all(probes).await;
        for upstream in &upstreams {
            tokio::spawn(expire_idle(Arc::downgrade(upstream)));
        }
        Arc::new(Gateway {
            upstreams,
            store,
            events,
        })
    }

    /// The upstreams as services, in configuration order.
    pub fn services(&self) -> Vec<Arc<dyn Service>> {
        self.upstreams
            .iter()
            .map(|u| u.clone() as Arc<dyn Service>)
            .collect()
    }

    /// Ends every upstream session (children killed, HTTP sessions
    /// deleted); mappings are kept for the next start.
    pub async fn shutdown(&self) {
        for upstream in &self.upstreams {
            upstream.close_all().await;
        }
    }
}

/// The connector and settings of one configured upstream.
fn connector(
    config: &UpstreamConfig,
    children_dir: &Path,
    naming: NamingRule,
    options: &GatewayOptions,
) -> (Arc<dyn Connector>, UpstreamSettings) {
    let (pool_idle, task_key) = (options.pool_idle, options.task_key.clone());
    match &config.transport {
        Transport::Stdio(stdio) => (
            Arc::new(StdioConnector::new(
                config.name.clone(),
                stdio.clone(),
                PathBuf::from(children_dir),
            )),
            UpstreamSettings {
                naming,
                transport: "stdio",
                mode: Some(match stdio.mode {
                    ProcessMode::PerSession => "per-session",
                    ProcessMode::Shared => "shared",
                }),
                shared: stdio.mode == ProcessMode::Shared,
                max_processes: stdio.max_processes,
                start_timeout: stdio.start_timeout,
                backoff: stdio.backoff,
                max_backoff: stdio.max_backoff,
                pool_idle,
                task_key,
            },
        ),
        // A configuration the connector refuses (a bad URL or header) makes
        // an upstream that is down with that error; the others serve on.
        Transport::Http(http) => (
            crate::link::connector_for(http).unwrap_or_else(|e| {
                Arc::new(Unavailable(format!("upstream {}: {e}", config.name)))
            }),
            UpstreamSettings {
                naming,
                transport: match http.protocol {
                    HttpProtocol::StreamableHttp => "streamable-http",
                    HttpProtocol::Sse => "sse",
                },
                mode: None,
                shared: false,
                max_processes: usize::MAX,
                start_timeout: http.connect_timeout,
                backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(30),
                pool_idle,
                task_key,
            },
        ),
    }
}

/// A connector that cannot open anything, and says why.
struct Unavailable(String);

#[async_trait]
impl Connector for Unavailable {
    async fn open(&self, _resume: Option<&str>) -> Result<Opened, LinkError> {
        Err(LinkError::Transport {
            reason: self.0.clone(),
            delivered: false,
        })
    }
}

/// Lets go of idle stateless clients' upstream sessions until the upstream
/// is gone, looking by the lifecycle's clock.
async fn expire_idle(upstream: std::sync::Weak<Upstream>) {
    let Some((every, clock)) = upstream.upgrade().map(|u| {
        (
            (u.pool_idle() / 4).max(Duration::from_millis(100)),
            u.clock().clone(),
        )
    }) else {
        return;
    };
    loop {
        clock.sleep_until(clock.now().saturating_add(every)).await;
        match upstream.upgrade() {
            Some(u) => u.expire_idle(),
            None => return,
        }
    }
}

impl EndSubscriber for Gateway {
    fn session_ended(&self, ended: &SessionEnded) {
        for upstream in &self.upstreams {
            upstream.end_session(ended.session_id);
        }
        if let EndKind::Ended(_) = ended.kind {
            let (store, session_id) = (self.store.clone(), ended.session_id);
            tokio::spawn(async move {
                if let Err(e) = store.delete_upstream_mappings(session_id).await {
                    tracing::warn!(session = %session_id.short(), "cannot forget an ended session's upstream mappings: {e}");
                }
            });
        }
    }
}

impl UpstreamMonitor for Gateway {
    fn reports(&self) -> Vec<UpstreamReport> {
        self.upstreams.iter().map(|u| u.report()).collect()
    }

    fn subscribe(&self) -> broadcast::Receiver<UpstreamEvent> {
        self.events.subscribe()
    }
}
