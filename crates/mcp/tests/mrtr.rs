//! Multi-round-trip requests (2026-07-28) over real HTTP: a handler's asks
//! become one input-required result, the client's retry brings the answers
//! and the `requestState`, and the state is refused when altered, expired,
//! replayed by another client or presented on another request. The same
//! handler asks a session's client on the request's stream.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{SseReader, TestServer};
use rmcp::model::{CallToolResult, ErrorData, JsonObject, Tool};
use serde_json::{json, Value};
use sessiongate_mcp::tools::{schema, text_result};
use sessiongate_mcp::{
    Completer, InputRequest, McpServer, RequestContext, ResourceProvider, ToolHandler,
};

fn name_form(message: &str) -> InputRequest {
    InputRequest::elicit(json!({
        "message": message,
        "requestedSchema": {
            "type": "object",
            "properties": { "name": { "type": "string" } },
            "required": ["name"],
        },
    }))
}

fn accepted(answer: &Value) -> &str {
    answer["content"]["name"].as_str().unwrap_or("?")
}

/// Asks for a name, then greets whoever was named in `arguments.greeting`.
struct Greet;

#[async_trait]
impl ToolHandler for Greet {
    fn tool(&self) -> Tool {
        let input = json!({"type": "object", "properties": {"greeting": {"type": "string"}}});
        Tool::new("greet", "Asks for a name", schema(input))
    }

    async fn call(
        &self,
        ctx: &RequestContext,
        args: JsonObject,
    ) -> Result<CallToolResult, ErrorData> {
        let answer = ctx.ask("name", name_form("Who are you?")).await?;
        let greeting = args
            .get("greeting")
            .and_then(Value::as_str)
            .unwrap_or("Hello");
        Ok(text_result(format!("{greeting}, {}!", accepted(&answer))))
    }
}

/// Round one asks for a name and the roots at once; round two for a
/// confirmation.
struct Plan;

#[async_trait]
impl ToolHandler for Plan {
    fn tool(&self) -> Tool {
        Tool::new(
            "plan",
            "Asks in two rounds",
            schema(json!({"type": "object"})),
        )
    }

    async fn call(&self, ctx: &RequestContext, _: JsonObject) -> Result<CallToolResult, ErrorData> {
        let first = ctx
            .ask_all(vec![
                ("name", name_form("Who are you?")),
                ("roots", InputRequest::list_roots()),
            ])
            .await?;
        let confirm = ctx.ask("confirm", name_form("Sign here")).await?;
        Ok(text_result(format!(
            "{} with {} root(s), signed {}, after {} round(s)",
            accepted(&first[0]),
            first[1]["roots"].as_array().map_or(0, Vec::len),
            accepted(&confirm),
            ctx.input_round()
        )))
    }
}

/// A resource whose text is the name the reader gives.
struct Badge;

#[async_trait]
impl ResourceProvider for Badge {
    fn resources(&self) -> Vec<Value> {
        vec![json!({"uri": "test://badge", "name": "badge"})]
    }

    fn templates(&self) -> Vec<Value> {
        Vec::new()
    }

    async fn read(&self, ctx: &RequestContext, uri: &str) -> Result<Option<Vec<Value>>, ErrorData> {
        let answer = ctx.ask("name", name_form("Whose badge?")).await?;
        Ok(Some(vec![json!({"uri": uri, "text": accepted(&answer)})]))
    }
}

/// Completion may not ask: it is not one of the methods that may answer
/// input-required.
struct Asking;

#[async_trait]
impl Completer for Asking {
    async fn complete(&self, ctx: &RequestContext, _: &Value) -> Result<Value, ErrorData> {
        ctx.ask("name", name_form("Who?")).await?;
        Ok(json!({"values": []}))
    }
}

async fn start() -> TestServer {
    let t = TestServer::start().await;
    let asking = McpServer::new()
        .with_tool(Greet)
        .with_tool(Plan)
        .with_resources(Badge)
        .with_completer(Asking);
    t.services.add(Arc::new(asking));
    t
}

const ALL: &str = r#"{"elicitation": {}, "sampling": {}, "roots": {}}"#;

/// A 2026-07-28 client: its name and the capabilities it declares.
#[derive(Clone, Copy)]
struct Client {
    name: &'static str,
    capabilities: &'static str,
}

const ALICE: Client = Client {
    name: "alice-client",
    capabilities: ALL,
};

impl Client {
    /// Calls `tool` with `params` beside its name (arguments, and a retry's
    /// inputResponses and requestState); the HTTP status and the body.
    async fn call(self, t: &TestServer, tool: &str, mut params: Value) -> (u16, Value) {
        params["name"] = json!(tool);
        self.send(t, "tools/call", Some(tool), params).await
    }

    /// Sends `method` with `params` and its `_meta`; `name` is its `Mcp-Name`.
    async fn send(
        self,
        t: &TestServer,
        method: &str,
        name: Option<&str>,
        mut params: Value,
    ) -> (u16, Value) {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": self.name, "version": "1"},
            "io.modelcontextprotocol/clientCapabilities":
                serde_json::from_str::<Value>(self.capabilities).unwrap(),
        });
        let body = json!({"jsonrpc": "2.0", "id": 5, "method": method, "params": params});
        let mut headers = vec![
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", method),
        ];
        headers.extend(name.map(|name| ("mcp-name", name)));
        let response = t.post(body, &headers).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

