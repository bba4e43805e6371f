//! How upstreams are configured: the `[upstreams.NAME]` tables of the config
//! file, and the command line's `--stdio "CMD"` and `--upstream NAME=URL`,
//! which build the same values.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use sessiongate_core::upstream::{InvalidUpstreamName, UpstreamName};

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
    /// How long a connection to the upstream is kept idle for the next
    /// request. Shorter than the upstream's own keep-alive (Node's and
    /// uvicorn's close idle connections after 5 s), so that no request is
    /// sent on a connection the upstream is closing, which would fail it.
    #[serde(default = "default_idle_timeout", with = "duration")]
    pub idle_timeout: Duration,
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

/// An upstream given on the command line or in the config file that
/// cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamConfigError {
    #[error(transparent)]
    Name(#[from] InvalidUpstreamName),
    #[error("--stdio {0:?}: give a command, e.g. --stdio \"npx -y @modelcontextprotocol/server-everything\"")]
    NoCommand(String),
    #[error("--stdio {0:?}: unbalanced quotes")]
    Quotes(String),
    #[error("--stdio {0:?}: no upstream name can be derived from the command; name it: --stdio NAME=\"CMD\"")]
    NoName(String),
    #[error("--upstream {0:?}: write NAME=URL")]
    Upstream(String),
    #[error("upstream {name}: {message}")]
    Table { name: String, message: String },
    #[error("two upstreams are named {0}")]
    Duplicate(UpstreamName),
}

/// Reads `--stdio "CMD ARGS"` or `--stdio NAME="CMD ARGS"`. Without a name,
/// the name comes from the command: the package a runner (`npx`, `uvx`, ...)
/// starts or the program itself, its last path segment, less a version,
/// an extension and a leading `mcp-server-` or `server-`.
pub fn stdio_flag(text: &str) -> Result<UpstreamConfig, UpstreamConfigError> {
    let named = text.split_once('=').filter(|(name, _)| {
        !name.is_empty() && !name.contains(char::is_whitespace) && UpstreamName::new(*name).is_ok()
    });
    let (name, command_line) = match named {
        Some((name, rest)) => (Some(name), rest),
        None => (None, text),
    };
    let words =
        shlex::split(command_line).ok_or_else(|| UpstreamConfigError::Quotes(text.to_string()))?;
    let Some((command, args)) = words.split_first() else {
        return Err(UpstreamConfigError::NoCommand(text.to_string()));
    };
    let name = match name {
        Some(name) => UpstreamName::new(name)?,
        None => derive_name(command, args)
            .ok_or_else(|| UpstreamConfigError::NoName(text.to_string()))?,
    };
    let config = serde_json::from_value::<StdioConfig>(json!({ "command": command, "args": args }))
        .map_err(|e| UpstreamConfigError::Table {
            name: name.to_string(),
            message: e.to_string(),
        })?;
    Ok(UpstreamConfig {
        name,
        transport: Transport::Stdio(config),
    })
}

fn derive_name(command: &str, args: &[String]) -> Option<UpstreamName> {
    const RUNNERS: [&str; 10] = [
        "npx", "uvx", "bunx", "pipx", "node", "python", "python3", "deno", "bun", "uv",
    ];
    let program = command.rsplit('/').next().unwrap_or(command);
    let subject = match RUNNERS.contains(&program) {
        // The first argument that is not an option nor a runner's verb.
        true => args
            .iter()
            .find(|a| !a.starts_with('-') && !["run", "exec", "dlx", "tool"].contains(&a.as_str()))?
            .as_str(),
        false => command,
    };
    let mut name = subject.rsplit('/').next().unwrap_or(subject);
    // `pkg@1.2.3`, not `@scope/pkg` (whose scope the split removed).
    if let Some((base, _)) = name.rsplit_once('@').filter(|(b, _)| !b.is_empty()) {
        name = base;
    }
    for extension in [".js", ".mjs", ".py", ".ts"] {
        name = name.strip_suffix(extension).unwrap_or(name);
    }
    for prefix in ["mcp-server-", "server-"] {
        name = name.strip_prefix(prefix).unwrap_or(name);
    }
    let name: String = name
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                true => c,
                false => '-',
            },
        )
        .take(64)
        .collect();
    UpstreamName::new(name).ok()
}

/// Reads `--upstream NAME=URL`.
pub fn upstream_flag(text: &str) -> Result<UpstreamConfig, UpstreamConfigError> {
    let Some((name, url)) = text.split_once('=').filter(|(_, url)| !url.is_empty()) else {
        return Err(UpstreamConfigError::Upstream(text.to_string()));
    };
    let name = UpstreamName::new(name)?;
    let config = serde_json::from_value::<HttpConfig>(json!({ "url": url })).map_err(|e| {
        UpstreamConfigError::Table {
            name: name.to_string(),
            message: e.to_string(),
        }
    })?;
    Ok(UpstreamConfig {
        name,
        transport: Transport::Http(config),
    })
}

