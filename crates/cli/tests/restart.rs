//! Restart survival, with the real binary: sessions outlive a graceful stop
//! and a `kill -9`, request-log rows acknowledged before a graceful stop are
//! all stored, a cut response stream resumes after a `kill -9`, and the
//! stateless clients of the last 24 h are still listed after a restart, and
//! a 2026-07-28 request that asked for input completes after a `kill -9`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{stateless, SseReader, BIN};
use futures::future::join_all;
use serde_json::{json, Value};
use sessiongate_testkit::process::{free_port, Gateway};

const SESSIONS: usize = 100;

/// `sessiongate serve` on `data_dir` and `port`, so a restart finds the
/// same data at the same address.
async fn start(data_dir: &Path, port: u16) -> Gateway {
    start_with(data_dir, port, &[]).await
}

async fn start_with(data_dir: &Path, port: u16, extra: &[&str]) -> Gateway {
    let data_dir = data_dir.to_str().unwrap();
    let args = [&["--data-dir", data_dir][..], extra].concat();
    Gateway::start(BIN, port, &args).await
}

async fn post(gw: &Gateway, session: Option<&str>, body: Value) -> reqwest::Response {
    gw.post(session, body).await.expect("an answer")
}

async fn echo_all(gw: &Gateway, ids: &[String], text: &str) {
    let calls = ids.iter().map(|id| async move {
        if let Err((status, body)) = gw.echo(id, text).await {
            panic!("session {id} must go on without re-initializing: {status} {body}");
        }
    });
    join_all(calls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_graceful_stop_and_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();

    let gw = start(dir.path(), port).await;
    let inits = (0..SESSIONS).map(|i| {
        let gw = &gw;
        async move {
            let r = post(gw, None, json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":"2025-11-25","capabilities":{"roots":{}},"clientInfo":{"name":format!("client-{i}"),"version":"1"}}})).await;
            assert_eq!(r.status(), 200);
            r.headers()["mcp-session-id"].to_str().unwrap().to_string()
        }
    });
    let ids: Vec<String> = join_all(inits).await;
    echo_all(&gw, &ids, "before graceful stop").await;
    let base = gw.base.clone();
    gw.stop();

    // Graceful restart: every acknowledged request is in the log.
    let gw = start(dir.path(), port).await;
    assert_eq!(gw.base, base);
    for id in &ids {
        let detail = gw.admin_get(&format!("/api/mcp/sessions/{id}")).await;
        assert_eq!(detail["session"]["status"], "active");
        assert_eq!(detail["session"]["protocol_version"], "2025-11-25");
        assert_eq!(
            detail["session"]["client_capabilities"],
            json!({"roots":{}})
        );
        assert_eq!(
            detail["requests"].as_array().unwrap().len(),
            2,
            "initialize + echo for {id}"
        );
    }
    echo_all(&gw, &ids, "after graceful restart").await;
    gw.kill();

    // Hard kill: sessions are still there, with their negotiated state.
    let gw = start(dir.path(), port).await;
    echo_all(&gw, &ids, "after kill -9").await;
    let list = gw.admin_get("/api/mcp/sessions?limit=500").await;
    assert_eq!(list["total"], SESSIONS, "no session was re-created");
    assert_eq!(list["active_sessions"], SESSIONS);
    gw.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_response_stream_resumes_after_kill_9_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let gw = start_with(dir.path(), port, &["--conformance"]).await;
    let r = post(&gw, None, json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"claude-code","version":"1"}}})).await;
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_string();

    // A long-running call; the client's connection is cut after the first message.
    let call = json!({"jsonrpc":"2.0","id":42,"method":"tools/call","params":{
        "name":"test_tool_with_progress","arguments":{},"_meta":{"progressToken":"t"}}});
    let mut sse = SseReader::new(post(&gw, Some(&session), call).await);
    let priming = sse.next().await.unwrap();
    let first = sse.next().await.unwrap();
    let mut received = vec![first.message().unwrap()];
    drop(sse);
    // The call finishes while nobody listens; then the server dies hard.
    tokio::time::sleep(Duration::from_millis(500)).await;
    gw.kill();

    let gw = start_with(dir.path(), port, &["--conformance"]).await;
    let resume = |last: String| {
        let (gw, session) = (&gw, session.clone());
        async move { common::resume(&gw.http, &gw.base, &session, &last).await }
    };
    received.extend(resume(first.id.clone().unwrap()).await);
    let progress: Vec<f64> = received
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| m["params"]["progress"].as_f64().unwrap())
        .collect();
    assert_eq!(progress, [0.0, 50.0, 100.0], "{received:?}");
    let results: Vec<&Value> = received.iter().filter(|m| m["id"] == 42).collect();
    assert_eq!(
        results.len(),
        1,
        "the result arrives exactly once: {received:?}"
    );
    assert!(results[0]["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("progress"));
    assert_eq!(received.last().unwrap()["id"], 42, "the result comes last");

    // From the priming event, the whole stream replays: nothing was lost.
    let all = resume(priming.id.unwrap()).await;
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(all, received);
    gw.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_clients_of_the_last_24_h_are_still_listed_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let gw = start(dir.path(), port).await;
    for _ in 0..3 {
        let call = stateless(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "x"}}),
        );
        let r = call_stateless(&gw, "echo", call).await;
        assert_eq!(r.status(), 200);
    }
    let before = gw.admin_get("/api/mcp/clients").await;
    assert_eq!(before["clients"][0]["request_count"], 3, "{before}");
    gw.stop();

    let gw = start(dir.path(), port).await;
    let after = gw.admin_get("/api/mcp/clients").await;
    let clients = after["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 1, "{after}");
    let c = &clients[0];
    assert_eq!(c["client_key"], before["clients"][0]["client_key"]);
    assert_eq!(c["client_name"], "cursor-test");
    assert_eq!(c["client_version"], "9.9");
    assert_eq!(c["client_type"], "Cursor");
    assert_eq!(c["protocol_version"], "2026-07-28");
    assert_eq!(c["request_count"], 3);
    assert_eq!(c["first_seen"], before["clients"][0]["first_seen"]);
    assert_eq!(c["last_seen"], before["clients"][0]["last_seen"]);
    let health = gw.admin_get("/api/mcp/sessions/health").await;
    assert_eq!(health["stateless_clients"]["total_24h"], 1, "{health}");
    gw.stop();
}

