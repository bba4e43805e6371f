//! The MCP endpoint over real HTTP: both protocol generations, the session
//! rules, and every kind of bad input.

mod common;

use std::time::Duration;

use common::{eventually, stateless, SseReader, TestServer};
use serde_json::{json, Value};
use sessiongate_core::lifecycle::LifecycleConfig;
use sessiongate_core::store::SessionQuery;
use sessiongate_core::{DisconnectReason, SessionStatus};
use sessiongate_mcp::TransportConfig;

/// The number of stored sessions, as `GET /api/mcp/sessions` reports it.
async fn sessions_total(t: &TestServer) -> Value {
    let query = SessionQuery {
        status: None,
        client_type: None,
        limit: 1,
        offset: 0,
    };
    json!(t.manager.list(&query).await.unwrap().total)
}

/// The health report, as `GET /api/mcp/sessions/health` serves it.
async fn health_report(t: &TestServer) -> Value {
    serde_json::to_value(t.manager.health().await.unwrap()).unwrap()
}

async fn error_code(response: reqwest::Response) -> (u16, i64) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["error"]["code"].as_i64().unwrap_or(0))
}

#[tokio::test]
async fn a_session_lives_from_initialize_to_delete() {
    let t = TestServer::start().await;
    let id = t.initialize("2025-11-25", "claude-code").await;
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));

    let list = t
        .post(
            json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
            &[("mcp-session-id", &id)],
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for tool in ["echo", "health_check", "session_info", "list_sessions"] {
        assert!(names.contains(&tool), "{tool} missing from {names:?}");
    }
    assert!(
        list["result"].get("resultType").is_none(),
        "sessionful results carry no resultType"
    );

    let echo = t.call_tool(&id, "echo", json!({"text": "hello"})).await;
    assert_eq!(echo["result"]["content"][0]["text"], "hello");
    assert!(echo["result"].get("resultType").is_none(), "{echo}");
    assert!(echo["result"].get("_meta").is_none(), "{echo}");

    let info = t.call_tool(&id, "session_info", json!({})).await;
    let record = &info["result"]["structuredContent"];
    assert_eq!(record["session_id"], id.as_str());
    assert_eq!(record["client_type"], "Claude Code");
    assert_eq!(record["protocol_version"], "2025-11-25");
    assert_eq!(record["client_capabilities"], json!({"sampling": {}}));

    let ping = t
        .post(
            json!({"jsonrpc":"2.0","id":2,"method":"ping"}),
            &[("mcp-session-id", &id)],
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(ping["result"], json!({}));

    let deleted = t.delete(&id).await;
    assert_eq!(deleted.status(), 200);
    let after = t
        .post(
            json!({"jsonrpc":"2.0","id":3,"method":"ping"}),
            &[("mcp-session-id", &id)],
        )
        .await;
    assert_eq!(after.status(), 404);

    let record = t
        .manager
        .session(id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, SessionStatus::Disconnected);
    assert_eq!(
        record.disconnect_reason,
        Some(DisconnectReason::ClientDisconnect)
    );
    assert_eq!(
        record.request_count, 5,
        "initialize, tools/list, echo, session_info, ping"
    );
    t.stop().await;
}

#[tokio::test]
async fn session_header_rules() {
    let t = TestServer::start().await;
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"});
    assert_eq!(t.post(ping.clone(), &[]).await.status(), 400, "missing id");
    assert_eq!(
        t.post(ping.clone(), &[("mcp-session-id", "nope")])
            .await
            .status(),
        404,
        "malformed id"
    );
    let unknown = "0123456789abcdef0123456789abcdef";
    assert_eq!(
        t.post(ping.clone(), &[("mcp-session-id", unknown)])
            .await
            .status(),
        404,
        "unknown id"
    );
    let id = t.initialize("2025-06-18", "Cursor").await;
    let bad_version = t
        .post(
            ping.clone(),
            &[
                ("mcp-session-id", &id),
                ("mcp-protocol-version", "1999-01-01"),
            ],
        )
        .await;
    assert_eq!(bad_version.status(), 400);
    // Any supported sessionful revision is accepted on the header.
    let older = t
        .post(
            ping,
            &[
                ("mcp-session-id", &id),
                ("mcp-protocol-version", "2025-03-26"),
            ],
        )
        .await;
    assert_eq!(older.status(), 200);
    let get = t
        .http
        .get(t.mcp_url())
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 400);
    let delete = t.delete(unknown).await;
    assert_eq!(delete.status(), 404);
    t.stop().await;
}

