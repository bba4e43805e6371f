//! `subscriptions/listen` (2026-07-28) over real HTTP: the acknowledgement
//! comes first and names what is honoured, every notification carries the
//! subscription id, only what the filter asks for is delivered (list
//! changes of a service registered at run time, updates of the named
//! resources), streams are bounded per address and freed when the client
//! goes, and shutdown ends them with the request's empty result. Sessions
//! subscribed to a resource hear of its updates on their standalone stream.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{eventually, stateless, SseReader, TestServer};
use rmcp::model::{ErrorData, Tool};
use serde_json::{json, Value};
use sessiongate_core::lifecycle::LifecycleConfig;
use sessiongate_mcp::tools::schema;
use sessiongate_mcp::{
    Answer, Capabilities, Catalog, LiveCatalog, Request, RequestContext, Service, TransportConfig,
};

const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// A service whose catalog and resources the test changes: notes, and
/// tools when the test lists some.
struct Notes {
    catalog: LiveCatalog,
}

fn catalog(uris: &[&str], tools: &[&'static str]) -> Catalog {
    Catalog {
        resources: uris
            .iter()
            .map(|u| json!({ "uri": u, "name": u }))
            .collect(),
        tools: tools
            .iter()
            .map(|name| Tool::new(*name, "a tool", schema(json!({ "type": "object" }))))
            .collect(),
        ..Catalog::default()
    }
}

impl Notes {
    fn new() -> Arc<Self> {
        Arc::new(Notes {
            catalog: LiveCatalog::new(catalog(&["note://a", "note://b"], &[])),
        })
    }
}

#[async_trait]
impl Service for Notes {
    fn catalog(&self) -> &LiveCatalog {
        &self.catalog
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            resources: true,
            ..Capabilities::default()
        }
    }

    async fn serve(&self, _: &RequestContext, request: Request) -> Result<Answer, ErrorData> {
        let uri = request.uri()?;
        Ok(Answer::Json(
            json!({ "contents": [{ "uri": uri, "text": "a note" }] }),
        ))
    }
}

/// Opens a listen stream with request id `id` and filter `notifications`.
async fn listen(t: &TestServer, id: Value, notifications: Value) -> reqwest::Response {
    let mut body = stateless(
        "subscriptions/listen",
        json!({ "notifications": notifications }),
    );
    body["id"] = id;
    t.post(
        body,
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "subscriptions/listen"),
        ],
    )
    .await
}

/// The next message of a stream, which must come.
async fn next(stream: &mut SseReader) -> Value {
    let event = stream.next().await.expect("the stream stays open");
    event.message().expect("a message")
}

fn subscription(message: &Value) -> &Value {
    &message["params"]["_meta"][SUBSCRIPTION_ID]
}

#[tokio::test]
async fn a_listen_stream_is_acknowledged_then_carries_only_what_was_asked() {
    let t = TestServer::start().await;
    let notes = Notes::new();
    t.services.add(notes.clone());
    let discover = t.post_stateless("server/discover", json!({})).await;
    let caps = &discover["result"]["capabilities"];
    assert_eq!(caps["tools"]["listChanged"], true, "{caps}");
    assert_eq!(caps["resources"]["subscribe"], true, "{caps}");

    let response = listen(
        &t,
        json!("sub-1"),
        json!({
            "toolsListChanged": true,
            // No service offers prompts: not honoured.
            "promptsListChanged": true,
            "resourceSubscriptions": ["note://a"],
        }),
    )
    .await;
    assert_eq!(response.status(), 200);
    let mut stream = SseReader::new(response);
    let ack = next(&mut stream).await;
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(subscription(&ack), "sub-1");
    assert_eq!(
        ack["params"]["notifications"],
        json!({ "toolsListChanged": true, "resourceSubscriptions": ["note://a"] })
    );

    // The catalog changes at run time: the tools list.
    notes
        .catalog
        .set(catalog(&["note://a", "note://b"], &["weather"]));
    let changed = next(&mut stream).await;
    assert_eq!(changed["method"], "notifications/tools/list_changed");
    assert_eq!(subscription(&changed), "sub-1");

    // Neither the resources list nor another resource was asked about.
    notes.catalog.set(catalog(&["note://a"], &["weather"]));
    notes.catalog.resource_updated("note://b");
    notes.catalog.resource_updated("note://a");
    let updated = next(&mut stream).await;
    assert_eq!(
        updated["method"], "notifications/resources/updated",
        "{updated}"
    );
    assert_eq!(updated["params"]["uri"], "note://a");
    assert_eq!(subscription(&updated), "sub-1");
    // Whatever was wrongly sent would be ahead of this.
    notes.catalog.set(catalog(&["note://a"], &[]));
    let changed = next(&mut stream).await;
    assert_eq!(
        changed["method"], "notifications/tools/list_changed",
        "{changed}"
    );
    t.stop().await;
}

