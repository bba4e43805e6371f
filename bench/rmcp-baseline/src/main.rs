//! The rmcp baseline of `bench/run`: the smallest rmcp 3.11 server with one
//! `echo` tool, served by rmcp's own `StreamableHttpService` at `/mcp`.
//!
//! ```text
//! rmcp-baseline PORT              stateful sessions (rmcp's default config)
//! rmcp-baseline PORT --stateless  no sessions, JSON responses
//! rmcp-baseline --stdio           one session over stdin and stdout
//! ```
//!
//! The stdio form is the upstream of the gateway's tests and benchmarks,
//! the same for every gateway measured: a single-threaded runtime (one
//! stream, read in order), with stdin and stdout polled as non-blocking
//! pipes when they are pipes, as a gateway starts it.
//!
//! Accepted sockets get TCP_NODELAY: without it rmcp's SSE responses stall on
//! Nagle + delayed ACK (~40 ms per request), which would measure the kernel,
//! not rmcp.

use std::os::fd::AsFd;

use axum::serve::ListenerExt;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{schemars, tool, tool_handler, tool_router, ServerHandler};
use tokio::net::unix::pipe;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// The text to send back.
    text: String,
}

#[derive(Debug, Clone)]
struct Echo {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Echo {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Returns its text argument")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

fn usage() -> ! {
    eprintln!("usage: rmcp-baseline PORT [--stateless] | rmcp-baseline --stdio");
    std::process::exit(2)
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--stdio") {
        // One session reading one stream in order: one thread serves it. A
        // multi-thread runtime would hand each message between threads.
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(serve_stdio());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve_http(&args))
}

async fn serve_http(args: &[String]) -> std::io::Result<()> {
    let mut port = None;
    let mut stateless = false;
    for arg in args {
        match arg.as_str() {
            "--stateless" => stateless = true,
            _ => port = Some(arg.parse::<u16>().unwrap_or_else(|_| usage())),
        }
    }
    let port = port.unwrap_or_else(|| usage());

    let config = if stateless {
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
    } else {
        StreamableHttpServerConfig::default()
    };
    let service: StreamableHttpService<Echo, LocalSessionManager> =
        StreamableHttpService::new(|| Ok(Echo::new()), Default::default(), config);
    let app = axum::Router::new().nest_service("/mcp", service);

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    eprintln!(
        "rmcp-baseline listening on 127.0.0.1:{port} ({})",
        if stateless { "stateless" } else { "sessionful" }
    );
    axum::serve(listener, app).await
}

async fn serve_stdio() -> std::io::Result<()> {
    use rmcp::ServiceExt;
    let server = match stdio_pipes() {
        Ok(pipes) => Echo::new().serve(pipes).await,
        // A terminal or a file: tokio's stdin and stdout, which read and
        // write on its blocking pool.
        Err(_) => Echo::new().serve(rmcp::transport::stdio()).await,
    }
    .map_err(std::io::Error::other)?;
    server.waiting().await.map_err(std::io::Error::other)?;
    Ok(())
}

/// stdin and stdout as non-blocking pipes polled by the runtime, as a
/// gateway starts its children: no thread hand-off per read and write.
fn stdio_pipes() -> std::io::Result<(pipe::Receiver, pipe::Sender)> {
    let stdin = std::io::stdin().as_fd().try_clone_to_owned()?;
    let stdout = std::io::stdout().as_fd().try_clone_to_owned()?;
    Ok((
        pipe::Receiver::from_owned_fd(stdin)?,
        pipe::Sender::from_owned_fd(stdout)?,
    ))
}
