//! The live catalog over real HTTP: a service registered while the server
//! runs (as a gateway's upstream server will be) shows its tools in
//! `tools/list`, sessions holding a standalone stream are told with
//! `notifications/tools/list_changed`, and `tools/call` reaches it; its
//! resources are listed and read from it.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{SseReader, TestServer};
use rmcp::model::{CallToolResult, ContentBlock, ErrorCode, ErrorData, Tool};
use serde_json::{json, Value};
use sessiongate_core::upstream::UpstreamName;
use sessiongate_mcp::tools::{schema, string_arg};
use sessiongate_mcp::{
    Answer, Capabilities, Catalog, LiveCatalog, Request, RequestContext, Service,
};

/// A service of its own, as an upstream server would be: it serves the
/// tools of its catalog and counts the calls that reach it.
struct Upstream {
    catalog: LiveCatalog,
    calls: AtomicUsize,
    /// The upstream it says it relays to, for the request log.
    name: Option<UpstreamName>,
}

fn tool(name: &'static str) -> Tool {
    Tool::new(
        name,
        "The weather in a city",
        schema(json!({
            "type": "object",
            "properties": { "city": { "type": "string" } },
            "required": ["city"],
        })),
    )
}

impl Upstream {
    fn with_tools(tools: Vec<Tool>) -> Self {
        Upstream {
            catalog: LiveCatalog::new(Catalog {
                tools,
                ..Catalog::default()
            }),
            calls: AtomicUsize::new(0),
            name: None,
        }
    }
}

#[async_trait]
impl Service for Upstream {
    fn catalog(&self) -> &LiveCatalog {
        &self.catalog
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            resources: !self.catalog.current().resources.is_empty(),
            ..Capabilities::default()
        }
    }

    fn upstream(&self) -> Option<&UpstreamName> {
        self.name.as_ref()
    }

    async fn serve(&self, _: &RequestContext, mut request: Request) -> Result<Answer, ErrorData> {
        if request.method == "resources/read" {
            let uri = request.uri()?;
            if self.catalog.current().resource(uri).is_none() {
                return Err(ErrorData::new(
                    ErrorCode::RESOURCE_NOT_FOUND,
                    format!("Resource not found: {uri}"),
                    None,
                ));
            }
            let contents = json!([{ "uri": uri, "text": "a note" }]);
            return Ok(Answer::Json(json!({ "contents": contents })));
        }
        assert_eq!(request.method, "tools/call");
        let name = request.name()?.to_string();
        let arguments = request.take_arguments()?;
        self.calls.fetch_add(1, Ordering::SeqCst);
        let city = string_arg(&arguments, "city")?;
        Ok(Answer::Tool(CallToolResult::success(vec![
            ContentBlock::text(format!("{name}: sunny in {city}")),
        ])))
    }
}

fn tool_names(list: &Value) -> Vec<String> {
    list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

async fn list_tools(t: &TestServer, session: &str) -> Vec<String> {
    let list = t
        .post(
            json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
            &[("mcp-session-id", session)],
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    tool_names(&list)
}

/// The next JSON-RPC message on a stream, past priming events.
async fn next_message(stream: &mut SseReader) -> Value {
    loop {
        let event = stream.next().await.expect("the stream stays open");
        if let Some(message) = event.message() {
            return message;
        }
    }
}

#[tokio::test]
async fn a_service_registered_at_run_time_is_listed_announced_and_called() {
    let t = TestServer::start().await;
    let init = t
        .post(
            json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "watcher", "version": "1"}}}),
            &[],
        )
        .await;
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let init: Value = init.json().await.unwrap();
    assert_eq!(
        init["result"]["capabilities"]["tools"]["listChanged"], true,
        "{init}"
    );
    let mut stream = t.open_stream(&session).await;
    // 2025-11-25 primes the stream: once it has, the stream is attached.
    let primed = stream.next().await.unwrap();
    assert!(primed.id.is_some() && primed.data.is_empty(), "{primed:?}");
    let before = list_tools(&t, &session).await;
    assert!(before.contains(&"echo".into()) && !before.contains(&"weather".into()));

    let upstream = Arc::new(Upstream::with_tools(vec![tool("weather")]));
    t.services.add(upstream.clone());

    let changed = next_message(&mut stream).await;
    assert_eq!(
        changed,
        json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"})
    );
    let after = list_tools(&t, &session).await;
    assert_eq!(
        after[..before.len()],
        before[..],
        "the built-in tools first"
    );
    assert_eq!(after[before.len()..], ["weather".to_string()]);

    let answer = t
        .call_tool(&session, "weather", json!({"city": "Lyon"}))
        .await;
    assert_eq!(
        answer["result"]["content"][0]["text"], "weather: sunny in Lyon",
        "{answer}"
    );
    assert_eq!(upstream.calls.load(Ordering::SeqCst), 1);
    // The built-in tools are still the built-in service's.
    let echo = t.call_tool(&session, "echo", json!({"text": "hi"})).await;
    assert_eq!(echo["result"]["content"][0]["text"], "hi");
    assert_eq!(upstream.calls.load(Ordering::SeqCst), 1);

    // A registered service's own catalog is followed too.
    upstream.catalog.set(Catalog {
        tools: vec![tool("weather"), tool("forecast")],
        ..Catalog::default()
    });
    let changed = next_message(&mut stream).await;
    assert_eq!(changed["method"], "notifications/tools/list_changed");
    assert!(list_tools(&t, &session)
        .await
        .contains(&"forecast".to_string()));
    let answer = t
        .call_tool(&session, "forecast", json!({"city": "Oslo"}))
        .await;
    assert_eq!(
        answer["result"]["content"][0]["text"],
        "forecast: sunny in Oslo"
    );

    // Stateless clients read the same catalog, and are told of changes on
    // a subscriptions/listen stream.
    let discover = t.post_stateless("server/discover", json!({})).await;
    assert_eq!(
        discover["result"]["capabilities"]["tools"]["listChanged"],
        true
    );
    let list = t.post_stateless("tools/list", json!({})).await;
    assert!(tool_names(&list).contains(&"weather".to_string()));
    assert_eq!(list["result"]["ttlMs"], 0);
    t.stop().await;
}

