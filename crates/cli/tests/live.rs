//! The live session event stream over a real WebSocket: admin auth by
//! header or subprotocol, the snapshot on connect, and lifecycle events as a
//! real MCP session comes, works and goes.

mod common;

use std::time::Duration;

use common::{TestServer, ADMIN_TOKEN};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(t: &TestServer, headers: &[(&str, &str)]) -> Result<Ws, Error> {
    let url = format!("{}/api/mcp/ws/sessions", t.base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    for (k, v) in headers {
        let name: tokio_tungstenite::tungstenite::http::HeaderName = k.parse().unwrap();
        request
            .headers_mut()
            .insert(name, HeaderValue::from_str(v).unwrap());
    }
    connect_async(request).await.map(|(ws, _)| ws)
}

/// The next JSON message, skipping pings; fails after 5 s.
async fn next(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message within 5 s")
            .expect("the stream is open")
            .unwrap();
        if let Message::Text(text) = msg {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// The next message of `kind`, skipping others.
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let msg = next(ws).await;
        if msg["type"] == kind {
            return msg;
        }
    }
}

fn refused_with(result: Result<Ws, Error>, status: u16) {
    match result {
        Err(Error::Http(response)) => assert_eq!(response.status().as_u16(), status),
        Err(e) => panic!("expected HTTP {status}, got {e}"),
        Ok(_) => panic!("expected HTTP {status}, got a WebSocket"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_stream_sends_a_snapshot_and_lifecycle_events() {
    let t = TestServer::start().await;
    refused_with(connect(&t, &[]).await, 401);
    refused_with(
        connect(&t, &[("authorization", "Bearer wrong-token-wrong-token")]).await,
        401,
    );
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let mut ws = connect(&t, &[("authorization", &bearer)]).await.unwrap();
    let snapshot = next(&mut ws).await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["health"]["status_breakdown"]["active"], 0);
    assert!(snapshot["sessions"].is_array());

    let id = t.initialize("2025-11-25", "claude-code").await;
    let created = next_of(&mut ws, "session_created").await;
    assert_eq!(created["session"]["session_id"], id);
    assert_eq!(created["session"]["client_type"], "Claude Code");
    assert!(created["timestamp"].is_string());

    t.call_tool(&id, "echo", json!({"text": "x"})).await;
    let updated = next_of(&mut ws, "session_updated").await;
    assert_eq!(updated["session"]["session_id"], id);
    assert!(updated["session"]["request_count"].as_u64().unwrap() >= 2);

    let deleted = t.delete(&id).await;
    assert_eq!(deleted.status(), 200);
    let gone = next_of(&mut ws, "session_disconnected").await;
    assert_eq!(gone["session"]["session_id"], id);
    assert_eq!(gone["session"]["status"], "disconnected");
    assert_eq!(gone["reason"], "client_disconnect");

    // A stateless 2026-07-28 client shows up as client activity.
    let stateless = t
        .post(
            common::stateless(
                "tools/call",
                json!({"name": "echo", "arguments": {"text": "x"}}),
            ),
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "echo"),
            ],
        )
        .await;
    assert_eq!(stateless.status(), 200);
    let active = next_of(&mut ws, "client_activity").await;
    assert_eq!(active["client"]["client_name"], "cursor-test");
    assert_eq!(active["client"]["request_count"], 1);
    ws.close(None).await.unwrap();

    // Browsers: the token as a subprotocol, next to the one the server picks.
    let offered = format!("sessiongate.v1, bearer.{ADMIN_TOKEN}");
    let url = format!("{}/api/mcp/ws/sessions", t.base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(&offered).unwrap(),
    );
    let (mut ws, response) = connect_async(request).await.unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "sessiongate.v1"
    );
    assert_eq!(next(&mut ws).await["type"], "snapshot");
    refused_with(
        connect(
            &t,
            &[("sec-websocket-protocol", "sessiongate.v1, bearer.nope")],
        )
        .await,
        401,
    );
    ws.send(Message::Close(None)).await.unwrap();
    t.stop().await;
}
