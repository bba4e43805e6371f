//! Bounded resources: what clients send cannot grow the server's memory or
//! take all its connections. Real `sessiongate serve` processes (their RSS
//! and open-file limit are the point) and real sockets.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{stateless, TestServer};
use futures::future::join_all;
use futures::StreamExt;
use serde_json::{json, Value};
use sessiongate::config::Settings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "limits-test-admin-token";

/// A `sessiongate serve` process, stopped when dropped.
struct Gateway {
    child: Child,
    base: String,
    addr: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    /// Starts the binary with `extra` flags and, if given, an open-file
    /// limit of (soft, hard) as a shell would have set it.
    async fn start(data_dir: &std::path::Path, extra: &[&str], nofile: Option<(u64, u64)>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut command = Command::new(env!("CARGO_BIN_EXE_sessiongate"));
        command
            .args(["serve", "--listen", &addr, "--admin-token", TOKEN])
            .args(extra)
            .arg("--data-dir")
            .arg(data_dir)
            .env("SESSIONGATE_LOG", "warn")
            .stdout(Stdio::null());
        if let Some((soft, hard)) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: only setrlimit, async-signal-safe, between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: soft as libc::rlim_t,
                        rlim_max: hard as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = command.spawn().expect("the sessiongate binary starts");
        let gateway = Gateway {
            child,
            base: format!("http://{addr}"),
            addr,
        };
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if http
                .get(format!("{}/api/health", gateway.base))
                .send()
                .await
                .is_ok()
            {
                return gateway;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("sessiongate did not start on {}", gateway.base);
    }

    /// The process's resident memory, from /proc.
    fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status");
        kb * 1024
    }

    async fn admin(&self, http: &reqwest::Client, path: &str) -> reqwest::Response {
        http.get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
    }
}

/// A stateless request from a client with its own `clientInfo` and
/// `capabilities`.
fn stateless_from(name: &str, capabilities: &Value) -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
        "name":"echo","arguments":{"text":"hi"},
        "_meta":{
            "io.modelcontextprotocol/protocolVersion":"2026-07-28",
            "io.modelcontextprotocol/clientInfo":{"name":name,"version":"1"},
            "io.modelcontextprotocol/clientCapabilities":capabilities}}})
}