#[tokio::test]
async fn initialize_negotiates_and_answers_per_accept() {
    let t = TestServer::start().await;
    let init = |v: &str| {
        json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion": v, "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}})
    };
    for (asked, got) in [
        ("2025-03-26", "2025-03-26"),
        ("2026-07-28", "2025-11-25"),
        ("2099-01-01", "2025-11-25"),
    ] {
        let body: Value = t.post(init(asked), &[]).await.json().await.unwrap();
        assert_eq!(body["result"]["protocolVersion"], got, "asked {asked}");
    }
    let sse = t
        .post(init("2025-11-25"), &[("accept", "text/event-stream")])
        .await;
    assert_eq!(sse.status(), 200);
    assert!(sse.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    assert!(sse.headers().contains_key("mcp-session-id"));
    assert!(
        sse.headers().contains_key("content-length"),
        "one whole body"
    );
    let text = sse.text().await.unwrap();
    assert!(
        text.contains("data: {\"jsonrpc\":\"2.0\",\"id\":0,\"result\""),
        "{text}"
    );
    t.stop().await;
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_changes_nothing() {
    let t = TestServer::start().await;
    let id = t.initialize("2025-11-25", "probe").await;
    let sid = [("mcp-session-id", id.as_str())];
    let before = sessions_total(&t).await;

    assert_eq!(
        error_code(t.post_raw("{not json", &sid).await).await,
        (400, -32700)
    );
    assert_eq!(error_code(t.post_raw("", &sid).await).await, (400, -32700));
    assert_eq!(
        error_code(t.post_raw(r#"{"id":1,"method":"ping"}"#, &sid).await).await,
        (400, -32600)
    );
    assert_eq!(
        error_code(
            t.post_raw(r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#, &sid)
                .await
        )
        .await,
        (400, -32600)
    );
    assert_eq!(
        error_code(
            t.post(json!({"jsonrpc":"2.0","id":1,"method":"no/such"}), &sid)
                .await
        )
        .await,
        (200, -32601)
    );
    // Arguments a tool refuses are its execution error (2025-11-25), for
    // the model to read.
    let refused: Value = t.post(json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":5}}}), &sid).await.json().await.unwrap();
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    assert!(
        refused["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("text"),
        "{refused}"
    );
    assert_eq!(
        error_code(
            t.post(
                json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"nam":"echo"}}),
                &sid
            )
            .await
        )
        .await,
        (200, -32602)
    );
    assert_eq!(
        error_code(
            t.post(
                json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nope"}}),
                &sid
            )
            .await
        )
        .await,
        (200, -32602)
    );
    // Batches are 2025-03-26 only.
    let batch = json!([{"jsonrpc":"2.0","id":1,"method":"ping"}]);
    assert_eq!(t.post(batch.clone(), &sid).await.status(), 400);

    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"x":"{}"}}}}"#,
        "a".repeat(5 << 20)
    );
    assert_eq!(t.post_raw(big, &sid).await.status(), 413);
    let wrong_type = t
        .http
        .post(t.mcp_url())
        .header("content-type", "text/plain")
        .header("mcp-session-id", &id)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 415);
    assert_eq!(
        t.post(
            json!({"jsonrpc":"2.0","id":1,"method":"ping"}),
            &[("mcp-session-id", &id), ("accept", "text/html")]
        )
        .await
        .status(),
        406
    );
    let huge_header = "x".repeat(128 * 1024);
    let oversized = t
        .http
        .post(t.mcp_url())
        .header("content-type", "application/json")
        .header("x-filler", huge_header)
        .body("{}")
        .send()
        .await;
    assert_eq!(oversized.unwrap().status(), 431);

    // The session is unharmed and nothing was stored for the bad requests.
    assert_eq!(
        t.call_tool(&id, "echo", json!({"text":"ok"})).await["result"]["content"][0]["text"],
        "ok"
    );
    assert_eq!(sessions_total(&t).await, before);
    t.stop().await;
}

#[tokio::test]
async fn batches_work_on_2025_03_26() {
    let t = TestServer::start().await;
    let id = t.initialize("2025-03-26", "old-client").await;
    let response = t
        .post(
            json!([
                {"jsonrpc":"2.0","id":1,"method":"ping"},
                {"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":0}},
                {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"b"}}},
                {"jsonrpc":"2.0","id":3}
            ]),
            &[("mcp-session-id", &id)],
        )
        .await;
    assert_eq!(response.status(), 200);
    let replies: Vec<Value> = response.json().await.unwrap();
    assert_eq!(replies.len(), 3);
    assert_eq!(replies[0]["id"], 1);
    assert_eq!(replies[1]["result"]["content"][0]["text"], "b");
    assert_eq!(replies[2]["error"]["code"], -32600);
    t.stop().await;
}

