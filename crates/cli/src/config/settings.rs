//! Every server setting, all optional: one struct serves clap (flags and
//! environment) and serde (the config file), so a setting has the same name
//! everywhere. Durations are seconds or take units.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;
use sessiongate_gateway::config::Transport;

use super::listen::ListenAddr;

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

    /// subscriptions/listen streams one remote address (IPv6: its /64) may
    /// hold open at once; past it, 429 [default: 32]
    #[arg(long, env = "SESSIONGATE_MAX_LISTEN_STREAMS")]
    pub max_listen_streams: Option<usize>,

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

    /// How long a 2026-07-28 client may take to retry a request that asked
    /// for input (its requestState's lifetime) [default: 10m]
    #[arg(long, env = "SESSIONGATE_REQUEST_STATE_TTL", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub request_state_ttl: Option<Duration>,

    /// Server-to-client stream events kept per session for resumption; 0
    /// turns the event log off [default: 1000]
    #[arg(long, env = "SESSIONGATE_EVENT_LOG_KEEP")]
    pub event_log_keep: Option<u32>,

    /// How long stream events are kept for resumption [default: 15m]
    #[arg(long, env = "SESSIONGATE_EVENT_LOG_RETENTION", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub event_log_retention: Option<Duration>,

    /// How long a task (tasks extension) is kept after its creation,
    /// finished or not; one still running then is stopped [default: 1h]
    #[arg(long, env = "SESSIONGATE_TASK_TTL", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub task_ttl: Option<Duration>,

    /// How often clients are asked to poll a task (pollIntervalMs)
    /// [default: 500ms]
    #[arg(long, env = "SESSIONGATE_TASK_POLL_INTERVAL", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub task_poll_interval: Option<Duration>,

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

    /// Serve a stdio MCP server's tools: "CMD ARGS" or NAME="CMD ARGS"
    /// (repeatable). Without NAME the name comes from the command, e.g.
    /// "npx -y @modelcontextprotocol/server-everything" is "everything"
    #[arg(long = "stdio", value_name = "[NAME=]COMMAND")]
    #[serde(skip)]
    pub stdio: Vec<String>,

    /// Serve an HTTP MCP server's tools: NAME=URL (repeatable)
    #[arg(long = "upstream", value_name = "NAME=URL")]
    #[serde(skip)]
    pub upstream: Vec<String>,

    /// Upstream servers, as [upstreams.NAME] tables of the config file
    #[arg(skip)]
    #[serde(default)]
    pub upstreams: BTreeMap<String, Transport>,

    /// Serve only the upstreams' tools, not the built-in ones (echo, ...)
    #[arg(long, env = "SESSIONGATE_NO_BUILTIN_TOOLS")]
    #[serde(default)]
    pub no_builtin_tools: bool,

    /// How long an upstream session held for a 2026-07-28 client (which has
    /// no session of its own) is kept idle [default: 5m]
    #[arg(long, env = "SESSIONGATE_UPSTREAM_IDLE_TIMEOUT", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub upstream_idle_timeout: Option<Duration>,

    /// Between an upstream's name and its tools' names [default: __]
    #[arg(long, env = "SESSIONGATE_TOOL_SEPARATOR")]
    pub tool_separator: Option<String>,

    /// Log filter, e.g. info or sessiongate=debug [default: info]
    #[arg(long, env = "SESSIONGATE_LOG")]
    pub log: Option<String>,

    /// Log line format [default: text]
    #[arg(long, env = "SESSIONGATE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}
