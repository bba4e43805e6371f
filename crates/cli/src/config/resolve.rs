//! Defaults and validation: [`Settings`] become a [`Config`] with every
//! default applied, or an error naming the setting to fix.

use std::path::PathBuf;
use std::time::Duration;

use sessiongate_core::health::AgeBounds;
use sessiongate_core::lifecycle::{
    EventLogConfig, LifecycleConfig, ReconnectConfig, RequestLogConfig, TaskConfig,
};
use sessiongate_core::token::SigningKey;
use sessiongate_gateway::config::UpstreamConfig;
use sessiongate_mcp::{OriginPolicy, TransportConfig};
use sessiongate_store::Database;

use super::error::ConfigError;
use super::listen::ListenAddr;
use super::settings::{LogFormat, Settings};
use crate::connections::ConnectionLimits;

/// Settings with every default applied.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: ListenAddr,
    pub data_dir: PathBuf,
    pub database: Database,
    pub admin_token: Option<String>,
    pub lifecycle: LifecycleConfig,
    pub transport: TransportConfig,
    pub connections: ConnectionLimits,
    pub conformance: bool,
    /// Upstream MCP servers whose tools are served beside (or instead of)
    /// the built-in ones.
    pub upstreams: Vec<UpstreamConfig>,
    pub builtin_tools: bool,
    pub tool_separator: String,
    /// How long a 2026-07-28 client's upstream session is kept idle.
    pub upstream_idle_timeout: Duration,
    pub log: String,
    pub log_format: LogFormat,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8051";
const MAX_KEEPALIVE: Duration = Duration::from_secs(24 * 60 * 60);

/// The default data directory: `$XDG_DATA_HOME/sessiongate`, else
/// `~/.local/share/sessiongate`, else `./sessiongate-data`.
pub fn default_data_dir() -> PathBuf {
    let env_dir = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env_dir("XDG_DATA_HOME")
        .or_else(|| env_dir("HOME").map(|h| h.join(".local/share")))
        .map(|d| d.join("sessiongate"))
        .unwrap_or_else(|| PathBuf::from("sessiongate-data"))
}

