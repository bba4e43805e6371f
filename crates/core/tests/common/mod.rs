//! A lifecycle on a real SQLite store in a temporary directory, driven by a
//! manual clock, with a subscriber that records every end-of-session
//! notification.
#![allow(dead_code)]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sessiongate_core::lifecycle::{
    ActiveSession, EndKind, EndSubscriber, Lifecycle, LifecycleConfig, SessionEnded,
};
use sessiongate_core::session::ClientIdentity;
use sessiongate_core::{ManualClock, SessionId};
use sessiongate_store::{connect, Database};

pub const IDLE: Duration = Duration::from_secs(300);

pub struct Harness {
    pub lifecycle: Lifecycle,
    pub clock: ManualClock,
    /// Every notification heard, in order.
    pub heard: Arc<Mutex<Vec<SessionEnded>>>,
    pub dir: tempfile::TempDir,
}

/// A lifecycle whose sessions idle out after [`IDLE`].
pub async fn start() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_now();
    let (lifecycle, heard) = restart(&dir, &clock).await;
    Harness {
        lifecycle,
        clock,
        heard,
        dir,
    }
}

/// A lifecycle on the store in `dir`, with its own recorder.
pub async fn restart(
    dir: &tempfile::TempDir,
    clock: &ManualClock,
) -> (Lifecycle, Arc<Mutex<Vec<SessionEnded>>>) {
    let store = connect(&Database::Sqlite {
        path: dir.path().join("sessions.db"),
    })
    .await
    .expect("sqlite store");
    let heard = Arc::new(Mutex::new(Vec::new()));
    let recorder = heard.clone();
    let on_end = move |ended: &SessionEnded| recorder.lock().unwrap().push(*ended);
    let ends: Vec<Arc<dyn EndSubscriber>> = vec![Arc::new(on_end)];
    let config = LifecycleConfig {
        idle_timeout: IDLE,
        ..LifecycleConfig::default()
    };
    let lifecycle = Lifecycle::start(store, Arc::new(clock.clone()), config, ends)
        .await
        .expect("lifecycle");
    (lifecycle, heard)
}

pub fn identity() -> ClientIdentity {
    ClientIdentity {
        client_type: "Claude Code".into(),
        client_name: Some("claude-code".into()),
        client_version: Some("1.0".into()),
        client_capabilities: json!({}),
        protocol_version: "2025-06-18".into(),
        principal: None,
        remote_addr: None,
        user_agent: None,
    }
}

impl Harness {
    pub async fn create(&self) -> Arc<ActiveSession> {
        self.lifecycle
            .sessions
            .create(identity(), json!({}))
            .await
            .expect("create")
            .session
    }

    /// What the subscriber heard of one session, in order.
    pub fn heard_of(&self, id: SessionId) -> Vec<EndKind> {
        heard_of(&self.heard, id)
    }

    /// Waits (on the real clock, for the reaper's task) until the
    /// subscriber heard of `id`.
    pub async fn until_heard(&self, id: SessionId) {
        eventually(|| !self.heard_of(id).is_empty()).await;
    }
}

pub fn heard_of(heard: &Mutex<Vec<SessionEnded>>, id: SessionId) -> Vec<EndKind> {
    heard
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.session_id == id)
        .map(|e| e.kind)
        .collect()
}

/// Polls `check` until it holds, for at most ten seconds.
pub async fn eventually(mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition never held"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Gives the reaper a moment to act on the clock, for checks that it did
/// not act.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Runs `f` on `n` sessions at once.
pub async fn all<T, F, Fut>(items: Vec<T>, f: F) -> Vec<Fut::Output>
where
    T: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let tasks: Vec<_> = items.into_iter().map(|t| tokio::spawn(f(t))).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.expect("task"));
    }
    out
}
