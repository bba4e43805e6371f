//! Fills a sessiongate store with synthetic sessions, for the health-endpoint
//! benchmark of `bench/run`.
//!
//! ```text
//! bench-seed DATABASE [--rows N] [--active-percent P] [--batch B] [--jobs J]
//! ```
//!
//! `DATABASE` is what `sessiongate serve --database-url` takes (a
//! `postgres://` URL, `sqlite://PATH`, or a path to an SQLite file holding a
//! `/` or ending in `.db`, `.sqlite` or `.sqlite3`). The store is opened
//! (and migrated) through `sessiongate_store::connect`, and rows are written
//! with `SessionStore::insert_sessions` in batches of `B` (default 20,000),
//! `J` batches in flight (default 1; SQLite has a single writer anyway).
//!
//! Defaults: 1,000,000 rows, 1 % active. `connected_at` is spread uniformly
//! over the last 48 hours. Active rows were last active within the last
//! 15 minutes (so they fall in every idle bucket of the health report);
//! disconnected rows lasted from a second to two hours (never past now) and
//! carry a reason: 60 % client_disconnect, 30 % timeout, 5 %
//! admin_terminated, 3 % server_shutdown, 2 % error. Run the server with a
//! long `--idle-timeout` so the active rows are not expired at startup.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use sessiongate_core::client_kind::detect_client_type;
use sessiongate_core::session::ClientIdentity;
use sessiongate_core::store::SessionStore;
use sessiongate_core::{DisconnectReason, SessionId, SessionRecord, SessionStatus, Timestamp};
use sessiongate_store::Database;

const CLIENTS: &[(&str, &str)] = &[
    ("claude-code", "2.1.3"),
    ("claude-code", "2.0.9"),
    ("cursor-vscode", "1.7.0"),
    ("windsurf-client", "1.12.4"),
    ("Cline", "3.30.1"),
    ("Kiro CLI", "0.4.0"),
    ("augment-vscode", "0.560.0"),
    ("gemini-cli-mcp-client", "0.9.0"),
    ("mcp-inspector", "0.17.0"),
    ("my-internal-agent", "1.0.0"),
];
const VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];

/// splitmix64: deterministic, fast, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct Options {
    database: String,
    rows: u64,
    active_percent: f64,
    batch: usize,
    jobs: usize,
}

fn usage(why: &str) -> ! {
    eprintln!("bench-seed: {why}");
    eprintln!("usage: bench-seed DATABASE [--rows N] [--active-percent P] [--batch B] [--jobs J]");
    std::process::exit(2)
}

fn parse_args() -> Options {
    let mut o = Options {
        database: String::new(),
        rows: 1_000_000,
        active_percent: 1.0,
        batch: 20_000,
        jobs: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--rows" => {
                o.rows = value("--rows")
                    .parse()
                    .unwrap_or_else(|_| usage("bad --rows"))
            }
            "--active-percent" => {
                o.active_percent = value("--active-percent")
                    .parse()
                    .unwrap_or_else(|_| usage("bad --active-percent"))
            }
            "--batch" => {
                o.batch = value("--batch")
                    .parse()
                    .unwrap_or_else(|_| usage("bad --batch"))
            }
            "--jobs" => {
                o.jobs = value("--jobs")
                    .parse()
                    .unwrap_or_else(|_| usage("bad --jobs"))
            }
            "-h" | "--help" => usage("help"),
            _ if o.database.is_empty() && !arg.starts_with('-') => o.database = arg,
            _ => usage(&format!("unexpected argument {arg:?}")),
        }
    }
    if o.database.is_empty() {
        usage("no DATABASE given");
    }
    o.batch = o.batch.max(1);
    o.jobs = o.jobs.max(1);
    o
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_millis() as i64
}

