//! Tasks (the MCP tasks extension) end to end under load, against a running
//! `sessiongate serve --conformance`: the figure "task creation +
//! completion + retrieval ≥ 5,000 tasks/s".
//!
//! ```text
//! bench-tasks --url http://127.0.0.1:PORT --token TOKEN [--clients 64]
//!             [--duration 10] [--poll-ms 0] [--sample 500]
//! ```
//!
//! Each of `--clients` workers is a stateless 2026-07-28 client of its own
//! (`clientInfo` `bench-tasks-N`, declaring the tasks extension) on its own
//! keep-alive connection, and for `--duration` seconds repeats what a
//! client of the extension does: a `tools/call` of `slow_compute` (no
//! sleep), which the server answers with a task handle once the task's row
//! is committed; then `tasks/get` until the task has finished (at once,
//! then every `--poll-ms`), reading the result inlined in the last answer.
//! A task counts as completed only if that result is the tool's. Workers
//! finish the task in hand after the deadline, so the rate is completed
//! tasks over the time until the last worker stops.
//!
//! Afterwards it checks the store: the completed tasks counted by the
//! management API (`GET /api/mcp/tasks?status=completed`, a `COUNT(*)` of
//! the rows) must have grown by exactly the tasks completed here, and
//! `--sample` of them, picked across the run, are read back one by one
//! (`GET /api/mcp/tasks/{id}`) with their result. Prints one JSON object.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

const TOOL: &str = "slow_compute";
const EXTENSION: &str = "io.modelcontextprotocol/tasks";

struct Options {
    url: String,
    token: String,
    clients: usize,
    duration: Duration,
    poll: Duration,
    sample: usize,
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "bench-tasks: {problem}\nusage: bench-tasks --url URL --token TOKEN [--clients N] \
         [--duration SECONDS] [--poll-ms MS] [--sample N]"
    );
    std::process::exit(2)
}

fn parse_args() -> Options {
    let mut o = Options {
        url: String::new(),
        token: String::new(),
        clients: 64,
        duration: Duration::from_secs(10),
        poll: Duration::ZERO,
        sample: 500,
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
            "--clients" => o.clients = number(&value).max(1) as usize,
            "--duration" => o.duration = Duration::from_secs(number(&value).max(1)),
            "--poll-ms" => o.poll = Duration::from_millis(number(&value)),
            "--sample" => o.sample = number(&value) as usize,
            _ => usage(&format!("unknown option {arg}")),
        }
    }
    if o.url.is_empty() || o.token.is_empty() {
        usage("--url and --token are required");
    }
    o
}

/// One stateless client: its connection and its requests' fixed parts.
struct Client {
    http: reqwest::Client,
    mcp: String,
    meta: Value,
}

/// Why a task did not count.
enum Failure {
    /// A request was refused or went unanswered.
    Request(String),
    /// The task ended otherwise than completed with the tool's result.
    Task(String),
}

impl Failure {
    fn message(self) -> String {
        match self {
            Failure::Request(m) | Failure::Task(m) => m,
        }
    }
}

/// What one worker did.
#[derive(Default)]
struct Tally {
    completed: Vec<String>,
    /// Creation to result, per completed task.
    latencies_us: Vec<u64>,
    polls: u64,
    /// Tasks that ended otherwise than completed with the tool's result.
    failed: u64,
    /// Requests refused or unanswered.
    errors: u64,
    first_error: Option<String>,
}

impl Client {
    fn new(url: &str, name: &str) -> Client {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client");
        Client {
            http,
            mcp: format!("{url}/mcp"),
            meta: json!({
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": name, "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {"extensions": {EXTENSION: {}}},
            }),
        }
    }

    async fn request(&self, method: &str, name: &str, params: Value) -> Result<Value, String> {
        let mut params = params;
        params["_meta"] = self.meta.clone();
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let response = self
            .http
            .post(&self.mcp)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", method)
            .header("mcp-name", name)
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("{method}: {e}"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| format!("{method}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{method}: HTTP {status}: {text}"));
        }
        let answer: Value =
            serde_json::from_str(&text).map_err(|e| format!("{method}: {e}: {text}"))?;
        match answer.get("result") {
            Some(result) => Ok(result.clone()),
            None => Err(format!("{method}: {text}")),
        }
    }

    /// Creates a task, polls it to its end; its id and how many polls it
    /// took, or why it did not complete with the tool's result.
    async fn task(&self, label: &str, poll: Duration) -> Result<(String, u64), Failure> {
        let created = self
            .request(
                "tools/call",
                TOOL,
                json!({"name": TOOL, "arguments": {"seconds": 0, "label": label}}),
            )
            .await
            .map_err(Failure::Request)?;
        let Some(id) = created["taskId"].as_str().map(str::to_string) else {
            return Err(Failure::Task(format!("not a task: {created}")));
        };
        let mut polls = 0;
        loop {
            polls += 1;
            let got = self
                .request("tasks/get", &id, json!({"taskId": id}))
                .await
                .map_err(Failure::Request)?;
            match got["status"].as_str() {
                Some("working") => {
                    if !poll.is_zero() {
                        tokio::time::sleep(poll).await;
                    }
                }
                Some("completed") => {
                    let text = got["result"]["content"][0]["text"].as_str().unwrap_or("");
                    return if text.starts_with("Computed") && text.contains(label) {
                        Ok((id, polls))
                    } else {
                        Err(Failure::Task(format!(
                            "completed without the tool's result: {got}"
                        )))
                    };
                }
                _ => return Err(Failure::Task(format!("task {id} ended otherwise: {got}"))),
            }
        }
    }
}

