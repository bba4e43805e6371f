//! The gateway's upstreams as operators see them, over real HTTP and a real
//! WebSocket: `GET /api/mcp/upstreams`, their series in `/metrics` and their
//! events on the live stream. The gateway itself is a fake
//! `UpstreamMonitor` whose reports and events the tests set.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sessiongate_api::{router, ApiState};
use sessiongate_core::lifecycle::{Lifecycle, LifecycleConfig};
use sessiongate_core::store_health::Monitored;
use sessiongate_core::upstream::{
    UpstreamEvent, UpstreamMonitor, UpstreamName, UpstreamReport, UpstreamStatus,
};
use sessiongate_core::{ManualClock, SessionId, Timestamp};
use sessiongate_store::{connect, Database};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "test-admin-token-0123456789abcdef";

/// A gateway whose reports the test sets and whose events it sends.
struct FakeGateway {
    reports: Mutex<Vec<UpstreamReport>>,
    events: broadcast::Sender<UpstreamEvent>,
}

impl FakeGateway {
    fn new(reports: Vec<UpstreamReport>) -> Arc<Self> {
        Arc::new(FakeGateway {
            reports: Mutex::new(reports),
            // Small, so a test can make the live stream fall behind.
            events: broadcast::channel(2).0,
        })
    }

    fn set(&self, reports: Vec<UpstreamReport>) {
        *self.reports.lock().unwrap() = reports;
    }

    fn send(&self, event: UpstreamEvent) {
        self.events.send(event).expect("the live stream listens");
    }
}

impl UpstreamMonitor for FakeGateway {
    fn reports(&self) -> Vec<UpstreamReport> {
        self.reports.lock().unwrap().clone()
    }

    fn subscribe(&self) -> broadcast::Receiver<UpstreamEvent> {
        self.events.subscribe()
    }
}

fn name(s: &str) -> UpstreamName {
    UpstreamName::new(s).unwrap()
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// A healthy stdio upstream and an HTTP one that cannot be reached, under
/// names of the test's own (the metrics recorder is the process's).
fn reports(prefix: &str) -> Vec<UpstreamReport> {
    vec![
        UpstreamReport {
            name: name(&format!("{prefix}-files")),
            transport: "stdio",
            mode: Some("per-session"),
            status: UpstreamStatus::Up,
            processes: 3,
            restarts: 2,
            last_error: None,
            last_error_at: None,
            sessions_mapped: 3,
            requests: 120,
            errors: 4,
            p50_ms: Some(1.25),
            p99_ms: Some(9.5),
        },
        UpstreamReport {
            name: name(&format!("{prefix}-search")),
            transport: "streamable-http",
            mode: None,
            status: UpstreamStatus::Down,
            processes: 0,
            restarts: 0,
            last_error: Some("connection refused: http://127.0.0.1:9/mcp".into()),
            last_error_at: Some(at(1_700_000_000_000)),
            sessions_mapped: 0,
            requests: 0,
            errors: 0,
            p50_ms: None,
            p99_ms: None,
        },
    ]
}

struct Server {
    base: String,
    http: reqwest::Client,
    _lifecycle: Lifecycle,
    _dir: tempfile::TempDir,
}

async fn start(gateway: Option<Arc<FakeGateway>>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = connect(&Database::Sqlite {
        path: dir.path().join("sessions.db"),
    })
    .await
    .expect("sqlite store");
    let clock = ManualClock::starting_now();
    let store = Arc::new(Monitored::new(store, Arc::new(clock.clone())));
    let lifecycle = Lifecycle::start(
        store.clone(),
        Arc::new(clock),
        LifecycleConfig::default(),
        Vec::new(),
    )
    .await
    .expect("lifecycle");
    let monitor = gateway.map(|g| g as Arc<dyn UpstreamMonitor>);
    let state = ApiState::new(&lifecycle, &store, TOKEN).upstreams(monitor);
    // Before anything is recorded, as the binary does.
    sessiongate_api::metrics::handle();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router(state)).await.unwrap();
    });
    Server {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        _lifecycle: lifecycle,
        _dir: dir,
    }
}

