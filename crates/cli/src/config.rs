//! Configuration: built-in defaults, overridden by a TOML file, overridden by
//! `SESSIONGATE_*` environment variables, overridden by flags. One struct
//! serves clap (flags and environment) and serde (the file), so a setting has
//! the same name everywhere: `--idle-timeout`, `SESSIONGATE_IDLE_TIMEOUT`,
//! `idle_timeout = "5m"`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;
use sessiongate_core::health::AgeBounds;
use sessiongate_core::lifecycle::{
    EventLogConfig, LifecycleConfig, ReconnectConfig, RequestLogConfig,
};
use sessiongate_core::token::SigningKey;
use sessiongate_mcp::{OriginPolicy, TransportConfig};
use sessiongate_store::Database;

use crate::connections::ConnectionLimits;

/// Durations are given as seconds (`300`) or with units (`5m`, `100ms`,
/// `7days`), the same way as to `sessiongate loadtest`.
pub use sessiongate_loadtest::parse_duration;

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Secs(s)) => Ok(Some(Duration::from_secs(s))),
        Some(Raw::Text(t)) => parse_duration(&t)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// Where to listen: an IP address or a host name, and a port. A host name
/// is resolved when the server binds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ListenAddr {
    host: String,
    port: u16,
}

impl ListenAddr {
    /// The host (an IPv6 address without brackets) and port, as
    /// [`tokio::net::TcpListener::bind`] takes them.
    pub fn host_port(&self) -> (&str, u16) {
        (&self.host, self.port)
    }
}

