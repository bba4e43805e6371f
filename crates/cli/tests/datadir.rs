//! The data directory, with the real binary: one server per directory (and
//! per SQLite file), and private files whatever the umask.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use sessiongate_testkit::process::free_port;

const TOKEN: &str = "datadir-test-admin-token";

/// `sessiongate serve` on `data_dir` under umask 022, so files come out
/// private only if the server makes them so.
fn spawn(data_dir: &Path, port: u16, extra: &[&str]) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg("umask 022 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_sessiongate"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-token", TOKEN, "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env("SESSIONGATE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the sessiongate binary starts")
}

/// A running server, killed if a test fails before stopping it.
struct Gateway {
    child: Option<Child>,
    base: String,
}

impl Gateway {
    async fn start(data_dir: &Path, extra: &[&str]) -> Gateway {
        let port = free_port();
        let mut child = spawn(data_dir, port, extra);
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if http.get(format!("{base}/api/health")).send().await.is_ok() {
                return Gateway {
                    child: Some(child),
                    base,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("sessiongate did not start on {base}");
    }

    /// Opens a session: the server reads and writes its store.
    async fn initialize(&self) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/mcp", self.base))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(
                json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                    "protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"}}})
                .to_string(),
            )
            .send()
            .await
            .unwrap()
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Stops the server gracefully; returns its output.
    fn stop(mut self) -> Output {
        let pid = self.pid().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        self.child.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits at most `limit` for `child` to exit; returns its output and when.
fn exit_within(mut child: Child, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (child.wait_with_output().unwrap(), started.elapsed())
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_a_locked_data_directory_exits_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let first = Gateway::start(dir.path(), &[]).await;
    assert_eq!(first.initialize().await.status(), 200);
    let holder = first.pid();

    // On the same data directory.
    let second = spawn(dir.path(), free_port(), &[]);
    let (out, took) = exit_within(second, Duration::from_secs(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("pid {holder}")), "{stderr}");
    assert!(took < Duration::from_secs(1));

    // On another data directory but the first one's SQLite file.
    let other = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("sessiongate.db").display());
    let third = spawn(other.path(), free_port(), &["--database-url", &db]);
    let (out, _) = exit_within(third, Duration::from_secs(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("pid {holder}")), "{stderr}");

    // The first serves on, and its lock goes with it.
    assert_eq!(first.initialize().await.status(), 200);
    assert!(first.stop().status.success());
    let again = Gateway::start(dir.path(), &[]).await;
    assert_eq!(again.initialize().await.status(), 200);
    again.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_and_database_files_are_private() {
    let parent = tempfile::tempdir().unwrap();
    let dir: PathBuf = parent.path().join("state");
    let gw = Gateway::start(&dir, &[]).await;
    assert_eq!(gw.initialize().await.status(), 200);
    assert_eq!(mode(&dir), 0o700);
    for file in [
        "sessiongate.db",
        "sessiongate.db-wal",
        "sessiongate.db-shm",
        "sessiongate.lock",
        "admin-token",
        "reconnect-key",
        "request-state-key",
    ] {
        let path = dir.join(file);
        if file == "admin-token" && !path.exists() {
            continue; // given on the command line
        }
        assert_eq!(mode(&path), 0o600, "{file}");
    }
    let out = gw.stop();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("accessible to other users"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_open_to_others_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let gw = Gateway::start(dir.path(), &[]).await;
    let out = gw.stop();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the data directory is accessible to other users"),
        "{stderr}"
    );
    // A database created in it is private all the same.
    assert_eq!(mode(&dir.path().join("sessiongate.db")), 0o600);
}
