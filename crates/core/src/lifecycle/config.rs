//! The lifecycle's settings: timings and sizes of the session registry and
//! of each service beside it. Every one is configurable; the defaults are
//! what `serve` runs with when nothing is set.

use std::time::Duration;

use crate::health::AgeBounds;
use crate::token::SigningKey;

/// Settings of the lifecycle and its services.
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleConfig {
    /// A session with no sign of life for this long is disconnected(timeout).
    pub idle_timeout: Duration,
    /// How often touched sessions' activity is written to the store; also
    /// how often, at most, observers hear of one stateless client.
    pub activity_flush_interval: Duration,
    /// The request log's queue and writer.
    pub request_log: RequestLogConfig,
    /// The idle-age buckets of the health report.
    pub age_bounds: AgeBounds,
    /// The window of `connection_health`, and how far back stateless
    /// clients are remembered.
    pub health_window: Duration,
    /// Reconnect tokens and the limiter of failed attempts.
    pub reconnect: ReconnectConfig,
    /// The durable log of server-to-client stream events.
    pub event_log: EventLogConfig,
    /// Stateless clients remembered at most; past it the least recently
    /// seen is forgotten.
    pub max_stateless_clients: usize,
    /// Tasks of the tasks extension.
    pub tasks: TaskConfig,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            idle_timeout: Duration::from_secs(300),
            activity_flush_interval: Duration::from_secs(1),
            request_log: RequestLogConfig::default(),
            age_bounds: AgeBounds::default(),
            health_window: Duration::from_secs(24 * 3600),
            reconnect: ReconnectConfig::default(),
            event_log: EventLogConfig::default(),
            max_stateless_clients: 1000,
            tasks: TaskConfig::default(),
        }
    }
}

/// The request log's queue and writer.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestLogConfig {
    /// Rows that may wait for the writer before requests are slowed down.
    pub queue_capacity: usize,
    /// How long a request waits for room in a full queue before it is
    /// refused (503): the store has been failing or slow for that long.
    pub admission_wait: Duration,
    /// Rows written in one transaction, at most.
    pub batch_rows: usize,
    /// How long rows gather before a batch smaller than `batch_rows` is
    /// written.
    pub flush_interval: Duration,
    /// Rows older than this are pruned.
    pub retention: Duration,
    /// How often old rows are pruned.
    pub prune_interval: Duration,
}

impl Default for RequestLogConfig {
    fn default() -> Self {
        RequestLogConfig {
            queue_capacity: 65_536,
            admission_wait: Duration::from_secs(5),
            batch_rows: 1000,
            flush_interval: Duration::from_millis(100),
            retention: Duration::from_secs(7 * 24 * 3600),
            prune_interval: Duration::from_secs(3600),
        }
    }
}

/// Reconnect settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectConfig {
    /// How long a token stays valid.
    pub token_ttl: Duration,
    /// The signing key; `None` signs with a key made at startup, so tokens
    /// do not outlive the process (the program always passes its key file).
    pub key: Option<SigningKey>,
    /// Failed attempts allowed per session and per remote address within
    /// `failure_window`, before further attempts get 429.
    pub max_failures: u32,
    /// The window failed attempts are counted in.
    pub failure_window: Duration,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            token_ttl: Duration::from_secs(15 * 60),
            key: None,
            max_failures: 10,
            failure_window: Duration::from_secs(60),
        }
    }
}

/// What the event log keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct EventLogConfig {
    /// Off: streams still carry ids and resume while the server runs, but
    /// nothing is written (for measuring the log's cost).
    pub enabled: bool,
    /// Newest events kept per session, at least (whole pages go at once).
    pub keep_per_session: u32,
    /// Events older than this are pruned.
    pub retention: Duration,
    /// How often old events are pruned.
    pub prune_interval: Duration,
    /// How long messages gather before a batch is written.
    pub flush_interval: Duration,
}

impl Default for EventLogConfig {
    fn default() -> Self {
        EventLogConfig {
            enabled: true,
            keep_per_session: 1000,
            retention: Duration::from_secs(15 * 60),
            prune_interval: Duration::from_secs(10),
            flush_interval: Duration::from_millis(100),
        }
    }
}

/// Tasks of the tasks extension.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskConfig {
    /// How long a task is kept after its creation, finished or not; a task
    /// still running then is stopped. Clients read it as `ttlMs`.
    pub ttl: Duration,
    /// How often clients are asked to poll (`pollIntervalMs`).
    pub poll_interval: Duration,
    /// How often expired tasks are deleted.
    pub prune_interval: Duration,
}

impl Default for TaskConfig {
    fn default() -> Self {
        TaskConfig {
            ttl: Duration::from_secs(3600),
            poll_interval: Duration::from_millis(500),
            prune_interval: Duration::from_secs(1),
        }
    }
}