async fn worker(url: String, n: usize, deadline: Instant, poll: Duration) -> Tally {
    let client = Client::new(&url, &format!("bench-tasks-{n}"));
    let mut tally = Tally::default();
    let mut k = 0u64;
    while Instant::now() < deadline {
        k += 1;
        let started = Instant::now();
        match client.task(&format!("{n}-{k}"), poll).await {
            Ok((id, polls)) => {
                tally
                    .latencies_us
                    .push(started.elapsed().as_micros() as u64);
                tally.polls += polls;
                tally.completed.push(id);
            }
            Err(failure) => {
                match failure {
                    Failure::Request(_) => tally.errors += 1,
                    Failure::Task(_) => tally.failed += 1,
                }
                tally.first_error.get_or_insert(failure.message());
            }
        }
    }
    tally
}

async fn admin(http: &reqwest::Client, o: &Options, path: &str) -> Value {
    let response = http
        .get(format!("{}{path}", o.url))
        .bearer_auth(&o.token)
        .send()
        .await
        .unwrap_or_else(|e| fail(&format!("GET {path}: {e}")));
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        fail(&format!("GET {path}: HTTP {status}: {text}"));
    }
    serde_json::from_str(&text).unwrap_or_else(|e| fail(&format!("GET {path}: {e}")))
}

fn fail(problem: &str) -> ! {
    eprintln!("bench-tasks: {problem}");
    std::process::exit(1)
}

/// Completed tasks in the store, counted by the database.
async fn stored_completed(http: &reqwest::Client, o: &Options) -> u64 {
    admin(http, o, "/api/mcp/tasks?status=completed&limit=1").await["total"]
        .as_u64()
        .unwrap_or_else(|| fail("no total in GET /api/mcp/tasks"))
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let o = parse_args();
    let http = reqwest::Client::new();

    // One task end to end first: a misconfigured server fails here, clearly.
    let probe = Client::new(&o.url, "bench-tasks-probe");
    if let Err(e) = probe.task("probe", o.poll).await {
        fail(&format!(
            "the probe task failed (is the server run with --conformance?): {}",
            e.message()
        ));
    }
    let before = stored_completed(&http, &o).await;

    let started = Instant::now();
    let deadline = started + o.duration;
    let workers: Vec<_> = (0..o.clients)
        .map(|n| tokio::spawn(worker(o.url.clone(), n, deadline, o.poll)))
        .collect();
    let mut total = Tally::default();
    for w in workers {
        let t = w.await.expect("a worker");
        total.completed.extend(t.completed);
        total.latencies_us.extend(t.latencies_us);
        total.polls += t.polls;
        total.failed += t.failed;
        total.errors += t.errors;
        if total.first_error.is_none() {
            total.first_error = t.first_error;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let completed = total.completed.len() as u64;

    let after = stored_completed(&http, &o).await;
    // Spread over the run: every k-th task, workers in turn.
    let step = (total.completed.len() / o.sample.max(1)).max(1);
    let mut sample_ok = 0u64;
    let mut sample_checked = 0u64;
    for id in total.completed.iter().step_by(step).take(o.sample) {
        sample_checked += 1;
        let task = admin(&http, &o, &format!("/api/mcp/tasks/{id}")).await;
        if task["status"] == "completed" && task["result"]["content"].is_array() {
            sample_ok += 1;
        }
    }
    let mut lat = total.latencies_us;
    lat.sort_unstable();
    let verified = after - before == completed && sample_ok == sample_checked;
    let report = json!({
        "clients": o.clients,
        "duration_s": o.duration.as_secs(),
        "poll_ms": o.poll.as_millis() as u64,
        "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
        "completed": completed,
        "tasks_per_s": (completed as f64 / elapsed).round(),
        "polls_per_task": if completed > 0 {
            ((total.polls as f64 / completed as f64) * 1000.0).round() / 1000.0
        } else {
            0.0
        },
        "requests_per_s": ((completed + total.polls) as f64 / elapsed).round(),
        "latency_ms": {
            "p50": percentile(&lat, 50.0),
            "p90": percentile(&lat, 90.0),
            "p99": percentile(&lat, 99.0),
            "max": percentile(&lat, 100.0),
        },
        "failed": total.failed,
        "errors": total.errors,
        "first_error": total.first_error,
        "stored_completed_before": before,
        "stored_completed_after": after,
        "stored_completed_delta": after.saturating_sub(before),
        "sample_checked": sample_checked,
        "sample_ok": sample_ok,
        "verified": verified,
    });
    println!("{report}");
}