fn session(rng: &mut Rng, now: i64, active_per_million: u64) -> SessionRecord {
    const HOUR: i64 = 3_600_000;
    let (name, version) = CLIENTS[rng.below(CLIENTS.len() as u64) as usize];
    let protocol_version = VERSIONS[rng.below(VERSIONS.len() as u64) as usize];
    let active = rng.below(1_000_000) < active_per_million;
    let connected_at = now - rng.below(48 * HOUR as u64) as i64;
    let requests = rng.below(500);
    let (last_activity, status, disconnected_at, reason, total) = if active {
        // Idle 0–15 min (never before it connected): healthy, aging and stale.
        let last = (now - rng.below(15 * 60_000) as i64).max(connected_at);
        (last, SessionStatus::Active, None, None, None)
    } else {
        let lived = 1_000 + rng.below(2 * HOUR as u64) as i64;
        let ended = (connected_at + lived).min(now);
        let reason = match rng.below(100) {
            0..60 => DisconnectReason::ClientDisconnect,
            60..90 => DisconnectReason::Timeout,
            90..95 => DisconnectReason::AdminTerminated,
            95..98 => DisconnectReason::ServerShutdown,
            _ => DisconnectReason::Error,
        };
        let last = if reason == DisconnectReason::Timeout {
            connected_at.max(ended - 300_000)
        } else {
            ended
        };
        (
            last,
            SessionStatus::Disconnected,
            Some(Timestamp::from_millis(ended)),
            Some(reason),
            Some(Duration::from_millis((ended - connected_at) as u64)),
        )
    };
    SessionRecord {
        session_id: SessionId::generate(),
        client: ClientIdentity {
            client_type: detect_client_type(Some(name)),
            client_name: Some(name.to_string()),
            client_version: Some(version.to_string()),
            client_capabilities: json!({"roots": {"listChanged": true}}),
            protocol_version: protocol_version.to_string(),
            principal: None,
            remote_addr: Some(format!("127.0.0.{}", 1 + rng.below(200))),
            user_agent: Some(format!("{name}/{version}")),
        },
        connected_at: Timestamp::from_millis(connected_at),
        last_activity: Timestamp::from_millis(last_activity),
        status,
        disconnected_at,
        disconnect_reason: reason,
        total_duration: total,
        request_count: requests,
        metadata: json!({"clientInfo": {"name": name, "version": version}, "seeded": true}),
        reconnect_count: 0,
        reconnect_token: None,
    }
}

#[tokio::main]
async fn main() {
    let o = parse_args();
    let database =
        Database::from_url_or_path(&o.database).unwrap_or_else(|e| usage(&e.to_string()));
    let store: Arc<dyn SessionStore> = match sessiongate_store::connect(&database).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench-seed: cannot open {database}: {e}");
            std::process::exit(1);
        }
    };
    let started = Instant::now();
    let now = now_ms();
    let active_per_million = (o.active_percent * 10_000.0).round() as u64;
    let mut rng = Rng(0x5e55_1011_6a7e ^ now as u64);
    let mut tasks = tokio::task::JoinSet::new();
    let (mut written, mut active) = (0u64, 0u64);
    while written < o.rows {
        let n = (o.rows - written).min(o.batch as u64) as usize;
        let batch: Vec<SessionRecord> = (0..n)
            .map(|_| session(&mut rng, now, active_per_million))
            .collect();
        active += batch
            .iter()
            .filter(|s| s.status == SessionStatus::Active)
            .count() as u64;
        written += n as u64;
        if tasks.len() >= o.jobs {
            join_one(&mut tasks).await;
        }
        let store = store.clone();
        tasks.spawn(async move { store.insert_sessions(&batch).await });
    }
    while !tasks.is_empty() {
        join_one(&mut tasks).await;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "seeded {written} sessions ({active} active) into {database} in {secs:.1} s ({:.0} rows/s)",
        written as f64 / secs
    );
}

async fn join_one(
    tasks: &mut tokio::task::JoinSet<Result<(), sessiongate_core::store::StoreError>>,
) {
    match tasks.join_next().await {
        Some(Ok(Ok(()))) | None => {}
        Some(Ok(Err(e))) => {
            eprintln!("bench-seed: insert failed: {e}");
            std::process::exit(1);
        }
        Some(Err(e)) => {
            eprintln!("bench-seed: insert task failed: {e}");
            std::process::exit(1);
        }
    }
}