/// The result of a 200 answer.
fn result(answer: (u16, Value)) -> Value {
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert!(answer.1.get("error").is_none(), "{}", answer.1);
    answer.1["result"].clone()
}

fn state(result: &Value) -> String {
    result["requestState"].as_str().unwrap().to_string()
}

fn text(result: &Value) -> &str {
    assert_eq!(result["resultType"], "complete", "{result}");
    result["content"][0]["text"].as_str().unwrap()
}

fn named(name: &str) -> Value {
    json!({"action": "accept", "content": {"name": name}})
}

/// The refusal of a retry's state: its JSON-RPC error.
fn refused(answer: (u16, Value), reason: &str) -> String {
    assert_eq!(answer.0, 200, "{}", answer.1);
    let error = &answer.1["error"];
    assert_eq!(error["code"], -32602, "{error}");
    assert_eq!(error["data"]["reason"], reason, "{error}");
    error["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_elicitation_round_trip_completes_on_the_retry() {
    let t = start().await;
    let first = result(ALICE.call(&t, "greet", json!({"arguments": {}})).await);
    assert_eq!(first["resultType"], "input_required", "{first}");
    let asked = &first["inputRequests"]["name"];
    assert_eq!(asked["method"], "elicitation/create");
    assert_eq!(asked["params"]["message"], "Who are you?");
    assert!(first["_meta"]["io.modelcontextprotocol/serverInfo"].is_object());
    assert!(first.get("content").is_none(), "{first}");

    let retry = json!({
        "arguments": {},
        "inputResponses": {"name": named("Ada"), "unasked": {"action": "accept"}},
        "requestState": state(&first),
    });
    let done = result(ALICE.call(&t, "greet", retry).await);
    assert_eq!(text(&done), "Hello, Ada!");
    assert!(done.get("requestState").is_none(), "{done}");

    // An answer that is not a result of its kind is refused, not used.
    let bad = json!({"arguments": {}, "inputResponses": {"name": {"action": "perhaps"}}});
    let (status, body) = ALICE.call(&t, "greet", bad).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (200, &json!(-32602)),
        "{body}"
    );
    t.stop().await;
}

#[tokio::test]
async fn several_inputs_are_asked_at_once_and_rounds_carry_earlier_answers() {
    let t = start().await;
    let first = result(ALICE.call(&t, "plan", json!({})).await);
    let mut keys: Vec<&String> = first["inputRequests"].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["name", "roots"], "{first}");
    assert_eq!(first["inputRequests"]["roots"]["method"], "roots/list");

    // Only one of the two answered: asked again for the other alone.
    let partial = json!({"inputResponses": {"name": named("Ada")}, "requestState": state(&first)});
    let again = result(ALICE.call(&t, "plan", partial).await);
    let keys: Vec<&String> = again["inputRequests"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["roots"], "{again}");

    // Round two: the name comes from the state, the roots from the retry.
    let roots = json!({"roots": [{"uri": "file:///src"}]});
    let both = json!({"inputResponses": {"roots": roots}, "requestState": state(&again)});
    let second = result(ALICE.call(&t, "plan", both).await);
    let keys: Vec<&String> = second["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(keys, ["confirm"], "{second}");
    assert_ne!(state(&second), state(&again));

    // Round three answers only the confirmation; the rest rides in the state.
    let last =
        json!({"inputResponses": {"confirm": named("A.L.")}, "requestState": state(&second)});
    let done = result(ALICE.call(&t, "plan", last).await);
    assert_eq!(
        text(&done),
        "Ada with 1 root(s), signed A.L., after 3 round(s)"
    );

    // Without the state, round three knows nothing of the earlier answers.
    let stateless = json!({"inputResponses": {"confirm": named("A.L.")}});
    let restart = result(ALICE.call(&t, "plan", stateless).await);
    assert_eq!(restart["resultType"], "input_required", "{restart}");
    t.stop().await;
}

