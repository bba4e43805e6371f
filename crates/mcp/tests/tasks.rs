//! The tasks extension over real HTTP: a task-supporting tool's call is a
//! durable task at once, polled to its result; it may wait for the client's
//! input; only its creator sees or cancels it, or hears of its status
//! changes on a listen stream; it needs the extension and the stateless
//! revision; it is gone when its time to live passes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{eventually, SseReader, TestServer};
use rmcp::model::{CallToolResult, ErrorData, JsonObject, Tool};
use serde_json::{json, Value};
use sessiongate_core::lifecycle::{LifecycleConfig, TaskConfig};
use sessiongate_core::task::TaskStatus;
use sessiongate_core::TaskId;
use sessiongate_mcp::input::InputRequest;
use sessiongate_mcp::tasks::TaskSupport;
use sessiongate_mcp::tools::{schema, text_result};
use sessiongate_mcp::{McpServer, RequestContext, ToolHandler, TransportConfig};
use tokio::sync::Semaphore;

const EXTENSION: &str = "io.modelcontextprotocol/tasks";

/// Waits for a permit of its gate, then answers; runs as a task.
struct Gated(Arc<Semaphore>);

#[async_trait]
impl ToolHandler for Gated {
    fn tool(&self) -> Tool {
        Tool::new(
            "gated",
            "Waits for its gate",
            schema(json!({"type": "object"})),
        )
    }

    fn task_support(&self) -> TaskSupport {
        TaskSupport::Optional
    }

    async fn call(&self, _: &RequestContext, _: JsonObject) -> Result<CallToolResult, ErrorData> {
        self.0.acquire().await.expect("open gate").forget();
        Ok(text_result("through the gate"))
    }
}

/// Asks the user for a name and greets it; runs only as a task.
struct AskName;

#[async_trait]
impl ToolHandler for AskName {
    fn tool(&self) -> Tool {
        Tool::new(
            "ask_name",
            "Asks for a name",
            schema(json!({"type": "object"})),
        )
    }

    fn task_support(&self) -> TaskSupport {
        TaskSupport::Required
    }

    async fn call(&self, ctx: &RequestContext, _: JsonObject) -> Result<CallToolResult, ErrorData> {
        let answer = ctx
            .request_client(
                "elicitation/create",
                json!({"mode": "form", "message": "Your name?", "requestedSchema": {"type": "object"}}),
            )
            .await?;
        Ok(text_result(format!(
            "Hello, {}!",
            answer["content"]["name"].as_str().unwrap_or("?")
        )))
    }
}

/// Waits for its gate, then asks the user for a name and greets it; runs
/// only as a task.
struct GateThenAsk(Arc<Semaphore>);

#[async_trait]
impl ToolHandler for GateThenAsk {
    fn tool(&self) -> Tool {
        Tool::new(
            "gate_then_ask",
            "Waits for its gate, then asks for a name",
            schema(json!({"type": "object"})),
        )
    }

    fn task_support(&self) -> TaskSupport {
        TaskSupport::Required
    }

    async fn call(
        &self,
        ctx: &RequestContext,
        args: JsonObject,
    ) -> Result<CallToolResult, ErrorData> {
        self.0.acquire().await.expect("open gate").forget();
        AskName.call(ctx, args).await
    }
}

/// Asks for a name before its task begins (MRTR rounds), then, from the
/// task, for a colour; runs only as a task.
struct NameThenColour;

fn elicit(message: &str) -> InputRequest {
    InputRequest::elicit(json!({
        "mode": "form",
        "message": message,
        "requestedSchema": {"type": "object", "properties": {"v": {"type": "string"}}},
    }))
}

#[async_trait]
impl ToolHandler for NameThenColour {
    fn tool(&self) -> Tool {
        Tool::new(
            "name_then_colour",
            "Asks for a name, then a colour",
            schema(json!({"type": "object"})),
        )
    }

    fn task_support(&self) -> TaskSupport {
        TaskSupport::Required
    }

    async fn before_task(&self, ctx: &RequestContext, _: &JsonObject) -> Result<(), ErrorData> {
        ctx.ask("name", elicit("Your name?")).await.map(drop)
    }

