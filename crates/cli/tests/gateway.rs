//! The gateway end to end: stdio MCP servers behind sessiongate, called
//! over real HTTP. Tools are listed namespaced (bare for a lone upstream
//! that takes no built-in's name, for good) and called through; each
//! session gets its own child, which ends with the session (DELETE, idle
//! timeout, an operator's terminate); a child killed between calls or
//! during one is healed without the client seeing a 404; progress, log
//! messages and elicitation reach the client; a relayed tool's failure is
//! logged as an error; what a client's own child (a session's, or a
//! stateless client's pooled one) adds to its lists is that client's
//! alone, and told to it alone; bad upstreams are reported while a good one
//! serves (a silent HTTP one holding the start for one timeout); the
//! process limit answers a clear error; a 2026-07-28 client calls
//! through, and one that stops reading holds up no other client of a
//! shared child.
//!
//! The upstreams are `rmcp-baseline --stdio` (an rmcp echo server, built
//! with `cargo build -p rmcp-baseline`) and the test server of
//! `crates/testkit/fixtures/stdio_mcp_server.py`.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use common::{eventually, stateless, SseReader, TestServer};
use serde_json::{json, Value};
use sessiongate::config::Settings;
use sessiongate_core::upstream::{UpstreamEvent, UpstreamStatus};
use sessiongate_gateway::config::Transport;
use sessiongate_testkit::process::{free_port, Gateway};

const WAIT: Duration = Duration::from_secs(20);

/// The test fixture server, as a `--stdio` flag named `fx`.
fn fixture() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testkit/fixtures/stdio_mcp_server.py")
        .canonicalize()
        .expect("the fixture server exists");
    format!("fx=python3 {}", path.display())
}

