//! The management API over real HTTP: axum on 127.0.0.1:0, reqwest, a real
//! SQLite store in a temporary directory, and a manual clock that the tests
//! drive instead of sleeping.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sessiongate_api::{router, ApiState};
use sessiongate_core::client_kind::detect_client_type;
use sessiongate_core::lifecycle::{
    ActiveSession, EndKind, EndSubscriber, Lifecycle, LifecycleConfig, SessionEnded, SessionManager,
};
use sessiongate_core::request_log::{RequestLogEntry, RequestStatus};
use sessiongate_core::session::ClientIdentity;
use sessiongate_core::store_health::Monitored;
use sessiongate_core::{DisconnectReason, ManualClock, SessionId};
use sessiongate_store::{connect, Database};

const TOKEN: &str = "test-admin-token-0123456789abcdef";
const MINUTE: Duration = Duration::from_secs(60);

struct Harness {
    base: String,
    http: reqwest::Client,
    manager: Arc<SessionManager>,
    lifecycle: Lifecycle,
    clock: ManualClock,
    terminated: Arc<Mutex<Vec<SessionId>>>,
    _dir: tempfile::TempDir,
}

/// A server whose idle timeout is an hour, so advancing the clock by minutes
/// ages sessions without expiring them.
async fn start() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = connect(&Database::Sqlite {
        path: dir.path().join("sessions.db"),
    })
    .await
    .expect("sqlite store");
    let clock = ManualClock::starting_now();
    let store = Arc::new(Monitored::new(store, Arc::new(clock.clone())));
    let config = LifecycleConfig {
        idle_timeout: Duration::from_secs(3600),
        ..LifecycleConfig::default()
    };
    let terminated = Arc::new(Mutex::new(Vec::new()));
    let seen = terminated.clone();
    let on_end = move |ended: &SessionEnded| {
        if ended.kind == EndKind::Ended(DisconnectReason::AdminTerminated) {
            seen.lock().unwrap().push(ended.session_id);
        }
    };
    let ends: Vec<Arc<dyn EndSubscriber>> = vec![Arc::new(on_end)];
    let lifecycle = Lifecycle::start(store.clone(), Arc::new(clock.clone()), config, ends)
        .await
        .expect("lifecycle");
    let manager = lifecycle.sessions.clone();
    // The catalog of a server whose one tool is echo: the tests' other
    // names are names clients tried.
    let state = ApiState::new(&lifecycle, &store, TOKEN).known_tool(|name| name == "echo");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router(state)).await.unwrap();
    });
    Harness {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        manager,
        lifecycle,
        clock,
        terminated,
        _dir: dir,
    }
}

impl Harness {
    async fn send(&self, method: Method, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = response.text().await.unwrap();
        assert!(
            content_type.starts_with("application/json"),
            "{path}: {status} with content type {content_type:?}: {body}"
        );
        let value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path}: {status}: not JSON ({e}): {body}"));
        (status, value)
    }

    /// An authenticated GET that must answer 200.
    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.send(Method::GET, path, Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// An authenticated request that must fail with `status`; returns its detail.
    async fn fails(&self, method: Method, path: &str, status: StatusCode) -> String {
        let (got, body) = self.send(method.clone(), path, Some(TOKEN)).await;
        assert_eq!(got, status, "{method} {path}: {body}");
        body["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no detail in {body}"))
            .to_string()
    }

    async fn create(&self, client_name: &str) -> Arc<ActiveSession> {
        self.manager
            .create(
                identity(client_name),
                json!({"clientInfo": {"name": client_name}}),
            )
            .await
            .expect("create session")
            .session
    }
}

fn identity(client_name: &str) -> ClientIdentity {
    ClientIdentity {
        client_type: detect_client_type(Some(client_name)),
        client_name: Some(client_name.to_string()),
        client_version: Some("1.2.3".to_string()),
        client_capabilities: json!({"roots": {}}),
        protocol_version: "2025-06-18".to_string(),
        principal: None,
        remote_addr: Some("127.0.0.1:40000".to_string()),
        user_agent: Some("api-test".to_string()),
    }
}

