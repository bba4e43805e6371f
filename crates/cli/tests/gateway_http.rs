//! The gateway in front of Streamable HTTP upstreams, with processes on
//! both sides: an upstream restarted (its sessions lost) is healed without
//! the client seeing a 404, and after the gateway itself is killed with
//! `kill -9` a client goes on with its session id while the gateway uses
//! the upstream session it had stored again rather than opening another;
//! an upstream killed during a call fails that call at once with an error
//! naming it, and the next call is served; a lone upstream down at start
//! is named by the same rule once it comes up.
//!
//! The upstreams are `rmcp-baseline PORT` (rmcp's sessionful server, whose
//! sessions live in its memory) and a second `sessiongate serve`, whose
//! session list shows which sessions the gateway opened on it.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{eventually, SseReader};
use serde_json::{json, Value};
use sessiongate_testkit::process::{free_port, Gateway};

const WAIT: Duration = Duration::from_secs(20);

/// `rmcp-baseline PORT`, killed when dropped.
struct Rmcp(Child);

impl Rmcp {
    async fn start(port: u16) -> Rmcp {
        let path = PathBuf::from(common::BIN).with_file_name("rmcp-baseline");
        assert!(
            path.exists(),
            "{} is missing: run `cargo build -p rmcp-baseline` first",
            path.display()
        );
        let child = Command::new(path)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        eventually(WAIT, || async move {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
        .await;
        Rmcp(child)
    }

    fn kill_9(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Rmcp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A tool call through the gateway: never a 404 for the session, and the
/// tool's text or the JSON-RPC error's message.
async fn call(gw: &Gateway, session: &str, tool: &str, text: &str) -> Result<String, String> {
    let response = gw
        .post(
            Some(session),
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                   "params": {"name": tool, "arguments": {"text": text}}}),
        )
        .await
        .expect("an answer");
    assert_eq!(response.status(), 200, "never a 404 for the session");
    let body: Value = response.json().await.unwrap();
    match body.get("error") {
        Some(e) => Err(e["message"].as_str().unwrap_or_default().to_string()),
        None => Ok(body["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string()),
    }
}

/// sessiongate on port `port` and data directory `dir`, in front of
/// `upstream` (`NAME=URL`), with `extra` flags.
async fn gateway(port: u16, dir: &tempfile::TempDir, upstream: &str, extra: &[&str]) -> Gateway {
    let mut args = vec![
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--upstream",
        upstream,
    ];
    args.extend_from_slice(extra);
    Gateway::start(common::BIN, port, &args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_upstream_restarted_is_healed_without_a_404() {
    let dir = tempfile::tempdir().unwrap();
    let upstream_port = free_port();
    let upstream = Rmcp::start(upstream_port).await;
    let url = format!("up=http://127.0.0.1:{upstream_port}/mcp");
    let gw = gateway(free_port(), &dir, &url, &[]).await;
    let session = gw.initialize("claude-code").await.unwrap();
    assert_eq!(
        call(&gw, &session, "up__echo", "before").await,
        Ok("before".into())
    );

    // Restarted on the same port: every session it had is forgotten, so
    // the gateway's next request on the old one is answered 404.
    upstream.kill_9();
    let _upstream = Rmcp::start(upstream_port).await;
    for text in ["after", "and again"] {
        assert_eq!(call(&gw, &session, "up__echo", text).await, Ok(text.into()));
    }
    let upstreams = gw.admin_get("/api/mcp/upstreams").await;
    let up = &upstreams["upstreams"][0];
    assert_eq!(up["name"], "up");
    assert_eq!(up["status"], "up", "{up}");
    gw.stop();
}

/// Active sessions on a sessiongate whose client is `name`.
async fn sessions_of(server: &Gateway, name: &str) -> Vec<Value> {
    let list = server
        .admin_get("/api/mcp/sessions?status=active&limit=100")
        .await;
    list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["client_name"] == name)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_gateway_kill_9_the_stored_upstream_session_is_used_again() {
    let upstream_dir = tempfile::tempdir().unwrap();
    let upstream = Gateway::start(
        common::BIN,
        free_port(),
        &["--data-dir", upstream_dir.path().to_str().unwrap()],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("up={}/mcp", upstream.base);
    let port = free_port();
    let gw = gateway(port, &dir, &url, &["--no-builtin-tools"]).await;
    let session = gw.initialize("claude-code").await.unwrap();
    // One upstream alone, with the built-ins off: its names go unprefixed.
    assert_eq!(call(&gw, &session, "echo", "one").await, Ok("one".into()));
    let opened = sessions_of(&upstream, "claude-code").await;
    assert_eq!(opened.len(), 1, "the client's own upstream session");

    gw.kill();
    let gw = gateway(port, &dir, &url, &["--no-builtin-tools"]).await;
    assert_eq!(call(&gw, &session, "echo", "two").await, Ok("two".into()));
    let after = sessions_of(&upstream, "claude-code").await;
    assert_eq!(
        after.len(),
        1,
        "no second upstream session for the same client session"
    );
    assert_eq!(after[0]["session_id"], opened[0]["session_id"]);
    assert!(
        after[0]["request_count"].as_u64() > opened[0]["request_count"].as_u64(),
        "the call after the restart went over the stored session: {} then {}",
        opened[0]["request_count"],
        after[0]["request_count"]
    );
    gw.stop();
    upstream.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_upstream_killed_during_a_call_fails_it_clearly_and_serves_the_next() {
    let upstream_dir = tempfile::tempdir().unwrap();
    let upstream_port = free_port();
    let upstream_args = [
        "--data-dir",
        upstream_dir.path().to_str().unwrap(),
        "--conformance",
    ];
    let upstream = Gateway::start(common::BIN, upstream_port, &upstream_args).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("up={}/mcp", upstream.base);
    let gw = gateway(free_port(), &dir, &url, &["--no-builtin-tools"]).await;
    let session = gw.initialize("claude-code").await.unwrap();

    // The tool reports progress three times, 50 ms apart, then answers:
    // the upstream is killed once the first progress came through.
    let response = gw
        .post(
            Some(&session),
            json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                   "params": {"name": "test_tool_with_progress", "arguments": {},
                              "_meta": {"progressToken": "p"}}}),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut events = SseReader::new(response);
    // A resumable stream opens with a priming event, which has no message.
    let first = loop {
        let event = events.next().await.expect("the call's stream");
        if let Some(message) = event.message() {
            break message;
        }
    };
    assert_eq!(first["method"], "notifications/progress", "{first}");
    upstream.kill();
    let answer = tokio::time::timeout(WAIT, async {
        loop {
            let event = events
                .next()
                .await
                .expect("the call is answered before its stream ends");
            if let Some(message) = event.message().filter(|m| m.get("id") == Some(&json!(9))) {
                break message;
            }
        }
    })
    .await
    .expect("answered at once, not after the request timeout");
    let error = &answer["error"];
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("upstream up: "),
        "names the upstream: {answer}"
    );

    let upstream = Gateway::start(common::BIN, upstream_port, &upstream_args).await;
    let next = gw
        .post(
            Some(&session),
            json!({"jsonrpc": "2.0", "id": 10, "method": "tools/call",
                   "params": {"name": "test_simple_text", "arguments": {}}}),
        )
        .await
        .unwrap();
    assert_eq!(next.status(), 200, "never a 404 for the session");
    let next: Value = next.json().await.unwrap();
    assert!(next["result"]["content"][0]["text"].is_string(), "{next}");
    gw.stop();
    upstream.stop();
}

/// The names a session lists.
async fn tool_names(gw: &Gateway, session: &str) -> Vec<String> {
    let response = gw
        .post(
            Some(session),
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
        )
        .await
        .expect("an answer");
    let body: Value = response.json().await.unwrap();
    body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_upstream_down_at_start_is_named_by_the_rule_once_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let upstream_port = free_port();
    let url = format!("up=http://127.0.0.1:{upstream_port}/mcp");
    let gw = gateway(free_port(), &dir, &url, &[]).await;
    let session = gw.initialize("claude-code").await.unwrap();
    let before = tool_names(&gw, &session).await;
    assert!(before.contains(&"echo".to_string()), "{before:?}");
    assert!(
        !before.iter().any(|n| n.starts_with("up__")),
        "nothing of it before it is read: {before:?}"
    );

    // Its `echo` is also the built-in's: once read, all its names are
    // prefixed, as they would have been had it been up at start.
    let _upstream = Rmcp::start(upstream_port).await;
    eventually(WAIT, || async {
        tool_names(&gw, &session)
            .await
            .contains(&"up__echo".to_string())
    })
    .await;
    assert_eq!(call(&gw, &session, "up__echo", "up").await, Ok("up".into()));
    gw.stop();
}

/// A proxy to the local port `backend` that closes a connection the way a
/// server closing idle connections does at the worst moment: a request
/// that comes on a connection idle for `idle` or longer finds it closed,
/// unanswered. Its port.
async fn closing_idle_proxy(backend: u16, idle: Duration) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", backend)).await else {
                continue;
            };
            tokio::spawn(relay_until_idle(client, server, idle));
        }
    });
    port
}

async fn relay_until_idle(
    client: tokio::net::TcpStream,
    server: tokio::net::TcpStream,
    idle: Duration,
) {
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let last = Arc::new(Mutex::new(tokio::time::Instant::now()));
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let seen = last.clone();
    let answers = async move {
        let mut buf = vec![0; 16 * 1024];
        while let Ok(n @ 1..) = server_rx.read(&mut buf).await {
            *seen.lock().unwrap() = tokio::time::Instant::now();
            if client_tx.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    let requests = async move {
        let mut buf = vec![0; 16 * 1024];
        while let Ok(n @ 1..) = client_rx.read(&mut buf).await {
            let idle_for = last.lock().unwrap().elapsed();
            if idle_for >= idle {
                break;
            }
            *last.lock().unwrap() = tokio::time::Instant::now();
            if server_tx.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    // Either side done closes both.
    tokio::select! {
        _ = answers => {}
        _ = requests => {}
    }
}

/// sessiongate in front of `rmcp-baseline` behind a proxy that closes
/// connections idle for 800 ms, keeping its own idle connections for
/// `idle_timeout`; a call, a pause of a second, and another call: the
/// second's answer.
async fn call_after_a_pause(idle_timeout: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let upstream_port = free_port();
    let _upstream = Rmcp::start(upstream_port).await;
    let proxy = closing_idle_proxy(upstream_port, Duration::from_millis(800)).await;
    let config = dir.path().join("sessiongate.toml");
    std::fs::write(
        &config,
        format!(
            "[upstreams.up]\nurl = \"http://127.0.0.1:{proxy}/mcp\"\n\
             idle_timeout = \"{idle_timeout}\"\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let args = [
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ];
    let gw = Gateway::start(common::BIN, free_port(), &args).await;
    let session = gw.initialize("claude-code").await.unwrap();
    assert_eq!(
        call(&gw, &session, "up__echo", "first").await,
        Ok("first".into())
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = call(&gw, &session, "up__echo", "after a pause").await;
    gw.stop();
    second
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_call_goes_out_on_a_connection_the_upstream_closes_when_idle() {
    assert_eq!(
        call_after_a_pause("300ms").await,
        Ok("after a pause".into()),
        "an idle connection kept shorter than the upstream keeps it"
    );
    // The same kept longer: the call crosses the upstream's close and
    // fails, which is what `idle_timeout` is there to prevent.
    let failed = call_after_a_pause("90s").await;
    assert!(failed.is_err(), "{failed:?}");
}