#[tokio::test]
async fn a_name_both_services_offer_stays_the_first_ones() {
    let t = TestServer::start().await;
    let session = t.initialize("2025-06-18", "shadow").await;
    let upstream = Arc::new(Upstream::with_tools(vec![tool("echo")]));
    t.services.add(upstream.clone());
    let names = list_tools(&t, &session).await;
    assert_eq!(
        names.iter().filter(|n| *n == "echo").count(),
        1,
        "{names:?}"
    );
    let echo = t
        .call_tool(&session, "echo", json!({"text": "built-in"}))
        .await;
    assert_eq!(echo["result"]["content"][0]["text"], "built-in");
    assert_eq!(upstream.calls.load(Ordering::SeqCst), 0);
    t.stop().await;
}

#[tokio::test]
async fn resources_go_to_the_service_that_has_them() {
    let t = TestServer::start().await;
    let session = t.initialize("2025-11-25", "reader").await;
    let sid = [("mcp-session-id", session.as_str())];
    let read =
        |uri: &str| json!({"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":uri}});
    let code = |v: &Value| v["error"]["code"].as_i64();
    // The built-in service offers no resources.
    let none: Value = t
        .post(read("note://today"), &sid)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(code(&none), Some(-32601), "{none}");

    let notes = Upstream {
        catalog: LiveCatalog::new(Catalog {
            resources: vec![json!({ "uri": "note://today", "name": "today" })],
            ..Catalog::default()
        }),
        calls: AtomicUsize::new(0),
        name: None,
    };
    t.services.add(Arc::new(notes));
    let list: Value = t
        .post(
            json!({"jsonrpc":"2.0","id":2,"method":"resources/list"}),
            &sid,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["result"]["resources"][0]["uri"], "note://today",
        "{list}"
    );
    let today: Value = t
        .post(read("note://today"), &sid)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(today["result"]["contents"][0]["text"], "a note", "{today}");
    let other: Value = t
        .post(read("note://other"), &sid)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(code(&other), Some(-32002), "{other}");
    t.stop().await;
}

/// Each request-log row names the upstream whose member served it: a tool
/// and a resource of a relaying member do, the built-in tools, a name no
/// one has and the protocol's own methods do not.
#[tokio::test]
async fn request_log_rows_name_the_upstream_that_served_them() {
    let t = TestServer::start().await;
    let session = t.initialize("2025-11-25", "logger").await;
    let sid = [("mcp-session-id", session.as_str())];
    let files = Upstream {
        catalog: LiveCatalog::new(Catalog {
            tools: vec![tool("weather")],
            resources: vec![json!({ "uri": "note://today", "name": "today" })],
            ..Catalog::default()
        }),
        calls: AtomicUsize::new(0),
        name: Some(UpstreamName::new("files").unwrap()),
    };
    t.services.add(Arc::new(files));
    // One that relays nothing: its rows name no upstream.
    t.services
        .add(Arc::new(Upstream::with_tools(vec![tool("local_weather")])));

    let weather = t
        .call_tool(&session, "weather", json!({"city": "Lyon"}))
        .await;
    assert_eq!(
        weather["result"]["content"][0]["text"],
        "weather: sunny in Lyon"
    );
    let local = t
        .call_tool(&session, "local_weather", json!({"city": "Lyon"}))
        .await;
    assert!(local["result"].is_object(), "{local}");
    t.call_tool(&session, "echo", json!({"text": "hi"})).await;
    t.call_tool(&session, "nope", json!({})).await;
    let read =
        json!({"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"note://today"}});
    let today: Value = t.post(read, &sid).await.json().await.unwrap();
    assert_eq!(today["result"]["contents"][0]["text"], "a note", "{today}");
    t.post(json!({"jsonrpc":"2.0","id":4,"method":"tools/list"}), &sid)
        .await;

    let id = session.parse().unwrap();
    let mut rows = Vec::new();
    for _ in 0..250 {
        // The log is written behind the requests.
        rows = t.store.store.session_requests(id, 100).await.unwrap();
        // initialize, the five calls and reads, tools/list.
        if rows.len() == 7 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rows.len(), 7, "{rows:?}");
    let upstream_of = |method: &str, tool: Option<&str>| {
        let row = rows
            .iter()
            .find(|r| r.method == method && r.tool_name.as_deref() == tool)
            .unwrap_or_else(|| panic!("no {method} {tool:?} row in {rows:?}"));
        row.upstream.as_ref().map(|u| u.to_string())
    };
    assert_eq!(
        upstream_of("tools/call", Some("weather")).as_deref(),
        Some("files")
    );
    assert_eq!(
        upstream_of("resources/read", None).as_deref(),
        Some("files")
    );
    assert_eq!(upstream_of("tools/call", Some("local_weather")), None);
    assert_eq!(upstream_of("tools/call", Some("echo")), None);
    assert_eq!(upstream_of("tools/call", Some("nope")), None);
    assert_eq!(upstream_of("tools/list", None), None);
    // And as the management API shows a row.
    let json = serde_json::to_value(&rows).unwrap();
    assert!(
        json.as_array()
            .unwrap()
            .iter()
            .any(|r| r["upstream"] == "files"),
        "{json}"
    );
    t.stop().await;
}