    async fn call(&self, ctx: &RequestContext, _: JsonObject) -> Result<CallToolResult, ErrorData> {
        let answers = ctx
            .ask_all(vec![
                ("name", elicit("Your name?")),
                ("colour", elicit("Colour?")),
            ])
            .await?;
        let [name, colour] = [0, 1].map(|i| answers[i]["content"]["v"].as_str().unwrap_or("?"));
        Ok(text_result(format!("{name} likes {colour}")))
    }
}

struct Harness {
    t: TestServer,
    /// Opens `gated`.
    gate: Arc<Semaphore>,
    /// Opens `gate_then_ask`.
    ask_gate: Arc<Semaphore>,
}

async fn harness(tasks: TaskConfig) -> Harness {
    let config = LifecycleConfig {
        tasks,
        ..LifecycleConfig::default()
    };
    let t = TestServer::start_with(TransportConfig::default(), config).await;
    let gate = Arc::new(Semaphore::new(0));
    let ask_gate = Arc::new(Semaphore::new(0));
    t.services.add(Arc::new(
        McpServer::new()
            .with_tool(Gated(gate.clone()))
            .with_tool(AskName)
            .with_tool(GateThenAsk(ask_gate.clone()))
            .with_tool(NameThenColour),
    ));
    Harness { t, gate, ask_gate }
}

/// A 2026-07-28 request from `client`, declaring the tasks extension if
/// `tasks`, with the headers that mirror it; its HTTP status and body.
async fn request(
    t: &TestServer,
    client: &str,
    tasks: bool,
    method: &str,
    params: Value,
) -> (u16, Value) {
    let response = send(t, client, tasks, method, params).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Sends what [`request`] describes; the response as it comes.
async fn send(
    t: &TestServer,
    client: &str,
    tasks: bool,
    method: &str,
    params: Value,
) -> reqwest::Response {
    let mut params = params;
    let capabilities = if tasks {
        json!({ "elicitation": {}, "extensions": { EXTENSION: {} } })
    } else {
        json!({ "elicitation": {} })
    };
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": client, "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": capabilities,
    });
    let name = params["name"]
        .as_str()
        .or(params["taskId"].as_str())
        .map(str::to_string);
    let mut headers = vec![
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", method),
    ];
    if let Some(name) = &name {
        headers.push(("mcp-name", name));
    }
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    t.post(body, &headers).await
}

/// `client`'s listen stream for `notifications`, declaring the extension.
async fn listen(t: &TestServer, client: &str, notifications: Value) -> SseReader {
    let params = json!({ "notifications": notifications });
    let response = send(t, client, true, "subscriptions/listen", params).await;
    assert_eq!(response.status(), 200);
    SseReader::new(response)
}

/// The next message of a stream, which must come.
async fn next(stream: &mut SseReader) -> Value {
    let event = stream.next().await.expect("the stream stays open");
    event.message().expect("a message")
}