#[tokio::test]
async fn origin_and_host_are_checked() {
    let t = TestServer::start().await;
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"x","version":"1"}}});
    assert_eq!(
        t.post(init.clone(), &[("origin", "http://evil.example.com")])
            .await
            .status(),
        403
    );
    assert_eq!(
        t.post(init.clone(), &[("host", "evil.example.com")])
            .await
            .status(),
        403
    );
    assert_eq!(
        t.post(init.clone(), &[("origin", "http://localhost:5173")])
            .await
            .status(),
        200
    );
    t.stop().await;
}

#[tokio::test]
async fn stateless_requests_are_served_and_attributed() {
    let t = TestServer::start().await;
    let headers = |method: &'static str| {
        vec![
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", method),
        ]
    };

    let discover: Value = t
        .post(
            stateless("server/discover", json!({})),
            &headers("server/discover"),
        )
        .await
        .json()
        .await
        .unwrap();
    let result = &discover["result"];
    assert_eq!(result["resultType"], "complete");
    assert_eq!(
        result["supportedVersions"],
        json!(["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"])
    );
    assert!(result["ttlMs"].is_number() && result["cacheScope"].is_string());
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "sessiongate"
    );

    let mut h = headers("tools/call");
    h.push(("mcp-name", "echo"));
    let response = t
        .post(
            stateless(
                "tools/call",
                json!({"name":"echo","arguments":{"text":"hi"}}),
            ),
            &h,
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers().get("mcp-session-id").is_none(),
        "no session is minted"
    );
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["result"]["content"][0]["text"], "hi");
    assert_eq!(echo["result"]["resultType"], "complete");
    assert_eq!(
        echo["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "sessiongate"
    );

    // Base64-encoded Mcp-Name is decoded before comparing.
    let mut h = headers("tools/call");
    h.push(("mcp-name", "=?base64?ZWNobw==?="));
    assert_eq!(
        t.post(
            stateless(
                "tools/call",
                json!({"name":"echo","arguments":{"text":"b"}})
            ),
            &h
        )
        .await
        .status(),
        200
    );

    let info: Value = {
        let mut h = headers("tools/call");
        h.push(("mcp-name", "session_info"));
        t.post(stateless("tools/call", json!({"name":"session_info"})), &h)
            .await
            .json()
            .await
            .unwrap()
    };
    assert_eq!(info["result"]["structuredContent"]["client_type"], "Cursor");
    assert_eq!(info["result"]["structuredContent"]["stateless"], true);

    let clients = json!({ "clients": t.lifecycle.stateless.list() });
    let client = &clients["clients"][0];
    assert_eq!(client["client_name"], "cursor-test");
    assert_eq!(client["request_count"], 4);

    // Over SSE, what a call sent and its answer go out as one whole body.
    let mut call = stateless(
        "tools/call",
        json!({"name":"echo","arguments":{"text":"p"}}),
    );
    call["params"]["_meta"]["progressToken"] = json!("t");
    let mut h = headers("tools/call");
    h.extend([("mcp-name", "echo"), ("accept", "text/event-stream")]);
    let response = t.post(call, &h).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("content-length"));
    let events = common::SseReader::new(response).rest().await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events.iter().all(|e| e.id.is_none()), "{events:?}");
    assert_eq!(
        events[0].message().unwrap()["method"],
        "notifications/progress"
    );
    assert_eq!(
        events[1].message().unwrap()["result"]["content"][0]["text"],
        "p"
    );
    t.stop().await;
}

