//! The MCP side of sessiongate: the Streamable HTTP transport at `/mcp`
//! (sessionful revisions 2025-03-26..2025-11-25 and stateless 2026-07-28),
//! the dispatch of MCP methods, and the tools the server offers itself.
//!
//! Sessions themselves live in `sessiongate-core`; this crate only reads and
//! touches them.

mod client_info;
pub mod context;
pub mod guard;
mod identity_cache;
pub mod jsonrpc;
mod metrics;
pub mod peers;
pub mod protocol;
pub mod server;
pub mod streams;
pub mod tools;
pub mod transport;

pub use context::RequestContext;
pub use guard::OriginPolicy;
pub use server::{Completer, McpServer, PromptHandler, ResourceProvider, ToolHandler};
pub use transport::{router, McpState, TransportConfig};
