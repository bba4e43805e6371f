//! The cli crate's test harness: the whole app assembled in-process on an
//! ephemeral port ([`TestServer`]), and the path of the real binary for
//! tests that run it as a child process. The generic pieces live in
//! `sessiongate-testkit`; the ones every test file used are re-exported.
// Each test file uses a part of this.
#![allow(dead_code, unused_imports)]

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use sessiongate::app::{self, RunningServer};
use sessiongate::config::Settings;
use sessiongate_core::lifecycle::EndSubscriber;
use sessiongate_core::{ManualClock, SharedClock};

pub use sessiongate_testkit::mcp::{resume, stateless, McpEndpoint};
pub use sessiongate_testkit::{eventually, SseEvent, SseReader};

/// The `sessiongate` binary, for [`sessiongate_testkit::process::Gateway`].
pub const BIN: &str = env!("CARGO_BIN_EXE_sessiongate");

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct TestServer {
    pub server: RunningServer,
    pub clock: ManualClock,
    /// Its `/mcp` endpoint; a test server derefs to it.
    pub endpoint: McpEndpoint,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TestServer {
    type Target = McpEndpoint;

    fn deref(&self) -> &McpEndpoint {
        &self.endpoint
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(Settings::default()).await
    }

    /// Starts a server on a fresh SQLite store with a manual clock.
    pub async fn start_with(settings: Settings) -> TestServer {
        Self::start_observed(settings, Vec::new()).await
    }

    /// [`Self::start_with`], with `ends` told of every session end.
    pub async fn start_observed(
        settings: Settings,
        ends: Vec<Arc<dyn EndSubscriber>>,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            data_dir: Some(dir.path().to_path_buf()),
            admin_token: Some(ADMIN_TOKEN.into()),
            ..settings
        };
        let clock = ManualClock::starting_now();
        let shared: SharedClock = Arc::new(clock.clone());
        let server = app::start_with(settings.resolve().unwrap(), shared, ends)
            .await
            .unwrap();
        let endpoint = McpEndpoint::new(format!("http://{}", server.addr), server.manager.clone());
        TestServer {
            server,
            clock,
            endpoint,
            _dir: dir,
        }
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub async fn admin_get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{}", self.base, path))
            .bearer_auth(ADMIN_TOKEN)
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

    pub async fn stop(self) {
        self.server.shutdown().await.unwrap();
    }
}
