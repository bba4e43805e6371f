//! Sessions belong to their holder: nothing another client can ask on
//! `/mcp` — any tool, resource or prompt, sessionful or stateless — reveals
//! a session's id, token, address or user agent, and nobody without the
//! session's id or token can end it, take its token or use it.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::{stateless, TestServer};
use serde_json::{json, Value};
use sessiongate::config::Settings;

const V: &str = "2025-11-25";
/// The victim connects from its own loopback address, so its address is
/// distinguishable from everyone else's (127.0.0.1).
const VICTIM_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const VICTIM_AGENT: &str = "victim-agent/4.2";

/// The victim: a session from its own address and user agent.
struct Victim {
    http: reqwest::Client,
    id: String,
    token: String,
}

async fn victim(t: &TestServer) -> Victim {
    let http = reqwest::Client::builder()
        .local_address(VICTIM_ADDR)
        .user_agent(VICTIM_AGENT)
        .build()
        .unwrap();
    let response = http
        .post(t.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(
            json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion": V, "capabilities": {},
                "clientInfo": {"name": "victim-client", "version": "1"}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let token = response.headers()["mcp-reconnect-token"]
        .to_str()
        .unwrap()
        .to_string();
    // Its id as the server knows it, with its address and agent recorded.
    let record = &t.admin_get(&format!("/api/mcp/sessions/{id}")).await["session"];
    assert_eq!(record["remote_addr"], VICTIM_ADDR.to_string(), "{record}");
    assert_eq!(record["user_agent"], VICTIM_AGENT, "{record}");
    Victim { http, id, token }
}

/// How a stranger asks: on its own session, or stateless (2026-07-28).
#[derive(Clone, Copy)]
enum Stranger<'a> {
    Session(&'a str),
    Stateless,
}

/// Sends one request as the stranger; returns the raw answer (JSON or SSE).
async fn ask(t: &TestServer, who: Stranger<'_>, method: &str, params: Value) -> String {
    let response = match who {
        Stranger::Session(id) => {
            t.post(
                json!({"jsonrpc":"2.0","id":3,"method":method,"params":params}),
                &[("mcp-session-id", id), ("mcp-protocol-version", V)],
            )
            .await
        }
        Stranger::Stateless => {
            let name = params
                .get("name")
                .or(params.get("uri"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let mut headers = vec![
                ("mcp-protocol-version", "2026-07-28".to_string()),
                ("mcp-method", method.to_string()),
            ];
            if let Some(name) = name {
                headers.push(("mcp-name", name));
            }
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            t.post(stateless(method, params), &headers).await
        }
    };
    assert!(
        response.status().is_success(),
        "{method}: {}",
        response.status()
    );
    response.text().await.unwrap()
}

/// The first JSON-RPC result or error in a raw answer.
fn answer(raw: &str) -> Value {
    let text = raw
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .rfind(|d| d.contains("\"result\"") || d.contains("\"error\""))
        .unwrap_or(raw);
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {raw}"))
}

/// Asks everything a client can ask and checks no answer mentions `victim`
/// or the `others` sessions.
async fn ask_everything(t: &TestServer, who: Stranger<'_>, victim: &Victim, others: &[&str]) {
    let mut secrets = vec![
        victim.id.as_str(),
        &victim.id[..8],
        victim.token.as_str(),
        "127.0.0.2",
        VICTIM_AGENT,
        "victim-client",
    ];
    secrets.extend(others);
    let mut answers = Vec::new();
    let tools = answer(&ask(t, who, "tools/list", json!({})).await);
    let tools = tools["result"]["tools"].as_array().unwrap().clone();
    assert!(tools.len() > 6, "{tools:?}");
    for tool in &tools {
        let name = tool["name"].as_str().unwrap();
        // Runs only as a task, which a client without the tasks extension
        // is refused (400, -32021) before anything runs.
        let task_only = matches!(name, "failing_job" | "test_tool_with_task");
        if asks_for_input(name) || task_only {
            continue;
        }
        let args = match name {
            "echo" => vec![json!({"text": "hi"})],
            "list_sessions" => vec![json!({}), json!({"status": "disconnected", "limit": 100})],
            "get_reconnect_token" | "session_info" => vec![json!({"session_id": victim.id})],
            "reconnect_session" => {
                vec![json!({"session_id": victim.id, "reconnect_token": "not-a-token"})]
            }
            "test_prompt_with_arguments" => vec![json!({"arg1": "a", "arg2": "b"})],
            _ => vec![json!({})],
        };
        for args in args {
            let params = json!({"name": name, "arguments": args});
            answers.push((
                format!("tools/call {name}"),
                ask(t, who, "tools/call", params).await,
            ));
        }
    }
    let list = |method: &'static str, field: &'static str| {
        let raw = ask(t, who, method, json!({}));
        async move {
            let raw = raw.await;
            let items = answer(&raw)["result"][field].as_array().unwrap().clone();
            ((method.to_string(), raw), items)
        }
    };
    let (listed, resources) = list("resources/list", "resources").await;
    answers.push(listed);
    let (listed, _) = list("resources/templates/list", "resourceTemplates").await;
    answers.push(listed);
    let (listed, prompts) = list("prompts/list", "prompts").await;
    answers.push(listed);
    for resource in &resources {
        let uri = resource["uri"].as_str().unwrap();
        let params = json!({"uri": uri});
        answers.push((
            format!("read {uri}"),
            ask(t, who, "resources/read", params).await,
        ));
    }
    for prompt in &prompts {
        let name = prompt["name"].as_str().unwrap();
        if asks_for_input(name) {
            continue;
        }
        let params = json!({"name": name, "arguments": {"arg1": "a", "arg2": "b", "resourceUri": "test://x"}});
        answers.push((
            format!("prompt {name}"),
            ask(t, who, "prompts/get", params).await,
        ));
    }
    assert!(answers.len() > 20);
    for (what, raw) in &answers {
        for secret in &secrets {
            assert!(!raw.contains(secret), "{what} reveals {secret:?}: {raw}");
        }
    }
}

/// Fixtures that ask the client for input: they reveal nothing of the
/// server, and a session's ask would wait for the client's answer.
fn asks_for_input(name: &str) -> bool {
    [
        "test_sampling",
        "test_elicitation",
        "test_input_required_result",
        "test_missing_capability",
        "test_streaming_elicitation",
        "confirm_delete",
        "multi_input",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
}

async fn start() -> TestServer {
    TestServer::start_with(Settings {
        conformance: true,
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_mcp_request_reveals_another_clients_session() {
    let t = start().await;
    let victim = victim(&t).await;
    // An ended session of the victim's is just as private as a live one.
    let old = t.initialize(V, "victim-client").await;
    assert_eq!(t.delete(&old).await.status(), 200);
    let stranger = t.initialize(V, "stranger").await;

    ask_everything(&t, Stranger::Session(&stranger), &victim, &[&old]).await;
    ask_everything(&t, Stranger::Stateless, &victim, &[&old, &stranger]).await;
    let admin = t.admin_get("/api/mcp/sessions/health").await;
    assert!(admin.to_string().contains(&victim.id), "the admin sees all");

    // A session does see itself.
    let own = t.call_tool(&stranger, "list_sessions", json!({})).await;
    let sessions = own["result"]["structuredContent"]["sessions"]
        .as_array()
        .unwrap();
    assert_eq!(sessions.len(), 1, "{own}");
    assert_eq!(sessions[0]["session_id"], stranger);
    let health = t.call_tool(&stranger, "health_check", json!({})).await;
    let health = &health["result"]["structuredContent"];
    assert_eq!(health["status_breakdown"]["active"], 2, "{health}");
    let recent = health["recent_activity"].as_array().unwrap();
    assert_eq!(recent.len(), 1, "{health}");
    assert_eq!(recent[0]["session_id"], stranger);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_id_does_not_let_a_stranger_end_or_take_a_session() {
    let t = start().await;
    let victim = victim(&t).await;
    let stranger = t.initialize(V, "stranger").await;

    // The session's own operations act on the caller, whatever it names.
    let got = t
        .call_tool(
            &stranger,
            "get_reconnect_token",
            json!({"session_id": victim.id}),
        )
        .await;
    let got = &got["result"]["structuredContent"];
    assert_eq!(got["session_id"], stranger, "{got}");
    let strangers_token = got["reconnect_token"].as_str().unwrap();
    // Its own token does not open the victim's session, by tool or API.
    let taken = t
        .call_tool(
            &stranger,
            "reconnect_session",
            json!({"session_id": victim.id, "reconnect_token": strangers_token}),
        )
        .await;
    assert_eq!(taken["result"]["isError"], true, "{taken}");
    let api = t
        .http
        .post(format!(
            "{}/api/mcp/sessions/{}/reconnect",
            t.base, victim.id
        ))
        .json(&json!({"token": strangers_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);

    // A stateless request carrying the victim's id does not reach it.
    let headers = [
        ("mcp-session-id", victim.id.as_str()),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
    ];
    for tool in ["get_reconnect_token", "session_info", "list_sessions"] {
        let mut headers = headers.to_vec();
        headers.push(("mcp-name", tool));
        let raw = t
            .post(
                stateless("tools/call", json!({"name": tool, "arguments": {}})),
                &headers,
            )
            .await
            .text()
            .await
            .unwrap();
        assert!(!raw.contains(&victim.id), "{tool}: {raw}");
        assert!(!raw.contains("127.0.0.2"), "{tool}: {raw}");
    }

    // The victim's session and its token are untouched.
    let alive = victim
        .http
        .post(t.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &victim.id)
        .body(
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"session_info","arguments":{}}})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(alive.status(), 200);
    let record = t
        .admin_get(&format!("/api/mcp/sessions/{}", victim.id))
        .await;
    assert_eq!(record["session"]["status"], "active", "{record}");
    let redeemed = t
        .http
        .post(format!(
            "{}/api/mcp/sessions/{}/reconnect",
            t.base, victim.id
        ))
        .json(&json!({"token": victim.token}))
        .send()
        .await
        .unwrap();
    assert_eq!(redeemed.status(), 200, "the victim's own token still works");
    t.stop().await;
}
