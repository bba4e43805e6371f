//! How upstreams are configured: the `[upstreams.NAME]` tables of the config
//! file, and the command line's `--stdio "CMD"` and `--upstream NAME=URL`,
//! which build the same values.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use sessiongate_core::upstream::UpstreamName;

/// One upstream server.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    pub name: UpstreamName,
    pub transport: Transport,
}

/// How the gateway reaches an upstream.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    Stdio(StdioConfig),
    Http(HttpConfig),
}

/// A server the gateway starts as a child process and speaks to over its
/// stdin and stdout.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdioConfig {
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Set in the child's environment, on top of the gateway's.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
    #[serde(default)]
    pub mode: ProcessMode,
    /// At most this many children at once; one more is refused with a clear
    /// error.
    #[serde(default = "default_max_processes")]
    pub max_processes: usize,
    /// How long a child may take to answer `initialize`.
    #[serde(default = "default_start_timeout", with = "duration")]
    pub start_timeout: Duration,
    /// The first wait before starting a child again after it crashed;
    /// doubled on each crash in a row, up to `max_backoff`.
    #[serde(default = "default_backoff", with = "duration")]
    pub backoff: Duration,
    #[serde(default = "default_max_backoff", with = "duration")]
    pub max_backoff: Duration,
    /// How long a request may wait for its answer.
    #[serde(default = "default_request_timeout", with = "duration")]
    pub request_timeout: Duration,
}

/// Which children a stdio upstream runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessMode {
    /// A child for each client session: isolation, for servers that keep
    /// per-client state.
    #[default]
    PerSession,
    /// One child for everyone, requests multiplexed with rewritten ids.
    Shared,
}

/// A server the gateway reaches over HTTP.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub url: String,
    #[serde(default)]
    pub protocol: HttpProtocol,
    /// Sent with every request (e.g. `Authorization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_connect_timeout", with = "duration")]
    pub connect_timeout: Duration,
    #[serde(default = "default_request_timeout", with = "duration")]
    pub request_timeout: Duration,
}

/// Which HTTP transport an upstream speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HttpProtocol {
    /// Streamable HTTP (2025-03-26 on, sessionful or 2026-07-28).
    #[default]
    StreamableHttp,
    /// The HTTP+SSE transport of 2024-11-05: a GET event stream and POSTs
    /// to the endpoint it names.
    Sse,
}

fn default_max_processes() -> usize {
    1000
}
fn default_start_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_backoff() -> Duration {
    Duration::from_millis(100)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(30)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Durations as seconds (`30`) or with units (`30s`, `100ms`, `5m`).
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Ok(Duration::from_secs(s)),
            Raw::Text(t) => humantime::parse_duration(&t).map_err(serde::de::Error::custom),
        }
    }
}