/// Polls `check` until it returns `Some`, for at most 5 s.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The session detail at `path`, once it shows `count` requests.
async fn requests_shown(h: &Harness, path: &str, count: usize) -> Value {
    eventually("the request log flush", move || async move {
        let detail = h.get(path).await;
        (detail["requests"].as_array().unwrap().len() == count).then_some(detail)
    })
    .await
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

fn ids(sessions: &Value) -> Vec<String> {
    sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_need_the_token() {
    let h = start().await;
    for path in [
        "/api/mcp/sessions",
        "/api/mcp/sessions/health",
        "/api/mcp/sessions/disconnected",
        "/api/mcp/sessions/00000000000000000000000000000000",
        "/api/mcp/clients",
        "/api/mcp/no-such-path",
    ] {
        for token in [None, Some("wrong"), Some("")] {
            let mut request = h.http.get(format!("{}{path}", h.base));
            if let Some(token) = token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{path} {token:?}"
            );
            let challenge = response.headers()["www-authenticate"].to_str().unwrap();
            assert!(challenge.starts_with("Bearer"), "{challenge}");
            let body: Value = response.json().await.unwrap();
            assert!(body["detail"].as_str().unwrap().contains("admin token"));
        }
    }
    // Another scheme, or the token under a different scheme, is refused.
    let response = h
        .http
        .get(format!("{}/api/mcp/sessions", h.base))
        .header("authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // A termination without the token changes nothing.
    let live = h.create("claude-code").await;
    let path = format!("/api/mcp/sessions/{}", live.id());
    let (status, _) = h.send(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(h.manager.active(live.id()).is_some());

    // The right token, with a lowercase scheme too.
    let response = h
        .http
        .get(format!("{}/api/mcp/sessions", h.base))
        .header("authorization", format!("bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Unknown admin paths are 404 once authenticated.
    assert_eq!(
        h.fails(Method::GET, "/api/mcp/no-such-path", StatusCode::NOT_FOUND)
            .await,
        "Not found"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_routes_and_json_errors() {
    let h = start().await;
    h.create("cursor").await;
    h.clock.advance(Duration::from_secs(90));
    let (status, health) = h.send(Method::GET, "/api/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(health["store"], "sqlite");
    assert_eq!(health["active_sessions"], 1);
    assert_eq!(health["uptime_seconds"], 90);

    let (status, body) = h.send(Method::GET, "/api/no-such-thing", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["detail"], "Not found");

    // A method a route does not have: 405 in the JSON shape, with Allow.
    let response = h
        .http
        .post(format!("{}/api/mcp/sessions", h.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(response.headers().contains_key("allow"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["detail"], "Method Not Allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_sessions_with_filters_and_pages() {
    let h = start().await;
    // Four sessions a second apart, so the newest-first order is known.
    let mut created = Vec::new();
    for name in ["claude-code", "Cursor-VSCode", "claude-code", "my-tool"] {
        created.push(h.create(name).await.id().to_string());
        h.clock.advance(Duration::from_secs(1));
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();
    h.manager
        .end(
            created[0].parse().unwrap(),
            DisconnectReason::ClientDisconnect,
        )
        .await
        .unwrap();

    let all = h.get("/api/mcp/sessions").await;
    assert_eq!(all["total"], 4);
    assert_eq!(all["active_sessions"], 3);
    assert_eq!(all["session_timeout"], 3600);
    assert_eq!(all["limit"], 50);
    assert_eq!(all["offset"], 0);
    assert_eq!(ids(&all["sessions"]), newest_first);
    let first = &all["sessions"][0];
    assert_eq!(first["client_type"], "my-tool");
    assert_eq!(first["client_name"], "my-tool");
    assert_eq!(first["status"], "active");
    assert_eq!(first["request_count"], 1);
    assert_eq!(first["total_duration"], Value::Null);
    for session in all["sessions"].as_array().unwrap() {
        assert!(
            !keys(session).iter().any(|k| k.contains("token")),
            "a session exposes a token field: {session}"
        );
    }

    let active = h.get("/api/mcp/sessions?status=active").await;
    assert_eq!(active["total"], 3);
    assert_eq!(active["active_sessions"], 3);
    assert!(active["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["status"] == "active"));

    let ended = h.get("/api/mcp/sessions?status=disconnected").await;
    assert_eq!(ended["total"], 1);
    assert_eq!(ids(&ended["sessions"]), vec![created[0].clone()]);
    assert_eq!(
        ended["sessions"][0]["disconnect_reason"],
        "client_disconnect"
    );

    let claude = h.get("/api/mcp/sessions?client_type=Claude%20Code").await;
    assert_eq!(claude["total"], 2);
    assert_eq!(
        ids(&claude["sessions"]),
        vec![created[2].clone(), created[0].clone()]
    );
    let both = h
        .get("/api/mcp/sessions?client_type=Claude+Code&status=active")
        .await;
    assert_eq!(ids(&both["sessions"]), vec![created[2].clone()]);
    assert_eq!(both["total"], 1);

    let page = h.get("/api/mcp/sessions?limit=2&offset=1").await;
    assert_eq!(page["total"], 4);
    assert_eq!(page["limit"], 2);
    assert_eq!(page["offset"], 1);
    assert_eq!(ids(&page["sessions"]), newest_first[1..3].to_vec());

    let page = h.get("/api/mcp/sessions?page=2&per_page=3").await;
    assert_eq!(page["limit"], 3);
    assert_eq!(page["offset"], 3);
    assert_eq!(ids(&page["sessions"]), newest_first[3..].to_vec());

    let beyond = h.get("/api/mcp/sessions?offset=100").await;
    assert_eq!(beyond["sessions"], json!([]));
    assert_eq!(beyond["total"], 4);

    // Empty filters mean no filter.
    assert_eq!(
        h.get("/api/mcp/sessions?status=&client_type=").await["total"],
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_are_400_with_a_reason() {
    let h = start().await;
    let cases: &[(&str, &str)] = &[
        ("/api/mcp/sessions?limit=abc", "limit"),
        ("/api/mcp/sessions?limit=-1", "limit"),
        ("/api/mcp/sessions?limit=", "limit"),
        ("/api/mcp/sessions?limit=0", "between 1 and 500"),
        ("/api/mcp/sessions?limit=501", "between 1 and 500"),
        ("/api/mcp/sessions?limit=99999999999999999999", "limit"),
        ("/api/mcp/sessions?per_page=1000", "between 1 and 500"),
        ("/api/mcp/sessions?offset=x", "offset"),
        (
            "/api/mcp/sessions?offset=18446744073709551615",
            "out of range",
        ),
        ("/api/mcp/sessions?page=0", "page"),
        (
            "/api/mcp/sessions?page=18446744073709551615&per_page=500",
            "out of range",
        ),
        ("/api/mcp/sessions?page=2&offset=5", "not both"),
        ("/api/mcp/sessions?limit=5&per_page=5", "not both"),
        ("/api/mcp/sessions?status=idle", "invalid status"),
        ("/api/mcp/sessions?status=ACTIVE", "invalid status"),
        ("/api/mcp/sessions/disconnected?days=0", "between 1 and 90"),
        ("/api/mcp/sessions/disconnected?days=91", "between 1 and 90"),
        ("/api/mcp/sessions/disconnected?days=1.5", "days"),
        (
            "/api/mcp/sessions/disconnected?limit=0",
            "between 1 and 1000",
        ),
        (
            "/api/mcp/sessions/disconnected?limit=1001",
            "between 1 and 1000",
        ),
        ("/api/mcp/sessions/disconnected?limit=many", "limit"),
    ];
    for (path, expected) in cases {
        let detail = h.fails(Method::GET, path, StatusCode::BAD_REQUEST).await;
        assert!(
            detail.contains(expected),
            "{path}: detail {detail:?} does not mention {expected:?}"
        );
    }
    // Unknown parameters are ignored.
    assert_eq!(h.get("/api/mcp/sessions?colour=blue").await["total"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shows_a_session_with_its_requests() {
    let h = start().await;
    let live = h.create("windsurf").await;
    let other = h.create("cline").await;
    let id = live.id();
    h.clock.advance(Duration::from_secs(2));
    h.manager.touch(&live);
    h.manager.touch(&live);
    let t0 = h.manager.now();
    let row = |offset_ms: i64, status: RequestStatus, duration_ms: u64| RequestLogEntry {
        session_id: Some(id),
        client_key: None,
        method: "tools/call".to_string(),
        tool_name: Some("echo".to_string()),
        started_at: sessiongate_core::Timestamp::from_millis(t0.as_millis() + offset_ms),
        duration: Duration::from_millis(duration_ms),
        status,
        error_code: (status == RequestStatus::Error).then_some(-32602),
        error_message: (status == RequestStatus::Error).then(|| "bad params".to_string()),
        bytes_in: 100,
        bytes_out: 200,
        upstream: None,
    };
    h.lifecycle
        .request_log
        .record(row(0, RequestStatus::Success, 2))
        .await;
    h.lifecycle
        .request_log
        .record(row(10, RequestStatus::Error, 4))
        .await;
    h.lifecycle
        .request_log
        .record(row(20, RequestStatus::Success, 9))
        .await;
    // Another session's request is not shown.
    let mut foreign = row(30, RequestStatus::Success, 1);
    foreign.session_id = Some(other.id());
    h.lifecycle.request_log.record(foreign).await;

    let path = format!("/api/mcp/sessions/{id}");
    let detail = requests_shown(&h, &path, 3).await;
    assert_eq!(detail["session"]["session_id"], id.to_string());
    assert_eq!(detail["session"]["client_type"], "Windsurf");
    assert_eq!(detail["session"]["status"], "active");
    assert_eq!(detail["session"]["request_count"], 3);
    let requests = detail["requests"].as_array().unwrap();
    // Newest first.
    assert_eq!(requests[0]["duration_ms"], 9.0);
    assert_eq!(requests[1]["status"], "error");
    assert_eq!(requests[1]["error_code"], -32602);
    assert_eq!(requests[1]["error_message"], "bad params");
    assert_eq!(requests[2]["tool_name"], "echo");
    let summary = &detail["summary"];
    assert_eq!(summary["total_requests"], 3);
    assert_eq!(summary["logged_requests"], 3);
    assert_eq!(summary["errors"], 1);
    assert_eq!(summary["avg_duration_ms"], 5.0);
    assert_eq!(summary["last_request_at"], requests[0]["started_at"]);

    let quiet = requests_shown(&h, &format!("/api/mcp/sessions/{}", other.id()), 1).await;
    assert_eq!(quiet["summary"]["errors"], 0);
    assert_eq!(quiet["summary"]["avg_duration_ms"], 1.0);
    // A session without logged requests.
    let silent = h.create("kiro").await;
    let silent = h.get(&format!("/api/mcp/sessions/{}", silent.id())).await;
    assert_eq!(silent["requests"], json!([]));
    assert_eq!(silent["summary"]["total_requests"], 1);
    assert_eq!(silent["summary"]["avg_duration_ms"], 0.0);
    assert_eq!(silent["summary"]["last_request_at"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_malformed_ids_are_404() {
    let h = start().await;
    let unknown = SessionId::generate().to_string();
    for id in [
        unknown.as_str(),
        "not-a-session",
        "0123",
        "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ",
        "%FF%FE",
        "00000000000000000000000000000000000",
    ] {
        let path = format!("/api/mcp/sessions/{id}");
        assert_eq!(
            h.fails(Method::GET, &path, StatusCode::NOT_FOUND).await,
            "Session not found"
        );
        assert_eq!(
            h.fails(Method::DELETE, &path, StatusCode::NOT_FOUND).await,
            "Session not found"
        );
    }
    assert!(h.terminated.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminates_a_session_once() {
    let h = start().await;
    let live = h.create("claude-code").await;
    let id = live.id();
    h.clock.advance(Duration::from_secs(42));
    let path = format!("/api/mcp/sessions/{id}");

    let (status, body) = h.send(Method::DELETE, &path, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["session_id"], id.to_string());
    assert_eq!(body["status"], "disconnected");
    assert_eq!(body["disconnect_reason"], "admin_terminated");
    assert_eq!(body["total_duration"], 42.0);
    assert_eq!(*h.terminated.lock().unwrap(), vec![id]);
    assert!(h.manager.active(id).is_none());

    assert_eq!(
        h.fails(Method::DELETE, &path, StatusCode::CONFLICT).await,
        "Session already disconnected"
    );
    assert_eq!(h.terminated.lock().unwrap().len(), 1);

    let detail = h.get(&path).await;
    let session = &detail["session"];
    assert_eq!(session["status"], "disconnected");
    assert_eq!(session["disconnect_reason"], "admin_terminated");
    assert_eq!(session["total_duration"], 42.0);
    assert_eq!(session["disconnected_at"], body["disconnected_at"]);
    let list = h.get("/api/mcp/sessions").await;
    assert_eq!(list["active_sessions"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_ages_and_connections() {
    let h = start().await;
    let empty = h.get("/api/mcp/sessions/health").await;
    assert_eq!(
        empty["status_breakdown"],
        json!({"active": 0, "disconnected": 0, "total": 0})
    );
    assert_eq!(
        empty["connection_health"],
        json!({"avg_duration_seconds": 0.0, "sessions_per_hour": 0.0,
               "disconnect_rate_percent": 0.0, "total_sessions_24h": 0})
    );
    assert_eq!(empty["recent_activity"], json!([]));
    assert_eq!(empty["session_timeout"], 3600);
    assert_eq!(
        empty["stateless_clients"],
        json!({"active": 0, "total_24h": 0})
    );

    let old = h.create("claude-code").await;
    let ended = h.create("cursor").await;
    h.clock.advance(2 * MINUTE);
    h.manager
        .end(ended.id(), DisconnectReason::ClientDisconnect)
        .await
        .unwrap();
    h.clock.advance(2 * MINUTE);
    let young = h.create("gemini-cli").await;
    h.lifecycle
        .stateless
        .touch("alice|my-agent|1.0", h.manager.now(), || {
            identity("my-agent")
        });
    h.clock.advance(2 * MINUTE);
    // At 6 min: old is 6 min idle (aging), young 2 min (healthy).
    let report = h.get("/api/mcp/sessions/health").await;
    assert_eq!(
        report["status_breakdown"],
        json!({"active": 2, "disconnected": 1, "total": 3})
    );
    assert_eq!(
        report["age_distribution"],
        json!({"healthy": 1, "aging": 1, "stale": 0})
    );
    let connections = &report["connection_health"];
    assert_eq!(connections["total_sessions_24h"], 3);
    assert_eq!(connections["sessions_per_hour"], 0.13);
    assert_eq!(connections["disconnect_rate_percent"], 33.3);
    // (360 + 120 + 120) / 3 seconds: active sessions count up to now.
    assert_eq!(connections["avg_duration_seconds"], 200.0);
    assert_eq!(
        report["stateless_clients"],
        json!({"active": 1, "total_24h": 1})
    );
    let recent = report["recent_activity"].as_array().unwrap();
    assert_eq!(recent.len(), 3);
    assert_eq!(recent[0]["session_id"], young.id().to_string());
    assert_eq!(recent[0]["client_type"], "Gemini");
    assert_eq!(recent[0]["status"], "active");
    assert_eq!(recent[0]["age_minutes"], 2.0);
    assert_eq!(recent[0]["uptime_minutes"], 2.0);
    let row = |id: SessionId| {
        recent
            .iter()
            .find(|r| r["session_id"] == id.to_string())
            .unwrap()
            .clone()
    };
    // Both were last active at the start; the ended one's uptime stopped at
    // its end.
    let ended_row = row(ended.id());
    assert_eq!(ended_row["status"], "disconnected");
    assert_eq!(ended_row["age_minutes"], 6.0);
    assert_eq!(ended_row["uptime_minutes"], 2.0);
    let old_row = row(old.id());
    assert_eq!(old_row["age_minutes"], 6.0);
    assert_eq!(old_row["uptime_minutes"], 6.0);

    // At 11 min: old is stale, young (7 min) aging.
    h.clock.advance(5 * MINUTE);
    let report = h.get("/api/mcp/sessions/health").await;
    assert_eq!(
        report["age_distribution"],
        json!({"healthy": 0, "aging": 1, "stale": 1})
    );
    assert_eq!(report["status_breakdown"]["active"], 2);
    // Activity makes a session healthy again.
    h.manager.touch(&old);
    let report = h.get("/api/mcp/sessions/health").await;
    assert_eq!(
        report["age_distribution"],
        json!({"healthy": 1, "aging": 1, "stale": 0})
    );
    assert_eq!(
        report["recent_activity"][0]["session_id"],
        old.id().to_string()
    );
    assert_eq!(report["recent_activity"][0]["age_minutes"], 0.0);

    // Past the idle timeout the stateless client is no longer active but
    // still counted over 24 h.
    h.clock.advance(Duration::from_secs(3600));
    let report = h.get("/api/mcp/sessions/health").await;
    assert_eq!(
        report["stateless_clients"],
        json!({"active": 0, "total_24h": 1})
    );
    let timestamp = report["timestamp"].as_str().unwrap();
    assert!(timestamp.ends_with('Z'), "{timestamp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_route_is_not_a_session_id() {
    let h = start().await;
    // `health` and `disconnected` are static routes, not ids, also for DELETE.
    for path in ["/api/mcp/sessions/health", "/api/mcp/sessions/disconnected"] {
        h.get(path).await;
        let (status, _) = h.send(Method::DELETE, path, Some(TOKEN)).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "DELETE {path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnected_sessions_with_statistics() {
    let h = start().await;
    let sessions = [
        h.create("claude-code").await.id(),
        h.create("cursor").await.id(),
        h.create("cline").await.id(),
        h.create("kiro").await.id(),
        h.create("augment").await.id(),
    ];
    // Ended after 60, 120, 180 and 240 s; the fifth stays active for now.
    let reasons = [
        DisconnectReason::ClientDisconnect,
        DisconnectReason::ClientDisconnect,
        DisconnectReason::Timeout,
    ];
    for (id, reason) in sessions.iter().zip(reasons) {
        h.clock.advance(MINUTE);
        h.manager.end(*id, reason).await.unwrap();
    }
    h.clock.advance(MINUTE);
    let (status, _) = h
        .send(
            Method::DELETE,
            &format!("/api/mcp/sessions/{}", sessions[3]),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let report = h.get("/api/mcp/sessions/disconnected").await;
    let stats = &report["statistics"];
    assert_eq!(stats["total_disconnected"], 4);
    assert_eq!(
        stats["disconnect_reasons"],
        json!({"client_disconnect": 2, "timeout": 1, "admin_terminated": 1})
    );
    assert_eq!(stats["avg_duration_seconds"], 150.0);
    assert_eq!(stats["max_duration_seconds"], 240.0);
    assert_eq!(stats["min_duration_seconds"], 60.0);
    // Latest end first.
    let listed = ids(&report["sessions"]);
    let expected: Vec<String> = sessions[..4]
        .iter()
        .rev()
        .map(|id| id.to_string())
        .collect();
    assert_eq!(listed, expected);
    assert_eq!(report["period"]["days"], 1);
    let end = report["period"]["end"].as_str().unwrap();
    assert_eq!(end, h.manager.now().to_string());

    let limited = h.get("/api/mcp/sessions/disconnected?days=7&limit=1").await;
    assert_eq!(ids(&limited["sessions"]), vec![sessions[3].to_string()]);
    assert_eq!(limited["statistics"]["total_disconnected"], 4);
    assert_eq!(limited["period"]["days"], 7);

    // Two days later, a one-day period holds none of them; a week, all.
    h.manager
        .end(sessions[4], DisconnectReason::Error)
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(2 * 24 * 3600));
    let later = h.get("/api/mcp/sessions/disconnected?days=1").await;
    assert_eq!(later["sessions"], json!([]));
    assert_eq!(later["statistics"]["total_disconnected"], 0);
    assert_eq!(later["statistics"]["disconnect_reasons"], json!({}));
    let week = h.get("/api/mcp/sessions/disconnected?days=7").await;
    assert_eq!(week["statistics"]["total_disconnected"], 5);
    assert_eq!(week["statistics"]["disconnect_reasons"]["error"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_stateless_clients() {
    let h = start().await;
    assert_eq!(h.get("/api/mcp/clients").await, json!({"clients": []}));
    h.lifecycle
        .stateless
        .touch("k1", h.manager.now(), || identity("claude-code"));
    h.clock.advance(Duration::from_secs(5));
    h.lifecycle
        .stateless
        .touch("k2", h.manager.now(), || identity("my-agent"));
    h.lifecycle
        .stateless
        .touch("k2", h.manager.now(), || unreachable!("known client"));
    let clients = h.get("/api/mcp/clients").await;
    let clients = clients["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 2);
    assert_eq!(clients[0]["client_key"], "k2");
    assert_eq!(clients[0]["request_count"], 2);
    assert_eq!(clients[1]["client_type"], "Claude Code");
}

/// Every key of `actual` is a property of the named schema, and vice versa.
fn assert_schema_matches(doc: &Value, schema: &str, actual: &Value) {
    let properties = keys(&doc["components"]["schemas"][schema]["properties"]);
    assert_eq!(properties, keys(actual), "schema {schema} vs real JSON");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_covers_every_route() {
    let h = start().await;
    let (status, doc) = h.send(Method::GET, "/api/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let paths = keys(&doc["paths"]);
    for path in [
        "/api/health",
        "/api/openapi.json",
        "/api/mcp/sessions",
        "/api/mcp/sessions/{id}",
        "/api/mcp/sessions/health",
        "/api/mcp/sessions/disconnected",
        "/api/mcp/sessions/timeline",
        "/api/mcp/clients",
        "/api/mcp/analytics",
        "/api/mcp/usage/summary",
    ] {
        assert!(paths.contains(path), "{path} missing from {paths:?}");
    }
    assert!(doc["paths"]["/api/mcp/sessions/{id}"]["delete"].is_object());
    let scheme = &doc["components"]["securitySchemes"]["admin_token"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(
        doc["paths"]["/api/mcp/sessions"]["get"]["security"],
        json!([{"admin_token": []}])
    );
    assert!(doc["paths"]["/api/health"]["get"]["security"].is_null());

    // The schema mirrors of core types list exactly the real JSON's fields.
    let live = h.create("claude-code").await;
    h.lifecycle
        .stateless
        .touch("k", h.manager.now(), || identity("cursor"));
    h.lifecycle
        .request_log
        .record(RequestLogEntry {
            session_id: Some(live.id()),
            client_key: None,
            method: "ping".to_string(),
            tool_name: None,
            started_at: h.manager.now(),
            duration: Duration::from_millis(1),
            status: RequestStatus::Success,
            error_code: None,
            error_message: None,
            bytes_in: 1,
            bytes_out: 2,
            upstream: None,
        })
        .await;
    let detail = requests_shown(&h, &format!("/api/mcp/sessions/{}", live.id()), 1).await;
    assert_schema_matches(&doc, "SessionDetail", &detail);
    assert_schema_matches(&doc, "Session", &detail["session"]);
    assert_schema_matches(&doc, "RequestLogEntry", &detail["requests"][0]);
    assert_schema_matches(&doc, "RequestSummary", &detail["summary"]);
    let health = h.get("/api/mcp/sessions/health").await;
    assert_schema_matches(&doc, "SessionHealth", &health);
    for (schema, field) in [
        ("StatusBreakdown", "status_breakdown"),
        ("AgeDistribution", "age_distribution"),
        ("ConnectionHealth", "connection_health"),
        ("StatelessClients", "stateless_clients"),
    ] {
        assert_schema_matches(&doc, schema, &health[field]);
    }
    assert_schema_matches(&doc, "RecentActivity", &health["recent_activity"][0]);
    let clients = h.get("/api/mcp/clients").await;
    assert_schema_matches(&doc, "Client", &clients["clients"][0]);
    let list = h.get("/api/mcp/sessions").await;
    assert_schema_matches(&doc, "SessionList", &list);
    h.manager
        .end(live.id(), DisconnectReason::Timeout)
        .await
        .unwrap();
    let ended = h.get("/api/mcp/sessions/disconnected").await;
    assert_schema_matches(&doc, "DisconnectedSessions", &ended);
    assert_schema_matches(&doc, "DisconnectStats", &ended["statistics"]);
    assert_schema_matches(&doc, "Period", &ended["period"]);
    let (_, service) = h.send(Method::GET, "/api/health", None).await;
    assert_schema_matches(&doc, "ServiceHealth", &service);
}

// ----------------------------------------------------------- reconnection

impl Harness {
    /// POSTs JSON without the admin token (the reconnect token is the credential).
    async fn post_json(
        &self,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap();
        (status, body, headers)
    }

    async fn reconnect(&self, id: SessionId, token: &str) -> (StatusCode, Value) {
        let (status, body, _) = self
            .post_json(
                &format!("/api/mcp/sessions/{id}/reconnect"),
                json!({ "token": token }),
            )
            .await;
        (status, body)
    }

    /// A reconnect that must be refused with 401 and a detail containing `why`.
    async fn refused(&self, id: SessionId, token: &str, why: &str) {
        let (status, body) = self.reconnect(id, token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(why), "expected {why:?} in {detail:?}");
    }

    async fn admin_token_for(&self, id: SessionId) -> String {
        let body = self.get(&format!("/api/mcp/sessions/{id}/token")).await;
        body["reconnect_token"].as_str().unwrap().to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_reconnection_scenarios() {
    let h = start().await;
    let live = h.create("claude-code").await;
    let id = live.id();

    // Token generation, by an admin only.
    let (status, body) = h
        .send(Method::GET, &format!("/api/mcp/sessions/{id}/token"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let issued = h.get(&format!("/api/mcp/sessions/{id}/token")).await;
    assert_eq!(issued["expires_in_minutes"], 15);
    assert_eq!(issued["session_id"], id.to_string());
    assert!(issued["expires_at"].is_string());
    let t1 = issued["reconnect_token"].as_str().unwrap().to_string();

    // Successful reconnects count up and rotate the token.
    let (status, body) = h.reconnect(id, &t1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["session_id"], id.to_string());
    assert_eq!(body["reconnect_count"], 1);
    assert_eq!(body["expires_in_minutes"], 15);
    let t2 = body["reconnect_token"].as_str().unwrap().to_string();
    assert_ne!(t1, t2);
    let (status, body) = h.reconnect(id, &t2).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reconnect_count"], 2);
    let t3 = body["reconnect_token"].as_str().unwrap().to_string();
    let shown = h.get(&format!("/api/mcp/sessions/{id}")).await;
    assert_eq!(shown["session"]["reconnect_count"], 2);

    // Used and superseded tokens are refused, and say which they are.
    h.refused(id, &t2, "already used").await;
    let t4 = h.admin_token_for(id).await;
    h.refused(id, &t3, "superseded").await;

    // Expired.
    h.clock.advance(Duration::from_secs(16 * 60));
    h.refused(id, &t4, "expired").await;

    // Invalid: garbage, a forged signature, the `none` algorithm.
    let t5 = h.admin_token_for(id).await;
    h.refused(id, "not-a-token", "malformed").await;
    let (signed, signature) = t5.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let forged = format!("{signed}.{flipped}{}", &signature[1..]);
    h.refused(id, &forged, "signature").await;
    let payload = t5.split('.').nth(1).unwrap();
    h.refused(
        id,
        &format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}."),
        "algorithm",
    )
    .await;

    // A token for another session.
    let other = h.create("cursor").await;
    h.refused(other.id(), &t5, "another session").await;

    // Nothing above changed the session: the last good token still works.
    let (status, body) = h.reconnect(id, &t5).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reconnect_count"], 3);

    // An admin-terminated session cannot be reclaimed.
    let t6 = h.admin_token_for(other.id()).await;
    h.send(
        Method::DELETE,
        &format!("/api/mcp/sessions/{}", other.id()),
        Some(TOKEN),
    )
    .await;
    h.refused(other.id(), &t6, "admin_terminated").await;
    let (status, _) = h
        .send(
            Method::GET,
            &format!("/api/mcp/sessions/{}/token", other.id()),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A token names its session: for any other id, known or not, it is refused.
    h.refused(SessionId::generate(), &t5, "another session")
        .await;
    let (status, body, _) = h
        .post_json(
            "/api/mcp/sessions/not-a-session/reconnect",
            json!({ "token": t5 }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_session_is_revived_with_its_token() {
    let h = start().await;
    let live = h.create("windsurf").await;
    let id = live.id();
    drop(live);
    let mut events = h.manager.observe();
    h.clock.advance(Duration::from_secs(3601));
    eventually("the session times out", || async {
        h.manager.active(id).is_none().then_some(())
    })
    .await;
    let health = h.get("/api/mcp/sessions/health").await;
    assert_eq!(health["status_breakdown"]["disconnected"], 1);

    // The admin hands the client a token for the timed-out session.
    let token = h.admin_token_for(id).await;
    let (status, body) = h.reconnect(id, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reconnect_count"], 1);
    let revived = h.manager.active(id).expect("active again, same id");
    assert_eq!(revived.protocol_version(), "2025-06-18");
    assert_eq!(revived.identity().client_capabilities, json!({"roots": {}}));
    let shown = h.get(&format!("/api/mcp/sessions/{id}")).await;
    assert_eq!(shown["session"]["status"], "active");
    assert!(shown["session"]["disconnect_reason"].is_null());
    let health = h.get("/api/mcp/sessions/health").await;
    assert_eq!(health["status_breakdown"]["active"], 1);
    assert_eq!(health["status_breakdown"]["disconnected"], 0);
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    assert!(
        seen.contains(&sessiongate_core::lifecycle::LifecycleEvent::Reconnected(
            id, 1
        )),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_reconnects_are_rate_limited() {
    let h = start().await;
    let id = h.create("cline").await.id();
    let good = h.admin_token_for(id).await;
    for _ in 0..10 {
        h.refused(id, "garbage", "malformed").await;
    }
    let (status, body, headers) = h
        .post_json(
            &format!("/api/mcp/sessions/{id}/reconnect"),
            json!({ "token": good }),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // The block lifts with its window; the good token was not spent.
    h.clock.advance(Duration::from_secs(61));
    let (status, body) = h.reconnect(id, &good).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_usage_and_timeline_report_the_request_log() {
    let h = start().await;
    let a = h.create("claude-code").await;
    let b = h.create("cursor").await;
    let now = h.manager.now();
    let call = |session: &Arc<ActiveSession>, tool: &str, ms: u64, ok: bool| RequestLogEntry {
        session_id: Some(session.id()),
        client_key: None,
        method: "tools/call".to_string(),
        tool_name: Some(tool.to_string()),
        started_at: now,
        duration: Duration::from_millis(ms),
        status: if ok {
            RequestStatus::Success
        } else {
            RequestStatus::Error
        },
        error_code: None,
        error_message: None,
        bytes_in: 0,
        bytes_out: 0,
        upstream: None,
    };
    for ms in 1..=10 {
        h.lifecycle
            .request_log
            .record(call(&a, "echo", ms, ms != 10))
            .await;
    }
    h.lifecycle
        .request_log
        .record(call(&b, "search", 100, true))
        .await;
    h.manager
        .end(b.id(), DisconnectReason::ClientDisconnect)
        .await
        .unwrap();

    let usage = eventually("the request log flush", || async {
        let usage = h.get("/api/mcp/usage/summary?days=1").await;
        (usage["summary"]["total_requests"] == 11).then_some(usage)
    })
    .await;
    assert_eq!(usage["period"]["days"], 1);
    assert_eq!(usage["summary"]["errors"], 1);
    assert_eq!(usage["summary"]["unique_sessions"], 2);
    assert_eq!(usage["summary"]["success_rate"], 90.9);
    assert_eq!(usage["by_tool"]["echo"]["count"], 10);
    assert_eq!(usage["by_tool"]["echo"]["errors"], 1);
    assert_eq!(usage["by_tool"]["echo"]["avg_ms"], 5.5);
    assert_eq!(usage["by_tool"]["search"]["count"], 1);
    // A name outside the server's catalog is marked; a tool is not.
    assert_eq!(usage["by_tool"]["search"]["unknown"], true);
    assert_eq!(usage["by_tool"]["echo"].get("unknown"), None);

    let report = h.get("/api/mcp/analytics?days=2&compare=true").await;
    assert_eq!(
        keys(&report),
        keys(&json!({"period":0,"trends":0,"ratios":0,"response_times":0,"comparison":0}))
    );
    let daily = report["trends"]["daily"].as_array().unwrap();
    assert_eq!(daily.len(), 2);
    assert_eq!(daily[1]["requests"], 11);
    assert_eq!(daily[0]["requests"], 0);
    assert_eq!(daily[1]["date"], now.to_rfc3339()[..10]);
    assert_eq!(report["trends"]["hourly"].as_array().unwrap().len(), 48);
    assert_eq!(
        report["ratios"],
        json!({"success": 10, "error": 1, "timeout": 0, "success_rate": 90.9})
    );
    let echo = &report["response_times"]["by_tool"][0];
    assert_eq!(echo["tool"], "echo");
    assert_eq!(
        (
            echo["p50"].as_f64(),
            echo["p95"].as_f64(),
            echo["p99"].as_f64()
        ),
        (Some(5.0), Some(10.0), Some(10.0))
    );
    assert_eq!(echo["min_ms"], 1.0);
    assert_eq!(echo["max_ms"], 10.0);
    assert_eq!(echo.get("unknown"), None);
    assert_eq!(report["response_times"]["by_tool"][1]["tool"], "search");
    assert_eq!(report["response_times"]["by_tool"][1]["unknown"], true);
    assert_eq!(report["response_times"]["p99"], 100.0);
    assert_eq!(
        report["comparison"]["requests"],
        json!({"current": 11.0, "previous": 0.0, "change_percent": null})
    );
    assert!(h.get("/api/mcp/analytics").await["comparison"].is_null());

    let timeline = eventually("the session end to be stored", || async {
        let t = h.get("/api/mcp/sessions/timeline?hours=1").await;
        let last = t["points"].as_array().unwrap().last().cloned().unwrap();
        (last["disconnected"] == 1).then_some(t)
    })
    .await;
    assert_eq!(timeline["bucket_seconds"], 60);
    let points = timeline["points"].as_array().unwrap();
    assert_eq!(points.len(), 60);
    let last = points.last().unwrap();
    assert_eq!(
        (
            last["connected"].as_u64(),
            last["active"].as_u64(),
            last["requests"].as_u64()
        ),
        (Some(2), Some(1), Some(11))
    );
    assert_eq!(
        h.get("/api/mcp/sessions/timeline?hours=24").await["bucket_seconds"],
        900
    );

    for bad in [
        "/api/mcp/analytics?days=0",
        "/api/mcp/usage/summary?days=91",
        "/api/mcp/sessions/timeline?hours=169",
        "/api/mcp/analytics?compare=maybe",
    ] {
        h.fails(Method::GET, bad, StatusCode::BAD_REQUEST).await;
    }
    let (status, _) = h.send(Method::GET, "/api/mcp/analytics", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
