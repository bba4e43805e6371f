//! The tester's options, as `sessiongate loadtest` takes them (clap derive),
//! and their checks.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::Error;

/// Revisions with sessions (`initialize`, `Mcp-Session-Id`), oldest first.
pub const SESSIONFUL: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];
/// Revisions without sessions (per-request `_meta`).
pub const STATELESS: [&str; 1] = ["2026-07-28"];

/// A duration given as seconds (`300`) or with units (`5m`, `100ms`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration ({e}); use e.g. 300, 5m, 100ms"))
}

/// What the clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Each client keeps one session and calls tools as fast as it can
    Throughput,
    /// Sessions opened, used and closed continuously
    Churn,
    /// Some sessions go idle; checks that exactly those expire, on time
    Lifecycle,
    /// Sessions are dropped, left to time out and reclaimed with their reconnect token
    Reconnect,
    /// Steady (40 %), churning, idling and vanishing (20 % each) clients at once
    Mixed,
}

/// Which protocol generation the clients speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// `initialize` at this revision, then a session.
    Sessionful(String),
    /// No session: every request states this revision in `_meta`.
    Stateless(String),
    /// Even-numbered clients 2025-11-25, odd-numbered 2026-07-28.
    Mixed,
}

impl Protocol {
    /// The revision client `index` speaks.
    pub fn for_client(&self, index: usize) -> (&str, bool) {
        match self {
            Protocol::Sessionful(v) => (v, false),
            Protocol::Stateless(v) => (v, true),
            Protocol::Mixed if index.is_multiple_of(2) => (SESSIONFUL[2], false),
            Protocol::Mixed => (STATELESS[0], true),
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Protocol::Sessionful(v) | Protocol::Stateless(v) => f.write_str(v),
            Protocol::Mixed => f.write_str("mixed"),
        }
    }
}

fn parse_protocol(s: &str) -> Result<Protocol, String> {
    if s == "mixed" {
        Ok(Protocol::Mixed)
    } else if SESSIONFUL.contains(&s) {
        Ok(Protocol::Sessionful(s.into()))
    } else if STATELESS.contains(&s) {
        Ok(Protocol::Stateless(s.into()))
    } else {
        Err(format!(
            "unknown revision {s:?}; one of {}, {} or mixed",
            SESSIONFUL.join(", "),
            STATELESS.join(", ")
        ))
    }
}

/// `sessiongate loadtest`'s options.
#[derive(Debug, Clone, Args)]
pub struct LoadtestArgs {
    /// The server's MCP endpoint, e.g. http://127.0.0.1:8051/mcp
    #[arg(long)]
    pub url: String,

    /// Concurrent clients (each with its own session where the revision has sessions)
    #[arg(long, default_value_t = 10)]
    pub clients: usize,

    /// How long to run [default: 10s]; the lifecycle scenario runs until its checks are done
    #[arg(long, value_parser = parse_duration, conflicts_with = "iterations")]
    pub duration: Option<Duration>,

    /// Run a fixed amount instead: per client, tool calls (throughput), sessions
    /// (churn), drop-and-reclaim cycles (reconnect) or rounds of its role (mixed)
    #[arg(long)]
    pub iterations: Option<u64>,

    /// What the clients do
    #[arg(long, value_enum, default_value_t = Scenario::Throughput)]
    pub scenario: Scenario,

    /// Protocol revision: 2025-03-26, 2025-06-18, 2025-11-25 (sessions),
    /// 2026-07-28 (stateless) or mixed (half each)
    #[arg(long, default_value = "2025-11-25", value_parser = parse_protocol)]
    pub protocol: Protocol,

    /// Tool to call (repeat for a mix, called in turn) [default: `echo` if the
    /// server lists it, else a tool without required arguments]
    #[arg(long = "tool", value_name = "NAME")]
    pub tools: Vec<String>,

    /// JSON arguments of the --tool at the same position [default: a unique
    /// text in each string argument the tool requires]
    #[arg(long = "args", value_name = "JSON")]
    pub tool_args: Vec<String>,

    /// Pause between a client's requests
    #[arg(long, value_parser = parse_duration, default_value = "0")]
    pub think_time: Duration,

    /// Idle periods of the mixed scenario's idling clients; must stay below
    /// the server's idle timeout [default: 1s]
    #[arg(long, value_parser = parse_duration)]
    pub idle_time: Option<Duration>,

    /// The server's session idle timeout, as the lifecycle and reconnect
    /// checks expect it [default: the server's own figure from its health API]
    #[arg(long, value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,

    /// How far from the idle timeout an expiry may be and still pass
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub tolerance: Duration,

    /// Share of the lifecycle scenario's clients that go idle (the rest stay active)
    #[arg(long, default_value_t = 0.5)]
    pub idle_fraction: f64,

    /// Tool calls per session in the churn, lifecycle, reconnect and mixed scenarios
    #[arg(long, default_value_t = 3)]
    pub calls_per_session: u64,

    /// Admin token of a sessiongate server: lifecycle checks then read each
    /// session's record from its health API instead of probing for 404s
    #[arg(long, env = "SESSIONGATE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Base URL of the health API [default: the scheme, host and port of --url]
    #[arg(long)]
    pub api_url: Option<String>,

    /// A request without an answer by then counts as a timeout error
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub request_timeout: Duration,

    /// Exit non-zero when more requests than this fail [default: no limit]
    #[arg(long)]
    pub max_errors: Option<u64>,

    /// Also write the report as JSON to FILE
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

impl LoadtestArgs {
    /// Rejects contradictory or meaningless combinations.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Options(m));
        if self.clients == 0 {
            return bad("--clients must be at least 1".into());
        }
        if self.iterations == Some(0) {
            return bad("--iterations must be at least 1".into());
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return bad("--duration must be more than 0".into());
        }
        if !(0.0..=1.0).contains(&self.idle_fraction) {
            return bad("--idle-fraction must be between 0 and 1".into());
        }
        if self.tool_args.len() > self.tools.len() {
            return bad("each --args belongs to a --tool before it".into());
        }
        if self.calls_per_session == 0 {
            return bad("--calls-per-session must be at least 1".into());
        }
        if let Protocol::Stateless(v) = &self.protocol {
            if matches!(self.scenario, Scenario::Lifecycle | Scenario::Reconnect) {
                return bad(format!(
                    "the {:?} scenario needs sessions; {v} has none (use a sessionful revision or mixed)",
                    self.scenario
                ));
            }
        }
        Ok(())
    }
}
