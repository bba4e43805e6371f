//! MCP request bodies and stream resumption, as a client sends them over
//! Streamable HTTP.

use serde_json::{json, Value};

use crate::sse::SseReader;

/// A 2026-07-28 request body with the required `_meta`: a stateless request
/// from a client named `cursor-test` at version `9.9`.
pub fn stateless(method: &str, params: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "cursor-test", "version": "9.9"},
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    json!({"jsonrpc":"2.0","id":1,"method":method,"params":params})
}

/// Resumes a session's stream with `GET /mcp` and `Last-Event-ID`; returns
/// the messages it carries until the server ends it.
pub async fn resume(
    http: &reqwest::Client,
    base: &str,
    session: &str,
    last_event_id: &str,
) -> Vec<Value> {
    let response = http
        .get(format!("{base}/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .header("last-event-id", last_event_id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    SseReader::new(response)
        .rest()
        .await
        .into_iter()
        .filter_map(|e| e.message())
        .collect()
}
