//! The floor of `bench/run`: the least an HTTP JSON-RPC server can do per
//! request on this stack. A raw axum handler at `/mcp` parses the body into a
//! `serde_json::Value`, takes its `id`, and answers a canned `tools/call`
//! result. No sessions, no validation, no logging.
//!
//! ```text
//! axum-floor PORT
//! ```

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use serde_json::{json, Value};

async fn mcp(body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "parse error").into_response();
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let answer = json!({
        "jsonrpc": "2.0",
        "id": id,
        "result": {"content": [{"type": "text", "text": "hi"}], "isError": false},
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&answer).unwrap_or_default(),
    )
        .into_response()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| {
            eprintln!("usage: axum-floor PORT");
            std::process::exit(2)
        });
    let app = axum::Router::new().route("/mcp", post(mcp));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    eprintln!("axum-floor listening on 127.0.0.1:{port}");
    axum::serve(listener, app).await
}