async fn post_stateless(http: &reqwest::Client, base: &str, body: String) -> reqwest::Response {
    http.post(format!("{base}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "echo")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Raises this test process's own open-file soft limit to its hard limit:
/// it holds well over a thousand sockets.
fn raise_own_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// Memory for N clients grows with N only up to the caps: 1,000 identities
/// with 1 MiB capabilities are refused, 1,500 distinct small ones fill a
/// table of 200 and no more. The bound: RSS stays within 64 MiB of what the
/// server used after its first requests (what unbounded tables took was
/// hundreds of MiB for a hundred such clients); the slack is the allocator
/// keeping freed request buffers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_metadata_cannot_grow_memory() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &["--max-stateless-clients", "200"], None).await;
    let http = reqwest::Client::new();
    for i in 0..20 {
        let r = post_stateless(
            &http,
            &gw.base,
            stateless_from(&format!("warm-{i}"), &json!({})).to_string(),
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    let idle = gw.rss_bytes();

    let big = json!({ "experimental": { "blob": "x".repeat(1 << 20) } });
    let refusals = futures::stream::iter(0..1000)
        .map(|i| {
            let body = stateless_from(&format!("big-{i}"), &big).to_string();
            let (http, base) = (&http, &gw.base);
            async move {
                let r = post_stateless(http, base, body).await;
                assert_eq!(r.status(), 400);
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["error"]["code"], -32602, "{body}");
                body["error"]["message"].as_str().unwrap().to_string()
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await;
    assert!(
        refusals[0].contains("clientCapabilities") && refusals[0].contains("65536"),
        "{}",
        refusals[0]
    );
    // initialize too: each would be a durable session.
    let init = http
        .post(format!("{}/mcp", gw.base))
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(
            json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":big,
            "clientInfo":{"name":"big","version":"1"}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), 400);
    let body: Value = init.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32602);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("params.capabilities"));

    let caps = json!({ "experimental": { "note": "y".repeat(2048) } });
    futures::stream::iter(0..1500)
        .map(|i| {
            let body = stateless_from(&format!("small-{i}"), &caps).to_string();
            let (http, base) = (&http, &gw.base);
            async move { assert_eq!(post_stateless(http, base, body).await.status(), 200) }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;

    let clients = gw.admin(&http, "/api/mcp/clients").await;
    assert_eq!(clients.status(), 200);
    let clients: Value = clients.json().await.unwrap();
    let listed = clients
        .as_array()
        .or_else(|| clients["clients"].as_array())
        .expect("a list of clients")
        .len();
    assert!(listed <= 200, "{listed} clients listed; the cap is 200");
    let metrics = gw.admin(&http, "/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"sessiongate_client_evictions_total{table="clients"}"#),
        "{metrics}"
    );

    let grown = gw.rss_bytes().saturating_sub(idle);
    println!("RSS idle {} MiB, grew by {} MiB", idle >> 20, grown >> 20);
    assert!(grown < 64 << 20, "RSS grew by {} MiB", grown >> 20);
}

/// Reads from a raw connection until it closes or `within` passes; returns
/// what was read and whether it closed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&seen).into(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&seen).into(), true),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// 1,100 idle connections and 500 slowloris ones (half-sent headers and slow
/// bodies) against a server started with the default soft limit of 1,024
/// open files: it raises the limit, MCP clients and the management API are
/// answered within 1 s, half-sent headers are closed after the header
/// timeout and slow bodies get 408.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_and_slow_connections_do_not_starve_clients() {
    raise_own_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(
        dir.path(),
        &["--header-read-timeout", "1s", "--body-read-timeout", "1s"],
        Some((1024, 1280)),
    )
    .await;

    // A server that stops accepting fills its backlog, and connecting hangs.
    let connect = |n: usize| {
        let addr = gw.addr.clone();
        async move {
            let mut all = Vec::with_capacity(n);
            for _ in 0..n {
                let tcp = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&addr))
                    .await
                    .expect("the server keeps accepting connections");
                all.push(tcp.unwrap());
            }
            all
        }
    };
    let _idle = connect(1100).await;
    let mut half_headers = connect(450).await;
    for s in &mut half_headers {
        s.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl")
            .await
            .unwrap();
    }
    let mut slow_bodies = connect(50).await;
    for s in &mut slow_bodies {
        s.write_all(
            b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
              Accept: application/json\r\nContent-Length: 1000\r\n\r\n{\"jsonrpc\"",
        )
        .await
        .unwrap();
    }
    let opened = Instant::now();

    // Fresh clients, each on a new connection, are answered at once.
    let timed = |what: &'static str, started: Instant| {
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "{what} took {took:?}");
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let started = Instant::now();
    let health = http
        .get(format!("{}/api/health", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    timed("GET /api/health", started);
    let started = Instant::now();
    assert_eq!(gw.admin(&http, "/api/mcp/sessions").await.status(), 200);
    timed("GET /api/mcp/sessions", started);
    let started = Instant::now();
    let r = post_stateless(
        &http,
        &gw.base,
        stateless(
            "tools/call",
            json!({"name":"echo","arguments":{"text":"hi"}}),
        )
        .to_string(),
    )
    .await;
    assert_eq!(r.status(), 200);
    timed("an MCP tools/call", started);

    // Half-sent headers are closed after the header timeout (1 s).
    let closed = join_all(
        half_headers
            .iter_mut()
            .map(|s| async move { read_until_closed(s, Duration::from_secs(4)).await.1 }),
    )
    .await;
    assert!(
        closed.iter().all(|c| *c),
        "a half-sent request head stayed open"
    );
    assert!(opened.elapsed() < Duration::from_secs(5));
    // Slow bodies are answered 408 and closed.
    for s in &mut slow_bodies {
        let (seen, closed) = read_until_closed(s, Duration::from_secs(3)).await;
        assert!(seen.starts_with("HTTP/1.1 408"), "{seen}");
        assert!(closed);
    }
    let metrics = gw.admin(&http, "/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"sessiongate_connections_closed_total{reason="header_timeout"}"#),
        "{metrics}"
    );
}

/// A declared 10 GB body is refused with 413 before anything is read.
#[tokio::test]
async fn a_declared_10_gb_body_gets_413_at_once() {
    let ts = TestServer::start().await;
    let mut s = TcpStream::connect(ts.server.addr).await.unwrap();
    s.write_all(
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
          Accept: application/json\r\nContent-Length: 10000000000\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf))
        .await
        .expect("an answer within 1 s")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    ts.stop().await;
}

/// Past its burst, an address's initialize gets 429 with Retry-After.
#[tokio::test]
async fn initialize_past_the_rate_gets_429_with_retry_after() {
    let ts = TestServer::start_with(Settings {
        initialize_rate: Some(0.5),
        initialize_burst: Some(3),
        ..Default::default()
    })
    .await;
    for _ in 0..3 {
        ts.initialize("2025-11-25", "client").await;
    }
    let r = ts
        .post(
            json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":"2025-11-25","capabilities":{},
                "clientInfo":{"name":"client","version":"1"}}}),
            &[],
        )
        .await;
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(wait, 2);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("retry in 2s"));
    // Other requests of the address are not limited.
    let s = ts
        .post(
            stateless("tools/list", json!({})),
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/list"),
            ],
        )
        .await;
    assert_eq!(s.status(), 200);
    ts.stop().await;
}

