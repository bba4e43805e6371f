//! Where settings come from and which wins: flags over the
//! `SESSIONGATE_*` environment over the TOML config file.

use std::path::Path;

use super::error::ConfigError;
use super::settings::Settings;

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
            max_listen_streams: self.max_listen_streams.or(lower.max_listen_streams),
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
            request_state_ttl: self.request_state_ttl.or(lower.request_state_ttl),
            event_log_keep: self.event_log_keep.or(lower.event_log_keep),
            event_log_retention: self.event_log_retention.or(lower.event_log_retention),
            task_ttl: self.task_ttl.or(lower.task_ttl),
            task_poll_interval: self.task_poll_interval.or(lower.task_poll_interval),
            sse_after: self.sse_after.or(lower.sse_after),
            stream_idle_close: self.stream_idle_close.or(lower.stream_idle_close),
            conformance: self.conformance || lower.conformance,
            stdio: [self.stdio, lower.stdio].concat(),
            upstream: [self.upstream, lower.upstream].concat(),
            upstreams: {
                let mut upstreams = lower.upstreams;
                upstreams.extend(self.upstreams);
                upstreams
            },
            no_builtin_tools: self.no_builtin_tools || lower.no_builtin_tools,
            tool_separator: self.tool_separator.or(lower.tool_separator),
            upstream_idle_timeout: self.upstream_idle_timeout.or(lower.upstream_idle_timeout),
            log: self.log.or(lower.log),
            log_format: self.log_format.or(lower.log_format),
        }
    }
}
