//! The Streamable HTTP link against real servers on ephemeral ports:
//! sessiongate's own endpoint in this process, the rmcp baseline as a child
//! process, and a small in-test server for what those never do (a response
//! stream that drops, an upstream that never answers).

mod http_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http_support::{config, echo, initialize, next_incoming, RmcpBaseline, Sessiongate, WAIT};
use rmcp::model::{CallToolResult, ContentBlock, ErrorData, JsonObject, Tool};
use serde_json::{json, Value};
use sessiongate_gateway::config::HttpProtocol;
use sessiongate_gateway::link::{connector_for, Incoming, LinkError, Opened};
use sessiongate_mcp::{McpServer, RequestContext, ToolHandler};
use sessiongate_testkit::process::free_port;

async fn open(url: &str, resume: Option<&str>) -> Opened {
    connector_for(&config(url, HttpProtocol::StreamableHttp))
        .unwrap()
        .open(resume)
        .await
        .unwrap()
}

#[tokio::test]
async fn initialize_captures_the_session_and_a_call_is_answered() {
    let server = Sessiongate::start().await;
    let opened = open(&server.url, None).await;
    let link = opened.link.clone();
    assert_eq!(link.session_id(), None);

    let result = initialize(link.as_ref(), "2025-11-25").await;
    assert_eq!(result["serverInfo"]["name"], "sessiongate", "{result}");
    let session = link.session_id().expect("a session id from initialize");
    assert!(server.has_session(&session));
    assert_eq!(echo(link.as_ref(), 1, "hello").await, "hello");
    assert!(!link.is_closed());
}

#[tokio::test]
async fn progress_on_the_response_stream_relates_to_its_request() {
    let server = Sessiongate::start().await;
    let mut opened = open(&server.url, None).await;
    let link = opened.link.clone();
    initialize(link.as_ref(), "2025-11-25").await;

    let call = tokio::spawn(async move {
        link.request(
            7,
            "tools/call",
            Some(&json!({"name": "echo", "arguments": {"text": "hi"},
                         "_meta": {"progressToken": "p-7"}})),
        )
        .await
    });
    let progress = loop {
        match next_incoming(&mut opened).await {
            Incoming::Notification { method, .. } if method != "notifications/progress" => continue,
            other => break other,
        }
    };
    let Incoming::Notification {
        params, related, ..
    } = progress
    else {
        panic!("{progress:?}")
    };
    assert_eq!(related, Some(7));
    let params = params.unwrap();
    assert_eq!(params["progressToken"], "p-7", "{params}");
    assert_eq!(params["progress"], 1.0, "{params}");
    let result = call.await.unwrap().unwrap();
    assert_eq!(result["content"][0]["text"], "hi", "{result}");
}

#[tokio::test]
async fn a_response_stream_the_upstream_closes_is_polled_to_its_end() {
    let server = Sessiongate::with_conformance().await;
    let mut opened = open(&server.url, None).await;
    let link = opened.link.clone();
    initialize(link.as_ref(), "2025-11-25").await;
    let result = link
        .request(4, "tools/call", Some(&json!({"name": "test_reconnection"})))
        .await
        .unwrap();
    assert_eq!(
        result["content"][0]["text"], "Reconnection test completed successfully.",
        "{result}"
    );
    let Incoming::Notification {
        method, related, ..
    } = next_incoming(&mut opened).await
    else {
        panic!("a notification")
    };
    assert_eq!(
        (method.as_str(), related),
        ("notifications/message", Some(4))
    );
    // Closed on purpose: whoever relays the call may close its client's too.
    assert_eq!(
        next_incoming(&mut opened).await,
        Incoming::StreamClosed { related: 4 }
    );
}

#[tokio::test]
async fn the_upstreams_request_on_a_response_stream_is_answered() {
    let server = Sessiongate::with_conformance().await;
    let mut opened = open(&server.url, None).await;
    let link = opened.link.clone();
    initialize(link.as_ref(), "2025-11-25").await;
    let call = tokio::spawn({
        let link = link.clone();
        async move {
            link.request(
                5,
                "tools/call",
                Some(&json!({"name": "test_sampling", "arguments": {"prompt": "Capital?"}})),
            )
            .await
        }
    });
    let (id, method, related) = loop {
        match next_incoming(&mut opened).await {
            Incoming::Request {
                id,
                method,
                related,
                ..
            } => break (id, method, related),
            Incoming::Notification { .. } | Incoming::StreamClosed { .. } => continue,
        }
    };
    assert_eq!(
        (method.as_str(), related),
        ("sampling/createMessage", Some(5))
    );
    link.respond(
        id,
        Ok(json!({"role": "assistant", "model": "test",
                  "content": {"type": "text", "text": "Paris"}})),
    )
    .await
    .unwrap();
    let result = call.await.unwrap().unwrap();
    assert_eq!(
        result["content"][0]["text"], "LLM response: Paris",
        "{result}"
    );
}

