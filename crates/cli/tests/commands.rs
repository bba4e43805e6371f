//! The operator's commands, run as the real binary against a running server.

mod common;

use std::process::Command;

use common::{TestServer, ADMIN_TOKEN};
use serde_json::{json, Value};

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

    let (ok, out, err) = sessiongate(&t, &["health", "--json"]);
    assert!(ok, "{err}");
    let health: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(health["status_breakdown"]["active"], 1);

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