impl Server {
    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, String) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    async fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path, Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

#[tokio::test]
async fn lists_each_upstream_for_admins_only() {
    let none = start(None).await;
    assert_eq!(
        none.json("/api/mcp/upstreams").await,
        json!({"upstreams": []})
    );

    let gateway = FakeGateway::new(reports("list"));
    let server = start(Some(gateway.clone())).await;
    let (status, _) = server.get("/api/mcp/upstreams", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server.get("/api/mcp/upstreams", Some("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let list = server.json("/api/mcp/upstreams").await;
    assert_eq!(
        list,
        json!({"upstreams": [
            {
                "name": "list-files", "transport": "stdio", "mode": "per-session",
                "status": "up", "processes": 3, "restarts": 2,
                "last_error": null, "last_error_at": null, "sessions_mapped": 3,
                "requests": 120, "errors": 4, "p50_ms": 1.25, "p99_ms": 9.5,
            },
            {
                "name": "list-search", "transport": "streamable-http", "mode": null,
                "status": "down", "processes": 0, "restarts": 0,
                "last_error": "connection refused: http://127.0.0.1:9/mcp",
                "last_error_at": at(1_700_000_000_000),
                "sessions_mapped": 0, "requests": 0, "errors": 0,
                "p50_ms": null, "p99_ms": null,
            },
        ]})
    );

    // Read at each request: the gateway's figures now, not at start.
    let mut later = reports("list");
    later[1].status = UpstreamStatus::Degraded;
    gateway.set(later);
    let list = server.json("/api/mcp/upstreams").await;
    assert_eq!(list["upstreams"][1]["status"], "degraded");

    // The OpenAPI document describes the route and exactly these fields.
    let (_, doc) = server.get("/api/openapi.json", None).await;
    let doc: Value = serde_json::from_str(&doc).unwrap();
    let route = &doc["paths"]["/api/mcp/upstreams"]["get"];
    assert_eq!(route["security"], json!([{"admin_token": []}]), "{route}");
    let documented: Vec<&String> = doc["components"]["schemas"]["UpstreamReport"]["properties"]
        .as_object()
        .expect("an UpstreamReport schema")
        .keys()
        .collect();
    let real: Vec<&String> = list["upstreams"][0].as_object().unwrap().keys().collect();
    let (mut documented, mut real) = (documented, real);
    documented.sort();
    real.sort();
    assert_eq!(documented, real);
}

/// The value of the series `name{labels}` in a Prometheus text page.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn metrics_show_each_upstream_at_scrape_time() {
    let gateway = FakeGateway::new(reports("metrics"));
    let server = start(Some(gateway.clone())).await;
    let page = server.metrics().await;
    let files = r#"upstream="metrics-files""#;
    let search = r#"upstream="metrics-search""#;
    for (series, want) in [
        (format!("sessiongate_upstream_up{{{files}}}"), 1.0),
        (format!("sessiongate_upstream_up{{{search}}}"), 0.0),
        (format!("sessiongate_upstream_processes{{{files}}}"), 3.0),
        (
            format!("sessiongate_upstream_restarts_total{{{files}}}"),
            2.0,
        ),
        (
            format!("sessiongate_upstream_sessions_mapped{{{files}}}"),
            3.0,
        ),
        (
            format!("sessiongate_upstream_requests_total{{{files}}}"),
            120.0,
        ),
        (format!("sessiongate_upstream_errors_total{{{files}}}"), 4.0),
        (
            format!("sessiongate_upstream_latency_ms{{{files},quantile=\"0.5\"}}"),
            1.25,
        ),
        (
            format!("sessiongate_upstream_latency_ms{{{files},quantile=\"0.99\"}}"),
            9.5,
        ),
    ] {
        assert_eq!(sample(&page, &series), Some(want), "{series} in\n{page}");
    }
    // No latency before the first request.
    assert!(!page.contains(&format!("sessiongate_upstream_latency_ms{{{search}")));

    let mut later = reports("metrics");
    later[0].status = UpstreamStatus::Degraded;
    later[0].restarts = 5;
    later[0].requests = 200;
    gateway.set(later);
    let page = server.metrics().await;
    for (series, want) in [
        (format!("sessiongate_upstream_up{{{files}}}"), 0.5),
        (
            format!("sessiongate_upstream_restarts_total{{{files}}}"),
            5.0,
        ),
        (
            format!("sessiongate_upstream_requests_total{{{files}}}"),
            200.0,
        ),
    ] {
        assert_eq!(sample(&page, &series), Some(want), "{series} in\n{page}");
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn live(server: &Server) -> Ws {
    let url = format!(
        "{}/api/mcp/ws/sessions",
        server.base.replacen("http", "ws", 1)
    );
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
    );
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// The next JSON message, skipping pings; fails after 10 s.
async fn next(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("the stream is open")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// The next message of `kind`, skipping others.
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let message = next(ws).await;
        if message["type"] == kind {
            return message;
        }
    }
}

#[tokio::test]
async fn live_stream_carries_upstream_events_and_resyncs_after_a_lag() {
    let gateway = FakeGateway::new(reports("live"));
    let server = start(Some(gateway.clone())).await;
    let mut ws = live(&server).await;
    let snapshot = next_of(&mut ws, "snapshot").await;
    assert_eq!(snapshot["upstreams"], json!(reports("live")));

    let mut down = reports("live");
    down[0].status = UpstreamStatus::Down;
    down[0].last_error = Some("exited with status 1: Error: Cannot find module".into());
    gateway.set(down.clone());
    gateway.send(UpstreamEvent::UpstreamDown {
        upstream: name("live-files"),
        error: "exited with status 1: Error: Cannot find module".into(),
        at: at(1_700_000_001_000),
    });
    let message = next_of(&mut ws, "upstream_down").await;
    assert_eq!(message["upstream"], "live-files");
    assert_eq!(
        message["error"],
        "exited with status 1: Error: Cannot find module"
    );
    assert_eq!(message["at"], json!(at(1_700_000_001_000)));
    assert_eq!(message["report"], json!(down[0]));
    assert!(message["timestamp"].is_string(), "{message}");

    let session = SessionId::generate();
    gateway.send(UpstreamEvent::UpstreamRestarted {
        upstream: name("live-files"),
        session_id: Some(session),
        reason: "the child exited (killed by signal 9)".into(),
        at: at(1_700_000_002_000),
    });
    let message = next_of(&mut ws, "upstream_restarted").await;
    assert_eq!(message["session_id"], session.to_string());
    assert_eq!(message["reason"], "the child exited (killed by signal 9)");

    gateway.set(reports("live"));
    gateway.send(UpstreamEvent::UpstreamUp {
        upstream: name("live-files"),
        at: at(1_700_000_003_000),
    });
    let message = next_of(&mut ws, "upstream_up").await;
    assert_eq!(message["report"]["status"], "up");

    // More events than the gateway's channel holds, sent before the stream
    // reads any (one test thread): it falls behind, and its subscribers are
    // told so and sent a snapshot with the reports as they are now.
    let mut now = reports("live");
    now[1].status = UpstreamStatus::Up;
    gateway.set(now.clone());
    for i in 0..8 {
        gateway.send(UpstreamEvent::UpstreamUp {
            upstream: name("live-search"),
            at: at(1_700_000_004_000 + i),
        });
    }
    let lagged = next_of(&mut ws, "lagged").await;
    assert!(lagged["missed"].as_u64().unwrap() > 0, "{lagged}");
    let fresh = next(&mut ws).await;
    assert_eq!(fresh["type"], "snapshot");
    assert_eq!(fresh["upstreams"], json!(now));
}