#[tokio::test]
async fn the_rmcp_baseline_answers_through_the_link() {
    let upstream = RmcpBaseline::start(free_port(), &[]).await;
    let opened = open(&upstream.url, None).await;
    let link = opened.link;
    initialize(link.as_ref(), "2025-06-18").await;
    assert!(link.session_id().is_some());
    // Concurrent calls on one link each get their own answer.
    let calls = (1..=32).map(|id| {
        let link = link.clone();
        async move { echo(link.as_ref(), id, &format!("n{id}")).await }
    });
    let answers = futures::future::join_all(calls).await;
    let expected: Vec<String> = (1..=32).map(|id| format!("n{id}")).collect();
    assert_eq!(answers, expected);
}

#[tokio::test]
async fn a_stateless_upstream_answers_with_json() {
    let upstream = RmcpBaseline::start(free_port(), &["--stateless"]).await;
    let opened = open(&upstream.url, None).await;
    initialize(opened.link.as_ref(), "2025-06-18").await;
    assert_eq!(opened.link.session_id(), None);
    assert_eq!(echo(opened.link.as_ref(), 1, "json").await, "json");
}

#[tokio::test]
async fn a_restarted_upstream_has_forgotten_the_session() {
    let port = free_port();
    let mut upstream = RmcpBaseline::start(port, &[]).await;
    let opened = open(&upstream.url, None).await;
    let link = opened.link;
    initialize(link.as_ref(), "2025-06-18").await;
    assert_eq!(echo(link.as_ref(), 1, "before").await, "before");

    upstream.kill();
    let _upstream = RmcpBaseline::start(port, &[]).await;
    let err = link
        .request(
            2,
            "tools/call",
            Some(&json!({"name": "echo", "arguments": {"text": "x"}})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LinkError::Gone {
                delivered: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(link.is_closed());
    // A closed link refuses at once, without sending.
    let again = link
        .notify("notifications/initialized", None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            again,
            LinkError::Gone {
                delivered: false,
                ..
            }
        ),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_refused_connection_was_not_delivered() {
    let url = format!("http://127.0.0.1:{}/mcp", free_port());
    let opened = open(&url, None).await;
    let err = opened
        .link
        .request(1, "initialize", Some(&json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LinkError::Transport {
                delivered: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!opened.link.is_closed());
}

#[tokio::test]
async fn a_2026_request_needs_no_initialize() {
    let server = Sessiongate::start().await;
    let opened = open(&server.url, None).await;
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "gateway-test", "version": "1.0"},
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let result = opened
        .link
        .request(
            1,
            "tools/call",
            Some(&json!({"name": "echo", "arguments": {"text": "stateless"}, "_meta": meta})),
        )
        .await
        .unwrap();
    assert_eq!(result["content"][0]["text"], "stateless", "{result}");
    assert_eq!(opened.link.session_id(), None);
    // The name mirrored in Mcp-Name is checked too: a non-ASCII one goes
    // in the spec's Base64 form and reaches the (unknown) tool.
    let err = opened
        .link
        .request(
            2,
            "tools/call",
            Some(&json!({"name": "écho", "arguments": {}, "_meta": meta})),
        )
        .await
        .unwrap_err();
    let LinkError::Rpc(rpc) = err else {
        panic!("{err:?}")
    };
    assert!(
        rpc.message.contains("écho") && !rpc.message.contains("ismatch"),
        "{rpc:?}"
    );
}

#[tokio::test]
async fn a_session_is_used_again_by_id_after_the_link_is_dropped() {
    let server = Sessiongate::start().await;
    let opened = open(&server.url, None).await;
    initialize(opened.link.as_ref(), "2025-11-25").await;
    let session = opened.link.session_id().unwrap();
    drop(opened);

    let resumed = open(&server.url, Some(&session)).await;
    resumed.link.set_protocol_version("2025-11-25");
    assert_eq!(resumed.link.session_id().as_deref(), Some(session.as_str()));
    assert_eq!(echo(resumed.link.as_ref(), 1, "again").await, "again");
    // The session is known to be alive: its standalone stream opens.
    open_streams(&server, &session, 1).await;

    // An id the upstream never gave is refused as gone.
    let stranger = open(&server.url, Some("3a0d6f7e-5b87-4a8b-9b3c-2f4b7c9e1d20")).await;
    let err = stranger
        .link
        .request(1, "tools/list", None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LinkError::Gone {
                delivered: false,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn close_deletes_the_upstream_session() {
    let server = Sessiongate::start().await;
    let opened = open(&server.url, None).await;
    initialize(opened.link.as_ref(), "2025-11-25").await;
    let session = opened.link.session_id().unwrap();
    opened.link.close().await;
    opened.link.close().await;
    assert!(opened.link.is_closed());
    assert!(!server.has_session(&session));

    let after = open(&server.url, Some(&session)).await;
    after.link.set_protocol_version("2025-11-25");
    let err = after.link.request(1, "tools/list", None).await.unwrap_err();
    assert!(
        matches!(
            err,
            LinkError::Gone {
                delivered: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(after.link.is_closed());
}

#[tokio::test]
async fn a_json_rpc_error_is_the_upstreams_answer() {
    let server = Sessiongate::start().await;
    let opened = open(&server.url, None).await;
    initialize(opened.link.as_ref(), "2025-11-25").await;
    let err = opened
        .link
        .request(1, "no/such/method", None)
        .await
        .unwrap_err();
    let LinkError::Rpc(rpc) = err else {
        panic!("{err:?}")
    };
    assert_eq!(rpc.code, -32601, "{rpc:?}");
    assert!(!opened.link.is_closed());
}

struct Weather;

#[async_trait]
impl ToolHandler for Weather {
    fn tool(&self) -> Tool {
        Tool::new(
            "weather",
            "The weather",
            Arc::new(JsonObject::from_iter([("type".into(), json!("object"))])),
        )
    }
    async fn call(&self, _: &RequestContext, _: JsonObject) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![ContentBlock::text("sunny")]))
    }
}

/// Waits until `session` holds `n` open streams (the standalone one, here).
async fn open_streams(server: &Sessiongate, session: &str, n: u32) {
    let manager = server.lifecycle.sessions.clone();
    let id = session.parse().unwrap();
    sessiongate_testkit::wait::eventually(WAIT, || {
        let open = manager.active(id).map(|s| s.open_streams());
        async move { open == Some(n) }
    })
    .await;
}

#[tokio::test]
async fn the_standalone_stream_carries_what_relates_to_no_request() {
    let server = Sessiongate::start().await;
    let mut opened = open(&server.url, None).await;
    initialize(opened.link.as_ref(), "2025-11-25").await;
    let session = opened.link.session_id().unwrap();
    open_streams(&server, &session, 1).await;

    server
        .services
        .add(Arc::new(McpServer::new().with_tool(Weather)));
    let message = next_incoming(&mut opened).await;
    assert_eq!(
        message,
        Incoming::Notification {
            method: "notifications/tools/list_changed".into(),
            params: None,
            related: None,
        }
    );
}

#[tokio::test]
async fn the_standalone_stream_is_opened_again_when_it_drops() {
    let server = Sessiongate::start().await;
    let mut opened = open(&server.url, None).await;
    initialize(opened.link.as_ref(), "2025-11-25").await;
    let session = opened.link.session_id().unwrap();
    open_streams(&server, &session, 1).await;

    server.state.close_streams();
    open_streams(&server, &session, 0).await;
    open_streams(&server, &session, 1).await;
    server
        .services
        .add(Arc::new(McpServer::new().with_tool(Weather)));
    let Incoming::Notification {
        method, related, ..
    } = next_incoming(&mut opened).await
    else {
        panic!("a notification")
    };
    assert_eq!(
        (method.as_str(), related),
        ("notifications/tools/list_changed", None)
    );
    assert!(!opened.link.is_closed());
}

#[tokio::test]
async fn a_dropped_link_lets_go_of_its_standalone_stream() {
    let server = Sessiongate::start().await;
    let opened = open(&server.url, None).await;
    initialize(opened.link.as_ref(), "2025-11-25").await;
    let session = opened.link.session_id().unwrap();
    open_streams(&server, &session, 1).await;
    drop(opened);
    open_streams(&server, &session, 0).await;
}

/// An upstream whose response streams drop after their first event; a GET
/// with that event's id gets the rest, when `resumable`.
#[derive(Clone, Default)]
struct Dropping {
    resumable: bool,
    resumed: Arc<AtomicUsize>,
}

fn event_stream(body: String) -> Response {
    ([("content-type", "text/event-stream")], body).into_response()
}

async fn dropping_post(
    axum::extract::State(_): axum::extract::State<Dropping>,
    body: axum::Json<Value>,
) -> Response {
    let id = &body["id"];
    let progress = json!({"jsonrpc":"2.0","method":"notifications/progress",
        "params":{"progressToken": id, "progress": 1}});
    event_stream(format!("id: ev-1\nretry: 10\ndata: {progress}\n\n"))
}

async fn dropping_get(
    axum::extract::State(state): axum::extract::State<Dropping>,
    headers: HeaderMap,
) -> Response {
    if !state.resumable {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    if headers.get("last-event-id").map(|v| v.as_bytes()) != Some(b"ev-1") {
        return (StatusCode::BAD_REQUEST, "wrong Last-Event-ID").into_response();
    }
    state.resumed.fetch_add(1, Ordering::SeqCst);
    let response = json!({"jsonrpc":"2.0","id":3,"result":{"resumed": true}});
    event_stream(format!("id: ev-2\ndata: {response}\n\n"))
}

async fn serve(router: Router) -> String {
    let addr = sessiongate_testkit::http::spawn(router).await;
    format!("http://{addr}/mcp")
}

#[tokio::test]
async fn a_dropped_response_stream_is_resumed_from_its_last_event() {
    let state = Dropping {
        resumable: true,
        ..Default::default()
    };
    let url = serve(
        Router::new()
            .route("/mcp", post(dropping_post).get(dropping_get))
            .with_state(state.clone()),
    )
    .await;
    let mut opened = open(&url, None).await;
    let result = opened
        .link
        .request(3, "tools/call", Some(&json!({})))
        .await
        .unwrap();
    assert_eq!(result, json!({"resumed": true}));
    assert_eq!(state.resumed.load(Ordering::SeqCst), 1);
    let Incoming::Notification {
        method, related, ..
    } = next_incoming(&mut opened).await
    else {
        panic!("a notification")
    };
    assert_eq!(
        (method.as_str(), related),
        ("notifications/progress", Some(3))
    );
}

#[tokio::test]
async fn a_dropped_stream_that_cannot_be_resumed_was_delivered() {
    let url = serve(
        Router::new()
            .route("/mcp", post(dropping_post).get(dropping_get))
            .with_state(Dropping::default()),
    )
    .await;
    let opened = open(&url, None).await;
    let err = opened
        .link
        .request(3, "tools/call", Some(&json!({})))
        .await
        .unwrap_err();
    let LinkError::Transport { reason, delivered } = err else {
        panic!("{err:?}")
    };
    assert!(delivered);
    assert!(reason.contains("405"), "{reason}");
}

#[tokio::test]
async fn an_upstream_that_does_not_answer_times_out() {
    let url = serve(Router::new().route(
        "/mcp",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            ""
        }),
    ))
    .await;
    let mut config = config(&url, HttpProtocol::StreamableHttp);
    config.request_timeout = Duration::from_millis(200);
    let opened = connector_for(&config).unwrap().open(None).await.unwrap();
    let err = opened
        .link
        .request(1, "tools/list", None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, LinkError::Timeout(d) if d == Duration::from_millis(200)),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_error_status_without_json_rpc_names_the_status() {
    let url = serve(Router::new().route(
        "/mcp",
        post(|| async { (StatusCode::BAD_GATEWAY, Body::from("upstream proxy down")) }),
    ))
    .await;
    let opened = open(&url, None).await;
    let err = opened
        .link
        .request(1, "tools/list", None)
        .await
        .unwrap_err();
    let LinkError::Transport { reason, .. } = err else {
        panic!("{err:?}")
    };
    assert!(
        reason.contains("502") && reason.contains("upstream proxy down"),
        "{reason}"
    );
}

#[tokio::test]
async fn bad_configuration_is_a_clear_error() {
    let mut bad = config("not a url", HttpProtocol::StreamableHttp);
    let err = connector_for(&bad).err().unwrap().to_string();
    assert!(err.contains("not a url"), "{err}");
    bad.url = "ftp://example.com/mcp".into();
    assert!(connector_for(&bad).is_err());
    let err = connector_for(&bad).err().unwrap().to_string();
    assert!(err.contains("not an http:// or https:// URL"), "{err}");
    bad.url = "https://example.com/mcp".into();
    assert!(connector_for(&bad).is_ok(), "https upstreams are spoken");
    bad.headers.insert("bad header".into(), "x".into());
    let err = connector_for(&bad).err().unwrap().to_string();
    assert!(err.contains("bad header"), "{err}");
}
