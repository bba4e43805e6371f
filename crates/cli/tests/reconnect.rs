//! Reconnection over MCP itself: tokens handed out at `initialize` and by
//! `get_reconnect_token`, a timed-out session revived in place by a request
//! carrying its token, `reconnect_session`, and resumable SSE streams.

mod common;

use std::time::Duration;

use common::{SseReader, TestServer};
use serde_json::{json, Value};
use sessiongate::config::Settings;

const V: &str = "2025-11-25";

async fn tool(
    t: &TestServer,
    session: &str,
    name: &str,
    args: Value,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut headers = vec![("mcp-session-id", session), ("mcp-protocol-version", V)];
    headers.extend_from_slice(extra);
    t.post(
        json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":name,"arguments":args}}),
        &headers,
    )
    .await
}

fn structured(body: &Value) -> &Value {
    &body["result"]["structuredContent"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_hands_the_holder_a_token_and_a_timed_out_session_revives_in_place() {
    let t = TestServer::start_with(Settings {
        idle_timeout: Some(Duration::from_secs(60)),
        ..Default::default()
    })
    .await;
    let response = t
        .post(
            json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion": V, "capabilities": {"sampling": {}},
                "clientInfo": {"name": "claude-code", "version": "2.0"}}}),
            &[],
        )
        .await;
    assert_eq!(response.status(), 200);
    let id = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let header_token = response.headers()["mcp-reconnect-token"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["result"]["_meta"]["io.sessiongate/reconnectToken"],
        header_token
    );
    assert!(body["result"]["_meta"]["io.sessiongate/reconnectTokenExpiresAt"].is_string());

    // get_reconnect_token rotates: the initialize token is superseded.
    let body: Value = tool(&t, &id, "get_reconnect_token", json!({}), &[])
        .await
        .json()
        .await
        .unwrap();
    let fresh = structured(&body)["reconnect_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(structured(&body)["expires_in_minutes"], 15);
    assert_ne!(fresh, header_token);

    // The session times out; a plain request gets 404 ...
    t.streams_closed(&id).await;
    t.clock.advance(Duration::from_secs(61));
    // Waits on the manager, not with requests: a request that reached the
    // session before the reaper did would count as activity and keep it.
    let sid = id.parse().unwrap();
    common::eventually(Duration::from_secs(5), || async {
        t.server.manager.active(sid).is_none()
    })
    .await;
    let expired = tool(&t, &id, "echo", json!({"text": "x"}), &[]).await;
    assert_eq!(expired.status(), 404);
    // ... and with a superseded token, 401 and nothing changes.
    let refused = tool(
        &t,
        &id,
        "echo",
        json!({"text": "x"}),
        &[("mcp-reconnect-token", &header_token)],
    )
    .await;
    assert_eq!(refused.status(), 401);
    let detail: Value = refused.json().await.unwrap();
    assert!(
        detail["detail"].as_str().unwrap().contains("superseded"),
        "{detail}"
    );

    // With its current token the same request revives it in place.
    let revived = tool(
        &t,
        &id,
        "session_info",
        json!({}),
        &[("mcp-reconnect-token", &fresh)],
    )
    .await;
    assert_eq!(revived.status(), 200);
    let next = revived.headers()["mcp-reconnect-token"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = revived.json().await.unwrap();
    let record = structured(&body);
    assert_eq!(record["session_id"], id);
    assert_eq!(record["status"], "active");
    assert_eq!(record["reconnect_count"], 1);
    assert_eq!(record["protocol_version"], V);
    assert_eq!(record["client_capabilities"], json!({"sampling": {}}));
    let ok = tool(&t, &id, "echo", json!({"text": "back"}), &[]).await;
    assert_eq!(ok.status(), 200);

    // The token it used is spent.
    let again = t
        .http
        .post(format!("{}/api/mcp/sessions/{id}/reconnect", t.base))
        .json(&json!({"token": fresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 401);
    let detail: Value = again.json().await.unwrap();
    assert!(
        detail["detail"].as_str().unwrap().contains("already used"),
        "{detail}"
    );

    // reconnect_session from a fresh session reclaims it with the newest token.
    let other = t.initialize(V, "cursor").await;
    let reclaim = || async {
        let args = json!({"session_id": id, "reconnect_token": next});
        let response = tool(&t, &other, "reconnect_session", args, &[]).await;
        response.json::<Value>().await.unwrap()
    };
    let body = reclaim().await;
    assert_eq!(structured(&body)["success"], true, "{body}");
    assert_eq!(structured(&body)["reconnect_count"], 2);
    let body = reclaim().await;
    assert_eq!(body["result"]["isError"], true, "{body}");
    assert!(structured(&body)["detail"]
        .as_str()
        .unwrap()
        .contains("already used"));

    // A session its client DELETEd stays ended, token or not.
    let body: Value = tool(&t, &id, "get_reconnect_token", json!({}), &[])
        .await
        .json()
        .await
        .unwrap();
    let last = structured(&body)["reconnect_token"]
        .as_str()
        .unwrap()
        .to_string();
    let deleted = t.delete(&id).await;
    assert_eq!(deleted.status(), 200);
    let refused = tool(
        &t,
        &id,
        "echo",
        json!({"text": "x"}),
        &[("mcp-reconnect-token", &last)],
    )
    .await;
    assert_eq!(refused.status(), 401);
    t.stop().await;
}

/// Starts `test_tool_with_progress` with an SSE-only Accept; returns the
/// reader after the priming event and the first message.
async fn start_progress_call(t: &TestServer, session: &str) -> (SseReader, String, Vec<Value>) {
    let response = t
        .post_raw(
            json!({"jsonrpc":"2.0","id":9,"method":"tools/call","params":{
                "name":"test_tool_with_progress","arguments":{},"_meta":{"progressToken":"p"}}})
            .to_string(),
            &[
                ("mcp-session-id", session),
                ("mcp-protocol-version", V),
                ("accept", "text/event-stream"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let mut sse = SseReader::new(response);
    let priming = sse.next().await.unwrap();
    assert!(priming.data.is_empty(), "{priming:?}");
    assert!(
        priming.retry.is_some(),
        "the priming event carries a retry hint"
    );
    assert!(priming.id.as_deref().unwrap().ends_with("-0"));
    let first = sse.next().await.unwrap();
    let id = first.id.clone().unwrap();
    (sse, id, vec![first.message().unwrap()])
}

async fn resume(t: &TestServer, session: &str, last_event_id: &str) -> Vec<Value> {
    common::resume(&t.http, &t.base, session, last_event_id).await
}

fn progress_values(messages: &[Value]) -> Vec<f64> {
    messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| m["params"]["progress"].as_f64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_response_stream_resumes_with_last_event_id_exactly_once() {
    let t = TestServer::start_with(Settings {
        conformance: true,
        ..Default::default()
    })
    .await;
    let session = t.initialize(V, "claude-code").await;

    // Drop the connection after the first progress message; the tool runs on.
    let (sse, after_first, seen) = start_progress_call(&t, &session).await;
    assert_eq!(progress_values(&seen), [0.0]);
    drop(sse);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let rest = resume(&t, &session, &after_first).await;
    assert_eq!(progress_values(&rest), [50.0, 100.0], "{rest:?}");
    assert_eq!(rest.last().unwrap()["id"], 9);
    assert!(rest.last().unwrap()["result"]["content"][0]["text"].is_string());
    assert_eq!(rest.iter().filter(|m| m.get("result").is_some()).count(), 1);

    // Resuming mid-flight attaches to the live stream: replay, then live.
    let (sse, after_first, _) = start_progress_call(&t, &session).await;
    drop(sse);
    let rest = resume(&t, &session, &after_first).await;
    assert_eq!(progress_values(&rest), [50.0, 100.0], "{rest:?}");
    assert_eq!(rest.iter().filter(|m| m["id"] == 9).count(), 1);

    // Another session cannot read this session's stream.
    let intruder = t.initialize(V, "cursor").await;
    assert!(resume(&t, &intruder, &after_first).await.is_empty());
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_ready_at_once_is_one_event_and_a_streamed_one_is_logged() {
    let t = TestServer::start().await;
    let session = t.initialize(V, "claude-code").await;
    let sse_only = [("accept", "text/event-stream")];

    // Ready at once: a whole body with the answer as its only event.
    let response = tool(&t, &session, "echo", json!({"text": "hi"}), &sse_only).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("content-length"));
    let events = SseReader::new(response).rest().await;
    assert_eq!(events.len(), 1, "{events:?}");
    let id = events[0]
        .id
        .clone()
        .expect("the answer carries an event id");
    assert!(id.ends_with("-1"), "{id}");
    let answer = events[0].message().unwrap();
    assert_eq!(answer["result"]["content"][0]["text"], "hi");
    // Nothing follows it, so nothing is kept for a resumption to read.
    assert!(resume(&t, &session, &id).await.is_empty());
    let stream = id
        .parse::<sessiongate_core::stream::EventId>()
        .unwrap()
        .stream;
    let events_log = &t.server.lifecycle.event_log;
    events_log.flushed().await.unwrap();
    let sid = session.parse().unwrap();
    assert!(events_log.after(sid, stream, 0).await.unwrap().is_empty());

    // A notification first: the answer streams, primed and logged.
    let response = t
        .post(
            json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{
                "name":"echo","arguments":{"text":"hi"},"_meta":{"progressToken":"e"}}}),
            &[
                ("mcp-session-id", &session),
                ("mcp-protocol-version", V),
                ("accept", "text/event-stream"),
            ],
        )
        .await;
    let events = SseReader::new(response).rest().await;
    assert_eq!(events.len(), 3, "priming, progress, answer: {events:?}");
    assert!(events[0].data.is_empty() && events[0].retry.is_some());
    assert_eq!(
        events[1].message().unwrap()["method"],
        "notifications/progress"
    );
    assert_eq!(events[2].message().unwrap()["id"], 4);
    let priming = events[0].id.clone().unwrap();
    let stream = priming
        .parse::<sessiongate_core::stream::EventId>()
        .unwrap()
        .stream;
    events_log.flushed().await.unwrap();
    assert_eq!(events_log.after(sid, stream, 0).await.unwrap().len(), 2);
    let replayed = resume(&t, &session, &priming).await;
    assert_eq!(replayed.len(), 2, "{replayed:?}");
    assert_eq!(replayed[1]["result"]["content"][0]["text"], "hi");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_can_make_a_client_poll_for_its_result() {
    let t = TestServer::start_with(Settings {
        conformance: true,
        ..Default::default()
    })
    .await;
    let session = t.initialize(V, "claude-code").await;
    let response = tool(&t, &session, "test_reconnection", json!({}), &[]).await;
    let events = SseReader::new(response).rest().await;
    // Priming, the log message, then the server lets go with a retry hint.
    let last = events.last().unwrap();
    assert!(last.data.is_empty() && last.retry.is_some(), "{events:?}");
    assert!(events
        .iter()
        .all(|e| e.message().is_none_or(|m| m.get("result").is_none())));
    let rest = resume(&t, &session, last.id.as_deref().unwrap()).await;
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert_eq!(
        rest[0]["result"]["content"][0]["text"],
        "Reconnection test completed successfully."
    );
    t.stop().await;
}
