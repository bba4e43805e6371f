//! The live event stream under load (issue 4's figure): many WebSocket
//! subscribers on `/api/mcp/ws/sessions` while sessions come and go at a
//! fixed rate, against a running sessiongate.
//!
//! ```text
//! bench-live --url http://127.0.0.1:PORT --token TOKEN [--subscribers 500]
//!            [--rate 1000] [--duration 20] [--deflate 1] [--ready FILE]
//! ```
//!
//! Connects the subscribers and waits for each one's snapshot, writes
//! `ready` to `--ready` (so a throughput run can start alongside), then for
//! `--duration` seconds opens a session and ends it half a second later,
//! `rate / 2` times a second: `rate` lifecycle events per second
//! (`session_created`, `session_disconnected`). Every fiftieth subscriber
//! parses what it receives and timestamps each event; its delivery latency
//! is measured from just before the request that caused it (so it includes
//! that request's own handling). The others, once past their snapshot, only
//! drain their socket and count bytes: this process shares the machine with
//! the server, and decoding half a million WebSocket messages a second
//! would measure the client more than the server. All offer
//! permessage-deflate as browsers do (`--deflate 0`: none does), so the
//! server sends compressed batches; the sampling ones inflate them with
//! yawc. Prints one JSON object.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

struct Options {
    url: String,
    token: String,
    subscribers: usize,
    rate: u64,
    duration: Duration,
    deflate: bool,
    ready: Option<String>,
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "bench-live: {problem}\nusage: bench-live --url URL --token TOKEN [--subscribers N] \
         [--rate EVENTS_PER_S] [--duration SECONDS] [--deflate 0|1] [--ready FILE]"
    );
    std::process::exit(2)
}

fn parse_args() -> Options {
    let mut o = Options {
        url: String::new(),
        token: String::new(),
        subscribers: 500,
        rate: 1000,
        duration: Duration::from_secs(20),
        deflate: true,
        ready: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{arg} needs a value")));
        let number =
            |v: &str| -> u64 { v.parse().unwrap_or_else(|_| usage(&format!("bad {arg}"))) };
        match arg.as_str() {
            "--url" => o.url = value.trim_end_matches('/').to_string(),
            "--token" => o.token = value,
            "--subscribers" => o.subscribers = number(&value) as usize,
            "--rate" => o.rate = number(&value).max(2),
            "--duration" => o.duration = Duration::from_secs(number(&value)),
            "--deflate" => o.deflate = number(&value) != 0,
            "--ready" => o.ready = Some(value),
            _ => usage(&format!("unknown argument {arg}")),
        }
    }
    if o.url.is_empty() || o.token.is_empty() {
        usage("--url and --token are required");
    }
    o
}

/// An event a sampling subscriber saw: the session, whether it was the end,
/// and when it arrived.
type Seen = (String, bool, Instant);

/// The session id and kind of a `session_created` or `session_disconnected`
/// message, found without parsing the whole message.
fn event_of(text: &str) -> Option<(String, bool)> {
    let ended = if text.contains("\"type\":\"session_created\"") {
        false
    } else if text.contains("\"type\":\"session_disconnected\"") {
        true
    } else {
        return None;
    };
    const KEY: &str = "\"session_id\":\"";
    let start = text.find(KEY)? + KEY.len();
    Some((text.get(start..start + 32)?.to_string(), ended))
}

async fn subscriber(
    url: String,
    token: String,
    sample: bool,
    deflate: bool,
    received: Arc<AtomicU64>,
    ready: tokio::sync::mpsc::Sender<()>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<Vec<Seen>> {
    let bearer = format!("Bearer {token}");
    if sample {
        return Some(sample_events(url, bearer, deflate, received, ready, stop).await);
    }
    let mut request = url.into_client_request().expect("websocket url");
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&bearer).expect("token header"),
    );
    if deflate {
        // Chromium's offer, word for word.
        request.headers_mut().insert(
            "sec-websocket-extensions",
            HeaderValue::from_static("permessage-deflate; client_max_window_bits"),
        );
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .unwrap_or_else(|e| panic!("cannot subscribe: {e}"));
    // The snapshot comes first.
    while !matches!(ws.next().await, Some(Ok(Message::Text(_)))) {}
    let _ = ready.send(()).await;
    {
        let MaybeTlsStream::Plain(mut tcp) = ws.into_inner() else {
            unreachable!("plain ws:// only")
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = tokio::select! {
                n = tcp.read(&mut buf) => n,
                _ = stop.changed() => break,
            };
            match n {
                Ok(0) | Err(_) => break,
                Ok(n) => received.fetch_add(n as u64, Ordering::Relaxed),
            };
        }
    }
    None
}

