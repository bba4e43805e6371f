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
    // A plain GET is told what is missing.
    let plain = reqwest::Client::new()
        .get(format!("{}/api/mcp/ws/sessions", t.base))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 400);
    let detail = plain.json::<Value>().await.unwrap()["detail"].to_string();
    assert!(detail.contains("Not a WebSocket upgrade"), "{detail}");
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

/// A task-augmented `tools/call` of a conformance fixture by a 2026-07-28
/// client that declares the tasks extension; the id of the task it made.
async fn create_task(t: &TestServer, tool: &str, arguments: Value) -> String {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": tool,
        "arguments": arguments,
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "task-watcher", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {
                "extensions": {"io.modelcontextprotocol/tasks": {}}
            },
        },
    }});
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", tool),
    ];
    let created: Value = t.post(body, &headers).await.json().await.unwrap();
    assert_eq!(created["result"]["resultType"], "task", "{created}");
    created["result"]["taskId"].as_str().unwrap().to_string()
}

/// The next `task_status_changed` of `task_id`, skipping others.
async fn next_change_of(ws: &mut Ws, task_id: &str) -> Value {
    loop {
        let changed = next_of(ws, "task_status_changed").await;
        if changed["task_id"] == task_id {
            return changed;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_announced_as_created_and_as_they_finish_with_a_failures_reason() {
    let t = TestServer::start_with(sessiongate::config::Settings {
        conformance: true,
        ..Default::default()
    })
    .await;
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let mut ws = connect(&t, &[("authorization", &bearer)]).await.unwrap();
    assert_eq!(next(&mut ws).await["type"], "snapshot");

    let done = create_task(&t, "slow_compute", json!({"seconds": 0, "label": "x"})).await;
    let created = next_of(&mut ws, "task_created").await;
    assert_eq!(created["task"]["task_id"], done.as_str());
    assert_eq!(created["task"]["tool"], "slow_compute");
    assert_eq!(created["task"]["status"], "working");
    assert_eq!(created["task"]["owner"], "anonymous/task-watcher/1");
    let completed = next_change_of(&mut ws, &done).await;
    assert_eq!(completed["status"], "completed", "{completed}");
    assert_eq!(completed["status_message"], Value::Null);
    assert!(completed["updated_at"].is_string(), "{completed}");

    let failing = create_task(&t, "protocol_error_job", json!({})).await;
    let failed = next_change_of(&mut ws, &failing).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let reason = failed["status_message"].as_str().unwrap_or_default();
    assert!(reason.contains("The job failed"), "{failed}");
    // The same reason the API keeps.
    let stored = t.admin_get(&format!("/api/mcp/tasks/{failing}")).await;
    assert_eq!(stored["status_message"], reason);
    ws.send(Message::Close(None)).await.unwrap();
    t.stop().await;
}

/// A subscriber whose socket can hold only a few kilobytes in flight, so it
/// stalls as soon as it stops reading.
async fn connect_small(t: &TestServer) -> Ws {
    let addr: std::net::SocketAddr = t.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let url = format!("ws://{addr}/api/mcp/ws/sessions");
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {ADMIN_TOKEN}")).unwrap(),
    );
    let (ws, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
        .await
        .unwrap();
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_are_throttled_reconnects_announced_and_health_updated() {
    let t = TestServer::start().await;
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let mut ws = connect(&t, &[("authorization", &bearer)]).await.unwrap();
    assert_eq!(next(&mut ws).await["type"], "snapshot");
    let id = t.initialize("2025-11-25", "cursor").await;
    next_of(&mut ws, "session_created").await;

    // Twenty calls in well under a second: at most one update per second,
    // plus the one that closes the burst.
    let started = std::time::Instant::now();
    for _ in 0..20 {
        t.call_tool(&id, "echo", json!({"text": "x"})).await;
    }
    let burst = started.elapsed();
    let mut updates = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(2500);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Text(text) = msg {
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["type"] == "session_updated" {
                updates += 1;
            }
        }
    }
    let allowed = burst.as_secs() + 2;
    assert!(
        (1..=allowed).contains(&updates),
        "{updates} session_updated events for 20 calls in {burst:?}"
    );

    let token = t.admin_get(&format!("/api/mcp/sessions/{id}/token")).await["reconnect_token"]
        .as_str()
        .unwrap()
        .to_string();
    let reconnected = reqwest::Client::new()
        .post(format!("{}/api/mcp/sessions/{id}/reconnect", t.base))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(reconnected.status(), 200);
    let event = next_of(&mut ws, "session_reconnected").await;
    assert_eq!(event["session"]["session_id"], id);
    assert_eq!(event["session"]["reconnect_count"], 1);

    // The figures changed since the snapshot: within the 5 s health tick, a
    // health_update in the reference dashboard's shape.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    let update = loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a health_update within 8 s")
            .expect("the stream is open")
            .unwrap();
        let Message::Text(text) = msg else { continue };
        let v: Value = serde_json::from_str(&text).unwrap();
        if v["type"] == "health_update" {
            break v;
        }
    };
    assert_eq!(update["data"]["status_breakdown"]["active"], 1);
    assert_eq!(update["data"]["status_breakdown"]["total"], 1);
    assert!(update["data"]["age_distribution"].is_object());
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_lags_without_slowing_anyone() {
    // Enough events to overflow the server's send buffer (at most 4 MiB by
    // Linux's default tcp_wmem, some 4,600 events) and then, for over a
    // second more, the stream's queue of 64 frames of 20 ms each.
    const SESSIONS: usize = 16_000;
    // All from one address, far past the initialize rate limit.
    let t = std::sync::Arc::new(
        TestServer::start_with(sessiongate::config::Settings {
            initialize_rate: Some(1e9),
            initialize_burst: Some(u32::MAX),
            ..Default::default()
        })
        .await,
    );
    let mut stalled = connect_small(&t).await;
    assert_eq!(next(&mut stalled).await["type"], "snapshot");

    // A subscriber that keeps reading, in its own task, until told the total.
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let mut reader = connect(&t, &[("authorization", &bearer)]).await.unwrap();
    assert_eq!(next(&mut reader).await["type"], "snapshot");
    let reading = tokio::spawn(async move {
        let (mut created, mut lagged) = (0, 0);
        while created < SESSIONS {
            let msg = tokio::time::timeout(Duration::from_secs(5), reader.next()).await;
            let Ok(Some(Ok(msg))) = msg else { break };
            let Message::Text(text) = msg else { continue };
            let msg: Value = serde_json::from_str(&text).unwrap();
            match msg["type"].as_str() {
                Some("session_created") => created += 1,
                // The snapshot that follows would stand for what was missed.
                Some("lagged") => {
                    lagged += 1;
                    break;
                }
                _ => {}
            }
        }
        (created, lagged)
    });

    // MCP traffic while the stalled subscriber reads nothing: every session
    // opens.
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let t = t.clone();
            tokio::spawn(async move {
                for _ in 0..SESSIONS / 8 {
                    t.initialize("2025-11-25", "claude-code").await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    // The reading subscriber saw every one of them, without lagging.
    let (created, lagged) = tokio::time::timeout(Duration::from_secs(20), reading)
        .await
        .expect("the reading subscriber keeps up")
        .unwrap();
    assert_eq!(
        (created, lagged),
        (SESSIONS, 0),
        "the reading subscriber must see every session without lagging"
    );

    // The stalled one finds, after what its socket held, `lagged` and then a
    // fresh snapshot with every session.
    let mut held = 0;
    let missed = loop {
        let msg = next(&mut stalled).await;
        if msg["type"] == "lagged" {
            break msg["missed"].as_u64().unwrap();
        }
        assert!(
            ["session_created", "session_updated", "health_update"]
                .contains(&msg["type"].as_str().unwrap()),
            "{msg}"
        );
        held += 1;
    };
    assert!(missed > 0);
    let snapshot = next(&mut stalled).await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["total"], SESSIONS as u64);
    eprintln!(
        "{SESSIONS} sessions: the stalled subscriber held {held} events, missed {missed}, \
         then got a snapshot"
    );
    std::sync::Arc::into_inner(t).unwrap().stop().await;
}

/// A WebSocket client that offers permessage-deflate as browsers do and
/// inflates compressed messages in one context for the whole connection
/// (RFC 7692 §7.2.2), which tungstenite cannot; written on a bare socket.
struct Deflating {
    tcp: tokio::net::TcpStream,
    buf: Vec<u8>,
    inflater: flate2::Decompress,
    /// Compressed messages' bytes as they came over the wire, and inflated.
    wire: usize,
    text: usize,
}

impl Deflating {
    /// Connects offering `extensions`; returns what the server accepted.
    async fn connect(t: &TestServer, extensions: &str) -> (Deflating, Option<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = t.base.trim_start_matches("http://");
        let mut tcp = tokio::net::TcpStream::connect(host).await.unwrap();
        let request = format!(
            "GET /api/mcp/ws/sessions HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
             Sec-WebSocket-Extensions: {extensions}\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            assert_ne!(
                tcp.read_buf(&mut buf).await.unwrap(),
                0,
                "closed in handshake"
            );
        };
        let head = String::from_utf8(buf.drain(..end).collect()).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        let accepted = head
            .lines()
            .find_map(|l| l.strip_prefix("sec-websocket-extensions: "))
            .map(str::to_string);
        let ws = Deflating {
            tcp,
            buf,
            inflater: flate2::Decompress::new(false),
            wire: 0,
            text: 0,
        };
        (ws, accepted)
    }

    async fn fill(&mut self, n: usize) {
        use tokio::io::AsyncReadExt;
        while self.buf.len() < n {
            let read =
                tokio::time::timeout(Duration::from_secs(5), self.tcp.read_buf(&mut self.buf))
                    .await
                    .expect("a message within 5 s")
                    .unwrap();
            assert_ne!(read, 0, "the server closed the stream");
        }
    }

    /// The next text message, and whether it came compressed.
    async fn next(&mut self) -> (bool, Value) {
        loop {
            self.fill(2).await;
            let (b0, b1) = (self.buf[0], self.buf[1]);
            assert_eq!(b0 & 0x80, 0x80, "the server sends whole messages");
            assert_eq!(b1 & 0x80, 0, "server frames are unmasked");
            let (len, header) = match b1 & 0x7f {
                126 => {
                    self.fill(4).await;
                    (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                }
                127 => {
                    self.fill(10).await;
                    (
                        u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize,
                        10,
                    )
                }
                n => (n as usize, 2),
            };
            self.fill(header + len).await;
            let payload: Vec<u8> = self.buf.drain(..header + len).skip(header).collect();
            if b0 & 0x0f != 1 {
                continue; // pings
            }
            let compressed = b0 & 0x40 != 0;
            let text = if compressed {
                self.wire += payload.len();
                let mut input = payload;
                input.extend_from_slice(&[0, 0, 0xff, 0xff]);
                let mut out = Vec::with_capacity(1 << 20);
                self.inflater
                    .decompress_vec(&input, &mut out, flate2::FlushDecompress::Sync)
                    .unwrap();
                self.text += out.len();
                out
            } else {
                payload
            };
            return (compressed, serde_json::from_slice(&text).unwrap());
        }
    }

    async fn next_of(&mut self, kind: &str) -> (bool, Value) {
        loop {
            let (compressed, msg) = self.next().await;
            if msg["type"] == kind {
                return (compressed, msg);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_offering_permessage_deflate_get_events_compressed() {
    let t = TestServer::start().await;
    let (mut ws, accepted) =
        Deflating::connect(&t, "permessage-deflate; client_max_window_bits").await;
    assert_eq!(accepted.as_deref(), Some("permessage-deflate"));
    // The snapshot is this subscriber's alone: sent plain.
    let (compressed, snapshot) = ws.next().await;
    assert!(!compressed);
    assert_eq!(snapshot["type"], "snapshot");

    // Events broadcast in separate batches, all inflated in one context.
    let mut ids = Vec::new();
    for client in ["cursor", "claude-code", "windsurf"] {
        let id = t.initialize("2025-11-25", client).await;
        let (compressed, created) = ws.next_of("session_created").await;
        assert!(compressed);
        assert_eq!(created["session"]["session_id"], id);
        ids.push(id);
    }
    for id in &ids {
        assert_eq!(t.delete(id).await.status(), 200);
    }
    for id in &ids {
        let (compressed, gone) = ws.next_of("session_disconnected").await;
        assert!(compressed);
        assert_eq!(&gone["session"]["session_id"], id);
        assert_eq!(gone["reason"], "client_disconnect");
    }
    assert!(
        ws.wire * 2 < ws.text,
        "{} bytes on the wire for {} of JSON",
        ws.wire,
        ws.text
    );

    // An offer the shared batches cannot honour is declined: plain text.
    let (mut plain, accepted) =
        Deflating::connect(&t, "permessage-deflate; server_no_context_takeover").await;
    assert_eq!(accepted, None);
    assert_eq!(plain.next().await.1["type"], "snapshot");
    t.initialize("2025-11-25", "cline").await;
    let (compressed, created) = plain.next_of("session_created").await;
    assert!(!compressed);
    assert_eq!(created["session"]["client_name"], "cline");
    t.stop().await;
}