#[tokio::test]
async fn stateless_header_and_version_errors() {
    let t = TestServer::start().await;
    let call = stateless(
        "tools/call",
        json!({"name":"echo","arguments":{"text":"x"}}),
    );

    let mismatch = t
        .post(
            call.clone(),
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "other"),
            ],
        )
        .await;
    assert_eq!(error_code(mismatch).await, (400, -32020));
    let no_name = t
        .post(
            call.clone(),
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
            ],
        )
        .await;
    assert_eq!(error_code(no_name).await, (400, -32020));
    let wrong_method = t
        .post(
            call.clone(),
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/list"),
                ("mcp-name", "echo"),
            ],
        )
        .await;
    assert_eq!(error_code(wrong_method).await, (400, -32020));
    let no_version_header = t
        .post(
            call.clone(),
            &[("mcp-method", "tools/call"), ("mcp-name", "echo")],
        )
        .await;
    assert_eq!(error_code(no_version_header).await, (400, -32020));

    let mut future = call.clone();
    future["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let unsupported = t
        .post(
            future,
            &[
                ("mcp-protocol-version", "2099-01-01"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "echo"),
            ],
        )
        .await;
    assert_eq!(unsupported.status(), 400);
    let body: Value = unsupported.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32022);
    assert_eq!(body["error"]["data"]["requested"], "2099-01-01");
    assert!(body["error"]["data"]["supported"]
        .as_array()
        .unwrap()
        .contains(&json!("2026-07-28")));

    let mut no_caps = call.clone();
    no_caps["params"]["_meta"]
        .as_object_mut()
        .unwrap()
        .remove("io.modelcontextprotocol/clientCapabilities");
    let missing = t
        .post(
            no_caps,
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "echo"),
            ],
        )
        .await;
    assert_eq!(error_code(missing).await, (400, -32602));

    for removed in ["ping", "logging/setLevel", "no/such"] {
        let r = t
            .post(
                stateless(removed, json!({})),
                &[
                    ("mcp-protocol-version", "2026-07-28"),
                    ("mcp-method", removed),
                ],
            )
            .await;
        assert_eq!(error_code(r).await, (404, -32601), "{removed}");
    }
    let get = t
        .http
        .get(t.mcp_url())
        .header("mcp-protocol-version", "2026-07-28")
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    t.stop().await;
}

#[tokio::test]
async fn idle_sessions_expire_on_the_driven_clock() {
    let t = TestServer::start_with(
        TransportConfig::default(),
        LifecycleConfig {
            idle_timeout: Duration::from_secs(300),
            ..Default::default()
        },
    )
    .await;
    let idle = t.initialize("2025-11-25", "idle").await;
    let busy = t.initialize("2025-11-25", "busy").await;

    t.clock.advance(Duration::from_secs(200));
    t.call_tool(&busy, "echo", json!({"text":"still here"}))
        .await;
    t.streams_closed(&busy).await;
    t.clock.advance(Duration::from_secs(99));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let health = health_report(&t).await;
    assert_eq!(
        health["status_breakdown"]["active"], 2,
        "nobody is past the deadline yet"
    );

    // One second past the idle session's deadline: it must be gone within 1 s.
    t.clock.advance(Duration::from_secs(2));
    let started = std::time::Instant::now();
    let manager = t.manager.clone();
    let idle_id = idle.parse().unwrap();
    eventually(Duration::from_secs(1), || {
        let manager = manager.clone();
        async move { manager.active(idle_id).is_none() }
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(1));

    let after = t
        .post(
            json!({"jsonrpc":"2.0","id":1,"method":"ping"}),
            &[("mcp-session-id", &idle)],
        )
        .await;
    assert_eq!(after.status(), 404);
    let health = health_report(&t).await;
    assert_eq!(
        health["status_breakdown"],
        json!({"active": 1, "disconnected": 1, "total": 2})
    );
    let record = t.manager.session(idle_id).await.unwrap().unwrap();
    assert_eq!(record.disconnect_reason, Some(DisconnectReason::Timeout));

    // The busy session's own deadline counts from its last request.
    t.clock.advance(Duration::from_secs(200));
    let busy_id = busy.parse().unwrap();
    eventually(Duration::from_secs(1), || {
        let manager = manager.clone();
        async move { manager.active(busy_id).is_none() }
    })
    .await;
    t.stop().await;
}

#[tokio::test]
async fn an_open_get_stream_keeps_a_session_alive() {
    let t = TestServer::start_with(
        TransportConfig::default(),
        LifecycleConfig {
            idle_timeout: Duration::from_secs(60),
            ..Default::default()
        },
    )
    .await;
    let id = t.initialize("2025-11-25", "streamer").await;
    let stream = t.get_stream_on(&t.http, &id).await;

    t.clock.advance(Duration::from_secs(600));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        t.manager.active(id.parse().unwrap()).is_some(),
        "alive while the stream is open"
    );

    drop(stream);
    let manager = t.manager.clone();
    let sid = id.parse().unwrap();
    // Idle time counts from the stream's close.
    t.streams_closed(&id).await;
    t.clock.advance(Duration::from_secs(59));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(t.manager.active(sid).is_some());
    t.clock.advance(Duration::from_secs(2));
    eventually(Duration::from_secs(1), || {
        let manager = manager.clone();
        async move { manager.active(sid).is_none() }
    })
    .await;
    t.stop().await;
}