#[tokio::test]
async fn a_state_is_refused_when_altered_replayed_elsewhere_or_expired() {
    let t = start().await;
    let args = json!({"greeting": "Hi"});
    let first = result(ALICE.call(&t, "greet", json!({"arguments": args})).await);
    let issued = state(&first);
    let retry = |state: &str, arguments: &Value| {
        json!({
            "arguments": arguments,
            "inputResponses": {"name": named("Ada")},
            "requestState": state,
        })
    };

    // A character of the payload changed, as a client editing it would.
    let mut edited = issued.clone().into_bytes();
    edited[10] = if edited[10] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).unwrap();
    for altered in [format!("{issued}-TAMPERED"), edited, "x".into()] {
        let message = refused(
            ALICE.call(&t, "greet", retry(&altered, &args)).await,
            "tampered",
        );
        assert!(message.contains("integrity"), "{message}");
    }
    let (status, body) = ALICE.call(&t, "greet", json!({"requestState": 7})).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (200, &json!(-32602)),
        "{body}"
    );

    // Another client (another clientInfo) holding Alice's state.
    let mallory = Client {
        name: "mallory-client",
        capabilities: ALL,
    };
    let message = refused(
        mallory.call(&t, "greet", retry(&issued, &args)).await,
        "other_client",
    );
    assert!(message.contains("another client"), "{message}");

    // The same client, on a request with other arguments or another tool.
    let other_args = json!({"greeting": "Bye"});
    refused(
        ALICE.call(&t, "greet", retry(&issued, &other_args)).await,
        "other_request",
    );
    refused(
        ALICE.call(&t, "plan", retry(&issued, &args)).await,
        "other_request",
    );

    let done = result(ALICE.call(&t, "greet", retry(&issued, &args)).await);
    assert_eq!(text(&done), "Hi, Ada!");

    // Ten minutes by the lifecycle's clock, then no more.
    t.clock.advance(Duration::from_secs(10 * 60));
    let done = result(ALICE.call(&t, "greet", retry(&issued, &args)).await);
    assert_eq!(text(&done), "Hi, Ada!");
    t.clock.advance(Duration::from_secs(1));
    let message = refused(
        ALICE.call(&t, "greet", retry(&issued, &args)).await,
        "expired",
    );
    assert!(message.contains("expired"), "{message}");
    t.stop().await;
}

#[tokio::test]
async fn reads_may_ask_and_completions_may_not() {
    let t = start().await;
    let read = |params: Value| ALICE.send(&t, "resources/read", Some("test://badge"), params);
    let first = result(read(json!({"uri": "test://badge"})).await);
    assert_eq!(first["resultType"], "input_required", "{first}");
    assert!(
        first.get("ttlMs").is_none(),
        "an input-required result is not cached: {first}"
    );
    let retry = json!({
        "uri": "test://badge",
        "inputResponses": {"name": named("Ada")},
        "requestState": state(&first),
    });
    let done = result(read(retry).await);
    assert_eq!(done["contents"][0]["text"], "Ada", "{done}");
    assert_eq!(done["resultType"], "complete");

    // A state issued on the read is not one for the tool.
    let on_tool = json!({"inputResponses": {"name": named("Ada")}, "requestState": state(&first)});
    refused(ALICE.call(&t, "greet", on_tool).await, "other_request");

    let params = json!({"ref": {"type": "ref/resource", "uri": "test://badge"},
                        "argument": {"name": "x", "value": ""}});
    let (status, body) = ALICE.send(&t, "completion/complete", None, params).await;
    assert!(body.get("result").is_none(), "{body}");
    assert_eq!(
        (status, &body["error"]["code"]),
        (200, &json!(-32603)),
        "{body}"
    );
    t.stop().await;
}

#[tokio::test]
async fn input_the_client_did_not_declare_is_never_asked() {
    let t = start().await;
    let sampler = Client {
        name: "sampler",
        capabilities: r#"{"sampling": {}}"#,
    };
    let (status, body) = sampler.call(&t, "greet", json!({})).await;
    assert_eq!(status, 400, "{body}");
    let error = &body["error"];
    assert_eq!(error["code"], -32021, "{error}");
    assert_eq!(
        error["data"]["requiredCapabilities"],
        json!({"elicitation": {}})
    );
    assert!(body.get("result").is_none());

    // Several at once: refused as a whole if any is undeclared.
    let no_roots = Client {
        name: "no-roots",
        capabilities: r#"{"elicitation": {}}"#,
    };
    let (status, body) = no_roots.call(&t, "plan", json!({})).await;
    assert_eq!(
        (status, &body["error"]["data"]["requiredCapabilities"]),
        (400, &json!({"roots": {}}))
    );
    t.stop().await;
}

#[tokio::test]
async fn a_session_is_asked_on_the_request_stream() {
    let t = start().await;
    let session = t
        .initialize_with("2025-11-25", "session-client", json!({"elicitation": {}}))
        .await;
    let headers = [
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    let call = json!({"jsonrpc":"2.0","id":9,"method":"tools/call",
        "params": {"name": "greet", "arguments": {}, "requestState": "ignored"}});
    let mut stream = SseReader::new(t.post(call, &headers).await);
    let asked = loop {
        let event = stream.next().await.expect("the ask");
        if let Some(message) = event.message() {
            break message;
        }
    };
    assert_eq!(asked["method"], "elicitation/create", "{asked}");
    assert_eq!(asked["params"]["message"], "Who are you?");
    let answer = json!({"jsonrpc":"2.0","id": asked["id"],"result": named("Grace")});
    assert_eq!(t.post(answer, &headers).await.status(), 202);
    let done = loop {
        let event = stream.next().await.expect("the result");
        if let Some(message) = event.message() {
            break message;
        }
    };
    assert_eq!(done["id"], 9);
    assert_eq!(
        done["result"]["content"][0]["text"], "Hello, Grace!",
        "{done}"
    );
    assert!(done["result"].get("resultType").is_none(), "{done}");
    t.stop().await;
}