/// A stateless `tools/call` of a conformance fixture, with `extra` params
/// (a retry's inputResponses and requestState); the JSON-RPC response.
async fn call_fixture(gw: &Gateway, tool: &str, extra: Value) -> Value {
    let mut params = json!({"name": tool, "arguments": {}});
    params
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let mut body = stateless("tools/call", params);
    body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] =
        json!({"elicitation": {}});
    let r = call_stateless(gw, tool, body).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// POSTs a 2026-07-28 `tools/call` of `tool` with the headers that mirror it.
async fn call_stateless(gw: &Gateway, tool: &str, body: Value) -> reqwest::Response {
    gw.http
        .post(format!("{}/mcp", gw.base))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_state_issued_before_kill_9_completes_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let tool = "test_input_required_result_multi_round";
    let gw = start_with(dir.path(), port, &["--conformance"]).await;
    let first = call_fixture(&gw, tool, json!({})).await;
    let state = &first["result"]["requestState"];
    let step1 = json!({"action": "accept", "content": {"name": "Ada"}});
    let second = call_fixture(
        &gw,
        tool,
        json!({"inputResponses": {"step1": step1}, "requestState": state}),
    )
    .await;
    assert_eq!(second["result"]["resultType"], "input_required", "{second}");
    let state = second["result"]["requestState"].clone();
    gw.kill();

    // Nothing of the request was kept but the key in the data directory;
    // the state carries the first round's answer.
    let gw = start_with(dir.path(), port, &["--conformance"]).await;
    let step2 = json!({"action": "accept", "content": {"color": "blue"}});
    let retry = json!({"inputResponses": {"step2": step2}, "requestState": state});
    let done = call_fixture(&gw, tool, retry.clone()).await;
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    assert_eq!(done["result"]["content"][0]["text"], "Ada likes blue");
    gw.stop();

    // A server with another data directory has another key.
    let elsewhere = tempfile::tempdir().unwrap();
    let gw = start_with(elsewhere.path(), free_port(), &["--conformance"]).await;
    let refused = call_fixture(&gw, tool, retry).await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    assert_eq!(refused["error"]["data"]["reason"], "tampered", "{refused}");
    gw.stop();
}
