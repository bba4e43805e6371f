//! Tasks with the real binary: a task acknowledged before a `kill -9` is
//! still there after the restart — finished with its result if it had
//! finished, failed with a clear reason if it was still running — and
//! operators list tasks through the management API.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{eventually, BIN};
use serde_json::{json, Value};
use sessiongate_core::task::RESTARTED;
use sessiongate_testkit::process::{free_port, Gateway, TOKEN};

const EXTENSION: &str = "io.modelcontextprotocol/tasks";

async fn start(data_dir: &Path, port: u16) -> Gateway {
    let data_dir = data_dir.to_str().unwrap();
    Gateway::start(BIN, port, &["--data-dir", data_dir, "--conformance"]).await
}

/// A 2026-07-28 request that declares the tasks extension; the JSON-RPC
/// response.
async fn request(gw: &Gateway, method: &str, params: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "restart-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {"extensions": {EXTENSION: {}}},
    });
    let name = params["name"]
        .as_str()
        .or(params["taskId"].as_str())
        .unwrap_or_default()
        .to_string();
    gw.http
        .post(format!("{}/mcp", gw.base))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
        .header("mcp-name", name)
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn slow_compute(gw: &Gateway, seconds: u64) -> String {
    let created = request(
        gw,
        "tools/call",
        json!({"name": "slow_compute", "arguments": {"seconds": seconds, "label": "x"}}),
    )
    .await;
    assert_eq!(created["result"]["resultType"], "task", "{created}");
    created["result"]["taskId"].as_str().unwrap().to_string()
}

async fn task(gw: &Gateway, id: &str) -> Value {
    request(gw, "tasks/get", json!({"taskId": id})).await["result"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_survive_kill_9_finished_or_failed_never_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let gw = start(dir.path(), port).await;
    let running = slow_compute(&gw, 600).await;
    let finished = slow_compute(&gw, 0).await;
    eventually(Duration::from_secs(10), || async {
        task(&gw, &finished).await["status"] == "completed"
    })
    .await;
    assert_eq!(task(&gw, &running).await["status"], "working");
    gw.kill();

    let gw = start(dir.path(), port).await;
    let done = task(&gw, &finished).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with("Computed"));
    let failed = task(&gw, &running).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["statusMessage"], RESTARTED);
    assert_eq!(failed["error"]["code"], -32603);
    assert_eq!(failed["error"]["message"], RESTARTED);
    assert!(failed.get("result").is_none());

    // Operators see both, by status; the restart counted them.
    let listed = gw.admin_get("/api/mcp/tasks?status=failed").await;
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["tasks"][0]["task_id"], running);
    assert_eq!(listed["tasks"][0]["owner"], "anonymous/restart-test/1");
    assert_eq!(listed["tasks"][0]["tool"], "slow_compute");
    assert_eq!(listed["counts"]["completed"], 1);
    assert_eq!(listed["counts"]["failed"], 1);
    let metrics = gw
        .http
        .get(format!("{}/metrics", gw.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sessiongate_tasks{status=\"failed\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("sessiongate_tasks_active 0"), "{metrics}");
    gw.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_lists_filters_and_shows_tasks_to_the_admin_only() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), free_port()).await;
    let working = slow_compute(&gw, 600).await;
    let finished = slow_compute(&gw, 0).await;
    eventually(Duration::from_secs(10), || async {
        task(&gw, &finished).await["status"] == "completed"
    })
    .await;

    let all = gw.admin_get("/api/mcp/tasks").await;
    assert_eq!(all["total"], 2, "{all}");
    // Newest first, without results.
    assert_eq!(all["tasks"][0]["task_id"], finished);
    assert!(all["tasks"][0].get("result").is_none());
    let working_only = gw.admin_get("/api/mcp/tasks?status=working&limit=1").await;
    assert_eq!(working_only["tasks"][0]["task_id"], working);
    assert_eq!(working_only["counts"]["working"], 1);
    let detail = gw.admin_get(&format!("/api/mcp/tasks/{finished}")).await;
    assert_eq!(detail["status"], "completed");
    assert!(detail["result"]["content"].is_array(), "{detail}");

    let status = |path: String, token: Option<&'static str>| {
        let gw = &gw;
        async move {
            let mut req = gw.http.get(format!("{}{path}", gw.base));
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            req.send().await.unwrap().status().as_u16()
        }
    };
    let token = TOKEN;
    assert_eq!(status("/api/mcp/tasks".into(), None).await, 401);
    assert_eq!(
        status("/api/mcp/tasks?status=done".into(), Some(token)).await,
        400
    );
    assert_eq!(
        status("/api/mcp/tasks?limit=0".into(), Some(token)).await,
        400
    );
    assert_eq!(status("/api/mcp/tasks/nope".into(), Some(token)).await, 404);
    let unknown = format!("/api/mcp/tasks/{}", "0".repeat(32));
    assert_eq!(status(unknown, Some(token)).await, 404);
    let doc = gw
        .http
        .get(format!("{}/api/openapi.json", gw.base))
        .send()
        .await
        .unwrap();
    let doc: Value = doc.json().await.unwrap();
    assert!(doc["paths"]["/api/mcp/tasks"].is_object());
    gw.stop();
}
