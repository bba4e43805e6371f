//! The real `sessiongate` binary as a child process, for tests that stop
//! it hard, restart it on its data, starve its disk or cut its database.
//! The binary's path comes from the test (`env!("CARGO_BIN_EXE_sessiongate")`
//! in the cli crate's tests), so this crate does not build it.

use std::ffi::OsStr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// The admin token a gateway gets unless a test gives another.
pub const TOKEN: &str = "process-test-admin-token";

/// A running `sessiongate serve`, killed if the test ends without stopping
/// it.
pub struct Gateway {
    child: Child,
    pub base: String,
    pub http: reqwest::Client,
    admin_token: Option<String>,
}

/// A port free at the time of asking, for a server that must come back on
/// the same address after a restart.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Gateway {
    /// Starts `bin serve` on `port` with [`TOKEN`] and `args`, and waits
    /// until it answers.
    pub async fn start(bin: impl AsRef<OsStr>, port: u16, args: &[&str]) -> Gateway {
        Self::start_with_token(bin, port, args, Some(TOKEN)).await
    }

    /// As [`Gateway::start`]; without `admin_token` the server reads or
    /// creates the token in its data directory, as for a user.
    pub async fn start_with_token(
        bin: impl AsRef<OsStr>,
        port: u16,
        args: &[&str],
        admin_token: Option<&str>,
    ) -> Gateway {
        let mut child = Command::new(bin)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(
                admin_token
                    .map(|t| ["--admin-token", t])
                    .into_iter()
                    .flatten(),
            )
            .args([
                // Load from one address, as fast as it goes: the
                // per-address initialize limit is not under test here.
                "--initialize-rate",
                "1000000000",
                "--initialize-burst",
                "1000000000",
            ])
            .args(args)
            .env(
                "SESSIONGATE_LOG",
                std::env::var("SESSIONGATE_TEST_LOG").unwrap_or("error".into()),
            )
            .stdout(Stdio::null())
            .spawn()
            .expect("the sessiongate binary starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        for _ in 0..300 {
            if http.get(format!("{base}/api/health")).send().await.is_ok() {
                return Gateway {
                    child,
                    base,
                    http,
                    admin_token: admin_token.map(str::to_string),
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("sessiongate did not start on {base}");
    }

    /// `kill -9`.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// `kill -9`, while others may still hold the gateway.
    pub fn kill_now(&self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-9", &pid]).status().unwrap();
        assert!(status.success());
    }

    /// `SIGTERM`, and waits for the graceful stop.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        self.child.wait().unwrap();
    }

    /// A POST to `/mcp`; a request that got no answer is `Err((0, why))`.
    pub async fn post(
        &self,
        session: Option<&str>,
        body: Value,
    ) -> Result<reqwest::Response, (u16, String)> {
        let mut req = self
            .http
            .post(format!("{}/mcp", self.base))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(s) = session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-11-25");
        }
        req.body(body.to_string())
            .send()
            .await
            .map_err(|e| (0, e.to_string()))
    }

    /// `initialize`: the new session's id on 200, else the status and body.
    pub async fn initialize(&self, name: &str) -> Result<String, (u16, String)> {
        let r = self
            .post(
                None,
                json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                    "protocolVersion":"2025-11-25","capabilities":{},
                    "clientInfo":{"name":name,"version":"1"}}}),
            )
            .await?;
        outcome(r)
            .await
            .map(|(session, _)| session.expect("a new session's id"))
    }

    /// `tools/call` of `echo`: Ok on a 200 answer carrying the text.
    pub async fn echo(&self, session: &str, text: &str) -> Result<(), (u16, String)> {
        let r = self
            .post(
                Some(session),
                json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
                    "params":{"name":"echo","arguments":{"text":text}}}),
            )
            .await?;
        let (_, body) = outcome(r).await?;
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["result"]["content"][0]["text"], text, "{body}");
        Ok(())
    }

    /// `DELETE /mcp`.
    pub async fn delete(&self, session: &str) -> Result<(), (u16, String)> {
        let r = self
            .http
            .delete(format!("{}/mcp", self.base))
            .header("mcp-session-id", session)
            .send()
            .await
            .map_err(|e| (0, e.to_string()))?;
        outcome(r).await.map(drop)
    }

    pub async fn health(&self) -> Value {
        self.http
            .get(format!("{}/api/health", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A management API `GET` with the gateway's admin token; panics unless
    /// it succeeds.
    pub async fn admin_get(&self, path: &str) -> Value {
        let token = self
            .admin_token
            .as_deref()
            .expect("a gateway started with an admin token");
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }
}

/// A 200's session-id header and body, or the status and body of anything
/// else. A 503 must say nothing internal and carry `Retry-After`.
async fn outcome(r: reqwest::Response) -> Result<(Option<String>, String), (u16, String)> {
    let status = r.status().as_u16();
    let session = r
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    let retry_after = r.headers().contains_key("retry-after");
    let body = r.text().await.map_err(|e| (0, e.to_string()))?;
    match status {
        200 => Ok((session, body)),
        503 => {
            assert!(retry_after, "a 503 without Retry-After: {body}");
            assert!(
                body.contains("the session store is unavailable, retry later"),
                "{body}"
            );
            for internal in ["database", "disk", "sqlite", "postgres", "full", "SQL"] {
                assert!(!body.contains(internal), "a 503 shows internals: {body}");
            }
            Err((status, body))
        }
        _ => Err((status, body)),
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
