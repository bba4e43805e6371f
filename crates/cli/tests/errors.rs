//! What an operator sees when something is wrong: startup and command errors
//! as one line without backtraces, logs fit for a pipe or a log shipper, and
//! the forms of addresses and database locations the binary accepts.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::BIN;
use serde_json::Value;
use sessiongate_testkit::process::{free_port, Gateway, TOKEN};

const UNREACHABLE_POSTGRES: &str = "postgres://postgres@127.0.0.1:1/x";

fn sessiongate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sessiongate"))
        .args(args)
        .current_dir(dir)
        .env("RUST_BACKTRACE", "1")
        .env("SESSIONGATE_LOG", "error")
        .env_remove("SESSIONGATE_CONFIG")
        .env_remove("SESSIONGATE_DATABASE_URL")
        .env_remove("SESSIONGATE_URL")
        .output()
        .expect("the sessiongate binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn unreachable_postgres_fails_fast_naming_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    for args in [
        vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", data],
        vec!["migrate", "--data-dir", data],
    ] {
        let started = Instant::now();
        let out = sessiongate(
            dir.path(),
            &[&args[..], &["--database-url", UNREACHABLE_POSTGRES]].concat(),
        );
        let took = started.elapsed();
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {err}");
        assert!(
            err.to_lowercase().contains("connection refused"),
            "{args:?}: {err}"
        );
        assert!(err.contains("127.0.0.1:1"), "{args:?}: {err}");
        assert!(took < Duration::from_millis(2500), "{args:?} took {took:?}");
    }
}

/// Starts `serve` with stderr piped and the given extra arguments, waits
/// for it to listen, stops it and returns what it logged.
fn logs_of_serve(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessiongate"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(args)
        .env("SESSIONGATE_LOG", "info")
        .env_remove("NO_COLOR")
        .env_remove("SESSIONGATE_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Held open until the end: the banner's later lines would meet a
    // closed pipe.
    let mut banner = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    banner.read_line(&mut first).unwrap();
    assert!(first.contains("listening"), "{first}");
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    child.wait().unwrap();
    drop(banner);
    logs
}

#[test]
fn logs_into_a_pipe_have_no_colour() {
    let logs = logs_of_serve(&[]);
    assert!(logs.contains("session store ready"), "{logs}");
    assert!(!logs.contains("\x1b["), "{logs:?}");
}

#[test]
fn json_logs_are_one_object_a_line() {
    let logs = logs_of_serve(&["--log-format", "json"]);
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string(), "{line}");
    }
    assert!(
        lines.iter().any(|l| l.contains("session store ready")),
        "{logs}"
    );
}

/// Every user error: one line on stderr (clap's usage errors aside), its
/// cause once, no "Caused by", no backtrace, even with RUST_BACKTRACE=1.
#[test]
fn user_errors_are_one_line_without_backtraces() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let bad_toml = dir.path().join("bad.toml");
    std::fs::write(&bad_toml, "listen = \n").unwrap();
    let bad_duration = dir.path().join("duration.toml");
    std::fs::write(&bad_duration, "idle_timeout = \"soon\"\n").unwrap();
    let bad_toml = bad_toml.to_str().unwrap();
    let bad_duration = bad_duration.to_str().unwrap();
    let dead_url = format!("http://127.0.0.1:{}", free_port());
    // (arguments, a text the error must hold exactly once, whether clap reports it)
    let cases: Vec<(Vec<&str>, &str, bool)> = vec![
        (
            vec!["serve", "--config", "/nonexistent/sg.toml"],
            "No such file or directory",
            false,
        ),
        (
            vec!["migrate", "--config", "/nonexistent/sg.toml"],
            "No such file or directory",
            false,
        ),
        (
            vec!["health", "--config", "/nonexistent/sg.toml"],
            "No such file or directory",
            false,
        ),
        (vec!["serve", "--config", bad_toml], "line 1", false),
        (vec!["serve", "--config", bad_duration], "\"soon\"", false),
        (vec!["serve", "--idle-timeout", "soon"], "\"soon\"", true),
        (vec!["serve", "--listen", "nonsense"], "nonsense", true),
        (
            vec![
                "serve",
                "--data-dir",
                data,
                "--listen",
                "127.0.0.1:0",
                "--log",
                "sessiongate=notalevel",
            ],
            "invalid log filter",
            false,
        ),
        (
            vec!["serve", "--data-dir", data, "--listen", "127.0.0.1:0"],
            "connection refused",
            false,
        ),
        (
            vec!["health", "--url", &dead_url, "--admin-token", TOKEN],
            "cannot reach",
            false,
        ),
        (
            vec![
                "sessions",
                "list",
                "--url",
                &dead_url,
                "--admin-token",
                TOKEN,
            ],
            "cannot reach",
            false,
        ),
        (
            vec!["watch", "--url", &dead_url, "--admin-token", TOKEN],
            "cannot reach",
            false,
        ),
    ];
    for (args, once, by_clap) in cases {
        let mut cmd = args.clone();
        if once == "connection refused" {
            cmd.extend(["--database-url", UNREACHABLE_POSTGRES]);
        }
        let out = sessiongate(dir.path(), &cmd);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{cmd:?} succeeded");
        assert!(!err.contains("Caused by"), "{cmd:?}: {err}");
        assert!(!err.to_lowercase().contains("backtrace"), "{cmd:?}: {err}");
        assert_eq!(
            err.to_lowercase().matches(&once.to_lowercase()).count(),
            1,
            "{cmd:?}: {err}"
        );
        if !by_clap {
            assert_eq!(err.trim_end().lines().count(), 1, "{cmd:?}: {err}");
            assert!(err.starts_with("error: "), "{cmd:?}: {err}");
            assert_eq!(out.status.code(), Some(1), "{cmd:?}: {err}");
        }
    }
}

