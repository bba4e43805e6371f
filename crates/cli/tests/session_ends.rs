//! Over HTTP, against the assembled server: a session ended by DELETE or by
//! an administrator reaches an end-of-session subscriber exactly once, and
//! its end takes the session's transport state with it — the standalone
//! GET stream closes.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{SseReader, TestServer, ADMIN_TOKEN};
use sessiongate::config::Settings;
use sessiongate_core::lifecycle::{EndKind, EndSubscriber, SessionEnded};
use sessiongate_core::{DisconnectReason, SessionId};

type Heard = Arc<Mutex<Vec<(SessionId, EndKind)>>>;

async fn observed() -> (TestServer, Heard) {
    let heard = Heard::default();
    let recorder = heard.clone();
    let on_end = move |e: &SessionEnded| recorder.lock().unwrap().push((e.session_id, e.kind));
    let ends: Vec<Arc<dyn EndSubscriber>> = vec![Arc::new(on_end)];
    let t = TestServer::start_observed(Settings::default(), ends).await;
    (t, heard)
}

/// The stream ends (instead of waiting for events that cannot come).
async fn closes(stream: SseReader) {
    tokio::time::timeout(Duration::from_secs(5), stream.rest())
        .await
        .expect("the stream of an ended session closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_is_heard_once_and_closes_the_standalone_stream() {
    let (t, heard) = observed().await;
    let session = t.initialize("2025-06-18", "claude-code").await;
    let id: SessionId = session.parse().unwrap();
    let stream = t.open_stream(&session).await;

    assert_eq!(t.delete(&session).await.status(), 200);
    let ended = EndKind::Ended(DisconnectReason::ClientDisconnect);
    assert_eq!(*heard.lock().unwrap(), [(id, ended)]);
    closes(stream).await;

    assert_eq!(t.delete(&session).await.status(), 404);
    assert_eq!(*heard.lock().unwrap(), [(id, ended)]);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_terminate_is_heard_once_and_closes_the_standalone_stream() {
    let (t, heard) = observed().await;
    let session = t.initialize("2025-06-18", "cursor").await;
    let other = t.initialize("2025-06-18", "windsurf").await;
    let id: SessionId = session.parse().unwrap();
    let stream = t.open_stream(&session).await;
    let terminate = || {
        t.http
            .delete(format!("{}/api/mcp/sessions/{session}", t.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
    };

    assert_eq!(terminate().await.unwrap().status(), 200);
    let ended = EndKind::Ended(DisconnectReason::AdminTerminated);
    assert_eq!(*heard.lock().unwrap(), [(id, ended)]);
    closes(stream).await;

    assert_eq!(terminate().await.unwrap().status(), 409);
    assert_eq!(*heard.lock().unwrap(), [(id, ended)]);

    // Shutdown lets go of the session still active: heard as unloaded.
    t.stop().await;
    let other: SessionId = other.parse().unwrap();
    assert_eq!(
        *heard.lock().unwrap(),
        [(id, ended), (other, EndKind::Unloaded)]
    );
}
