//! The session manager on the manual clock: expiry at the deadline and not
//! before, touching re-arms the deadline, an open stream keeps a session
//! alive, and ends racing for one session end it once.

mod common;

use std::time::Duration;

use sessiongate_core::lifecycle::EndKind;
use sessiongate_core::{Clock, DisconnectReason, SessionStatus};

use common::{settle, start, IDLE};

const MS: Duration = Duration::from_millis(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_expires_at_its_deadline_and_not_before() {
    let h = start().await;
    let session = h.create().await;
    let id = session.id();
    let deadline = session.connected_at().saturating_add(IDLE);
    h.clock.advance(IDLE - MS);
    settle().await;
    assert!(h.lifecycle.sessions.active(id).is_some(), "not yet due");
    assert!(h.heard_of(id).is_empty());

    h.clock.advance(MS);
    h.until_heard(id).await;
    assert!(h.lifecycle.sessions.active(id).is_none());
    assert_eq!(h.heard_of(id), [EndKind::Ended(DisconnectReason::Timeout)]);
    // Written behind: the store catches up.
    let started = std::time::Instant::now();
    let stored = loop {
        let record = h.lifecycle.sessions.session(id).await.unwrap().unwrap();
        if record.status == SessionStatus::Disconnected {
            break record;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never written");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(stored.disconnect_reason, Some(DisconnectReason::Timeout));
    assert_eq!(stored.disconnected_at, Some(deadline));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touching_a_session_re_arms_its_deadline() {
    let h = start().await;
    let session = h.create().await;
    let id = session.id();
    h.clock.advance(IDLE * 6 / 10);
    h.lifecycle.sessions.touch(&session);
    assert_eq!(session.request_count(), 2, "initialize, then this request");

    // Past the first deadline: re-armed, not expired.
    h.clock.advance(IDLE * 6 / 10);
    settle().await;
    assert!(h.lifecycle.sessions.active(id).is_some());
    assert!(h.heard_of(id).is_empty());

    // A sign of life that is not a request re-arms it too.
    h.lifecycle.sessions.keep_alive(&session);
    assert_eq!(session.request_count(), 2);
    h.clock.advance(IDLE - MS);
    settle().await;
    assert!(h.lifecycle.sessions.active(id).is_some());

    h.clock.advance(MS);
    h.until_heard(id).await;
    assert_eq!(h.heard_of(id), [EndKind::Ended(DisconnectReason::Timeout)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_keeps_a_session_alive_and_idle_time_counts_from_its_close() {
    let h = start().await;
    let session = h.create().await;
    let id = session.id();
    let guard = h.lifecycle.sessions.open_stream(session.clone());
    assert_eq!(session.open_streams(), 1);
    for _ in 0..3 {
        h.clock.advance(IDLE);
        settle().await;
    }
    assert!(
        h.lifecycle.sessions.active(id).is_some(),
        "held by its stream"
    );
    assert!(h.heard_of(id).is_empty());

    drop(guard);
    assert_eq!(session.open_streams(), 0);
    let closed_at = h.clock.now();
    assert_eq!(session.last_activity(), closed_at);
    h.clock.advance(IDLE - MS);
    settle().await;
    assert!(h.lifecycle.sessions.active(id).is_some());

    h.clock.advance(IDLE);
    h.until_heard(id).await;
    assert_eq!(h.heard_of(id), [EndKind::Ended(DisconnectReason::Timeout)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ends_racing_for_one_session_end_it_once() {
    let h = start().await;
    for _ in 0..200 {
        let id = h.create().await.id();
        let (one, other) = (h.lifecycle.sessions.clone(), h.lifecycle.sessions.clone());
        let (a, b) = tokio::join!(
            tokio::spawn(async move { one.end(id, DisconnectReason::ClientDisconnect).await }),
            tokio::spawn(async move { other.end(id, DisconnectReason::AdminTerminated).await }),
        );
        let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
        assert!(a.is_some() != b.is_some(), "exactly one end wins");
        let winner = a.or(b).unwrap().disconnect_reason.unwrap();
        assert_eq!(h.heard_of(id), [EndKind::Ended(winner)]);
    }
}