/// An `[upstreams.NAME]` table: stdio with `command`, HTTP with `url`.
impl<'de> Deserialize<'de> for Transport {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let table = Value::deserialize(d)?;
        let parsed =
            match (table.get("command"), table.get("url")) {
                (Some(_), None) => serde_json::from_value(table).map(Transport::Stdio),
                (None, Some(_)) => serde_json::from_value(table).map(Transport::Http),
                (Some(_), Some(_)) => return Err(serde::de::Error::custom(
                    "give either `command` (a stdio server) or `url` (an HTTP server), not both",
                )),
                (None, None) => {
                    return Err(serde::de::Error::custom(
                        "give `command` (a stdio server) or `url` (an HTTP server)",
                    ))
                }
            };
        parsed.map_err(serde::de::Error::custom)
    }
}

/// The upstreams of the config file's tables, then of the flags, with
/// names checked and unique.
pub fn collect(
    tables: &BTreeMap<String, Transport>,
    stdio_flags: &[String],
    upstream_flags: &[String],
) -> Result<Vec<UpstreamConfig>, UpstreamConfigError> {
    let mut upstreams = Vec::new();
    for (name, transport) in tables {
        upstreams.push(UpstreamConfig {
            name: UpstreamName::new(name.as_str())?,
            transport: transport.clone(),
        });
    }
    for flag in stdio_flags {
        upstreams.push(stdio_flag(flag)?);
    }
    for flag in upstream_flags {
        upstreams.push(upstream_flag(flag)?);
    }
    for (i, upstream) in upstreams.iter().enumerate() {
        if upstreams[..i].iter().any(|u| u.name == upstream.name) {
            return Err(UpstreamConfigError::Duplicate(upstream.name.clone()));
        }
    }
    Ok(upstreams)
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
fn default_idle_timeout() -> Duration {
    Duration::from_secs(4)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stdio_name(flag: &str) -> String {
        stdio_flag(flag).unwrap().name.to_string()
    }

    #[test]
    fn names_come_from_the_package_or_the_program() {
        assert_eq!(
            stdio_name("npx -y @modelcontextprotocol/server-everything"),
            "everything"
        );
        assert_eq!(stdio_name("uvx mcp-server-fetch@1.2"), "fetch");
        assert_eq!(
            stdio_name("/usr/bin/rmcp-baseline --stdio"),
            "rmcp-baseline"
        );
        assert_eq!(stdio_name("node ./dist/index.js"), "index");
        assert_eq!(
            stdio_name("files=npx -y @x/server-filesystem /tmp"),
            "files"
        );
    }

    #[test]
    fn a_stdio_flag_keeps_quoted_arguments_whole() {
        let config = stdio_flag("echo='my server' --flag 'a b'").unwrap();
        let Transport::Stdio(stdio) = config.transport else {
            panic!("not stdio");
        };
        assert_eq!(config.name.as_str(), "echo");
        assert_eq!(stdio.command, "my server");
        assert_eq!(stdio.args, ["--flag", "a b"]);
    }

    #[test]
    fn bad_flags_say_what_is_wrong() {
        assert!(matches!(
            stdio_flag(""),
            Err(UpstreamConfigError::NoCommand(_))
        ));
        assert!(matches!(
            stdio_flag("x 'open"),
            Err(UpstreamConfigError::Quotes(_))
        ));
        assert!(matches!(
            upstream_flag("http://x"),
            Err(UpstreamConfigError::Upstream(_))
        ));
        let dup = collect(&BTreeMap::new(), &["a=x".into(), "a=y".into()], &[]);
        assert!(matches!(dup, Err(UpstreamConfigError::Duplicate(_))));
    }

    #[test]
    fn tables_are_stdio_or_http() {
        let stdio: Transport =
            serde_json::from_value(json!({ "command": "x", "mode": "shared", "backoff": "1s" }))
                .unwrap();
        assert!(
            matches!(stdio, Transport::Stdio(ref s) if s.mode == ProcessMode::Shared
            && s.backoff == Duration::from_secs(1))
        );
        let http: Transport = serde_json::from_value(json!({ "url": "http://h/mcp" })).unwrap();
        assert!(matches!(http, Transport::Http(_)));
        let err = serde_json::from_value::<Transport>(json!({ "cmd": "x" })).unwrap_err();
        assert!(err.to_string().contains("give `command`"), "{err}");
        let err =
            serde_json::from_value::<Transport>(json!({ "command": "x", "bogus": 1 })).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }
}
