//! The HTTP+SSE (2024-11-05) link against a small server of the test's own
//! that speaks that transport: a GET event stream that names its endpoint,
//! POSTs answered 202, and every response and message of the server's own
//! on the stream.

mod http_support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use http_support::{config, initialize, next_incoming, WAIT};
use serde_json::{json, Value};
use sessiongate_gateway::config::HttpProtocol;
use sessiongate_gateway::link::{connector_for, Incoming, LinkError, Opened};
use sessiongate_testkit::process::free_port;
use sessiongate_testkit::wait::eventually;
use tokio::sync::{mpsc, oneshot};

/// A 2024-11-05 server: `echo` (with a log message first), `ask` (which
/// asks the client for its roots before answering) and `hang_up` (which
/// ends the session's stream instead of answering).
#[derive(Clone, Default)]
struct Legacy {
    next_session: Arc<AtomicU64>,
    streams: Arc<Mutex<HashMap<String, mpsc::Sender<Value>>>>,
    asks: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>,
}

impl Legacy {
    fn stream(&self, session: &str) -> Option<mpsc::Sender<Value>> {
        self.streams.lock().unwrap().get(session).cloned()
    }
}

async fn open_stream(
    State(server): State<Legacy>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let session = format!("s{}", server.next_session.fetch_add(1, Ordering::SeqCst));
    let (tx, rx) = mpsc::channel::<Value>(16);
    server.streams.lock().unwrap().insert(session.clone(), tx);
    let endpoint = Event::default()
        .event("endpoint")
        .data(format!("/messages?sessionId={session}"));
    let messages = futures::stream::unfold(rx, |mut rx| async move {
        let message = rx.recv().await?;
        Some((
            Event::default().event("message").data(message.to_string()),
            rx,
        ))
    });
    Sse::new(futures::StreamExt::map(
        futures::StreamExt::chain(futures::stream::iter([endpoint]), messages),
        Ok,
    ))
}

async fn message(
    State(server): State<Legacy>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    let Some(session) = query.get("sessionId") else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Some(stream) = server.stream(session) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let id = body["id"].clone();
    if body.get("method").is_none() {
        // The client's answer to one of our requests.
        if let Some(waiter) = server
            .asks
            .lock()
            .unwrap()
            .remove(id.as_str().unwrap_or(""))
        {
            let _ = waiter.send(body["result"].clone());
        }
        return StatusCode::ACCEPTED.into_response();
    }
    if id.is_null() {
        return StatusCode::ACCEPTED.into_response();
    }
    let method = body["method"].as_str().unwrap_or_default().to_string();
    let session = session.clone();
    tokio::spawn(async move {
        let result = match (method.as_str(), body["params"]["name"].as_str()) {
            ("initialize", _) => json!({
                "protocolVersion": "2024-11-05",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "legacy", "version": "1"},
            }),
            ("tools/call", Some("echo")) => {
                let log = json!({"jsonrpc":"2.0","method":"notifications/message",
                    "params":{"level":"info","data":"echoing"}});
                let _ = stream.send(log).await;
                let text = body["params"]["arguments"]["text"].clone();
                json!({"content":[{"type":"text","text":text}]})
            }
            ("tools/call", Some("ask")) => {
                let (tx, rx) = oneshot::channel();
                server.asks.lock().unwrap().insert("ask-1".into(), tx);
                let ask = json!({"jsonrpc":"2.0","id":"ask-1","method":"roots/list"});
                let _ = stream.send(ask).await;
                let roots = rx.await.unwrap();
                json!({"content":[{"type":"text","text":roots["roots"][0]["uri"]}]})
            }
            ("tools/call", Some("hang_up")) => {
                server.streams.lock().unwrap().remove(&session);
                return;
            }
            _ => {
                let error = json!({"jsonrpc":"2.0","id":id,
                    "error":{"code":-32601,"message":format!("no {method}")}});
                let _ = stream.send(error).await;
                return;
            }
        };
        let _ = stream
            .send(json!({"jsonrpc":"2.0","id":id,"result":result}))
            .await;
    });
    StatusCode::ACCEPTED.into_response()
}

async fn start() -> (Legacy, String) {
    let server = Legacy::default();
    let router = Router::new()
        .route("/sse", get(open_stream))
        .route("/messages", post(message))
        .with_state(server.clone());
    let addr = sessiongate_testkit::http::spawn(router).await;
    (server, format!("http://{addr}/sse"))
}