/// `rmcp-baseline`, next to the `sessiongate` binary.
fn rmcp_baseline() -> String {
    let path = PathBuf::from(common::BIN).with_file_name("rmcp-baseline");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p rmcp-baseline` first",
        path.display()
    );
    format!("{} --stdio", path.display())
}

async fn gateway(stdio: Vec<String>) -> TestServer {
    TestServer::start_with(Settings {
        stdio,
        ..Settings::default()
    })
    .await
}

/// A tool's first text, or the JSON-RPC error's message as `Err`.
fn text(response: &Value) -> Result<String, String> {
    match response.get("error") {
        Some(e) => Err(e["message"].as_str().unwrap_or_default().to_string()),
        None => Ok(response["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string()),
    }
}

async fn pid(server: &TestServer, session: &str) -> u32 {
    let answer = server.call_tool(session, "fx__pid", json!({})).await;
    text(&answer).unwrap().parse().unwrap()
}

/// Whether a process runs (a zombie does not count).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

async fn gone(pid: u32) {
    eventually(WAIT, || async move { !alive(pid) }).await;
}

fn kill_9(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tools_are_listed_namespaced_and_called_beside_the_builtins() {
    let server = gateway(vec![rmcp_baseline(), fixture()]).await;
    let session = server.initialize("2025-11-25", "claude-code").await;
    let listed: Value = server
        .post(
            json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
            &[("mcp-session-id", &session)],
        )
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for name in ["echo", "rmcp-baseline__echo", "fx__echo", "fx__pid"] {
        assert!(names.contains(&name), "{name} not in {names:?}");
    }

    let answer = server
        .call_tool(&session, "rmcp-baseline__echo", json!({"text": "via rmcp"}))
        .await;
    assert_eq!(text(&answer), Ok("via rmcp".into()));
    let answer = server
        .call_tool(&session, "fx__echo", json!({"text": "via fixture"}))
        .await;
    assert_eq!(text(&answer), Ok("via fixture".into()));
    let answer = server
        .call_tool(&session, "fx__ping_client", json!({}))
        .await;
    assert_eq!(text(&answer), Ok("{}".into()), "the gateway answers ping");
    let answer = server.call_tool(&session, "fx__nope", json!({})).await;
    assert_eq!(answer["error"]["code"], -32602, "{answer}");

    let reports = server.server.upstreams.reports();
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(|r| r.status == UpstreamStatus::Up));
    assert!(reports
        .iter()
        .all(|r| r.requests >= 1 && r.p50_ms.is_some()));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_session_has_its_own_child_which_ends_with_the_session() {
    let server = TestServer::start_with(Settings {
        stdio: vec![fixture()],
        idle_timeout: Some(Duration::from_secs(60)),
        ..Settings::default()
    })
    .await;
    let a = server.initialize("2025-11-25", "client-a").await;
    let b = server.initialize("2025-11-25", "client-b").await;
    let c = server.initialize("2025-11-25", "client-c").await;
    let (pid_a, pid_b) = (pid(&server, &a).await, pid(&server, &b).await);
    let pid_c = pid(&server, &c).await;
    assert_ne!(pid_a, pid_b, "a child per session");
    assert_eq!(pid(&server, &a).await, pid_a, "the same child on each call");
    assert!(server
        .data_dir()
        .join("children")
        .join(pid_a.to_string())
        .exists());

    assert!(server.delete(&a).await.status().is_success());
    gone(pid_a).await;
    eventually(WAIT, || async {
        !server
            .data_dir()
            .join("children")
            .join(pid_a.to_string())
            .exists()
    })
    .await;
    assert!(alive(pid_b));

    // An operator ends a session through the management API.
    let terminated = server
        .http
        .delete(format!("{}/api/mcp/sessions/{c}", server.base))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(terminated.status().is_success(), "{}", terminated.status());
    gone(pid_c).await;
    assert!(alive(pid_b));

    server.clock.advance(Duration::from_secs(61));
    gone(pid_b).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_killed_between_or_during_calls_is_healed_without_a_404() {
    let server = gateway(vec![fixture()]).await;
    let session = server.initialize("2025-11-25", "claude-code").await;
    let first = pid(&server, &session).await;

    kill_9(first);
    gone(first).await;
    let answer = server
        .call_tool(&session, "fx__echo", json!({"text": "after the kill"}))
        .await;
    assert_eq!(text(&answer), Ok("after the kill".into()));
    let second = pid(&server, &session).await;
    assert_ne!(second, first, "a new child");
    // Initialized as the first was: with the client's own identity.
    let client = server.call_tool(&session, "fx__client", json!({})).await;
    let client: Value = serde_json::from_str(&text(&client).unwrap()).unwrap();
    assert_eq!(client["clientInfo"]["name"], "claude-code", "{client}");
    assert_eq!(client["capabilities"], json!({"sampling": {}}), "{client}");

    // Killed while a call that is not safe to repeat is in flight, once
    // the child has it.
    let marker = server.data_dir().join("hang-arrived");
    let hanging = server.call_tool(
        &session,
        "fx__hang",
        json!({"marker": marker.to_str().unwrap()}),
    );
    let killer = async {
        eventually(WAIT, || async { marker.exists() }).await;
        kill_9(second);
    };
    let (answer, ()) = tokio::join!(hanging, killer);
    let error = text(&answer).unwrap_err();
    assert!(
        error.contains("fx restarted during the call"),
        "a clear error: {error}"
    );
    let answer = server
        .call_tool(&session, "fx__echo", json!({"text": "healed"}))
        .await;
    assert_eq!(text(&answer), Ok("healed".into()));

    // What the client set is set again on the new child.
    let set = server
        .post(
            json!({"jsonrpc":"2.0","id":9,"method":"logging/setLevel","params":{"level":"error"}}),
            &[("mcp-session-id", &session)],
        )
        .await;
    assert_eq!(set.status(), 200);
    let level = server.call_tool(&session, "fx__level", json!({})).await;
    assert_eq!(text(&level), Ok("error".into()));
    let third = pid(&server, &session).await;
    kill_9(third);
    gone(third).await;
    let level = server.call_tool(&session, "fx__level", json!({})).await;
    assert_eq!(
        text(&level),
        Ok("error".into()),
        "restored after the restart"
    );

    let report = &server.server.upstreams.reports()[0];
    assert!(report.restarts >= 3, "{report:?}");
    assert!(
        report
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("ready"),
        "the last stderr line is in the error: {report:?}"
    );
    server.stop().await;
}

/// A relayed tool that fails as tools do (`isError`) reaches the client as
/// its upstream answered, and is logged as an error, as a built-in tool's
/// failure is: in the session's request log, with the text it gave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_tools_failure_is_logged_as_an_error() {
    let server = gateway(vec![fixture()]).await;
    let session = server.initialize("2025-11-25", "claude-code").await;
    let answer = server.call_tool(&session, "fx__fail", json!({})).await;
    assert_eq!(answer["result"]["isError"], true, "{answer}");

    let path = format!("/api/mcp/sessions/{session}");
    let logged = || async {
        server.admin_get(&path).await["requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["tool_name"] == "fx__fail")
            .cloned()
    };
    eventually(WAIT, || async { logged().await.is_some() }).await;
    let row = logged().await.unwrap();
    assert_eq!(row["status"], "error", "{row}");
    assert_eq!(row["error_message"], "it failed on purpose", "{row}");
    assert_eq!(row["upstream"], "fx", "{row}");
    server.stop().await;
}

/// What the upstream sends before its answer reaches the client before the
/// answer, all of it and in order, even when it is more than the relay
/// queues at once (the call relays while it waits for the pump).
#[tokio::test]
async fn a_long_run_of_progress_reaches_the_client_before_the_answer() {
    let server = gateway(vec![fixture()]).await;
    let session = server.initialize("2025-11-25", "inspector").await;
    let response = server
        .post(
            json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{
                "name":"fx__progress","arguments":{"steps":500},"_meta":{"progressToken":7}}}),
            &[
                ("mcp-session-id", session.as_str()),
                ("mcp-protocol-version", "2025-11-25"),
            ],
        )
        .await;
    let messages = SseReader::new(response).messages().await;
    let steps: Vec<u64> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| m["params"]["progress"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=500).collect::<Vec<_>>());
    assert_eq!(text(messages.last().unwrap()), Ok("done".into()));
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_log_messages_and_elicitation_reach_the_session() {
    let server = gateway(vec![fixture()]).await;
    let session = server
        .initialize_with("2025-11-25", "inspector", json!({"elicitation":{}}))
        .await;
    let headers = [
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-11-25"),
    ];

    let response = server
        .post(
            json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{
                "name":"fx__progress","arguments":{},"_meta":{"progressToken":"mine"}}}),
            &headers,
        )
        .await;
    let messages = SseReader::new(response).messages().await;
    let progress: Vec<&Value> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 2, "{messages:?}");
    assert!(progress
        .iter()
        .all(|p| p["params"]["progressToken"] == "mine"));
    assert!(messages
        .iter()
        .any(|m| m["method"] == "notifications/message"
            && m["params"]["data"] == "halfway"
            && m["params"]["level"] == "warning"));
    assert_eq!(text(messages.last().unwrap()), Ok("done".into()));

    let response = server
        .post(
            json!({"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"fx__ask","arguments":{}}}),
            &headers,
        )
        .await;
    let mut events = SseReader::new(response);
    let ask = loop {
        let event = events.next().await.expect("the elicitation arrives");
        if let Some(message) = event.message() {
            break message;
        }
    };
    assert_eq!(ask["method"], "elicitation/create", "{ask}");
    assert_eq!(ask["params"]["message"], "Your name?");
    let answered = server
        .post(
            json!({"jsonrpc":"2.0","id":ask["id"],"result":{"action":"accept","content":{"name":"Ada"}}}),
            &headers,
        )
        .await;
    assert_eq!(answered.status(), 202);
    let result = events
        .messages()
        .await
        .into_iter()
        .find(|m| m["id"] == 6)
        .expect("the call's answer");
    let content: Value = serde_json::from_str(&text(&result).unwrap()).unwrap();
    assert_eq!(content["content"]["name"], "Ada");

    // A client that cannot be asked: the upstream hears so.
    let other = server.initialize("2025-11-25", "no-elicitation").await;
    let answer = server.call_tool(&other, "fx__ask", json!({})).await;
    let error: Value = serde_json::from_str(&text(&answer).unwrap()).unwrap();
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("elicitation capability"),
        "{error}"
    );

    // The upstream takes its question back before any answer: the client
    // is told, and the call goes on without one.
    let response = server
        .post(
            json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"fx__withdraw","arguments":{}}}),
            &headers,
        )
        .await;
    let messages = tokio::time::timeout(WAIT, SseReader::new(response).messages())
        .await
        .expect("answered without the client answering the question");
    let ask = messages
        .iter()
        .find(|m| m["method"] == "elicitation/create")
        .expect("the question reached the client");
    let told = messages
        .iter()
        .position(|m| {
            m["method"] == "notifications/cancelled" && m["params"]["requestId"] == ask["id"]
        })
        .unwrap_or_else(|| panic!("the client is told, under its own id: {messages:?}"));
    let answer = messages.iter().position(|m| m["id"] == 7).unwrap();
    assert!(told < answer, "{messages:?}");
    assert_eq!(text(&messages[answer]), Ok("withdrawn".into()));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_upstreams_are_reported_while_a_good_one_serves() {
    let fixture = fixture();
    let script = fixture.trim_start_matches("fx=python3 ").to_string();
    let table = |env: Value| -> Transport {
        serde_json::from_value(json!({
            "command": "python3", "args": [script], "env": env, "backoff": "50ms"
        }))
        .unwrap()
    };
    let upstreams = BTreeMap::from([
        (
            "missing".to_string(),
            serde_json::from_value(json!({ "command": "/nonexistent/mcp-server" })).unwrap(),
        ),
        (
            "quits".to_string(),
            table(json!({"FIXTURE_EXIT_AT_ONCE": "1"})),
        ),
        ("noisy".to_string(), table(json!({"FIXTURE_GARBAGE": "1"}))),
    ]);
    let server = TestServer::start_with(Settings {
        stdio: vec![fixture.clone()],
        upstream: vec!["web=http://127.0.0.1:1/mcp".into()],
        upstreams,
        ..Settings::default()
    })
    .await;
    let session = server.initialize("2025-11-25", "claude-code").await;
    let answer = server
        .call_tool(&session, "fx__echo", json!({"text": "still here"}))
        .await;
    assert_eq!(text(&answer), Ok("still here".into()));
    let answer = server
        .call_tool(
            &session,
            "noisy__echo",
            json!({"text": "through the noise"}),
        )
        .await;
    assert_eq!(text(&answer), Ok("through the noise".into()));

    let reports = server.server.upstreams.reports();
    let report = |name: &str| reports.iter().find(|r| r.name.as_str() == name).unwrap();
    assert_eq!(report("missing").status, UpstreamStatus::Down);
    assert!(
        report("missing")
            .last_error
            .as_deref()
            .unwrap()
            .contains("/nonexistent/mcp-server"),
        "{:?}",
        report("missing")
    );
    assert_eq!(report("quits").status, UpstreamStatus::Down);
    assert!(
        report("quits")
            .last_error
            .as_deref()
            .unwrap()
            .contains("refusing to start"),
        "the child's last stderr line: {:?}",
        report("quits")
    );
    assert_eq!(report("noisy").status, UpstreamStatus::Up);
    assert_eq!(report("web").status, UpstreamStatus::Down);
    assert!(report("web").last_error.is_some(), "{:?}", report("web"));
    server.stop().await;
}

/// An HTTP upstream that takes connections and never answers holds the
/// gateway's start for one `connect_timeout`, not one for each way of
/// asking it (`server/discover`, then `initialize`), and is reported down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_http_upstream_holds_the_start_for_one_connect_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let connect_timeout = Duration::from_secs(2);
    let upstreams = BTreeMap::from([(
        "silent".to_string(),
        serde_json::from_value(json!({ "url": url, "connect_timeout": "2s" })).unwrap(),
    )]);
    let started = std::time::Instant::now();
    let server = TestServer::start_with(Settings {
        upstreams,
        ..Settings::default()
    })
    .await;
    let waited = started.elapsed();
    assert!(
        waited >= connect_timeout && waited < connect_timeout * 7 / 4,
        "the start waited {waited:?}"
    );
    let report = &server.server.upstreams.reports()[0];
    assert_eq!(report.status, UpstreamStatus::Down);
    assert!(
        report
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("did not answer server/discover within 2s")),
        "{report:?}"
    );
    server.stop().await;
    silent.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_child_too_many_is_a_clear_error() {
    let fixture = fixture();
    let script = fixture.trim_start_matches("fx=python3 ").to_string();
    let upstreams = BTreeMap::from([(
        "fx".to_string(),
        serde_json::from_value(json!({
            "command": "python3", "args": [script], "max_processes": 1
        }))
        .unwrap(),
    )]);
    let server = TestServer::start_with(Settings {
        upstreams,
        ..Settings::default()
    })
    .await;
    // The catalog's own child is let go of after the start.
    eventually(WAIT, || async {
        server.server.upstreams.reports()[0].processes == 0
    })
    .await;
    let a = server.initialize("2025-11-25", "client-a").await;
    let b = server.initialize("2025-11-25", "client-b").await;
    pid(&server, &a).await;
    let refused = server.call_tool(&b, "fx__pid", json!({})).await;
    let error = text(&refused).unwrap_err();
    assert!(
        error.contains("fx") && error.contains("max_processes") && error.contains('1'),
        "{error}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_client_calls_through_on_a_pooled_upstream_session() {
    let server = TestServer::start_with(Settings {
        stdio: vec![fixture()],
        upstream_idle_timeout: Some(Duration::from_secs(120)),
        ..Settings::default()
    })
    .await;
    let call = |tool: &'static str| {
        let server = &server;
        async move {
            let response: Value = server
                .post(
                    stateless(
                        "tools/call",
                        json!({"name": tool, "arguments": {"text": "stateless"}}),
                    ),
                    &[
                        ("mcp-protocol-version", "2026-07-28"),
                        ("mcp-method", "tools/call"),
                        ("mcp-name", tool),
                    ],
                )
                .await
                .json()
                .await
                .unwrap();
            response
        }
    };
    assert_eq!(text(&call("fx__echo").await), Ok("stateless".into()));
    let first = text(&call("fx__pid").await).unwrap();
    let again = text(&call("fx__pid").await).unwrap();
    assert_eq!(first, again, "the client keeps its upstream session");

    // Idle past the pool's timeout, by the lifecycle's clock: let go of.
    let pid: u32 = first.parse().unwrap();
    server.clock.advance(Duration::from_secs(60));
    assert_eq!(text(&call("fx__pid").await), Ok(first.clone()));
    server.clock.advance(Duration::from_secs(100));
    assert!(alive(pid), "used 100 s ago: kept");
    server.clock.advance(Duration::from_secs(30));
    gone(pid).await;
    let next = text(&call("fx__pid").await).unwrap();
    assert_ne!(
        next, first,
        "a new upstream session after the old one expired"
    );
    server.stop().await;
}

/// A tool's text through the real binary, on a session.
async fn call_process(gw: &Gateway, session: &str, tool: &str) -> Result<String, String> {
    let response = gw
        .post(
            Some(session),
            json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":tool,"arguments":{"text":"hi"}}}),
        )
        .await
        .expect("an answer");
    assert_eq!(response.status(), 200, "never a 404 for the session");
    text(&response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_gateway_kill_9_no_child_is_left_and_the_session_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let script = fixture().trim_start_matches("fx=python3 ").to_string();
    let config = dir.path().join("sessiongate.toml");
    std::fs::write(
        &config,
        format!(
            "[upstreams.fx]\ncommand = \"python3\"\nargs = [{script:?}]\n\n\
             [upstreams.escapes]\ncommand = \"python3\"\nargs = [{script:?}]\n\
             env = {{ FIXTURE_OUTLIVE = \"1\" }}\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        dir.path().to_str().unwrap(),
    ];
    let gw = Gateway::start(common::BIN, port, &args).await;
    let session = gw.initialize("claude-code").await.unwrap();
    let child: u32 = call_process(&gw, &session, "fx__pid")
        .await
        .unwrap()
        .parse()
        .unwrap();
    let escaped: u32 = call_process(&gw, &session, "escapes__pid")
        .await
        .unwrap()
        .parse()
        .unwrap();

    gw.kill();
    gone(child).await;
    assert!(
        alive(escaped),
        "a child that cleared its parent-death signal outlives the gateway"
    );

    let gw = Gateway::start(common::BIN, port, &args).await;
    gone(escaped).await;
    assert_eq!(
        call_process(&gw, &session, "fx__echo").await,
        Ok("hi".into())
    );
    let again: u32 = call_process(&gw, &session, "fx__pid")
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(again, child, "a new child for the restored session");
    gw.stop();
    gone(again).await;
}

/// A session's own child that adds a tool tells its session alone: that
/// session lists the tool (told by `tools/list_changed`) and calls it,
/// logged under the upstream; another session, whose child has no such
/// tool, neither lists nor calls it. A child started again offers what it
/// starts with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_tool_list_change_reaches_its_session_alone() {
    let server = gateway(vec![fixture()]).await;
    let session = server.initialize("2025-11-25", "claude-code").await;
    let other = server.initialize("2025-11-25", "cursor").await;
    let listed = |session: String| {
        let server = &server;
        async move {
            let listed = request(server, &session, "tools/list", json!({})).await;
            listed["result"]["tools"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == "fx__extra")
        }
    };
    // The other session's child runs too.
    pid(&server, &other).await;
    let answer = server.call_tool(&session, "fx__add_tool", json!({})).await;
    assert_eq!(text(&answer), Ok("added".into()));
    eventually(WAIT, || listed(session.clone())).await;
    let answer = server
        .call_tool(&session, "fx__extra", json!({"text": "mine"}))
        .await;
    assert_eq!(text(&answer), Ok("mine".into()));
    // Logged under its upstream, as the catalog's tools are.
    let path = format!("/api/mcp/sessions/{session}");
    eventually(WAIT, || async {
        server.admin_get(&path).await["requests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["tool_name"] == "fx__extra" && r["upstream"] == "fx")
    })
    .await;

    assert!(
        !listed(other.clone()).await,
        "another session's tool is not listed"
    );
    let answer = server
        .call_tool(&other, "fx__extra", json!({"text": "theirs"}))
        .await;
    assert_eq!(text(&answer), Err("Unknown tool: fx__extra".into()));

    // Its child killed, the session's next one has no such tool.
    let child = pid(&server, &session).await;
    kill_9(child);
    gone(child).await;
    assert_ne!(pid(&server, &session).await, child);
    assert!(
        !listed(session.clone()).await,
        "the killed child's tool is still listed"
    );
    server.stop().await;
}

/// The method of a stream's next message.
async fn next_method(stream: &mut SseReader) -> Option<String> {
    let message = stream.next().await?.message()?;
    message["method"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_child_changes_its_lists_for_its_stateless_client_alone() {
    let server = gateway(vec![fixture()]).await;
    // Two 2026-07-28 clients (cursor-test and stateless-test), each with
    // its own pooled upstream session, and each listening for tool list
    // changes.
    let mine = |method: &str, params: Value| stateless(method, params);
    let theirs = |method: &str, params: Value| request_2026(1, method, params, json!({}));
    let listen = |body: Value| {
        let server = &server;
        async move {
            let response = send_2026(server, body, None).await;
            assert_eq!(response.status(), 200);
            let mut stream = SseReader::new(response);
            assert_eq!(
                next_method(&mut stream).await.as_deref(),
                Some("notifications/subscriptions/acknowledged")
            );
            stream
        }
    };
    let filter = json!({"notifications": {"toolsListChanged": true}});
    let mut my_stream = listen(mine("subscriptions/listen", filter.clone())).await;
    let mut their_stream = listen(theirs("subscriptions/listen", filter)).await;
    let call = |body: Value| {
        let server = &server;
        async move {
            let name = body["params"]["name"].as_str().unwrap().to_string();
            post_2026(server, body, &name).await
        }
    };
    let tool = |name: &str, text: &str| json!({"name": name, "arguments": {"text": text}});
    let listed = |body: Value| {
        let server = &server;
        async move {
            let listed: Value = send_2026(server, body, None).await.json().await.unwrap();
            listed["result"]["tools"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == "fx__extra")
        }
    };
    // Their pooled child runs too.
    assert_eq!(
        text(&call(theirs("tools/call", tool("fx__echo", "up"))).await),
        Ok("up".into())
    );

    let answer = call(mine(
        "tools/call",
        json!({"name": "fx__add_tool", "arguments": {}}),
    ))
    .await;
    assert_eq!(text(&answer), Ok("added".into()));
    assert_eq!(
        next_method(&mut my_stream).await.as_deref(),
        Some("notifications/tools/list_changed")
    );
    assert!(
        listed(mine("tools/list", json!({}))).await,
        "my tool is listed to me"
    );
    assert_eq!(
        text(&call(mine("tools/call", tool("fx__extra", "mine"))).await),
        Ok("mine".into())
    );

    assert!(
        !listed(theirs("tools/list", json!({}))).await,
        "another client's tool is listed to them"
    );
    assert_eq!(
        text(&call(theirs("tools/call", tool("fx__extra", "theirs"))).await),
        Err("Unknown tool: fx__extra".into())
    );
    // Announced on one lock with mine: had theirs been told, it would be
    // queued by now.
    let heard = tokio::time::timeout(Duration::from_millis(300), their_stream.next()).await;
    assert!(
        heard.is_err(),
        "another client's stream was told: {:?}",
        heard.ok().flatten().and_then(|e| e.message())
    );

    // Idle past the pool's five minutes, my child is let go of, and what
    // it had added with it: I am told.
    server.clock.advance(Duration::from_secs(301));
    assert_eq!(
        next_method(&mut my_stream).await.as_deref(),
        Some("notifications/tools/list_changed")
    );
    assert!(
        !listed(mine("tools/list", json!({}))).await,
        "the let-go child's tool is still listed"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_client_answers_an_upstream_elicitation_as_input_required() {
    let server = gateway(vec![fixture()]).await;
    let call = |extra: Value| {
        let server = &server;
        async move {
            let mut params = json!({"name": "fx__ask", "arguments": {}});
            params
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let mut body = stateless("tools/call", params);
            body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] =
                json!({"elicitation": {}});
            let response: Value = server
                .post(
                    body,
                    &[
                        ("mcp-protocol-version", "2026-07-28"),
                        ("mcp-method", "tools/call"),
                        ("mcp-name", "fx__ask"),
                    ],
                )
                .await
                .json()
                .await
                .unwrap();
            response
        }
    };
    let first = call(json!({})).await;
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    let asked = &first["result"]["inputRequests"]["fx-1"];
    assert_eq!(asked["method"], "elicitation/create", "{first}");
    assert_eq!(asked["params"]["message"], "Your name?");
    let state = first["result"]["requestState"].clone();

    let answer = json!({"action": "accept", "content": {"name": "Grace"}});
    let done = call(json!({"inputResponses": {"fx-1": answer}, "requestState": state})).await;
    let content: Value = serde_json::from_str(&text(&done).unwrap()).unwrap();
    assert_eq!(content["content"]["name"], "Grace", "{done}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_call_is_cancelled_upstream() {
    let server = gateway(vec![fixture()]).await;
    let session = server.initialize("2025-11-25", "claude-code").await;
    let marker = server.data_dir().join("hang");
    let hanging = server.call_tool(
        &session,
        "fx__hang",
        json!({"marker": marker.to_str().unwrap()}),
    );
    let cancel = async {
        eventually(WAIT, || async { marker.exists() }).await;
        let response = server
            .post(
                json!({"jsonrpc":"2.0","method":"notifications/cancelled",
                    "params":{"requestId":7,"reason":"changed my mind"}}),
                &[("mcp-session-id", &session)],
            )
            .await;
        assert_eq!(response.status(), 202);
    };
    let (answer, ()) = tokio::join!(hanging, cancel);
    assert!(text(&answer).unwrap_err().contains("cancelled"), "{answer}");
    let cancelled = marker.with_extension("cancelled");
    eventually(WAIT, || async { cancelled.exists() }).await;
    let answer = server
        .call_tool(&session, "fx__echo", json!({"text": "next"}))
        .await;
    assert_eq!(text(&answer), Ok("next".into()));
    server.stop().await;
}

/// The fixture as the lone upstream `fx`, one child for every session, with
/// no built-ins (so its names are bare).
async fn shared_fixture() -> TestServer {
    let script = fixture().trim_start_matches("fx=python3 ").to_string();
    let upstreams = BTreeMap::from([(
        "fx".to_string(),
        serde_json::from_value(json!({
            "command": "python3", "args": [script], "mode": "shared"
        }))
        .unwrap(),
    )]);
    TestServer::start_with(Settings {
        upstreams,
        no_builtin_tools: true,
        ..Settings::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_child_serves_every_session_under_bare_names() {
    let server = shared_fixture().await;
    let a = server.initialize("2025-11-25", "client-a").await;
    let b = server.initialize("2025-11-25", "client-b").await;
    let pid_of = |session: &str| {
        let server = &server;
        let session = session.to_string();
        async move {
            let answer = server.call_tool(&session, "pid", json!({})).await;
            text(&answer).unwrap().parse::<u32>().unwrap()
        }
    };
    let shared = pid_of(&a).await;
    assert_eq!(pid_of(&b).await, shared, "one child for every session");
    let answer = server.call_tool(&a, "echo", json!({"text": "bare"})).await;
    assert_eq!(text(&answer), Ok("bare".into()));

    // Ending a session does not end the shared child; a crash heals it.
    assert!(server.delete(&a).await.status().is_success());
    assert_eq!(pid_of(&b).await, shared);
    kill_9(shared);
    gone(shared).await;
    assert_ne!(pid_of(&b).await, shared);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_upstream_backs_off_with_a_clear_error() {
    let script = fixture().trim_start_matches("fx=python3 ").to_string();
    let upstreams = BTreeMap::from([(
        "crashy".to_string(),
        serde_json::from_value(json!({
            "command": "python3", "args": [script],
            "env": {"FIXTURE_EXIT_ON_CALL": "1"},
            "backoff": "1h",
        }))
        .unwrap(),
    )]);
    let server = TestServer::start_with(Settings {
        upstreams,
        ..Settings::default()
    })
    .await;
    let mut events = server.server.upstreams.subscribe();
    let session = server.initialize("2025-11-25", "claude-code").await;

    // Read-only, so retried once on a new child, which crashes too.
    let answer = server
        .call_tool(&session, "crashy__echo", json!({"text": "x"}))
        .await;
    let error = text(&answer).unwrap_err();
    assert!(
        error.contains("crashy restarted during the call"),
        "{error}"
    );
    assert!(error.contains("crashing on call"), "{error}");
    let restarted = events.recv().await.unwrap();
    assert!(
        matches!(restarted, UpstreamEvent::UpstreamRestarted { ref upstream, .. } if upstream.as_str() == "crashy"),
        "{restarted:?}"
    );

    // Two crashes in a row: no new child for a while, at once a clear error.
    let answer = server
        .call_tool(&session, "crashy__echo", json!({"text": "x"}))
        .await;
    let error = text(&answer).unwrap_err();
    assert!(
        error.contains("upstream crashy is down") && error.contains("crashing on call"),
        "{error}"
    );
    let report = &server.server.upstreams.reports()[0];
    assert_eq!(report.status, UpstreamStatus::Down, "{report:?}");
    eventually(WAIT, || async {
        server.server.upstreams.reports()[0].processes == 0
    })
    .await;
    server.stop().await;
}

/// A request on a session; its JSON-RPC response.
async fn request(server: &TestServer, session: &str, method: &str, params: Value) -> Value {
    server
        .post(
            json!({"jsonrpc":"2.0","id":11,"method":method,"params":params}),
            &[("mcp-session-id", session)],
        )
        .await
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_resources_completions_and_subscriptions_pass_through() {
    let server = gateway(vec![fixture()]).await;
    let session = server.initialize("2025-11-25", "claude-code").await;

    let prompts = request(&server, &session, "prompts/list", json!({})).await;
    assert!(
        prompts["result"]["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fx__greet"),
        "{prompts}"
    );
    let got = request(
        &server,
        &session,
        "prompts/get",
        json!({"name": "fx__greet", "arguments": {"who": "Ada"}}),
    )
    .await;
    assert_eq!(
        got["result"]["messages"][0]["content"]["text"], "Hello Ada",
        "{got}"
    );
    let completed = request(
        &server,
        &session,
        "completion/complete",
        json!({"ref": {"type": "ref/prompt", "name": "fx__greet"},
               "argument": {"name": "who", "value": "A"}}),
    )
    .await;
    assert_eq!(
        completed["result"]["completion"]["values"],
        json!(["Ada", "Alan"]),
        "{completed}"
    );

    let listed = request(&server, &session, "resources/list", json!({})).await;
    assert!(
        listed["result"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["uri"] == "fx://readme"),
        "{listed}"
    );
    let read = |uri: &'static str| {
        let (server, session) = (&server, &session);
        async move { request(server, session, "resources/read", json!({ "uri": uri })).await }
    };
    assert_eq!(
        read("fx://readme").await["result"]["contents"][0]["text"],
        "read me"
    );
    assert_eq!(
        read("fx://notes/7").await["result"]["contents"][0]["text"],
        "note 7",
        "a template's resource"
    );
    assert_eq!(read("nowhere://x").await["error"]["code"], -32002);

    // Subscribed: the upstream hears of it, again after a restart, and its
    // updates reach the session's stream.
    let subscribed = request(
        &server,
        &session,
        "resources/subscribe",
        json!({"uri": "fx://notes/7"}),
    )
    .await;
    assert_eq!(subscribed["result"], json!({}), "{subscribed}");
    let subscriptions = server
        .call_tool(&session, "fx__subscriptions", json!({}))
        .await;
    assert_eq!(text(&subscriptions), Ok(r#"["fx://notes/7"]"#.into()));
    let child = pid(&server, &session).await;
    kill_9(child);
    gone(child).await;
    let subscriptions = server
        .call_tool(&session, "fx__subscriptions", json!({}))
        .await;
    assert_eq!(
        text(&subscriptions),
        Ok(r#"["fx://notes/7"]"#.into()),
        "restored on the new child"
    );

    let mut events = server.open_stream(&session).await;
    let touched = server
        .call_tool(&session, "fx__touch", json!({"uri": "fx://notes/7"}))
        .await;
    assert_eq!(text(&touched), Ok("touched".into()));
    let updated = tokio::time::timeout(WAIT, async {
        loop {
            let event = events.next().await.expect("the stream stays open");
            if let Some(message) = event.message() {
                if message["method"] == "notifications/resources/updated" {
                    return message;
                }
            }
        }
    })
    .await
    .expect("the update arrives");
    assert_eq!(updated["params"]["uri"], "fx://notes/7");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_killed_all_at_once_are_healed_not_backed_off() {
    let server = gateway(vec![fixture()]).await;
    let mut sessions = Vec::new();
    for i in 0..4 {
        sessions.push(
            server
                .initialize("2025-11-25", &format!("client-{i}"))
                .await,
        );
    }
    let mut pids = Vec::new();
    for session in &sessions {
        pids.push(pid(&server, session).await);
    }
    for &child in &pids {
        kill_9(child);
    }
    for &child in &pids {
        gone(child).await;
    }
    for session in &sessions {
        let answer = server
            .call_tool(session, "fx__echo", json!({"text": "healed"}))
            .await;
        assert_eq!(text(&answer), Ok("healed".into()), "{answer}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_a_shared_child_each_get_their_own_answer() {
    let upstreams = BTreeMap::from([(
        "echo".to_string(),
        serde_json::from_value(json!({
            "command": rmcp_baseline().trim_end_matches(" --stdio"),
            "args": ["--stdio"],
            "mode": "shared",
        }))
        .unwrap(),
    )]);
    let server = TestServer::start_with(Settings {
        upstreams,
        ..Settings::default()
    })
    .await;
    let mut sessions = Vec::new();
    for i in 0..4 {
        sessions.push(
            server
                .initialize("2025-11-25", &format!("client-{i}"))
                .await,
        );
    }
    let calls = sessions.iter().enumerate().flat_map(|(s, session)| {
        let server = &server;
        (0..10).map(move |n| async move {
            let mine = format!("session {s} call {n}");
            let answer = server
                .call_tool(session, "echo__echo", json!({ "text": mine }))
                .await;
            assert_eq!(text(&answer), Ok(mine));
        })
    });
    futures::future::join_all(calls).await;
    assert_eq!(server.server.upstreams.reports()[0].processes, 1);
    server.stop().await;
}

/// A 2026-07-28 client that stops reading while its call streams progress
/// (its stream, unlike a session's, is not kept to be resumed, so nothing
/// takes what it does not read) must not hold up another client of the
/// same shared child: the gateway keeps reading the child, which so gets
/// to the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_does_not_stall_a_shared_child_for_another() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = shared_fixture().await;

    // Far more progress than the sockets between hold, on a connection
    // read only to see the stream start.
    let body = stateless(
        "tools/call",
        json!({"name": "progress", "arguments": {"steps": 100000}}),
    );
    let mut body = body;
    body["params"]["_meta"]["progressToken"] = json!(1);
    let body = body.to_string();
    let host = server.base.trim_start_matches("http://").to_string();
    let mut socket = tokio::net::TcpStream::connect(&host).await.unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\nmcp-protocol-version: 2026-07-28\r\n\
         mcp-method: tools/call\r\nmcp-name: progress\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(body.as_bytes()).await.unwrap();
    let mut start = [0u8; 512];
    let read = socket.read(&mut start).await.unwrap();
    let start = String::from_utf8_lossy(&start[..read]);
    assert!(
        start.starts_with("HTTP/1.1 200") && start.contains("text/event-stream"),
        "{start}"
    );
    // Time for the child to get well into its progress.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let answer = tokio::time::timeout(
        WAIT,
        post_2026(
            &server,
            stateless(
                "tools/call",
                json!({"name": "echo", "arguments": {"text": "through"}}),
            ),
            "echo",
        ),
    )
    .await
    .expect("the other client is answered while the first is not read");
    assert_eq!(text(&answer), Ok("through".into()));
    drop(socket);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_running_when_its_session_ends_is_not_healed_onto_a_new_child() {
    let server = gateway(vec![fixture()]).await;
    let session = server.initialize("2025-11-25", "claude-code").await;
    let child = pid(&server, &session).await;
    let marker = server.data_dir().join("waiting");
    // Read-only, so a restart during it would be retried.
    let waiting = server.call_tool(
        &session,
        "fx__wait",
        json!({"marker": marker.to_str().unwrap()}),
    );
    let end = async {
        eventually(WAIT, || async { marker.exists() }).await;
        assert!(server.delete(&session).await.status().is_success());
    };
    let (answer, ()) = tokio::join!(waiting, end);
    assert!(
        text(&answer).unwrap_err().contains("session ended"),
        "{answer}"
    );
    gone(child).await;
    eventually(WAIT, || async {
        server.server.upstreams.reports()[0].processes == 0
    })
    .await;
    server.stop().await;
}

/// A 2026-07-28 request's body, declaring `capabilities`.
fn request_2026(id: u64, method: &str, params: Value, capabilities: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "stateless-test", "version": "1.0"},
        "io.modelcontextprotocol/clientCapabilities": capabilities,
    });
    json!({"jsonrpc":"2.0","id":id,"method":method,"params":params})
}

/// Posts a 2026-07-28 request with the headers that mirror it (`name`,
/// if any, is what `Mcp-Name` carries).
async fn send_2026(server: &TestServer, body: Value, name: Option<&str>) -> reqwest::Response {
    let method = body["method"].as_str().unwrap().to_string();
    let mut headers = vec![
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", method.as_str()),
    ];
    headers.extend(name.map(|name| ("mcp-name", name)));
    server.post(body, &headers).await
}

/// Posts a 2026-07-28 request as [`send_2026`] does; its JSON body, read
/// off an SSE answer too.
async fn post_2026(server: &TestServer, body: Value, name: &str) -> Value {
    let response = send_2026(server, body, Some(name)).await;
    let sse = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
    if !sse {
        return response.json().await.unwrap();
    }
    SseReader::new(response)
        .messages()
        .await
        .into_iter()
        .find(|m| m.get("id").is_some() && m.get("method").is_none())
        .expect("the response")
}

/// A gateway with its built-in tools and sessiongate `serve --conformance`
/// as the HTTP upstream `conf`, and that upstream.
async fn gateway_to_conformance() -> (TestServer, TestServer) {
    let upstream = TestServer::start_with(Settings {
        conformance: true,
        ..Settings::default()
    })
    .await;
    let gateway = TestServer::start_with(Settings {
        upstream: vec![format!("conf={}/mcp", upstream.base)],
        ..Settings::default()
    })
    .await;
    (gateway, upstream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_upstreams_input_requests_pass_through_with_each_requests_capabilities() {
    let (gateway, upstream) = gateway_to_conformance().await;
    let tool = "conf__test_input_required_result_capabilities";
    let call = |id, capabilities| {
        let body = request_2026(
            id,
            "tools/call",
            json!({"name": tool, "arguments": {}}),
            capabilities,
        );
        post_2026(&gateway, body, tool)
    };
    let methods = |response: &Value| -> Vec<String> {
        let requests = response["result"]["inputRequests"].as_object().unwrap();
        let mut methods: Vec<String> = requests
            .values()
            .map(|r| r["method"].as_str().unwrap().to_string())
            .collect();
        methods.sort();
        methods.dedup();
        methods
    };
    // The same client, one capability per request: each request's own.
    let asked = call(1, json!({"elicitation": {}})).await;
    assert_eq!(asked["result"]["resultType"], "input_required", "{asked}");
    assert_eq!(methods(&asked), ["elicitation/create"], "{asked}");
    let asked = call(2, json!({"sampling": {}})).await;
    assert_eq!(methods(&asked), ["sampling/createMessage"], "{asked}");

    // The upstream's keys and state go to the client, the client's answers
    // and that state back to the upstream, untouched.
    let tool = "conf__test_input_required_result_elicitation";
    let params = json!({"name": tool, "arguments": {}});
    let caps = json!({"elicitation": {}});
    let asked = post_2026(
        &gateway,
        request_2026(3, "tools/call", params.clone(), caps.clone()),
        tool,
    )
    .await;
    let result = &asked["result"];
    assert_eq!(result["resultType"], "input_required", "{asked}");
    let requests = result["inputRequests"].as_object().unwrap();
    assert!(
        requests.keys().all(|k| !k.starts_with("conf-")),
        "the upstream's own keys: {asked}"
    );
    let responses: serde_json::Map<String, Value> = requests
        .keys()
        .map(|k| {
            (
                k.clone(),
                json!({"action": "accept", "content": {"name": "Ada", "confirmed": true}}),
            )
        })
        .collect();
    let mut retry = params.clone();
    retry["inputResponses"] = Value::Object(responses);
    if let Some(state) = result.get("requestState") {
        retry["requestState"] = state.clone();
    }
    let done = post_2026(&gateway, request_2026(4, "tools/call", retry, caps), tool).await;
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    assert!(done["result"]["content"].is_array(), "{done}");

    let reports = gateway.admin_get("/api/mcp/upstreams").await;
    let conf = &reports["upstreams"][0];
    assert_eq!(conf["name"], "conf");
    assert_eq!(conf["status"], "up", "{reports}");
    assert!(conf["requests"].as_u64().unwrap() >= 4, "{reports}");
    gateway.stop().await;
    upstream.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstreams_tasks_are_reached_by_their_owner_alone_even_after_a_restart() {
    let (gateway, upstream) = gateway_to_conformance().await;
    let tasks = json!({"extensions": {"io.modelcontextprotocol/tasks": {}}});
    let tool = "conf__slow_compute";
    let created = post_2026(
        &gateway,
        request_2026(
            1,
            "tools/call",
            json!({"name": tool, "arguments": {"seconds": 0, "label": "through"}}),
            tasks.clone(),
        ),
        tool,
    )
    .await;
    assert_eq!(created["result"]["resultType"], "task", "{created}");
    let id = created["result"]["taskId"].as_str().unwrap().to_string();
    assert!(
        id.starts_with("conf__"),
        "beside the built-ins, the upstream's tasks are named: {id}"
    );

    let get = |n| request_2026(n, "tasks/get", json!({"taskId": id}), tasks.clone());
    let mut task = post_2026(&gateway, get(2), &id).await;
    for _ in 0..100 {
        if task["result"]["status"] != "working" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        task = post_2026(&gateway, get(2), &id).await;
    }
    assert_eq!(task["result"]["taskId"], id.as_str(), "{task}");
    assert_eq!(task["result"]["status"], "completed", "{task}");
    assert!(
        task["result"]["result"].to_string().contains("through"),
        "{task}"
    );

    // The gateway started again on its data (as after a restart) finds
    // the task by its id alone.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        gateway.data_dir().join("request-state-key"),
        dir.path().join("request-state-key"),
    )
    .unwrap();
    let url = format!("conf={}/mcp", upstream.base);
    let restarted = Gateway::start(
        common::BIN,
        free_port(),
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--upstream",
            &url,
        ],
    )
    .await;
    let found: Value = restarted
        .http
        .post(format!("{}/mcp", restarted.base))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tasks/get")
        .header("mcp-name", &id)
        .json(&get(3))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["result"]["status"], "completed", "{found}");
    restarted.stop();

    // The upstream sees every client as the gateway: the gateway keeps
    // one client from another's task, and a gateway with another key
    // knows none of them.
    let mut other = get(4);
    other["params"]["_meta"]["io.modelcontextprotocol/clientInfo"]["name"] = json!("another");
    let elsewhere = TestServer::start_with(Settings {
        upstream: vec![url.clone()],
        ..Settings::default()
    })
    .await;
    for refused in [
        post_2026(&gateway, other, &id).await,
        post_2026(&elsewhere, get(5), &id).await,
    ] {
        assert_eq!(refused["error"]["code"], -32602, "{refused}");
        assert_eq!(
            refused["error"]["message"], "Failed to retrieve task: Task not found",
            "{refused}"
        );
    }
    elsewhere.stop().await;

    // A task id of the gateway's own is the gateway's to answer.
    let own = "0123456789abcdef0123456789abcdef";
    let missing = post_2026(
        &gateway,
        request_2026(3, "tasks/cancel", json!({"taskId": own}), tasks.clone()),
        own,
    )
    .await;
    assert_eq!(missing["error"]["code"], -32602, "{missing}");
    assert!(
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not found"),
        "{missing}"
    );
    gateway.stop().await;
    upstream.stop().await;
}

/// The 2026-07-28-only fixture server, started; its child and `/mcp` URL.
fn only_2026_upstream() -> (std::process::Child, String) {
    http_2026_fixture(&[])
}

/// The 2026-07-28 fixture, started with `args`; its URL.
fn http_2026_fixture(args: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testkit/fixtures/http_2026_mcp_server.py");
    let mut child = std::process::Command::new("python3")
        .arg(path)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the fixture");
    let mut port = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    (child, format!("http://127.0.0.1:{}/mcp", port.trim()))
}

/// A resource update on a stream within half a second.
async fn resource_updated(stream: &mut SseReader) -> Option<Value> {
    let wait = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            let message = stream.next().await?.message();
            if let Some(m) = message.filter(|m| m["method"] == "notifications/resources/updated") {
                return Some(m);
            }
        }
    });
    wait.await.ok().flatten()
}

/// Once the 2026 fixture's open listen streams name `expected` (within
/// 10 s): what the gateway asks the upstream for.
async fn upstream_listens_for(server: &TestServer, session: &str, expected: &[&str]) {
    let mut named = Value::Null;
    for _ in 0..100 {
        let answer = server.call_tool(session, "named", json!({})).await;
        named = serde_json::from_str(&text(&answer).unwrap()).unwrap();
        if named == json!(expected) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the upstream is asked for {named}, not {expected:?}");
}

/// A gateway in front of the 2026 fixture (started with `args`): a
/// 2025-11-25 session subscribed to one resource, its stream open, and a
/// 2026-07-28 client's `subscriptions/listen` stream naming another.
struct Subscribers {
    fixture: std::process::Child,
    server: TestServer,
    session: String,
    session_stream: SseReader,
    listen_stream: SseReader,
}

impl Subscribers {
    async fn start(args: &[&str], session_uri: &str, listen_uri: &str) -> Self {
        let (fixture, url) = http_2026_fixture(args);
        let server = TestServer::start_with(Settings {
            upstream: vec![format!("notes={url}")],
            ..Settings::default()
        })
        .await;
        let session = server.initialize("2025-11-25", "zed-test").await;
        let subscribed = request(
            &server,
            &session,
            "resources/subscribe",
            json!({ "uri": session_uri }),
        )
        .await;
        assert_eq!(subscribed["result"], json!({}), "{subscribed}");
        let session_stream = server.open_stream(&session).await;
        let listen = stateless(
            "subscriptions/listen",
            json!({"notifications": {"resourceSubscriptions": [listen_uri]}}),
        );
        let mut listen_stream = SseReader::new(send_2026(&server, listen, None).await);
        assert_eq!(
            next_method(&mut listen_stream).await.as_deref(),
            Some("notifications/subscriptions/acknowledged")
        );
        Subscribers {
            fixture,
            server,
            session,
            session_stream,
            listen_stream,
        }
    }

    async fn upstream_listens_for(&self, expected: &[&str]) {
        upstream_listens_for(&self.server, &self.session, expected).await;
    }

    /// Has the upstream tell the streams subscribed that `uri` changed.
    async fn touch(&self, uri: &str) {
        let touched = self
            .server
            .call_tool(&self.session, "touch", json!({ "uri": uri }))
            .await;
        assert_eq!(text(&touched), Ok("touched".into()));
    }

    async fn stop(mut self) {
        self.server.stop().await;
        self.fixture.kill().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_only_upstreams_resource_updates_reach_its_subscribers() {
    let mut on = Subscribers::start(&[], "note://a", "note://a").await;
    // The gateway's own listen stream to the upstream opens in the
    // background, asking for the resource listed.
    on.upstream_listens_for(&["note://a"]).await;
    on.touch("note://a").await;
    let heard = resource_updated(&mut on.session_stream)
        .await
        .expect("the session hears of the update");
    assert_eq!(heard["params"]["uri"], "note://a", "{heard}");
    let told = resource_updated(&mut on.listen_stream)
        .await
        .expect("the listening client hears of it too");
    assert_eq!(told["params"]["uri"], "note://a", "{told}");
    on.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_only_upstream_is_asked_for_the_template_resources_clients_subscribe_to() {
    // A session subscribed to a resource of the template, a 2026-07-28
    // client listening for another: the upstream is asked for both.
    let mut on = Subscribers::start(&[], "note://b", "note://c").await;
    on.upstream_listens_for(&["note://a", "note://b", "note://c"])
        .await;

    // Each update reaches the client subscribed to it.
    on.touch("note://b").await;
    let heard = resource_updated(&mut on.session_stream)
        .await
        .expect("the session hears of its resource's update");
    assert_eq!(heard["params"]["uri"], "note://b", "{heard}");
    on.touch("note://c").await;
    let told = resource_updated(&mut on.listen_stream)
        .await
        .expect("the listening client hears of its resource's update");
    assert_eq!(told["params"]["uri"], "note://c", "{told}");
    assert!(
        resource_updated(&mut on.session_stream).await.is_none(),
        "the session is not told of a resource it did not subscribe to"
    );

    // Unsubscribed and closed, neither is asked for any more.
    let unsubscribed = request(
        &on.server,
        &on.session,
        "resources/unsubscribe",
        json!({"uri": "note://b"}),
    )
    .await;
    assert_eq!(unsubscribed["result"], json!({}), "{unsubscribed}");
    drop(on.listen_stream);
    upstream_listens_for(&on.server, &on.session, &["note://a"]).await;
    on.server.stop().await;
    on.fixture.kill().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_hears_once_of_an_update_from_an_upstream_of_both_generations() {
    // A session subscribed on an upstream session of its own, and a
    // 2026-07-28 client listening: the gateway's listen stream asks too.
    let mut on = Subscribers::start(&["--sessions"], "note://b", "note://b").await;
    on.upstream_listens_for(&["note://a", "note://b"]).await;
    on.touch("note://b").await;
    let heard = resource_updated(&mut on.session_stream)
        .await
        .expect("the session hears of the update");
    assert_eq!(heard["params"]["uri"], "note://b", "{heard}");
    assert_eq!(
        resource_updated(&mut on.session_stream).await,
        None,
        "the session is told once, not again from the gateway's listen stream"
    );
    let told = resource_updated(&mut on.listen_stream)
        .await
        .expect("the listening client hears of it");
    assert_eq!(told["params"]["uri"], "note://b", "{told}");
    on.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2025_session_answers_a_2026_only_upstreams_input_requests_on_its_stream() {
    let (mut fixture, url) = only_2026_upstream();
    let server = TestServer::start_with(Settings {
        upstream: vec![format!("only={url}")],
        ..Settings::default()
    })
    .await;
    let session = server
        .initialize_with(
            "2025-11-25",
            "zed-test",
            json!({"elicitation":{},"sampling":{}}),
        )
        .await;
    let headers = [
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-11-25"),
    ];

    // The session's initialize, as each request's `_meta`.
    let whoami = server.call_tool(&session, "whoami", json!({})).await;
    let said: Value = serde_json::from_str(&text(&whoami).unwrap()).unwrap();
    assert_eq!(said["client"], "zed-test", "{whoami}");
    assert!(said["capabilities"]["sampling"].is_object(), "{whoami}");

    // The upstream's input requests, asked on the session's stream; the
    // answers go back with its state until it answers.
    let response = server
        .post(
            json!({"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"confirm","arguments":{}}}),
            &headers,
        )
        .await;
    let mut events = SseReader::new(response);
    let mut asked = Vec::new();
    let result = loop {
        let event = events.next().await.expect("the call's stream goes on");
        let Some(message) = event.message() else {
            continue;
        };
        let answer = match message["method"].as_str() {
            Some("elicitation/create") => json!({"action": "accept", "content": {"ok": true}}),
            Some("sampling/createMessage") => json!({"role": "assistant",
                "content": {"type": "text", "text": "hello"}, "model": "m"}),
            Some(other) => panic!("unexpected {other}: {message}"),
            None => break message,
        };
        asked.push(message["method"].as_str().unwrap().to_string());
        let answered = server
            .post(
                json!({"jsonrpc":"2.0","id":message["id"],"result":answer}),
                &headers,
            )
            .await;
        assert_eq!(answered.status(), 202);
    };
    asked.sort();
    assert_eq!(asked, ["elicitation/create", "sampling/createMessage"]);
    assert_eq!(text(&result), Ok("ok=true draft=hello".into()), "{result}");
    assert!(result["result"].get("resultType").is_none(), "{result}");

    // A 2026-07-28 client gets the upstream's own keys and state.
    let body = request_2026(
        7,
        "tools/call",
        json!({"name": "confirm", "arguments": {}}),
        json!({"elicitation": {}, "sampling": {}}),
    );
    let asked = post_2026(&server, body, "confirm").await;
    assert_eq!(asked["result"]["resultType"], "input_required", "{asked}");
    assert_eq!(asked["result"]["requestState"], "round-1", "{asked}");
    let mut keys: Vec<&String> = asked["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    keys.sort();
    assert_eq!(keys, ["upstream_draft", "upstream_ok"], "{asked}");

    let reports = server.admin_get("/api/mcp/upstreams").await;
    assert_eq!(reports["upstreams"][0]["status"], "up", "{reports}");
    assert!(
        reports["upstreams"][0]["requests"].as_u64().unwrap() >= 3,
        "{reports}"
    );
    // The request log names the upstream of the session's calls.
    let path = format!("/api/mcp/sessions/{session}");
    eventually(WAIT, || async {
        let detail = server.admin_get(&path).await;
        let calls: Vec<&Value> = detail["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["method"] == "tools/call")
            .collect();
        calls.len() == 2 && calls.iter().all(|r| r["upstream"] == "only")
    })
    .await;
    server.stop().await;
    let _ = fixture.kill();
    let _ = fixture.wait();
}

/// The tools a session lists, by name.
async fn tools(server: &TestServer, session: &str) -> BTreeMap<String, Value> {
    let listed = request(server, session, "tools/list", json!({})).await;
    listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_string(), t.clone()))
        .collect()
}

/// A gateway with its built-in tools and the fixture alone as `fx`, its
/// echo tool listed as `echo_as`.
async fn lone_fixture(echo_as: &str) -> TestServer {
    let script = fixture().trim_start_matches("fx=python3 ").to_string();
    let upstreams = BTreeMap::from([(
        "fx".to_string(),
        serde_json::from_value(json!({
            "command": "python3", "args": [script],
            "env": {"FIXTURE_ECHO_AS": echo_as},
        }))
        .unwrap(),
    )]);
    TestServer::start_with(Settings {
        upstreams,
        ..Settings::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_upstream_taking_no_builtin_name_is_bare_and_stays_so_when_it_later_does() {
    let server = lone_fixture("say").await;
    let session = server.initialize("2025-11-25", "claude-code").await;
    let listed = tools(&server, &session).await;
    for name in ["echo", "health_check", "say", "pid", "add_tool"] {
        assert!(listed.contains_key(name), "{name} not in {listed:?}");
    }
    assert!(!listed.keys().any(|n| n.starts_with("fx__")), "{listed:?}");
    let answer = server
        .call_tool(&session, "say", json!({"text": "bare"}))
        .await;
    assert_eq!(text(&answer), Ok("bare".into()));
    let prompt = request(
        &server,
        &session,
        "prompts/get",
        json!({"name": "greet", "arguments": {"who": "Ada"}}),
    )
    .await;
    assert_eq!(
        prompt["result"]["messages"][0]["content"]["text"], "Hello Ada",
        "{prompt}"
    );

    // Its list gains a built-in's name, and another: its names stay bare,
    // and the built-in keeps `echo`.
    for added in ["echo", "later"] {
        let answer = server
            .call_tool(&session, "add_tool", json!({"name": added}))
            .await;
        assert_eq!(text(&answer), Ok("added".into()));
    }
    eventually(WAIT, || async {
        tools(&server, &session).await.contains_key("later")
    })
    .await;
    let listed = tools(&server, &session).await;
    assert!(
        listed["echo"]["description"]
            .as_str()
            .unwrap()
            .starts_with("Returns its `text` argument unchanged"),
        "the built-in's echo is listed: {}",
        listed["echo"]
    );
    assert!(!listed.keys().any(|n| n.starts_with("fx__")), "{listed:?}");
    // The built-in's echo wants its text; the fixture's would answer "".
    let answer = server.call_tool(&session, "echo", json!({})).await;
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    for (tool, expected) in [("say", "still bare"), ("later", "still bare")] {
        let answer = server
            .call_tool(&session, tool, json!({"text": expected}))
            .await;
        assert_eq!(text(&answer), Ok(expected.into()), "{tool}");
    }
    let unknown = server.call_tool(&session, "fx__say", json!({})).await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_upstream_taking_a_builtin_name_is_prefixed_whole() {
    let server = lone_fixture("echo").await;
    let session = server.initialize("2025-11-25", "claude-code").await;
    let listed = tools(&server, &session).await;
    for name in ["echo", "fx__echo", "fx__pid", "fx__add_tool"] {
        assert!(listed.contains_key(name), "{name} not in {listed:?}");
    }
    for name in ["pid", "add_tool"] {
        assert!(!listed.contains_key(name), "{name} in {listed:?}");
    }
    let answer = server
        .call_tool(&session, "fx__echo", json!({"text": "prefixed"}))
        .await;
    assert_eq!(text(&answer), Ok("prefixed".into()));
    let prompts = request(&server, &session, "prompts/list", json!({})).await;
    assert_eq!(
        prompts["result"]["prompts"][0]["name"], "fx__greet",
        "{prompts}"
    );
    server.stop().await;
}
