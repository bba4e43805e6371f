//! Test support shared by sessiongate's crates, used only as a
//! dev-dependency: what several test files need to start a server, talk
//! to it and break it, so that each test file says only what it checks.
//!
//! - [`http`]: an axum router served on an ephemeral port.
//! - [`store`]: a fresh SQLite store in a temporary directory.
//! - [`postgres`]: where the test PostgreSQL is, and a schema per test.
//! - [`process`]: the real `sessiongate` binary as a child process.
//! - [`sse`]: server-sent events read off a response as they arrive.
//! - [`mcp`]: MCP request bodies and stream resumption.
//! - [`tmpfs`]: a small filesystem to fill up.
//! - [`wait`]: polling until a condition holds.

pub mod http;
pub mod mcp;
pub mod postgres;
pub mod process;
pub mod sse;
pub mod store;
pub mod tmpfs;
pub mod wait;

pub use sse::{SseEvent, SseReader};
pub use wait::{eventually, wait_for};
