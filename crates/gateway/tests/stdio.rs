//! The stdio connector against real child processes: requests matched to
//! their responses, lines that are not JSON-RPC or too long skipped, a
//! child's exit failing what is pending with its status and last stderr
//! line, its pid recorded while it runs, and orphans of a previous run
//! reaped.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use sessiongate_core::upstream::UpstreamName;
use sessiongate_gateway::config::StdioConfig;
use sessiongate_gateway::link::stdio::{reap_orphans, StdioConnector};
use sessiongate_gateway::link::{Connector, Incoming, LinkError, Opened};
use sessiongate_testkit::eventually;

const WAIT: Duration = Duration::from_secs(20);

/// A child running the Python program `program`.
async fn open(program: &str, children: &Path) -> Opened {
    let config: StdioConfig = serde_json::from_value(json!({
        "command": "python3",
        "args": ["-c", program],
        "request_timeout": "20s",
    }))
    .unwrap();
    let connector = StdioConnector::new(
        UpstreamName::new("test").unwrap(),
        config,
        children.to_path_buf(),
    );
    connector.open(None).await.expect("the child starts")
}

/// Answers each request with its method and params, after `before` lines.
fn echo_server(before: &str) -> String {
    format!(
        r#"
import json, sys
{before}
for line in sys.stdin:
    m = json.loads(line)
    if "id" in m and "method" in m:
        print(json.dumps({{"jsonrpc": "2.0", "id": m["id"], "result": {{"method": m["method"], "params": m.get("params")}}}}), flush=True)
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_find_their_requests_past_lines_that_are_not_json_rpc() {
    let dir = tempfile::tempdir().unwrap();
    let before = r#"
print("starting up...", flush=True)
print("x" * (17 * 1024 * 1024), flush=True)
print(json.dumps({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "hi"}}), flush=True)
print(json.dumps({"jsonrpc": "2.0", "id": "up-1", "method": "ping"}), flush=True)
"#;
    let Opened { link, mut incoming } = open(&echo_server(before), dir.path()).await;
    let params = json!({"name": "x"});
    let (a, b) = tokio::join!(
        link.request(1, "tools/list", None),
        link.request(2, "tools/call", Some(&params)),
    );
    assert_eq!(a.unwrap()["method"], "tools/list");
    assert_eq!(b.unwrap()["params"]["name"], "x");
    assert_eq!(
        incoming.recv().await,
        Some(Incoming::Notification {
            method: "notifications/message".into(),
            params: Some(json!({"level": "info", "data": "hi"})),
            related: None,
        })
    );
    assert_eq!(
        incoming.recv().await,
        Some(Incoming::Request {
            id: json!("up-1"),
            method: "ping".into(),
            params: None,
            related: None,
        })
    );
    assert!(!link.is_closed());
    link.close().await;
    eventually(WAIT, || async { link.is_closed() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_fails_what_is_pending_with_its_status_and_last_stderr_line() {
    let dir = tempfile::tempdir().unwrap();
    let program = r#"
import sys, os
sys.stdin.readline()
print("fatal: out of coffee", file=sys.stderr, flush=True)
os._exit(7)
"#;
    let Opened { link, .. } = open(program, dir.path()).await;
    let children: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(children.len(), 1, "its pid is recorded while it runs");
    match link.request(1, "tools/call", None).await {
        Err(LinkError::Gone { reason, delivered }) => {
            assert!(delivered, "the request was written");
            assert!(reason.contains("exit status: 7"), "{reason}");
            assert!(reason.contains("fatal: out of coffee"), "{reason}");
        }
        other => panic!("expected Gone, got {other:?}"),
    }
    assert!(link.is_closed());
    match link.request(2, "tools/call", None).await {
        Err(LinkError::Gone { delivered, .. }) => assert!(!delivered, "never sent"),
        other => panic!("expected Gone, got {other:?}"),
    }
    eventually(WAIT, || async {
        std::fs::read_dir(dir.path()).unwrap().next().is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_recorded_by_a_previous_run_are_killed() {
    let dir = tempfile::tempdir().unwrap();
    // A process that outlives its recorder: not a child of this test's
    // connector, so nothing but the reaping ends it.
    let mut orphan = std::process::Command::new("setsid")
        .args(["sleep", "600"])
        .spawn()
        .unwrap();
    let pid = orphan.id();
    eventually(WAIT, || async move {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains("sleep"))
    })
    .await;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let start = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(19)
        .unwrap();
    std::fs::write(dir.path().join(pid.to_string()), start).unwrap();
    // A record whose pid now names another process, or none.
    std::fs::write(dir.path().join("4194303"), "1").unwrap();
    std::fs::write(dir.path().join(std::process::id().to_string()), "1").unwrap();

    assert_eq!(reap_orphans(dir.path()), vec![pid]);
    let status = orphan.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "every record is cleared"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_prints_only_garbage_times_out_without_taking_the_link_down() {
    let dir = tempfile::tempdir().unwrap();
    let config: StdioConfig = serde_json::from_value(json!({
        "command": "sh",
        "args": ["-c", "while read line; do echo 'not json'; done"],
        "request_timeout": "300ms",
    }))
    .unwrap();
    let connector = StdioConnector::new(
        UpstreamName::new("garbage").unwrap(),
        config,
        dir.path().into(),
    );
    let Opened { link, .. } = connector.open(None).await.unwrap();
    let outcome: Result<Value, LinkError> = link.request(1, "initialize", None).await;
    assert!(matches!(outcome, Err(LinkError::Timeout(_))), "{outcome:?}");
    assert!(!link.is_closed());
    link.close().await;
}