impl From<SocketAddr> for ListenAddr {
    fn from(addr: SocketAddr) -> Self {
        ListenAddr {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(addr.into());
        }
        // Without the input: clap and serde show it already.
        let wrong = || {
            "expected HOST:PORT with an IP address or a host name, e.g. 127.0.0.1:8051, \
             [::1]:8051 or localhost:8051"
                .to_string()
        };
        let (host, port) = s.rsplit_once(':').ok_or_else(wrong)?;
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(wrong());
        }
        let port = port.parse::<u16>().map_err(|_| wrong())?;
        let name_like = |h: &str| {
            !h.is_empty()
                && h.len() <= 253
                && h.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
        };
        // A bracketed host is an IPv6 address, and a name never ends in a
        // number (RFC 1123): a wrong address is not taken for a name.
        let numeric_end = host
            .rsplit('.')
            .next()
            .is_some_and(|l| l.chars().all(|c| c.is_ascii_digit()));
        if host.starts_with('[')
            || host.parse::<IpAddr>().is_ok()
            || numeric_end
            || !name_like(host)
        {
            return Err(wrong());
        }
        Ok(ListenAddr {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl TryFrom<String> for ListenAddr {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people; coloured when stderr is a terminal and NO_COLOR is unset
    #[default]
    Text,
    /// One JSON object a line, for log shippers
    Json,
}

/// Every server setting. All optional here; [`Settings::resolve`] applies defaults.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on, HOST:PORT with an IP address or a host name
    /// (e.g. localhost:8051) [default: 127.0.0.1:8051]
    #[arg(long, env = "SESSIONGATE_LISTEN")]
    pub listen: Option<ListenAddr>,

    /// Directory for the SQLite database, the admin token and other state
    /// [default: $XDG_DATA_HOME/sessiongate or ~/.local/share/sessiongate]
    #[arg(long, env = "SESSIONGATE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Session store: postgres://..., postgresql://..., sqlite:PATH,
    /// sqlite://PATH, or a path to an SQLite file holding a / or ending in
    /// .db, .sqlite or .sqlite3 [default: SQLite file in the data directory]
    #[arg(long, env = "SESSIONGATE_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Bearer token for the management API [default: generated on first start,
    /// stored in the data directory]
    #[arg(long, env = "SESSIONGATE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Idle time after which a session is disconnected (timeout) [default: 300]
    #[arg(long, env = "SESSIONGATE_IDLE_TIMEOUT", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub idle_timeout: Option<Duration>,

    /// How often session activity is written to the store [default: 1s]
    #[arg(long, env = "SESSIONGATE_ACTIVITY_FLUSH_INTERVAL", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub activity_flush_interval: Option<Duration>,

    /// Longest wait before queued request-log rows are written [default: 100ms]
    #[arg(long, env = "SESSIONGATE_REQUEST_LOG_FLUSH_INTERVAL", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub request_log_flush_interval: Option<Duration>,

    /// Most request-log rows written in one batch [default: 1000]
    #[arg(long, env = "SESSIONGATE_REQUEST_LOG_BATCH_ROWS")]
    pub request_log_batch_rows: Option<usize>,

    /// Request-log rows that may wait before requests are slowed [default: 65536]
    #[arg(long, env = "SESSIONGATE_REQUEST_LOG_QUEUE")]
    pub request_log_queue: Option<usize>,

    /// How long request-log rows are kept [default: 7days]
    #[arg(long, env = "SESSIONGATE_REQUEST_LOG_RETENTION", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub request_log_retention: Option<Duration>,

    /// Idle time from which an active session counts as "aging" [default: 5m]
    #[arg(long, env = "SESSIONGATE_HEALTH_AGING_AFTER", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub health_aging_after: Option<Duration>,

    /// Idle time from which an active session counts as "stale" [default: 10m]
    #[arg(long, env = "SESSIONGATE_HEALTH_STALE_AFTER", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub health_stale_after: Option<Duration>,

    /// Interval of SSE keep-alive comments on open streams [default: 15s, at most 1 day]
    #[arg(long, env = "SESSIONGATE_KEEPALIVE_INTERVAL", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub keepalive_interval: Option<Duration>,

    /// Largest accepted MCP request body in bytes [default: 4194304]
    #[arg(long, env = "SESSIONGATE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,

    /// Largest clientInfo and largest capabilities a client may announce
    /// (initialize, stateless _meta), in JSON bytes [default: 65536]
    #[arg(long, env = "SESSIONGATE_MAX_CLIENT_METADATA_BYTES")]
    pub max_client_metadata_bytes: Option<usize>,

    /// Stateless clients remembered (GET /api/mcp/clients); past it the least
    /// recently seen is forgotten [default: 1000]
    #[arg(long, env = "SESSIONGATE_MAX_STATELESS_CLIENTS")]
    pub max_stateless_clients: Option<usize>,

    /// initialize requests per second per remote address, in the long run
    /// [default: 20]
    #[arg(long, env = "SESSIONGATE_INITIALIZE_RATE")]
    pub initialize_rate: Option<f64>,

    /// initialize requests a remote address may send at once [default: 200]
    #[arg(long, env = "SESSIONGATE_INITIALIZE_BURST")]
    pub initialize_burst: Option<u32>,

    /// A request body not received in full after this long is refused (408)
    /// [default: 30s]
    #[arg(long, env = "SESSIONGATE_BODY_READ_TIMEOUT", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub body_read_timeout: Option<Duration>,

    /// A connection that started a request but has not sent all its headers
    /// after this long is closed [default: 10s]
    #[arg(long, env = "SESSIONGATE_HEADER_READ_TIMEOUT", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub header_read_timeout: Option<Duration>,

    /// A keep-alive connection without a request for this long is closed
    /// [default: 60s]
    #[arg(long, env = "SESSIONGATE_CONNECTION_IDLE_TIMEOUT", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub connection_idle_timeout: Option<Duration>,

    /// Open connections at most; at the cap a new one evicts the least
    /// recently active idle one [default: the open-file limit less 256]
    #[arg(long, env = "SESSIONGATE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Connections MCP requests cannot take, kept for the management API and
    /// /metrics [default: 64]
    #[arg(long, env = "SESSIONGATE_CONNECTION_RESERVE")]
    pub connection_reserve: Option<usize>,

    /// Extra allowed browser origin (loopback origins are always allowed);
    /// repeat the flag or separate with commas
    #[arg(
        long = "allowed-origin",
        env = "SESSIONGATE_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub allowed_origins: Vec<String>,

    /// Extra allowed Host name (loopback names are always allowed); repeat or
    /// separate with commas
    #[arg(
        long = "allowed-host",
        env = "SESSIONGATE_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub allowed_hosts: Vec<String>,

    /// How long a reconnect token stays valid [default: 15m]
    #[arg(long, env = "SESSIONGATE_RECONNECT_TOKEN_TTL", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub reconnect_token_ttl: Option<Duration>,

    /// Secret that signs reconnect tokens (at least 32 characters) [default:
    /// generated on first start, stored in the data directory]
    #[arg(long, env = "SESSIONGATE_RECONNECT_KEY", hide_env_values = true)]
    pub reconnect_key: Option<String>,

    /// Server-to-client stream events kept per session for resumption; 0
    /// turns the event log off [default: 1000]
    #[arg(long, env = "SESSIONGATE_EVENT_LOG_KEEP")]
    pub event_log_keep: Option<u32>,

    /// How long stream events are kept for resumption [default: 15m]
    #[arg(long, env = "SESSIONGATE_EVENT_LOG_RETENTION", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub event_log_retention: Option<Duration>,

    /// A sessionful request still running after this long answers on a
    /// resumable SSE stream [default: 1s]
    #[arg(long, env = "SESSIONGATE_SSE_AFTER", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub sse_after: Option<Duration>,

    /// A quiet standalone GET stream (2025-11-25) is closed after this long,
    /// with a retry hint, so the client polls [default: 10m]
    #[arg(long, env = "SESSIONGATE_STREAM_IDLE_CLOSE", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub stream_idle_close: Option<Duration>,

    /// Also serve the fixtures the official MCP conformance suite calls
    #[arg(long, env = "SESSIONGATE_CONFORMANCE")]
    #[serde(default)]
    pub conformance: bool,

    /// Log filter, e.g. info or sessiongate=debug [default: info]
    #[arg(long, env = "SESSIONGATE_LOG")]
    pub log: Option<String>,

    /// Log line format [default: text]
    #[arg(long, env = "SESSIONGATE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

/// A configuration error, with what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// On one line: TOML's own message spans several, with a drawing.
    #[error("invalid config file {path}, {at}: {message}")]
    Parse {
        path: PathBuf,
        /// "line L" and the key there, if any.
        at: String,
        message: String,
    },
    #[error("invalid setting: {0}")]
    Invalid(String),
}

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
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| {
            let start = e.span().map_or(0, |span| span.start).min(text.len());
            let line = text[..start].matches('\n').count() + 1;
            let key = text
                .lines()
                .nth(line - 1)
                .and_then(|l| l.split_once('='))
                .map(|(key, _)| key.trim())
                .filter(|key| !key.is_empty());
            ConfigError::Parse {
                path: path.to_path_buf(),
                at: match key {
                    Some(key) => format!("line {line} ({key})"),
                    None => format!("line {line}"),
                },
                message: e
                    .message()
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        })
    }

