//! The gateway: sessiongate in front of MCP servers it did not write.
//!
//! An upstream is reached through a [`link`]: a child process's stdio, or an
//! HTTP upstream session (Streamable HTTP, or the 2024-11-05 HTTP+SSE
//! transport). The [`relay`] serves each upstream as an
//! [`sessiongate_mcp::Service`] whose catalog is the upstream's, namespaced
//! `NAME__tool` (unless it is the only one and takes no built-in's name),
//! keeps one upstream session per client session (or per
//! stateless client), stores the mapping so it outlives a restart, and
//! heals it when the upstream loses it. The [`Gateway`] holds them all:
//! their start, the end of a session's upstream sessions, monitoring.

pub mod config;
mod gateway;
pub mod link;
pub mod relay;

pub use gateway::{Gateway, GatewayOptions};
pub use relay::Reserved;
