//! The MCP side of sessiongate: the Streamable HTTP transport at `/mcp`
//! (sessionful revisions 2025-03-26..2025-11-25 and stateless 2026-07-28),
//! the dispatch of MCP methods, the seam to what serves requests
//! ([`Service`], with a live catalog), asking the client for input on both
//! generations ([`input`]), the tasks extension on the wire ([`tasks`]),
//! the tools the server offers itself ([`McpServer`]), and the 2026-07-28
//! clients' `subscriptions/listen` streams ([`listen`]).
//!
//! Sessions themselves live in `sessiongate-core`; this crate only reads and
//! touches them.

mod client_info;
pub mod context;
pub mod dispatch;
pub mod guard;
mod identity_cache;
pub mod input;
pub mod jsonrpc;
pub mod listen;
mod metrics;
pub mod peers;
pub mod protocol;
pub mod request;
pub mod server;
pub mod service;
mod sse;
pub mod streams;
pub mod tasks;
pub mod tools;
pub mod transport;

pub use context::RequestContext;
pub use dispatch::{Dispatcher, ServerInfo};
pub use guard::OriginPolicy;
pub use input::{InputKind, InputRequest, RequestStates, StateKey};
pub use request::Request;
pub use server::{Completer, McpServer, PromptHandler, ResourceProvider, ToolHandler};
pub use service::composite::Composite;
pub use service::{Answer, Capabilities, Catalog, LiveCatalog, Service};
pub use transport::{router, McpState, TransportConfig};