/// The response's SSE text as it arrives, until `done` holds of it.
async fn sse_text_until(response: &mut reqwest::Response, done: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    while !done(&text) {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .unwrap_or_else(|_| panic!("stalled after {text:?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("ended after {text:?}"));
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    text
}

#[tokio::test]
async fn resumable_streams_are_primed_with_empty_data_and_kept_alive_while_idle() {
    let t = TestServer::start_with(
        TransportConfig {
            keepalive: Duration::from_millis(50),
            ..TransportConfig::default()
        },
        LifecycleConfig::default(),
    )
    .await;
    let id = t.initialize("2025-11-25", "primed").await;
    let headers = [
        ("mcp-session-id", id.as_str()),
        ("mcp-protocol-version", "2025-11-25"),
        ("accept", "text/event-stream"),
    ];
    // A progress notification first: the answer streams, resumably.
    let call = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{
        "name":"echo","arguments":{"text":"hi"},"_meta":{"progressToken":"p"}}});
    let response = t.post(call.clone(), &headers).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-cache");
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    let text = response.text().await.unwrap();
    let (priming, rest) = text.split_once("\n\n").unwrap();
    let mut fields = priming.lines();
    assert!(
        fields.next().unwrap().starts_with("id: r") && priming.ends_with("-0\nretry: 1000\ndata:"),
        "the first event is a priming event whose data is empty: {text:?}"
    );
    assert!(rest.starts_with("id: "), "{text:?}");

    // EventSource semantics: the priming event is dispatched, empty.
    let response = t.post(call, &headers).await;
    let events = SseReader::new(response).rest().await;
    assert_eq!(events.len(), 3, "priming, progress, answer: {events:?}");
    assert_eq!(events[0].data, "");
    assert!(events[0].id.as_deref().unwrap().ends_with("-0"));
    assert_eq!(events[0].retry, Some(1000));
    assert_eq!(
        events[2].message().unwrap()["result"]["content"][0]["text"],
        "hi"
    );

    // An idle GET stream: primed, then only comments, one per interval.
    let mut get = t.get_stream_on(&t.http, &id).await;
    assert_eq!(get.headers()["cache-control"], "no-cache");
    let text = sse_text_until(&mut get, |text| {
        text.split_once("\n\n")
            .is_some_and(|(_, rest)| rest.matches(":\n\n").count() >= 2)
    })
    .await;
    let (priming, comments) = text.split_once("\n\n").unwrap();
    assert!(
        priming.starts_with("id: g") && priming.ends_with("data:"),
        "{text:?}"
    );
    assert_eq!(comments, ":\n\n:\n\n", "{text:?}");
    drop(get);
    t.stop().await;
}

#[tokio::test]
async fn request_log_rows_are_written_behind() {
    let t = TestServer::start().await;
    let id = t.initialize("2025-11-25", "logger").await;
    t.call_tool(&id, "echo", json!({"text":"a"})).await;
    t.call_tool(&id, "nope", json!({})).await;
    // A tool that reports failure in its result (isError), not as a
    // JSON-RPC error.
    let refused = t
        .call_tool(
            &id,
            "reconnect_session",
            json!({"session_id": id, "reconnect_token": "not-a-token"}),
        )
        .await;
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    let session = id.parse().unwrap();
    let mut requests = Value::Null;
    for _ in 0..100 {
        // What `GET /api/mcp/sessions/{id}` lists as the session's requests.
        let rows = t.store.store.session_requests(session, 100).await;
        requests = serde_json::to_value(rows.unwrap()).unwrap();
        if requests.as_array().is_some_and(|r| r.len() == 4) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rows = requests.as_array().expect("requests listed");
    assert_eq!(rows.len(), 4, "{requests}");
    let echo = rows.iter().find(|r| r["tool_name"] == "echo").unwrap();
    assert_eq!(echo["method"], "tools/call");
    assert_eq!(echo["status"], "success");
    assert!(echo["bytes_in"].as_u64().unwrap() > 0 && echo["bytes_out"].as_u64().unwrap() > 0);
    let failed = rows.iter().find(|r| r["tool_name"] == "nope").unwrap();
    assert_eq!(failed["status"], "error");
    assert_eq!(failed["error_code"], -32602);
    let tool_failed = rows
        .iter()
        .find(|r| r["tool_name"] == "reconnect_session")
        .unwrap();
    assert_eq!(tool_failed["status"], "error");
    assert_eq!(tool_failed["error_code"], Value::Null);
    assert_eq!(
        tool_failed["error_message"], refused["result"]["content"][0]["text"],
        "{tool_failed}"
    );
    t.stop().await;
}