/// A subscriber that reads every event and timestamps it, with yawc, which
/// inflates permessage-deflate as a browser would.
async fn sample_events(
    url: String,
    bearer: String,
    deflate: bool,
    received: Arc<AtomicU64>,
    ready: tokio::sync::mpsc::Sender<()>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<Seen> {
    let options = if deflate {
        yawc::Options::default().with_low_latency_compression()
    } else {
        yawc::Options::default()
    };
    let mut ws = yawc::WebSocket::connect(url.parse().expect("websocket url"))
        .with_options(options.with_limits(16 << 20, 32 << 20))
        .with_request(yawc::HttpRequestBuilder::new().header("authorization", bearer))
        .await
        .unwrap_or_else(|e| panic!("cannot subscribe: {e}"));
    // The snapshot comes first.
    while ws
        .next()
        .await
        .is_some_and(|f| f.opcode() != yawc::frame::OpCode::Text)
    {}
    let _ = ready.send(()).await;
    let mut seen = Vec::new();
    loop {
        let frame = tokio::select! {
            frame = ws.next() => frame,
            _ = stop.changed() => break,
        };
        let Some(frame) = frame else { break };
        if frame.opcode() != yawc::frame::OpCode::Text {
            continue;
        }
        let text = frame.as_str();
        received.fetch_add(text.len() as u64, Ordering::Relaxed);
        if let Some((id, ended)) = event_of(text) {
            seen.push((id, ended, Instant::now()));
        }
    }
    seen
}

/// When each session's initialize and DELETE were sent.
#[derive(Default)]
struct Sent {
    created: HashMap<String, Instant>,
    ended: HashMap<String, Instant>,
}

async fn churn(http: reqwest::Client, mcp: String, sent: Arc<Mutex<Sent>>, errors: Arc<AtomicU64>) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "bench-live", "version": "1"}}});
    let t0 = Instant::now();
    let response = http
        .post(&mcp)
        .header("accept", "application/json, text/event-stream")
        .json(&body)
        .send()
        .await;
    let Some(id) = response.ok().and_then(|r| {
        r.headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }) else {
        errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    sent.lock().unwrap().created.insert(id.clone(), t0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t1 = Instant::now();
    sent.lock().unwrap().ended.insert(id.clone(), t1);
    let deleted = http
        .delete(&mcp)
        .header("mcp-session-id", &id)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await;
    if !deleted.is_ok_and(|r| r.status().is_success()) {
        errors.fetch_add(1, Ordering::Relaxed);
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    let o = parse_args();
    let ws_url = format!("{}/api/mcp/ws/sessions", o.url.replacen("http", "ws", 1));
    let received = Arc::new(AtomicU64::new(0));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(o.subscribers.max(1));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut subscribers = Vec::with_capacity(o.subscribers);
    for i in 0..o.subscribers {
        subscribers.push(tokio::spawn(subscriber(
            ws_url.clone(),
            o.token.clone(),
            // Ten samplers at 500 subscribers still time 200,000 deliveries
            // in a 20 s run; each one more costs the machine it measures.
            i % 50 == 0,
            o.deflate,
            received.clone(),
            ready_tx.clone(),
            stop_rx.clone(),
        )));
        // Don't flood the listener's accept queue.
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for _ in 0..o.subscribers {
        ready_rx.recv().await.expect("a subscriber's snapshot");
    }
    if let Some(path) = &o.ready {
        std::fs::write(path, "ready\n").expect("writing the ready file");
    }
    eprintln!("bench-live: {} subscribers ready", o.subscribers);

    let http = reqwest::Client::new();
    let mcp = format!("{}/mcp", o.url);
    let sent = Arc::new(Mutex::new(Sent::default()));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tick = tokio::time::interval(Duration::from_micros(2_000_000 / o.rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut churns = Vec::new();
    while started.elapsed() < o.duration {
        tick.tick().await;
        churns.push(tokio::spawn(churn(
            http.clone(),
            mcp.clone(),
            sent.clone(),
            errors.clone(),
        )));
    }
    let elapsed = started.elapsed();
    for c in churns {
        c.await.expect("churn task");
    }
    // The tail of the stream.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_tx.send(true).expect("stopping subscribers");
    let mut seen = Vec::new();
    for s in subscribers {
        seen.extend(s.await.expect("subscriber task"));
    }

    let sent = sent.lock().unwrap();
    let events = (sent.created.len() + sent.ended.len()) as u64;
    let mut latencies_ms: Vec<f64> = seen
        .iter()
        .flatten()
        .filter_map(|(id, ended, at)| {
            let t0 = if *ended {
                sent.ended.get(id)
            } else {
                sent.created.get(id)
            }?;
            Some(at.saturating_duration_since(*t0).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies_ms.sort_by(f64::total_cmp);
    let delivered_min = seen.iter().map(Vec::len).min().unwrap_or(0) as u64;
    let sampled = seen.len();
    let report: Value = json!({
        "subscribers": o.subscribers,
        "rate_target": o.rate,
        "deflate": o.deflate,
        "duration_s": elapsed.as_secs_f64(),
        "events": events,
        "events_per_s": events as f64 / elapsed.as_secs_f64(),
        "request_errors": errors.load(Ordering::Relaxed),
        "bytes_received": received.load(Ordering::Relaxed),
        "sampled_subscribers": sampled,
        // Of the events sent, the fewest one sampled subscriber received.
        "sampled_delivered_min": delivered_min,
        "samples": latencies_ms.len(),
        "latency_ms": {
            "p50": percentile(&latencies_ms, 50.0),
            "p90": percentile(&latencies_ms, 90.0),
            "p99": percentile(&latencies_ms, 99.0),
            "max": latencies_ms.last().copied().unwrap_or(0.0),
        },
    });
    println!("{report}");
}