/// The next task notification of a stream: the task it carries.
async fn next_task(stream: &mut SseReader) -> Value {
    let message = next(stream).await;
    assert_eq!(message["method"], "notifications/tasks", "{message}");
    assert_eq!(
        message["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], 1,
        "{message}"
    );
    message["params"].clone()
}

async fn create(t: &TestServer, client: &str, tool: &str) -> String {
    let (status, body) = request(
        t,
        client,
        true,
        "tools/call",
        json!({"name": tool, "arguments": {}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let result = &body["result"];
    assert_eq!(result["resultType"], "task", "{body}");
    assert_eq!(result["status"], "working");
    result["taskId"].as_str().unwrap().to_string()
}

async fn get(t: &TestServer, client: &str, id: &str) -> Value {
    let (status, body) = request(t, client, true, "tasks/get", json!({"taskId": id})).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn status_of(t: &TestServer, id: &str) -> Option<TaskStatus> {
    let id: TaskId = id.parse().unwrap();
    t.store.store.get_task(id).await.unwrap().map(|r| r.status)
}

const PATIENCE: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_task_is_stored_before_its_handle_and_polled_to_its_result() {
    let Harness { t, gate, .. } = harness(TaskConfig::default()).await;
    let id = create(&t, "alpha", "gated").await;
    // Acknowledged means stored.
    assert_eq!(status_of(&t, &id).await, Some(TaskStatus::Working));
    let working = get(&t, "alpha", &id).await["result"].clone();
    assert_eq!(
        (working["taskId"].as_str(), working["status"].as_str()),
        (Some(&*id), Some("working"))
    );
    assert_eq!(working["resultType"], "complete");
    assert!(working.get("result").is_none());
    assert_eq!(t.lifecycle.tasks.counts().working, 1);

    gate.add_permits(1);
    eventually(PATIENCE, || async {
        status_of(&t, &id).await == Some(TaskStatus::Completed)
    })
    .await;
    let done = get(&t, "alpha", &id).await["result"].clone();
    assert_eq!(done["status"], "completed");
    assert_eq!(done["result"]["content"][0]["text"], "through the gate");
    let counts = t.lifecycle.tasks.counts();
    assert_eq!((counts.working, counts.completed), (0, 1));
    t.stop().await;
}

#[tokio::test]
async fn only_the_client_that_created_a_task_sees_or_cancels_it() {
    let Harness { t, gate, .. } = harness(TaskConfig::default()).await;
    let id = create(&t, "alpha", "gated").await;
    let unknown = TaskId::generate().to_string();
    for method in ["tasks/get", "tasks/cancel", "tasks/update"] {
        let params = |id: &str| json!({"taskId": id, "inputResponses": {}});
        let theirs = request(&t, "mallory", true, method, params(&id)).await;
        let nobodys = request(&t, "mallory", true, method, params(&unknown)).await;
        assert_eq!(theirs.0, nobodys.0, "{method}");
        assert_eq!(
            theirs.1["error"], nobodys.1["error"],
            "{method}: same answer as for no task"
        );
        assert_eq!(theirs.1["error"]["code"], -32602, "{method}");
    }
    // Mallory's cancel changed nothing.
    assert_eq!(get(&t, "alpha", &id).await["result"]["status"], "working");

    let (status, ack) = request(&t, "alpha", true, "tasks/cancel", json!({"taskId": id})).await;
    assert_eq!(status, 200);
    assert_eq!(ack["result"]["resultType"], "complete");
    assert!(ack["result"].get("status").is_none());
    assert_eq!(get(&t, "alpha", &id).await["result"]["status"], "cancelled");
    assert_eq!(status_of(&t, &id).await, Some(TaskStatus::Cancelled));
    // The work stopped: a permit given now is never taken.
    gate.add_permits(1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(gate.available_permits(), 1);
    assert_eq!(get(&t, "alpha", &id).await["result"]["status"], "cancelled");
    t.stop().await;
}

#[tokio::test]
async fn tasks_need_the_extension_and_the_stateless_revision() {
    let Harness { t, gate, .. } = harness(TaskConfig::default()).await;
    gate.add_permits(1);
    // Without the extension, a tool that may run as a task answers at once...
    let (_, sync) = request(
        &t,
        "beta",
        false,
        "tools/call",
        json!({"name": "gated", "arguments": {}}),
    )
    .await;
    assert_eq!(sync["result"]["resultType"], "complete");
    assert_eq!(sync["result"]["content"][0]["text"], "through the gate");
    // ...one that must is refused, as are the task methods.
    let (status, refused) = request(
        &t,
        "beta",
        false,
        "tools/call",
        json!({"name": "ask_name", "arguments": {}}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(refused["error"]["code"], -32021);
    assert!(refused["error"]["data"]["requiredCapabilities"]["extensions"][EXTENSION].is_object());
    let (status, refused) = request(&t, "beta", false, "tasks/get", json!({"taskId": "x"})).await;
    assert_eq!(
        (status, refused["error"]["code"].clone()),
        (400, json!(-32021))
    );
    // A malformed id names no task.
    let (_, unknown) = request(&t, "beta", true, "tasks/get", json!({"taskId": "x"})).await;
    assert_eq!(unknown["error"]["code"], -32602);
    // Sessionful revisions have no tasks.
    let session = t.initialize("2025-11-25", "old").await;
    let response = t
        .post(
            json!({"jsonrpc":"2.0","id":2,"method":"tasks/get","params":{"taskId": "x"}}),
            &[("mcp-session-id", &session)],
        )
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32601);
    // The capability is advertised to the stateless revision.
    let (_, discover) = request(&t, "beta", false, "server/discover", json!({})).await;
    assert!(discover["result"]["capabilities"]["extensions"][EXTENSION].is_object());
    t.stop().await;
}

#[tokio::test]
async fn a_task_waits_for_input_until_the_client_answers() {
    let Harness { t, .. } = harness(TaskConfig::default()).await;
    let id = create(&t, "gamma", "ask_name").await;
    eventually(PATIENCE, || async {
        get(&t, "gamma", &id).await["result"]["status"] == "input_required"
    })
    .await;
    let waiting = get(&t, "gamma", &id).await["result"].clone();
    let requests = waiting["inputRequests"].as_object().unwrap();
    assert_eq!(requests.len(), 1);
    let (key, asked) = requests.iter().next().unwrap();
    assert_eq!(asked["method"], "elicitation/create");
    assert_eq!(status_of(&t, &id).await, Some(TaskStatus::InputRequired));

    let answer = json!({"taskId": id, "inputResponses": {
        "never-asked": {"action": "accept"},
        key: {"action": "accept", "content": {"name": "Ada"}},
    }});
    let (status, ack) = request(&t, "gamma", true, "tasks/update", answer).await;
    assert_eq!(
        (status, ack["result"]["resultType"].clone()),
        (200, json!("complete"))
    );
    eventually(PATIENCE, || async {
        status_of(&t, &id).await == Some(TaskStatus::Completed)
    })
    .await;
    let done = get(&t, "gamma", &id).await["result"].clone();
    assert_eq!(done["result"]["content"][0]["text"], "Hello, Ada!");
    t.stop().await;
}

#[tokio::test]
async fn a_task_is_gone_once_its_time_to_live_has_passed() {
    let tasks = TaskConfig {
        ttl: Duration::from_secs(60),
        prune_interval: Duration::from_millis(20),
        ..TaskConfig::default()
    };
    let Harness { t, gate, .. } = harness(tasks).await;
    let id = create(&t, "delta", "gated").await;
    let created = get(&t, "delta", &id).await["result"].clone();
    assert_eq!(created["ttlMs"], 60_000);
    t.clock.advance(Duration::from_secs(61));
    let (_, gone) = request(&t, "delta", true, "tasks/get", json!({"taskId": id})).await;
    assert_eq!(gone["error"]["code"], -32602);
    eventually(PATIENCE, || async { status_of(&t, &id).await.is_none() }).await;
    assert_eq!(t.lifecycle.tasks.counts().working, 0);
    // Its work was stopped with it.
    gate.add_permits(1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(gate.available_permits(), 1);
    t.stop().await;
}

#[tokio::test]
async fn input_gathered_before_a_task_is_answered_again_inside_it() {
    let Harness { t, .. } = harness(TaskConfig::default()).await;
    let call = json!({"name": "name_then_colour", "arguments": {}});
    let (status, first) = request(&t, "delta", true, "tools/call", call.clone()).await;
    assert_eq!(status, 200, "{first}");
    let first = &first["result"];
    assert_eq!(first["resultType"], "input_required", "{first}");
    assert!(
        first.get("taskId").is_none(),
        "no task before the input: {first}"
    );
    let keys: Vec<&String> = first["inputRequests"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["name"]);

    let mut retry = call;
    retry["inputResponses"] = json!({"name": {"action": "accept", "content": {"v": "Ada"}}});
    retry["requestState"] = first["requestState"].clone();
    let (status, created) = request(&t, "delta", true, "tools/call", retry).await;
    assert_eq!(status, 200, "{created}");
    let created = &created["result"];
    assert_eq!(created["resultType"], "task", "{created}");
    assert!(created.get("requestState").is_none(), "{created}");
    let id = created["taskId"].as_str().unwrap().to_string();

    // The name is not asked again; only what the task itself needs is.
    eventually(PATIENCE, || async {
        get(&t, "delta", &id).await["result"]["status"] == "input_required"
    })
    .await;
    let waiting = get(&t, "delta", &id).await["result"].clone();
    let requests = waiting["inputRequests"].as_object().unwrap();
    assert_eq!(requests.len(), 1, "{waiting}");
    let (key, asked) = requests.iter().next().unwrap();
    assert_eq!(asked["params"]["message"], "Colour?");
    let answer = json!({"taskId": id, "inputResponses": {
        key: {"action": "accept", "content": {"v": "teal"}},
    }});
    let (status, _) = request(&t, "delta", true, "tasks/update", answer).await;
    assert_eq!(status, 200);
    eventually(PATIENCE, || async {
        status_of(&t, &id).await == Some(TaskStatus::Completed)
    })
    .await;
    let done = get(&t, "delta", &id).await["result"].clone();
    assert_eq!(done["result"]["content"][0]["text"], "Ada likes teal");
    t.stop().await;
}

#[tokio::test]
async fn a_finished_task_is_its_creators_only_and_gone_once_its_time_to_live_has_passed() {
    let tasks = TaskConfig {
        ttl: Duration::from_secs(60),
        ..TaskConfig::default()
    };
    let Harness { t, gate, .. } = harness(tasks).await;
    let id = create(&t, "epsilon", "gated").await;
    gate.add_permits(1);
    eventually(PATIENCE, || async {
        get(&t, "epsilon", &id).await["result"]["status"] == "completed"
    })
    .await;
    let done = get(&t, "epsilon", &id).await["result"].clone();
    assert_eq!(done["result"]["content"][0]["text"], "through the gate");
    let (_, theirs) = request(&t, "mallory", true, "tasks/get", json!({"taskId": id})).await;
    assert_eq!(theirs["error"]["code"], -32602, "{theirs}");
    // Past its time to live it is unknown at once, before the pruner runs.
    t.clock.advance(Duration::from_secs(61));
    let (_, gone) = request(&t, "epsilon", true, "tasks/get", json!({"taskId": id})).await;
    assert_eq!(gone["error"]["code"], -32602, "{gone}");
    t.stop().await;
}

/// Waits for `client`'s `ask_name` task `id` to ask, and answers "Ada".
async fn answer_name(t: &TestServer, client: &str, id: &str) {
    eventually(PATIENCE, || async {
        get(t, client, id).await["result"]["status"] == "input_required"
    })
    .await;
    let waiting = get(t, client, id).await["result"].clone();
    let requests = waiting["inputRequests"].as_object().unwrap();
    let key = requests.keys().next().unwrap();
    let answer = json!({"taskId": id, "inputResponses": {
        key: {"action": "accept", "content": {"name": "Ada"}},
    }});
    let (status, _) = request(t, client, true, "tasks/update", answer).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_owner_hears_its_task_change_status_on_a_listen_stream() {
    let Harness { t, ask_gate, .. } = harness(TaskConfig::default()).await;
    let id = create(&t, "gamma", "gate_then_ask").await;
    let mut stream = listen(&t, "gamma", json!({ "taskIds": [id, id, "no-such-task"] })).await;
    let ack = next(&mut stream).await;
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(
        ack["params"]["notifications"],
        json!({ "taskIds": [id] }),
        "{ack}"
    );
    // How it stands as the stream opens: as created.
    let working = next_task(&mut stream).await;
    assert_eq!(
        (working["taskId"].as_str(), working["status"].as_str()),
        (Some(&*id), Some("working"))
    );
    assert!(working["ttlMs"].as_u64().unwrap() > 0, "{working}");
    assert!(working["pollIntervalMs"].as_u64().unwrap() > 0, "{working}");

    ask_gate.add_permits(1);
    let waiting = next_task(&mut stream).await;
    assert_eq!(waiting["status"], "input_required", "{waiting}");
    let requests = waiting["inputRequests"].as_object().unwrap();
    let (key, asked) = requests.iter().next().unwrap();
    assert_eq!(asked["method"], "elicitation/create");
    // What the notification says is what tasks/get says.
    let fields = |task: &Value| {
        let mut task = task.clone();
        let task = task.as_object_mut().unwrap();
        task.remove("_meta");
        task.remove("resultType");
        task.clone()
    };
    let got = get(&t, "gamma", &id).await["result"].clone();
    assert_eq!(fields(&waiting), fields(&got));

    let answer = json!({"taskId": id, "inputResponses": {
        key: {"action": "accept", "content": {"name": "Ada"}},
    }});
    let (status, _) = request(&t, "gamma", true, "tasks/update", answer).await;
    assert_eq!(status, 200);
    assert_eq!(next_task(&mut stream).await["status"], "working");
    let done = next_task(&mut stream).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"]["content"][0]["text"], "Hello, Ada!");
    assert!(done.get("inputRequests").is_none(), "{done}");
    t.stop().await;
}

#[tokio::test]
async fn nobody_else_hears_of_a_task() {
    let Harness { t, gate, .. } = harness(TaskConfig::default()).await;
    let theirs = create(&t, "gamma", "ask_name").await;
    let mine = create(&t, "delta", "gated").await;
    // Delta names gamma's task too: it is not honoured, as for no task.
    let mut stream = listen(&t, "delta", json!({ "taskIds": [theirs, mine] })).await;
    let ack = next(&mut stream).await;
    assert_eq!(
        ack["params"]["notifications"],
        json!({ "taskIds": [mine] }),
        "{ack}"
    );
    assert_eq!(next_task(&mut stream).await["taskId"], mine);

    // Gamma's task asks, is answered and completes...
    answer_name(&t, "gamma", &theirs).await;
    eventually(PATIENCE, || async {
        status_of(&t, &theirs).await == Some(TaskStatus::Completed)
    })
    .await;
    // ...then delta's: what delta was wrongly told would be ahead of it.
    gate.add_permits(1);
    let done = next_task(&mut stream).await;
    assert_eq!(
        (done["taskId"].as_str(), done["status"].as_str()),
        (Some(&*mine), Some("completed"))
    );
    t.stop().await;
}

#[tokio::test]
async fn task_notifications_need_the_extension_and_a_bounded_filter() {
    let Harness { t, gate, .. } = harness(TaskConfig::default()).await;
    let id = create(&t, "gamma", "gated").await;
    let filter = json!({ "notifications": { "taskIds": [id] } });
    let refused = send(&t, "gamma", false, "subscriptions/listen", filter).await;
    assert_eq!(refused.status(), 400);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["error"]["code"], -32021, "{refused}");
    assert!(refused["error"]["data"]["requiredCapabilities"]["extensions"][EXTENSION].is_object());

    let too_many: Vec<String> = (0..=100).map(|_| TaskId::generate().to_string()).collect();
    let filter = json!({ "notifications": { "taskIds": too_many } });
    let (_, refused) = request(&t, "gamma", true, "subscriptions/listen", filter).await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    assert_eq!(t.state.listeners.len(), 0);

    // A stream hears only of the tasks it names, not its owner's others.
    let other = create(&t, "gamma", "ask_name").await;
    let mut stream = listen(&t, "gamma", json!({ "taskIds": [other] })).await;
    next(&mut stream).await;
    gate.add_permits(1);
    eventually(PATIENCE, || async {
        status_of(&t, &id).await == Some(TaskStatus::Completed)
    })
    .await;
    // A finished task is told as it ended to a stream that names it later.
    let mut late = listen(&t, "gamma", json!({ "taskIds": [id] })).await;
    next(&mut late).await;
    let done = next_task(&mut late).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["result"]["content"][0]["text"], "through the gate");

    answer_name(&t, "gamma", &other).await;
    // Up to the other task's end, the first stream hears only of it.
    loop {
        let told = next_task(&mut stream).await;
        assert_eq!(told["taskId"], other, "{told}");
        if told["status"] == "completed" {
            break;
        }
    }
    t.stop().await;
}
