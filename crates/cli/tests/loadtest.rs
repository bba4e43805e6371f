//! `sessiongate loadtest` against `sessiongate serve`, both as real
//! processes: the lifecycle checks pass when the server expires idle
//! sessions on time and fail, naming the sessions, when it does not; the
//! throughput, churn, reconnect and mixed scenarios run clean on both
//! protocol generations.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_sessiongate");
const TOKEN: &str = "loadtest-admin-token-0123456789";

/// `sessiongate serve` on an ephemeral port with a temporary data directory.
struct Server {
    child: Child,
    url: String,
    // Kept open: the server writes its banner there.
    _stdout: BufReader<ChildStdout>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(idle_timeout: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--admin-token", TOKEN])
            .args(["--idle-timeout", idle_timeout, "--log", "warn"])
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let base = loop {
            line.clear();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0,
                "serve exited before its banner"
            );
            if let Some(base) = line.trim().split("listening on ").nth(1) {
                break base.to_string();
            }
        };
        Server {
            child,
            url: format!("{base}/mcp"),
            _stdout: stdout,
            _dir: dir,
        }
    }

    /// Runs `sessiongate loadtest --url <this server> ARGS --json FILE`.
    fn loadtest(&self, args: &[&str]) -> (Output, Value) {
        let dir = tempfile::tempdir().unwrap();
        let json: PathBuf = dir.path().join("report.json");
        let output = Command::new(BIN)
            .args(["loadtest", "--url", &self.url])
            .args(args)
            .arg("--json")
            .arg(&json)
            .env_remove("SESSIONGATE_ADMIN_TOKEN")
            .output()
            .unwrap();
        let report = std::fs::read(&json)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        (output, report)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn passed(report: &Value, check: &str) -> u64 {
    report["checks"]["by_check"][check]["passed"]
        .as_u64()
        .unwrap_or(0)
}

const IDLE_EXPIRED: &str = "idle session disconnected within timeout ± tolerance";
const ACTIVE_KEPT: &str = "active session kept";

/// Asserts a clean run: exit 0, no errors, no failed check.
fn assert_clean(o: &Output, report: &Value) {
    assert!(
        o.status.success(),
        "{}{}",
        stdout(o),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(report["errors"], 0, "{}", stdout(o));
    assert_eq!(report["checks"]["failed"], 0, "{}", stdout(o));
    assert_eq!(report["passed"], true);
}

#[test]
fn lifecycle_passes_when_idle_sessions_expire_on_time() {
    let server = Server::start("5s");
    let (o, report) = server.loadtest(&[
        "--scenario",
        "lifecycle",
        "--clients",
        "6",
        "--admin-token",
        TOKEN,
        "--tolerance",
        "2s",
    ]);
    assert_clean(&o, &report);
    assert_eq!(passed(&report, IDLE_EXPIRED), 3, "{}", stdout(&o));
    assert_eq!(passed(&report, ACTIVE_KEPT), 3);
    let expiry = &report["checks"]["expiry"];
    assert_eq!(expiry["method"], "health API");
    assert_eq!(expiry["idle_timeout_s"], 5.0);
    assert!(expiry["lag_s_max"].as_f64().unwrap().abs() <= 2.0);
    assert_eq!(report["sessions"]["expired"], 3);
    assert_eq!(report["sessions"]["deleted"], 3);
}

#[test]
fn lifecycle_by_404_probes_with_both_generations() {
    let server = Server::start("5s");
    let (o, report) = server.loadtest(&[
        "--scenario",
        "lifecycle",
        "--clients",
        "4",
        "--protocol",
        "mixed",
        "--idle-timeout",
        "5s",
        "--tolerance",
        "2s",
    ]);
    assert_clean(&o, &report);
    assert_eq!(report["checks"]["expiry"]["method"], "404 probe");
    // Two sessionful clients, one of them idle; the stateless ones only add load.
    assert_eq!(passed(&report, IDLE_EXPIRED), 1, "{}", stdout(&o));
    assert_eq!(passed(&report, ACTIVE_KEPT), 1);
}

#[test]
fn lifecycle_fails_and_names_sessions_that_outlive_the_timeout() {
    let server = Server::start("60s");
    let (o, report) = server.loadtest(&[
        "--scenario",
        "lifecycle",
        "--clients",
        "4",
        "--idle-timeout",
        "5s",
        "--tolerance",
        "1s",
        "--admin-token",
        TOKEN,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert_eq!(report["passed"], false);
    assert_eq!(report["checks"]["by_check"][IDLE_EXPIRED]["failed"], 2);
    let failures = report["checks"]["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 2);
    let text = stdout(&o);
    for f in failures {
        let session = f["session"].as_str().unwrap();
        assert_eq!(session.len(), 32);
        assert!(f["detail"].as_str().unwrap().contains("outlived"));
        assert!(
            text.contains(&format!(
                "FAILED {IDLE_EXPIRED}: session {session}: outlived"
            )),
            "{text}"
        );
    }
    assert!(text.contains("result       FAILED"), "{text}");
}

#[test]
fn throughput_runs_clean_on_both_generations() {
    let server = Server::start("300");
    for protocol in ["2025-11-25", "2026-07-28", "mixed"] {
        let (o, report) = server.loadtest(&[
            "--clients",
            "4",
            "--iterations",
            "50",
            "--protocol",
            protocol,
        ]);
        assert_clean(&o, &report);
        let calls = &report["by_operation"]["tools/call"];
        assert_eq!(calls["requests"], 200, "{protocol}: {}", stdout(&o));
        assert_eq!(report["answers_verified"], 200);
        assert!(report["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
        assert!(report["tester"]["cpu_seconds"].as_f64().unwrap() > 0.0);
        let sessions = if protocol == "2026-07-28" { 0 } else { 4 };
        let created = if protocol == "mixed" { 2 } else { sessions };
        assert_eq!(report["sessions"]["created"], created, "{protocol}");
        assert_eq!(report["sessions"]["deleted"], created, "{protocol}");
    }
}

#[test]
fn churn_and_mixed_run_clean() {
    let server = Server::start("300");
    let (o, report) =
        server.loadtest(&["--scenario", "churn", "--clients", "3", "--iterations", "5"]);
    assert_clean(&o, &report);
    assert_eq!(report["sessions"]["created"], 15);
    assert_eq!(report["sessions"]["deleted"], 15);
    assert_eq!(passed(&report, "deleted session answers 404"), 15);

    let (o, report) = server.loadtest(&[
        "--scenario",
        "mixed",
        "--protocol",
        "mixed",
        "--clients",
        "10",
        "--iterations",
        "3",
        "--idle-time",
        "200ms",
    ]);
    assert_clean(&o, &report);
    assert!(report["sessions"]["abandoned"].as_u64().unwrap() >= 3);
}

#[test]
fn reconnect_reclaims_timed_out_sessions_without_losing_a_request() {
    let server = Server::start("2s");
    let (o, report) = server.loadtest(&[
        "--scenario",
        "reconnect",
        "--clients",
        "3",
        "--iterations",
        "2",
        "--tolerance",
        "1s",
        "--admin-token",
        TOKEN,
    ]);
    assert_clean(&o, &report);
    assert_eq!(report["sessions"]["reconnected"], 6, "{}", stdout(&o));
    assert_eq!(passed(&report, "dropped session expired"), 6);
    assert_eq!(
        passed(&report, "timed-out session reclaimed with its token"),
        6
    );
    assert_eq!(
        passed(
            &report,
            "server's request and reconnect counts match the client's"
        ),
        3
    );
}

#[test]
fn bad_options_and_unreachable_servers_are_errors() {
    let o = Command::new(BIN)
        .args([
            "loadtest",
            "--url",
            "http://127.0.0.1:9/mcp",
            "--clients",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("initialize"));
    let o = Command::new(BIN)
        .args(["loadtest", "--url", "http://127.0.0.1:9/mcp"])
        .args(["--scenario", "lifecycle", "--protocol", "2026-07-28"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs sessions"));
}