#[tokio::test]
async fn listen_streams_are_bounded_per_address_and_freed_when_the_client_goes() {
    let transport = TransportConfig {
        max_listen_streams: 2,
        ..TransportConfig::default()
    };
    let t = TestServer::start_with(transport, LifecycleConfig::default()).await;
    let tools = json!({ "toolsListChanged": true });
    let mut first = SseReader::new(listen(&t, json!(1), tools.clone()).await);
    let mut second = SseReader::new(listen(&t, json!(2), tools.clone()).await);
    for stream in [&mut first, &mut second] {
        let ack = next(stream).await;
        assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    }

    let refused = listen(&t, json!(3), tools.clone()).await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["id"], 3, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("close one first"),
        "{body}"
    );

    // The client disconnects: its place is free again.
    drop(first);
    let listeners = t.state.listeners.clone();
    eventually(Duration::from_secs(5), || {
        let listeners = listeners.clone();
        async move { listeners.len() == 1 }
    })
    .await;
    let mut third = SseReader::new(listen(&t, json!(4), tools).await);
    assert_eq!(subscription(&next(&mut third).await), 4);
    t.stop().await;
}

#[tokio::test]
async fn shutdown_ends_a_listen_stream_with_its_empty_result() {
    let t = TestServer::start().await;
    let mut stream = SseReader::new(listen(&t, json!(9), json!({})).await);
    let ack = next(&mut stream).await;
    assert_eq!(ack["params"]["notifications"], json!({}), "{ack}");

    t.state.close_streams();
    let last = next(&mut stream).await;
    assert_eq!(last["id"], 9, "{last}");
    assert_eq!(last["result"]["resultType"], "complete", "{last}");
    assert_eq!(last["result"]["_meta"][SUBSCRIPTION_ID], 9, "{last}");
    assert!(stream.next().await.is_none(), "the stream ends after it");

    let refused = listen(&t, json!(10), json!({})).await;
    assert_eq!(refused.status(), 503);
    t.stop().await;
}

#[tokio::test]
async fn a_malformed_filter_or_an_sse_less_client_is_refused() {
    let t = TestServer::start().await;
    let bad: Value = listen(&t, json!(1), json!({ "toolsListChanged": "yes" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bad["error"]["code"], -32602, "{bad}");

    let mut body = stateless("subscriptions/listen", json!({ "notifications": {} }));
    body["id"] = json!(2);
    let json_only = t
        .http
        .post(t.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "subscriptions/listen")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let refused: Value = json_only.json().await.unwrap();
    assert_eq!(refused["error"]["code"], -32600, "{refused}");
    assert_eq!(t.state.listeners.len(), 0);
    t.stop().await;
}

#[tokio::test]
async fn sessions_subscribed_to_a_resource_hear_of_its_updates() {
    let t = TestServer::start().await;
    let notes = Notes::new();
    t.services.add(notes.clone());
    let session = t.initialize("2025-11-25", "watcher").await;
    let sid = [("mcp-session-id", session.as_str())];
    let subscribe = json!({"jsonrpc":"2.0","id":2,"method":"resources/subscribe",
                           "params":{"uri":"note://a"}});
    assert_eq!(t.post(subscribe, &sid).await.status(), 200);
    let mut stream = t.open_stream(&session).await;
    // Primed: the stream is attached.
    assert!(stream.next().await.unwrap().data.is_empty());

    notes.catalog.resource_updated("note://b");
    notes.catalog.resource_updated("note://a");
    let updated = stream.next().await.unwrap().message().unwrap();
    assert_eq!(
        updated,
        json!({"jsonrpc":"2.0","method":"notifications/resources/updated",
               "params":{"uri":"note://a"}})
    );
    t.stop().await;
}