async fn open(url: &str) -> Opened {
    connector_for(&config(url, HttpProtocol::Sse))
        .unwrap()
        .open(None)
        .await
        .unwrap()
}

#[tokio::test]
async fn requests_are_answered_on_the_event_stream() {
    let (_server, url) = start().await;
    let mut opened = open(&url).await;
    let link = opened.link.clone();
    assert_eq!(link.session_id().as_deref(), Some("s0"));
    let result = initialize(link.as_ref(), "2024-11-05").await;
    assert_eq!(result["serverInfo"]["name"], "legacy");

    let echoed = link
        .request(
            1,
            "tools/call",
            Some(&json!({"name":"echo","arguments":{"text":"over sse"}})),
        )
        .await
        .unwrap();
    assert_eq!(echoed["content"][0]["text"], "over sse", "{echoed}");
    assert_eq!(
        next_incoming(&mut opened).await,
        Incoming::Notification {
            method: "notifications/message".into(),
            params: Some(json!({"level":"info","data":"echoing"})),
            related: None,
        }
    );

    let err = link.request(2, "no/such", None).await.unwrap_err();
    let LinkError::Rpc(rpc) = err else {
        panic!("{err:?}")
    };
    assert_eq!((rpc.code, rpc.message.as_str()), (-32601, "no no/such"));
}

#[tokio::test]
async fn the_upstreams_requests_are_answered_with_respond() {
    let (_server, url) = start().await;
    let mut opened = open(&url).await;
    let link = opened.link.clone();
    initialize(link.as_ref(), "2024-11-05").await;
    let call = tokio::spawn({
        let link = link.clone();
        async move {
            link.request(1, "tools/call", Some(&json!({"name":"ask"})))
                .await
        }
    });
    let Incoming::Request {
        id,
        method,
        related,
        ..
    } = next_incoming(&mut opened).await
    else {
        panic!("a request")
    };
    assert_eq!((method.as_str(), related), ("roots/list", None));
    link.respond(id, Ok(json!({"roots":[{"uri":"file:///work"}]})))
        .await
        .unwrap();
    let result = call.await.unwrap().unwrap();
    assert_eq!(result["content"][0]["text"], "file:///work", "{result}");
}

#[tokio::test]
async fn a_closed_stream_fails_the_requests_waiting_on_it() {
    let (_server, url) = start().await;
    let opened = open(&url).await;
    let link = opened.link;
    initialize(link.as_ref(), "2024-11-05").await;
    let err = link
        .request(1, "tools/call", Some(&json!({"name":"hang_up"})))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LinkError::Gone {
                delivered: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(link.is_closed());
    let err = link.request(2, "tools/list", None).await.unwrap_err();
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
async fn every_open_is_a_new_session_and_close_ends_its_stream() {
    let (server, url) = start().await;
    let connector = connector_for(&config(&url, HttpProtocol::Sse)).unwrap();
    let first = connector.open(None).await.unwrap();
    let second = connector.open(Some("s0")).await.unwrap();
    assert_eq!(second.link.session_id().as_deref(), Some("s1"));

    first.link.close().await;
    assert!(first.link.is_closed());
    let stream = server.stream("s0").unwrap();
    eventually(WAIT, || {
        let closed = stream.is_closed();
        async move { closed }
    })
    .await;
    assert!(!server.stream("s1").unwrap().is_closed());
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_clear_error() {
    let url = format!("http://127.0.0.1:{}/sse", free_port());
    let err = connector_for(&config(&url, HttpProtocol::Sse))
        .unwrap()
        .open(None)
        .await
        .err()
        .unwrap();
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
}

#[tokio::test]
async fn an_endpoint_of_another_origin_is_refused() {
    let router = Router::new().route(
        "/sse",
        get(|| async {
            (
                [("content-type", "text/event-stream")],
                "event: endpoint\ndata: http://elsewhere.example/messages?sessionId=1\n\n",
            )
        }),
    );
    let addr = sessiongate_testkit::http::spawn(router).await;
    let err = connector_for(&config(&format!("http://{addr}/sse"), HttpProtocol::Sse))
        .unwrap()
        .open(None)
        .await
        .err()
        .unwrap();
    let LinkError::Transport { reason, delivered } = err else {
        panic!("{err:?}")
    };
    assert!(!delivered);
    assert!(reason.contains("elsewhere.example"), "{reason}");
}
