//! The operator's commands, run as the real binary against a running server.

mod common;

use std::process::Command;

use std::path::Path;
use std::time::Duration;

use common::BIN;
use common::{TestServer, ADMIN_TOKEN};
use std::sync::Arc;

use serde_json::{json, Value};
use sessiongate_api::ApiState;
use sessiongate_core::clock::{SharedClock, SystemClock};
use sessiongate_core::lifecycle::{Lifecycle, LifecycleConfig};
use sessiongate_core::store_health::Monitored;
use sessiongate_core::upstream::{
    UpstreamEvent, UpstreamMonitor, UpstreamName, UpstreamReport, UpstreamStatus,
};
use sessiongate_testkit::process::{free_port, Gateway, TOKEN};

fn sessiongate(t: &TestServer, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sessiongate"))
        .args(args)
        .args(["--url", &t.base])
        .env("SESSIONGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_sessions_commands() {
    let t = TestServer::start().await;
    let id = t.initialize("2025-11-25", "windsurf").await;

    let (ok, out, err) = sessiongate(&t, &["health"]);
    assert!(ok, "{err}");
    assert!(out.contains("active 1"), "{out}");
    assert!(out.contains(&id), "{out}");
    assert!(out.contains("upstreams  none configured"), "{out}");

    let (ok, out, err) = sessiongate(&t, &["health", "--json"]);
    assert!(ok, "{err}");
    let health: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(health["status_breakdown"]["active"], 1);
    assert_eq!(health["upstreams"], json!([]), "{out}");

    let (ok, out, err) = sessiongate(&t, &["sessions", "list", "--status", "active"]);
    assert!(ok, "{err}");
    assert!(out.contains(&id) && out.contains("Windsurf"), "{out}");

    t.call_tool(&id, "echo", json!({"text": "x"})).await;
    let (ok, out, err) = sessiongate(&t, &["sessions", "show", &id]);
    assert!(ok, "{err}");
    assert!(
        out.contains("protocol_version") && out.contains("2025-11-25"),
        "{out}"
    );

    let (ok, _, err) = sessiongate(&t, &["sessions", "terminate", &id]);
    assert!(ok, "{err}");
    let (ok, _, err) = sessiongate(&t, &["sessions", "terminate", &id]);
    assert!(!ok, "terminating twice fails");
    assert!(err.contains("409"), "{err}");

    let unauthorized = Command::new(env!("CARGO_BIN_EXE_sessiongate"))
        .args([
            "health",
            "--url",
            &t.base,
            "--admin-token",
            "wrong-token-wrong-token",
        ])
        .output()
        .unwrap();
    assert!(!unauthorized.status.success());
    assert!(String::from_utf8_lossy(&unauthorized.stderr).contains("401"));
    t.stop().await;
}

/// A gateway with two upstreams, as the management API reports them.
struct TwoUpstreams;

impl UpstreamMonitor for TwoUpstreams {
    fn reports(&self) -> Vec<UpstreamReport> {
        let report = |name: &str, status| UpstreamReport {
            name: UpstreamName::new(name).unwrap(),
            transport: "stdio",
            mode: Some("per-session"),
            status,
            processes: 2,
            restarts: 5,
            last_error: None,
            last_error_at: None,
            sessions_mapped: 2,
            requests: 40,
            errors: 1,
            p50_ms: Some(0.75),
            p99_ms: Some(12.5),
        };
        vec![
            report("everything", UpstreamStatus::Up),
            UpstreamReport {
                transport: "streamable-http",
                mode: None,
                last_error: Some("connection refused".into()),
                ..report("search", UpstreamStatus::Down)
            },
        ]
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<UpstreamEvent> {
        tokio::sync::broadcast::channel(1).1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_lists_the_gateways_upstreams() {
    let dir = tempfile::tempdir().unwrap();
    let store = sessiongate_store::connect(&sessiongate_store::Database::Sqlite {
        path: dir.path().join("sessions.db"),
    })
    .await
    .unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let store = Arc::new(Monitored::new(store, clock.clone()));
    let lifecycle = Lifecycle::start(store.clone(), clock, LifecycleConfig::default(), Vec::new())
        .await
        .unwrap();
    let api =
        ApiState::new(&lifecycle, &store, ADMIN_TOKEN).upstreams(Some(Arc::new(TwoUpstreams)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, sessiongate_api::router(api)).await });
    let health = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sessiongate"))
            .args(["health", "--url", &base, "--admin-token", ADMIN_TOKEN])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };

    let out = health(&[]);
    let line = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line in\n{out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert!(out.contains("UPSTREAM"), "{out}");
    assert_eq!(
        line("everything"),
        [
            "everything",
            "stdio",
            "per-session",
            "up",
            "2",
            "5",
            "2",
            "0.75",
            "12.5",
            "-"
        ]
    );
    assert_eq!(
        line("search"),
        [
            "search",
            "streamable-http",
            "down",
            "2",
            "5",
            "2",
            "0.75",
            "12.5",
            "connection",
            "refused"
        ]
    );

    let json: Value = serde_json::from_str(&health(&["--json"])).unwrap();
    assert_eq!(json["upstreams"][1]["name"], "search");
    assert_eq!(json["upstreams"][1]["status"], "down");
    assert!(json["status_breakdown"].is_object(), "{json}");
}

#[test]
fn help_documents_every_serve_option() {
    let out = Command::new(env!("CARGO_BIN_EXE_sessiongate"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--listen",
        "--data-dir",
        "--database-url",
        "--admin-token",
        "--idle-timeout",
        "--config",
        "--conformance",
        "SESSIONGATE_LISTEN",
        "SESSIONGATE_IDLE_TIMEOUT",
    ] {
        assert!(help.contains(option), "{option} missing from serve --help");
    }
}

#[test]
fn a_bad_config_file_is_refused_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "idle_timeout = \"soon\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sessiongate"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("soon"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_live_events() {
    use std::io::BufRead;
    use std::process::Stdio;

    let t = TestServer::start().await;
    let mut watch = Command::new(env!("CARGO_BIN_EXE_sessiongate"))
        .args(["watch", "--url", &t.base])
        .env("SESSIONGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let first = next_line(&mut lines).await;
    assert!(first.contains("snapshot: active 0"), "{first}");
    let id = t.initialize("2025-11-25", "cursor").await;
    let created = next_line(&mut lines).await;
    assert!(
        created.contains("created") && created.contains(&id) && created.contains("Cursor"),
        "{created}"
    );
    watch.kill().unwrap();
    watch.wait().unwrap();
    t.stop().await;
}

async fn next_line(lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(std::time::Duration::from_secs(10), lines.recv())
        .await
        .expect("watch printed nothing within 10 s")
        .expect("watch exited")
}

/// The binary as a user runs it, with none of the test's own environment for
/// finding a server: a fresh HOME (so no default data directory), `env`
/// added.
fn operator(home: &Path, args: &[&str], env: &[(&str, &Path)]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sessiongate"));
    command
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_DATA_HOME");
    for name in [
        "SESSIONGATE_URL",
        "SESSIONGATE_ADMIN_TOKEN",
        "SESSIONGATE_DATA_DIR",
        "SESSIONGATE_CONFIG",
        "SESSIONGATE_LISTEN",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let out = command.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_find_the_token_in_the_servers_data_dir() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    let gateway = Gateway::start_with_token(BIN, free_port(), &["--data-dir", d], None).await;
    let id = gateway.initialize("windsurf").await.unwrap();

    let (ok, out, err) = operator(
        home.path(),
        &["health", "--data-dir", d, "--url", &gateway.base],
        &[],
    );
    assert!(ok, "{err}");
    assert!(out.contains("active 1") && out.contains(&id), "{out}");

    let (ok, out, err) = operator(
        home.path(),
        &["sessions", "list", "--url", &gateway.base],
        &[("SESSIONGATE_DATA_DIR", data.path())],
    );
    assert!(ok, "{err}");
    assert!(out.contains(&id), "{out}");
    gateway.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_read_the_servers_config_file() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = data.path().join("sessiongate.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n",
            data.path().join("state").display()
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let gateway = Gateway::start_with_token(BIN, port, &["--config", c], None).await;
    let id = gateway.initialize("cursor").await.unwrap();

    // No --url: the config's listen address says where the server is.
    let (ok, out, err) = operator(home.path(), &["health", "--config", c], &[]);
    assert!(ok, "{err}");
    assert!(out.contains(&id), "{out}");
    let (ok, out, err) = operator(
        home.path(),
        &["sessions", "list"],
        &[("SESSIONGATE_CONFIG", &config)],
    );
    assert!(ok, "{err}");
    assert!(out.contains(&id), "{out}");

    // A config file that names the token itself.
    let token = std::fs::read_to_string(data.path().join("state/admin-token")).unwrap();
    let with_token = data.path().join("with-token.toml");
    std::fs::write(
        &with_token,
        format!(
            "listen = \"127.0.0.1:{port}\"\nadmin_token = \"{}\"\n",
            token.trim()
        ),
    )
    .unwrap();
    let (ok, out, err) = operator(
        home.path(),
        &["health", "--config", with_token.to_str().unwrap()],
        &[],
    );
    assert!(ok, "{err}");
    assert!(out.contains(&id), "{out}");
    gateway.stop();
}

#[test]
fn without_a_token_the_error_names_every_way_to_give_one() {
    let home = tempfile::tempdir().unwrap();
    for command in [&["health"][..], &["sessions", "list"], &["watch"]] {
        let mut args = command.to_vec();
        args.extend(["--url", "http://127.0.0.1:1"]);
        let (ok, _, err) = operator(home.path(), &args, &[]);
        assert!(!ok, "{command:?} without a token succeeded");
        let tried = home.path().join(".local/share/sessiongate/admin-token");
        for needed in [
            tried.to_str().unwrap(),
            "--data-dir",
            "SESSIONGATE_DATA_DIR",
            "--config",
            "SESSIONGATE_CONFIG",
            "--admin-token",
            "SESSIONGATE_ADMIN_TOKEN",
        ] {
            assert!(err.contains(needed), "{command:?}: {needed} missing: {err}");
        }
    }
}

#[test]
fn watch_help_describes_what_watch_prints() {
    let out = Command::new(env!("CARGO_BIN_EXE_sessiongate"))
        .args(["watch", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(!help.contains("table"), "{help}");
    assert!(help.contains("each event as sent"), "{help}");
}

/// A child's output lines as they come.
fn lines_of(
    out: impl std::io::Read + Send + 'static,
) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    use std::io::BufRead;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// The first line within `within` that contains `wanted`.
async fn line_with(
    lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    wanted: &str,
    within: Duration,
) -> String {
    tokio::time::timeout(within, async {
        loop {
            match lines.recv().await {
                Some(line) if line.contains(wanted) => return line,
                Some(_) => continue,
                None => panic!("watch exited before printing {wanted:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("watch printed no {wanted:?} within {within:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_survives_a_server_restart() {
    use std::process::Stdio;

    let data = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    let port = free_port();
    let gateway = Gateway::start(BIN, port, &["--data-dir", d]).await;
    let mut watch = Command::new(env!("CARGO_BIN_EXE_sessiongate"))
        .args(["watch", "--url", &gateway.base, "--admin-token", TOKEN])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = lines_of(watch.stdout.take().unwrap());
    let mut err = lines_of(watch.stderr.take().unwrap());
    let wait = Duration::from_secs(20);
    line_with(&mut out, "snapshot: active 0", wait).await;
    let before = gateway.initialize("cursor").await.unwrap();
    line_with(&mut out, &before, wait).await;

    gateway.kill();
    let lost = line_with(&mut err, "connection lost", wait).await;
    assert!(lost.contains("reconnecting in"), "{lost}");
    let gateway = Gateway::start(BIN, port, &["--data-dir", d]).await;
    line_with(&mut err, "reconnected", wait).await;
    // The server's snapshot first, with the session kept across the restart.
    line_with(&mut out, "snapshot: active 1", wait).await;
    let after = gateway.initialize("windsurf").await.unwrap();
    let created = line_with(&mut out, &after, wait).await;
    assert!(
        created.contains("created") && created.contains("Windsurf"),
        "{created}"
    );

    // A server that no longer takes the token is an error, not retried.
    gateway.kill();
    let gateway = Gateway::start_with_token(
        BIN,
        port,
        &["--data-dir", d],
        Some("another-admin-token-0123456789"),
    )
    .await;
    let refused = line_with(&mut err, "401", wait).await;
    assert!(refused.starts_with("error: "), "{refused}");
    let deadline = std::time::Instant::now() + wait;
    let status = loop {
        if let Some(status) = watch.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "watch kept running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success());
    gateway.stop();
}