/// `sessiongate serve --listen LISTEN --data-dir DIR` with stderr kept.
fn spawn_serve(listen: &str, dir: &Path, stdout: Stdio) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_sessiongate"))
        .args(["serve", "--listen", listen, "--data-dir"])
        .arg(dir)
        .env("SESSIONGATE_LOG", "error")
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Whether `base`'s health answers 200 before the child exits (5 s at most).
async fn answers(child: &mut std::process::Child, base: &str) -> bool {
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if let Ok(r) = http.get(format!("{base}/api/health")).send().await {
            return r.status().is_success();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn listen_accepts_a_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = spawn_serve(&format!("localhost:{port}"), dir.path(), Stdio::null());
    let up = answers(&mut child, &format!("http://localhost:{port}")).await;
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(up, "not serving on localhost:{port}: {}", text(&out.stderr));
}

#[tokio::test]
async fn url_without_a_scheme_means_http() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let data = dir.path().join("data");
    let gateway = Gateway::start(BIN, port, &["--data-dir", data.to_str().unwrap()]).await;
    let out = sessiongate(
        dir.path(),
        &[
            "health",
            "--url",
            &format!("127.0.0.1:{port}"),
            "--admin-token",
            TOKEN,
        ],
    );
    gateway.stop();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("active 0"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn migrate_says_what_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let first = sessiongate(dir.path(), &["migrate", "--data-dir", data]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let said = text(&first.stdout);
    assert!(said.contains("created the schema"), "{said}");
    assert!(!said.contains("up to date"), "{said}");
    let again = sessiongate(dir.path(), &["migrate", "--data-dir", data]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stdout).contains("up to date"),
        "{}",
        text(&again.stdout)
    );
}

#[test]
fn a_database_url_that_is_neither_url_nor_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    for args in [
        vec!["migrate", "--data-dir", data],
        vec!["serve", "--data-dir", data, "--listen", "127.0.0.1:0"],
    ] {
        let out = sessiongate(
            dir.path(),
            &[&args[..], &["--database-url", "garbage"]].concat(),
        );
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted garbage");
        assert!(err.contains("garbage"), "{err}");
        assert!(err.contains("postgres://"), "{err}");
        assert!(err.contains("sqlite:"), "{err}");
        assert!(!dir.path().join("garbage").exists(), "{args:?} created it");
    }
    // A bare path that names a database file is still taken.
    let out = sessiongate(
        dir.path(),
        &[
            "migrate",
            "--data-dir",
            data,
            "--database-url",
            "sessions.db",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.path().join("sessions.db").exists());
}

/// `sessiongate serve | head -1`: the reader of the banner goes away, the
/// server stays.
#[tokio::test]
async fn serve_outlives_a_closed_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = spawn_serve(&format!("127.0.0.1:{port}"), dir.path(), Stdio::piped());
    drop(child.stdout.take());
    let up = answers(&mut child, &format!("http://127.0.0.1:{port}")).await;
    // The banner is written once the listener is up: give it a moment to
    // hit the closed pipe before looking again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let alive = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(
        up && alive,
        "serve stopped with its stdout closed: {}",
        text(&out.stderr)
    );
}