/// Oversized clientInfo gets a clear 400 naming the field and the limit.
#[tokio::test]
async fn oversized_client_info_is_refused_with_the_field_and_limit() {
    let ts = TestServer::start_with(Settings {
        max_client_metadata_bytes: Some(1024),
        ..Default::default()
    })
    .await;
    let r = ts
        .post(
            json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":"2025-11-25","capabilities":{},
                "clientInfo":{"name":"n".repeat(2000),"version":"1"}}}),
            &[],
        )
        .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["id"], 0);
    assert_eq!(body["error"]["code"], -32602);
    assert_eq!(body["error"]["data"]["field"], "params.clientInfo");
    assert_eq!(body["error"]["data"]["limit"], 1024);
    let mut request = stateless("tools/list", json!({}));
    request["params"]["_meta"]["io.modelcontextprotocol/clientInfo"]["name"] =
        json!("n".repeat(2000));
    let r = ts
        .post(
            request,
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/list"),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("io.modelcontextprotocol/clientInfo"),
        "{body}"
    );
    ts.stop().await;
}

/// MCP requests cannot take the connections kept for the management API:
/// with all MCP slots held by open streams, another MCP request gets 503
/// and the management API still answers.
#[tokio::test]
async fn the_management_api_answers_when_mcp_holds_every_slot_it_may() {
    let ts = TestServer::start_with(Settings {
        max_connections: Some(20),
        connection_reserve: Some(5),
        ..Default::default()
    })
    .await;
    let mut sessions = Vec::new();
    for i in 0..16 {
        sessions.push(ts.initialize("2025-11-25", &format!("c{i}")).await);
    }
    // Each client on its own connection, as separate processes would be.
    let mut streams = Vec::new();
    for session in &sessions[..15] {
        let http = reqwest::Client::new();
        let r = ts.get_stream_on(&http, session).await;
        streams.push((http, r));
    }
    let http = reqwest::Client::new();
    let r = http
        .post(ts.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("mcp-session-id", &sessions[15])
        .header("mcp-protocol-version", "2025-11-25")
        .body(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let health = http
        .get(format!("{}/api/health", ts.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    ts.admin_get("/api/mcp/sessions").await;
    // A closed stream frees its slot.
    streams.pop();
    common::eventually(Duration::from_secs(5), || {
        let (http, url, session) = (&http, ts.mcp_url(), &sessions[15]);
        async move {
            http.post(url)
                .header("content-type", "application/json")
                .header("accept", "application/json")
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", "2025-11-25")
                .body(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}).to_string())
                .send()
                .await
                .unwrap()
                .status()
                == 200
        }
    })
    .await;
    drop(streams);
    ts.stop().await;
}