impl Settings {
    /// Applies defaults and checks the values.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let positive = |name: &str, d: Option<Duration>, default: Duration| {
            let d = d.unwrap_or(default);
            if d.is_zero() {
                Err(ConfigError::Invalid(format!(
                    "{name} must be greater than zero"
                )))
            } else {
                Ok(d)
            }
        };
        let data_dir = self.data_dir.unwrap_or_else(default_data_dir);
        let database = match &self.database_url {
            Some(url) => Database::from_url_or_path(url)
                .map_err(|e| ConfigError::Invalid(format!("database_url: {e}")))?,
            None => Database::Sqlite {
                path: data_dir.join("sessiongate.db"),
            },
        };
        let defaults = LifecycleConfig::default();
        let log_defaults = RequestLogConfig::default();
        let age_bounds = AgeBounds {
            aging_after: positive(
                "health_aging_after",
                self.health_aging_after,
                defaults.age_bounds.aging_after,
            )?,
            stale_after: positive(
                "health_stale_after",
                self.health_stale_after,
                defaults.age_bounds.stale_after,
            )?,
        };
        if age_bounds.stale_after <= age_bounds.aging_after {
            return Err(ConfigError::Invalid(
                "health_stale_after must be greater than health_aging_after".into(),
            ));
        }
        let batch_rows = self
            .request_log_batch_rows
            .unwrap_or(log_defaults.batch_rows);
        let queue = self
            .request_log_queue
            .unwrap_or(log_defaults.queue_capacity);
        if batch_rows == 0 || queue == 0 {
            return Err(ConfigError::Invalid(
                "request_log_batch_rows and request_log_queue must be at least 1".into(),
            ));
        }
        let max_body_bytes = self
            .max_body_bytes
            .unwrap_or(TransportConfig::default().max_body_bytes);
        if max_body_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "max_body_bytes must be at least 1024".into(),
            ));
        }
        if let Some(key) = &self.reconnect_key {
            if key.trim().len() < 32 {
                return Err(ConfigError::Invalid(
                    "reconnect_key must be at least 32 characters".into(),
                ));
            }
        }
        let at_least_one = |name: &str, n: Option<usize>, default: usize| match n.unwrap_or(default)
        {
            0 => Err(ConfigError::Invalid(format!("{name} must be at least 1"))),
            n => Ok(n),
        };
        let transport_defaults = TransportConfig::default();
        let max_client_metadata_bytes = self
            .max_client_metadata_bytes
            .unwrap_or(transport_defaults.max_client_metadata_bytes);
        if max_client_metadata_bytes < 256 {
            return Err(ConfigError::Invalid(
                "max_client_metadata_bytes must be at least 256".into(),
            ));
        }
        let initialize_rate = self
            .initialize_rate
            .unwrap_or(transport_defaults.initialize_per_second);
        if !(initialize_rate.is_finite() && initialize_rate > 0.0) {
            return Err(ConfigError::Invalid(
                "initialize_rate must be a number greater than zero".into(),
            ));
        }
        let initialize_burst = self
            .initialize_burst
            .unwrap_or(transport_defaults.initialize_burst);
        if initialize_burst == 0 {
            return Err(ConfigError::Invalid(
                "initialize_burst must be at least 1".into(),
            ));
        }
        let connection_defaults = ConnectionLimits::default();
        let connections = ConnectionLimits {
            max_connections: match self.max_connections {
                Some(0) => {
                    return Err(ConfigError::Invalid(
                        "max_connections must be at least 1".into(),
                    ))
                }
                n => n,
            },
            reserve: self
                .connection_reserve
                .unwrap_or(connection_defaults.reserve),
            header_read_timeout: positive(
                "header_read_timeout",
                self.header_read_timeout,
                connection_defaults.header_read_timeout,
            )?,
            idle_timeout: positive(
                "connection_idle_timeout",
                self.connection_idle_timeout,
                connection_defaults.idle_timeout,
            )?,
        };
        let event_log_keep = self
            .event_log_keep
            .unwrap_or(defaults.event_log.keep_per_session);
        let keepalive = positive(
            "keepalive_interval",
            self.keepalive_interval,
            transport_defaults.keepalive,
        )?;
        // Each keep-alive is scheduled as now + interval, which overflows
        // (a panic in the response stream) for intervals of centuries.
        if keepalive > MAX_KEEPALIVE {
            return Err(ConfigError::Invalid(
                "keepalive_interval must be at most 1 day".into(),
            ));
        }
        if let Some(token) = &self.admin_token {
            if token.trim().len() < 16 {
                return Err(ConfigError::Invalid(
                    "admin_token must be at least 16 characters".into(),
                ));
            }
        }
        Ok(Config {
            listen: self
                .listen
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            data_dir,
            database,
            admin_token: self.admin_token.map(|t| t.trim().to_string()),
            lifecycle: LifecycleConfig {
                idle_timeout: positive("idle_timeout", self.idle_timeout, defaults.idle_timeout)?,
                activity_flush_interval: positive(
                    "activity_flush_interval",
                    self.activity_flush_interval,
                    defaults.activity_flush_interval,
                )?,
                request_log: RequestLogConfig {
                    queue_capacity: queue,
                    batch_rows,
                    flush_interval: positive(
                        "request_log_flush_interval",
                        self.request_log_flush_interval,
                        log_defaults.flush_interval,
                    )?,
                    retention: positive(
                        "request_log_retention",
                        self.request_log_retention,
                        log_defaults.retention,
                    )?,
                    prune_interval: log_defaults.prune_interval,
                    admission_wait: log_defaults.admission_wait,
                },
                age_bounds,
                health_window: defaults.health_window,
                reconnect: ReconnectConfig {
                    token_ttl: positive(
                        "reconnect_token_ttl",
                        self.reconnect_token_ttl,
                        defaults.reconnect.token_ttl,
                    )?,
                    key: self
                        .reconnect_key
                        .map(|k| SigningKey::from_bytes(k.trim().as_bytes().to_vec())),
                    ..defaults.reconnect.clone()
                },
                event_log: EventLogConfig {
                    enabled: event_log_keep > 0,
                    keep_per_session: event_log_keep,
                    retention: positive(
                        "event_log_retention",
                        self.event_log_retention,
                        defaults.event_log.retention,
                    )?,
                    ..defaults.event_log.clone()
                },
                max_stateless_clients: at_least_one(
                    "max_stateless_clients",
                    self.max_stateless_clients,
                    defaults.max_stateless_clients,
                )?,
                tasks: TaskConfig {
                    ttl: positive("task_ttl", self.task_ttl, defaults.tasks.ttl)?,
                    poll_interval: positive(
                        "task_poll_interval",
                        self.task_poll_interval,
                        defaults.tasks.poll_interval,
                    )?,
                    ..defaults.tasks.clone()
                },
            },
            transport: TransportConfig {
                origins: OriginPolicy {
                    allowed_origins: self.allowed_origins,
                    allowed_hosts: self.allowed_hosts,
                },
                max_body_bytes,
                keepalive,
                sse_after: self.sse_after.unwrap_or(transport_defaults.sse_after),
                retry: transport_defaults.retry,
                stream_idle_close: positive(
                    "stream_idle_close",
                    self.stream_idle_close,
                    transport_defaults.stream_idle_close,
                )?,
                max_client_metadata_bytes,
                initialize_per_second: initialize_rate,
                initialize_burst,
                body_read_timeout: positive(
                    "body_read_timeout",
                    self.body_read_timeout,
                    transport_defaults.body_read_timeout,
                )?,
                max_listen_streams: at_least_one(
                    "max_listen_streams",
                    self.max_listen_streams,
                    transport_defaults.max_listen_streams,
                )?,
                // Read from the data directory at startup.
                request_state_key: None,
                request_state_ttl: positive(
                    "request_state_ttl",
                    self.request_state_ttl,
                    transport_defaults.request_state_ttl,
                )?,
            },
            connections,
            conformance: self.conformance,
            upstreams: sessiongate_gateway::config::collect(
                &self.upstreams,
                &self.stdio,
                &self.upstream,
            )
            .map_err(|e| ConfigError::Invalid(e.to_string()))?,
            builtin_tools: !self.no_builtin_tools,
            upstream_idle_timeout: positive(
                "upstream_idle_timeout",
                self.upstream_idle_timeout,
                Duration::from_secs(300),
            )?,
            tool_separator: match self.tool_separator {
                Some(s) if s.is_empty() => {
                    return Err(ConfigError::Invalid(
                        "tool_separator must not be empty".into(),
                    ))
                }
                Some(s) => s,
                None => "__".into(),
            },
            log: self.log.unwrap_or_else(|| "info".into()),
            log_format: self.log_format.unwrap_or_default(),
        })
    }
}