    /// The settings the `SESSIONGATE_*` environment gives, read as `serve`
    /// reads them (same names, same parsers), for commands without the
    /// server's flags.
    pub fn from_env() -> Result<Settings, ConfigError> {
        #[derive(clap::Parser)]
        #[command(no_binary_name = true)]
        struct EnvOnly {
            #[command(flatten)]
            settings: Settings,
        }
        <EnvOnly as clap::Parser>::try_parse_from(std::iter::empty::<String>())
            .map(|e| e.settings)
            .map_err(|e| {
                let why = e.to_string();
                let why = why.lines().next().unwrap_or_default();
                ConfigError::Invalid(format!(
                    "in the SESSIONGATE_* environment: {}",
                    why.trim_start_matches("error: ")
                ))
            })
    }

    /// Fills every setting not given here from `lower`.
    pub fn or(self, lower: Settings) -> Settings {
        Settings {
            listen: self.listen.or(lower.listen),
            data_dir: self.data_dir.or(lower.data_dir),
            database_url: self.database_url.or(lower.database_url),
            admin_token: self.admin_token.or(lower.admin_token),
            idle_timeout: self.idle_timeout.or(lower.idle_timeout),
            activity_flush_interval: self
                .activity_flush_interval
                .or(lower.activity_flush_interval),
            request_log_flush_interval: self
                .request_log_flush_interval
                .or(lower.request_log_flush_interval),
            request_log_batch_rows: self.request_log_batch_rows.or(lower.request_log_batch_rows),
            request_log_queue: self.request_log_queue.or(lower.request_log_queue),
            request_log_retention: self.request_log_retention.or(lower.request_log_retention),
            health_aging_after: self.health_aging_after.or(lower.health_aging_after),
            health_stale_after: self.health_stale_after.or(lower.health_stale_after),
            keepalive_interval: self.keepalive_interval.or(lower.keepalive_interval),
            max_body_bytes: self.max_body_bytes.or(lower.max_body_bytes),
            max_client_metadata_bytes: self
                .max_client_metadata_bytes
                .or(lower.max_client_metadata_bytes),
            max_stateless_clients: self.max_stateless_clients.or(lower.max_stateless_clients),
            initialize_rate: self.initialize_rate.or(lower.initialize_rate),
            initialize_burst: self.initialize_burst.or(lower.initialize_burst),
            body_read_timeout: self.body_read_timeout.or(lower.body_read_timeout),
            header_read_timeout: self.header_read_timeout.or(lower.header_read_timeout),
            connection_idle_timeout: self
                .connection_idle_timeout
                .or(lower.connection_idle_timeout),
            max_connections: self.max_connections.or(lower.max_connections),
            connection_reserve: self.connection_reserve.or(lower.connection_reserve),
            allowed_origins: if self.allowed_origins.is_empty() {
                lower.allowed_origins
            } else {
                self.allowed_origins
            },
            allowed_hosts: if self.allowed_hosts.is_empty() {
                lower.allowed_hosts
            } else {
                self.allowed_hosts
            },
            reconnect_token_ttl: self.reconnect_token_ttl.or(lower.reconnect_token_ttl),
            reconnect_key: self.reconnect_key.or(lower.reconnect_key),
            event_log_keep: self.event_log_keep.or(lower.event_log_keep),
            event_log_retention: self.event_log_retention.or(lower.event_log_retention),
            sse_after: self.sse_after.or(lower.sse_after),
            stream_idle_close: self.stream_idle_close.or(lower.stream_idle_close),
            conformance: self.conformance || lower.conformance,
            log: self.log.or(lower.log),
            log_format: self.log_format.or(lower.log_format),
        }
    }

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
            },
            connections,
            conformance: self.conformance,
            log: self.log.unwrap_or_else(|| "info".into()),
            log_format: self.log_format.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_seconds_and_units() {
        assert_eq!(parse_duration("300").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn flags_override_file_and_defaults_fill_the_rest() {
        let file: Settings = toml::from_str(
            r#"
            idle_timeout = "10m"
            listen = "127.0.0.1:9000"
            request_log_retention = 86400
            allowed_origins = ["https://a.example"]
            "#,
        )
        .unwrap();
        let flags = Settings {
            idle_timeout: Some(Duration::from_secs(5)),
            ..Default::default()
        };
        let c = flags.or(file).resolve().unwrap();
        assert_eq!(c.lifecycle.idle_timeout, Duration::from_secs(5));
        assert_eq!(c.listen.host_port(), ("127.0.0.1", 9000));
        assert_eq!(
            c.lifecycle.request_log.retention,
            Duration::from_secs(86400)
        );
        assert_eq!(c.lifecycle.request_log.batch_rows, 1000);
        assert_eq!(c.transport.origins.allowed_origins, ["https://a.example"]);
    }

    #[test]
    fn listen_takes_addresses_and_host_names() {
        for (input, host, port, shown) in [
            ("127.0.0.1:8051", "127.0.0.1", 8051, "127.0.0.1:8051"),
            ("[::1]:80", "::1", 80, "[::1]:80"),
            ("localhost:8051", "localhost", 8051, "localhost:8051"),
            (
                "GW-1.Example.org:0",
                "gw-1.example.org",
                0,
                "gw-1.example.org:0",
            ),
        ] {
            let listen: ListenAddr = input.parse().unwrap();
            assert_eq!(listen.host_port(), (host, port), "{input}");
            assert_eq!(listen.to_string(), shown);
        }
        for bad in [
            "localhost",
            "localhost:",
            "localhost:99999",
            "localhost:+80",
            ":8051",
            "1.2.3:80",
            "[::1:80",
            "::1:80",
            "a b:80",
            "a..b:80",
        ] {
            assert!(bad.parse::<ListenAddr>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        let err = toml::from_str::<Settings>("idle_timout = 5").unwrap_err();
        assert!(err.to_string().contains("idle_timout"), "{err}");
        let zero = Settings {
            idle_timeout: Some(Duration::ZERO),
            ..Default::default()
        };
        assert!(zero
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("idle_timeout"));
        let short = Settings {
            admin_token: Some("abc".into()),
            ..Default::default()
        };
        assert!(short.resolve().is_err());
        for (bad, name) in [
            ("initialize_rate = 0.0", "initialize_rate"),
            ("initialize_burst = 0", "initialize_burst"),
            ("max_stateless_clients = 0", "max_stateless_clients"),
            (
                "max_client_metadata_bytes = 10",
                "max_client_metadata_bytes",
            ),
            ("max_connections = 0", "max_connections"),
            ("header_read_timeout = 0", "header_read_timeout"),
        ] {
            let settings: Settings = toml::from_str(bad).unwrap();
            let err = settings.resolve().unwrap_err().to_string();
            assert!(err.contains(name), "{bad}: {err}");
        }
    }

    #[test]
    fn limits_come_from_the_file() {
        let file: Settings = toml::from_str(
            r#"
            max_client_metadata_bytes = 4096
            max_stateless_clients = 50
            initialize_rate = 2.5
            initialize_burst = 10
            body_read_timeout = "5s"
            header_read_timeout = "2s"
            connection_idle_timeout = "30s"
            max_connections = 500
            connection_reserve = 8
            "#,
        )
        .unwrap();
        let c = file.resolve().unwrap();
        assert_eq!(c.transport.max_client_metadata_bytes, 4096);
        assert_eq!(c.lifecycle.max_stateless_clients, 50);
        assert_eq!(c.transport.initialize_per_second, 2.5);
        assert_eq!(c.transport.initialize_burst, 10);
        assert_eq!(c.transport.body_read_timeout, Duration::from_secs(5));
        assert_eq!(
            c.connections,
            ConnectionLimits {
                max_connections: Some(500),
                reserve: 8,
                header_read_timeout: Duration::from_secs(2),
                idle_timeout: Duration::from_secs(30),
            }
        );
    }
}
