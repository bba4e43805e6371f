//! The `sessiongate` program: configuration, assembly of the server, and
//! the operator's client commands. The binary in `main.rs` only parses the
//! command line and calls into here, so tests can start real servers.

pub mod admin_client;
pub mod app;
pub mod config;
pub mod connections;
pub mod datadir;
