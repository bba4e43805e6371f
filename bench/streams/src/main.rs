//! Reconnect and replay latencies (issue 3's figures), measured end to end
//! over HTTP against a sessiongate started in this process on each store.
//!
//! ```text
//! bench-streams [--database-url URL]... [--iterations N] [--events N]
//! ```
//!
//! For each store (an SQLite file in a temporary directory, then each
//! `--database-url`): `N` sequential reconnects of one session
//! (`POST /api/mcp/sessions/{id}/reconnect`: verify, rotate, persist), and
//! `N / 10` replays of a finished response stream of `--events` events
//! written to the event log (`GET /mcp` with `Last-Event-ID` at its start,
//! read to the end). Prints one JSON object per store.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sessiongate::app;
use sessiongate::config::Settings;
use sessiongate_core::stream::{EventId, EventPage, StreamId, StreamKind};
use sessiongate_core::{SessionId, SystemClock};

const ADMIN: &str = "bench-streams-admin-token-0123456789";

struct Options {
    databases: Vec<Option<String>>,
    iterations: usize,
    events: u64,
}

fn parse_args() -> Options {
    let mut o = Options {
        databases: vec![None],
        iterations: 500,
        events: 1000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--database-url" => o.databases.push(Some(value())),
            "--iterations" => {
                o.iterations = value()
                    .parse()
                    .unwrap_or_else(|_| usage("bad --iterations"))
            }
            "--events" => o.events = value().parse().unwrap_or_else(|_| usage("bad --events")),
            _ => usage(&format!("unexpected argument {arg:?}")),
        }
    }
    o
}

fn usage(why: &str) -> ! {
    eprintln!("bench-streams: {why}");
    eprintln!("usage: bench-streams [--database-url URL]... [--iterations N] [--events N]");
    std::process::exit(2)
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i].as_secs_f64() * 1000.0
}

async fn run(database: Option<String>, o: &Options) -> Value {
    let dir = tempfile::tempdir().expect("temporary directory");
    let settings = Settings {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(dir.path().to_path_buf()),
        database_url: database.clone(),
        admin_token: Some(ADMIN.into()),
        idle_timeout: Some(Duration::from_secs(3600)),
        log: Some("warn".into()),
        ..Default::default()
    };
    let server = app::start(settings.resolve().expect("settings"), SystemClock::shared())
        .await
        .expect("server starts");
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();

    let init = http
        .post(format!("{base}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(
            json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":"2025-11-25","capabilities":{},
                "clientInfo":{"name":"bench-streams","version":"1"}}})
            .to_string(),
        )
        .send()
        .await
        .expect("initialize");
    let session: SessionId = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut token = init.headers()["mcp-reconnect-token"]
        .to_str()
        .unwrap()
        .to_string();

    // Reconnects, one after another, each with the token the last one returned.
    let mut reconnects = Vec::with_capacity(o.iterations);
    for i in 0..o.iterations + 20 {
        let started = Instant::now();
        let response = http
            .post(format!("{base}/api/mcp/sessions/{session}/reconnect"))
            .json(&json!({ "token": token }))
            .send()
            .await
            .expect("reconnect");
        let status = response.status();
        let body: Value = response.json().await.expect("reconnect JSON");
        assert_eq!(status, 200, "{body}");
        token = body["reconnect_token"].as_str().unwrap().to_string();
        if i >= 20 {
            reconnects.push(started.elapsed());
        }
    }

    // A finished response stream of `events` messages, as the event log
    // keeps it when they came slowly: one page each (a busy session's
    // batches share pages, which reads faster).
    let stream = StreamId::generate(StreamKind::Request);
    let now = server.manager.now();
    let pages: Vec<EventPage> = (1..=o.events)
        .map(|seq| {
            let message = json!({"jsonrpc":"2.0","method":"notifications/progress",
                "params":{"progressToken":"bench","progress":seq,"total":o.events,
                          "message":"step done"}});
            let mut page = EventPage::new(session, now);
            page.push(stream, seq, message.to_string().as_bytes());
            page
        })
        .collect();
    server
        .store
        .append_event_pages(&pages)
        .await
        .expect("seeding the event log");
    let start = EventId { stream, seq: 0 }.to_string();
    let replays_n = (o.iterations / 10).max(10);
    let mut replays = Vec::with_capacity(replays_n);
    for i in 0..replays_n + 3 {
        let started = Instant::now();
        let body = http
            .get(format!("{base}/mcp"))
            .header("accept", "text/event-stream")
            .header("mcp-session-id", session.to_string())
            .header("mcp-protocol-version", "2025-11-25")
            .header("last-event-id", &start)
            .send()
            .await
            .expect("replay")
            .text()
            .await
            .expect("replay body");
        let got = body.lines().filter(|l| l.starts_with("data:")).count() as u64;
        assert_eq!(got, o.events, "replayed {got} of {} events", o.events);
        if i >= 3 {
            replays.push(started.elapsed());
        }
    }
    let backend = server.store.backend();
    server.shutdown().await.expect("shutdown");
    json!({
        "backend": backend,
        "reconnects": reconnects.len(),
        "reconnect_p50_ms": percentile(&mut reconnects, 0.5),
        "reconnect_p99_ms": percentile(&mut reconnects, 0.99),
        "replay_events": o.events,
        "replays": replays.len(),
        "replay_p50_ms": percentile(&mut replays, 0.5),
        "replay_p99_ms": percentile(&mut replays, 0.99),
    })
}

#[tokio::main]
async fn main() {
    let o = parse_args();
    for database in o.databases.clone() {
        println!("{}", run(database, &o).await);
    }
}
