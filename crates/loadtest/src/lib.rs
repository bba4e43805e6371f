//! `sessiongate-loadtest`: drives many concurrent MCP clients over
//! Streamable HTTP through whole session lifecycles — against sessiongate or
//! any other MCP server — and reports throughput, latency, errors by kind
//! and lifecycle checks. `sessiongate loadtest` is its command line; see
//! [`LoadtestArgs`] for the options and [`run`] for a whole run.

mod admin;
mod checks;
mod mcp_client;
mod options;
mod os;
mod progress;
mod report;
mod run;
mod scenario;
mod sse;
mod stats;
mod tools;

use std::path::PathBuf;

pub use checks::CheckFailure;
pub use options::{parse_duration, LoadtestArgs, Protocol, Scenario};
pub use report::Report;
pub use run::run;

/// Why a load test could not run (failed checks are in the [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The options contradict each other or lack what the scenario needs.
    #[error("{0}")]
    Options(String),
    /// The server could not be used: unreachable, not MCP, no tool to call.
    #[error("{0}")]
    Setup(String),
    #[error("building the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
