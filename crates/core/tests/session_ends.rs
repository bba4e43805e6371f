//! The end-of-session notification: whichever way a session ends — DELETE,
//! admin terminate, an error, idle timeout, or shutdown letting go of it —
//! a subscriber hears of it exactly once, and a burst of ends loses none.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use sessiongate_core::lifecycle::EndKind;
use sessiongate_core::{DisconnectReason, SessionId, SessionStatus};

use common::{all, eventually, identity, restart, settle, start, IDLE};

/// Ends a session through the manager, as DELETE, admin terminate and an
/// error do, and checks the subscriber heard it once, and no more after a
/// second try.
async fn ended_once_by(reason: DisconnectReason) {
    let h = start().await;
    let session = h.create().await;
    let bystander = h.create().await;
    let id = session.id();
    let record = h
        .lifecycle
        .sessions
        .end(id, reason)
        .await
        .unwrap()
        .expect("it was active");
    assert_eq!(record.disconnect_reason, Some(reason));
    assert_eq!(h.heard_of(id), [EndKind::Ended(reason)]);
    assert!(session.departed());

    assert!(h
        .lifecycle
        .sessions
        .end(id, reason)
        .await
        .unwrap()
        .is_none());
    assert_eq!(h.heard_of(id), [EndKind::Ended(reason)]);
    assert!(h.heard_of(bystander.id()).is_empty());
    assert!(!bystander.departed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_disconnect_is_heard_once() {
    ended_once_by(DisconnectReason::ClientDisconnect).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_terminate_is_heard_once() {
    ended_once_by(DisconnectReason::AdminTerminated).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_end_is_heard_once() {
    ended_once_by(DisconnectReason::Error).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_is_heard_once() {
    let h = start().await;
    let session = h.create().await;
    let id = session.id();
    h.clock.advance(IDLE);
    h.until_heard(id).await;
    assert_eq!(h.heard_of(id), [EndKind::Ended(DisconnectReason::Timeout)]);
    assert!(h.lifecycle.sessions.active(id).is_none());

    // Later deadlines and later ends find nothing more to report.
    h.clock.advance(IDLE * 2);
    settle().await;
    let again = h
        .lifecycle
        .sessions
        .end(id, DisconnectReason::ClientDisconnect);
    assert!(again.await.unwrap().is_none());
    assert_eq!(h.heard_of(id), [EndKind::Ended(DisconnectReason::Timeout)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_unloads_each_active_session_once_and_they_resume_after() {
    let h = start().await;
    let (a, b, gone) = (h.create().await, h.create().await, h.create().await);
    let ended = DisconnectReason::ClientDisconnect;
    h.lifecycle.sessions.end(gone.id(), ended).await.unwrap();

    h.lifecycle.shutdown().await;
    assert_eq!(h.heard_of(a.id()), [EndKind::Unloaded]);
    assert_eq!(h.heard_of(b.id()), [EndKind::Unloaded]);
    assert_eq!(h.heard_of(gone.id()), [EndKind::Ended(ended)]);
    assert_eq!(h.heard.lock().unwrap().len(), 3);
    assert!(h.lifecycle.sessions.active(a.id()).is_none());
    assert!(a.departed() && b.departed());

    // Unloaded, not ended: the next start serves them again.
    let (next, heard) = restart(&h.dir, &h.clock).await;
    assert!(next.sessions.active(a.id()).is_some());
    assert!(next.sessions.active(b.id()).is_some());
    assert!(next.sessions.active(gone.id()).is_none());
    let stored = next.sessions.session(a.id()).await.unwrap().unwrap();
    assert_eq!(stored.status, SessionStatus::Active);
    assert!(heard.lock().unwrap().is_empty());
    next.shutdown().await;
    assert_eq!(heard.lock().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_ends_in_a_burst_are_each_heard_once() {
    const N: usize = 10_000;
    let h = start().await;
    let sessions = all((0..N).collect(), |_| {
        let manager = h.lifecycle.sessions.clone();
        async move {
            let created = manager.create(identity(), serde_json::json!({})).await;
            created.expect("create").session
        }
    })
    .await;
    // Half the sessions are touched halfway, so only the other half is due
    // when the clock reaches the idle timeout: the reaper ends those in one
    // burst while every session is also being ended directly.
    h.clock.advance(IDLE / 2);
    for s in &sessions[..N / 2] {
        h.lifecycle.sessions.touch(s);
    }
    h.clock.advance(IDLE / 2);
    let ids: Vec<SessionId> = sessions.iter().map(|s| s.id()).collect();
    let won = all(ids.clone(), |id| {
        let manager = h.lifecycle.sessions.clone();
        async move {
            let ended = manager.end(id, DisconnectReason::ClientDisconnect).await;
            (id, ended.expect("end").is_some())
        }
    })
    .await;

    eventually(|| h.heard.lock().unwrap().len() >= N).await;
    settle().await;
    let heard = h.heard.lock().unwrap().clone();
    assert_eq!(heard.len(), N, "one notification per session");
    let mut by_id: HashMap<SessionId, Vec<EndKind>> = HashMap::new();
    for e in &heard {
        by_id.entry(e.session_id).or_default().push(e.kind);
    }
    assert_eq!(by_id.len(), N, "every session heard of");
    for (i, (id, by_delete)) in won.into_iter().enumerate() {
        let expected = if by_delete {
            DisconnectReason::ClientDisconnect
        } else {
            DisconnectReason::Timeout
        };
        assert_eq!(by_id[&id], [EndKind::Ended(expected)], "session {i}");
        if i < N / 2 {
            assert!(
                by_delete,
                "session {i} was not due; only DELETE could end it"
            );
        }
    }
    assert_eq!(h.lifecycle.sessions.active_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_panics_does_not_stop_the_others_or_the_reaper() {
    use sessiongate_core::lifecycle::{EndSubscriber, Lifecycle, LifecycleConfig, SessionEnded};
    use std::sync::{Arc, Mutex};

    let dir = tempfile::tempdir().unwrap();
    let store = sessiongate_store::connect(&sessiongate_store::Database::Sqlite {
        path: dir.path().join("sessions.db"),
    })
    .await
    .unwrap();
    let clock = sessiongate_core::ManualClock::starting_now();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let recorder = heard.clone();
    let ends: Vec<Arc<dyn EndSubscriber>> = vec![
        Arc::new(|_: &SessionEnded| panic!("a broken subscriber")),
        Arc::new(move |e: &SessionEnded| recorder.lock().unwrap().push(e.session_id)),
    ];
    let config = LifecycleConfig {
        idle_timeout: IDLE,
        ..LifecycleConfig::default()
    };
    let lifecycle = Lifecycle::start(store, Arc::new(clock.clone()), config, ends)
        .await
        .unwrap();
    let create = || lifecycle.sessions.create(identity(), serde_json::json!({}));
    let (first, second) = (create().await.unwrap(), create().await.unwrap());
    clock.advance(IDLE);
    eventually(|| heard.lock().unwrap().len() == 2).await;
    // The reaper lived through it: a later session still times out.
    let third = create().await.unwrap();
    clock.advance(IDLE + Duration::from_secs(1));
    eventually(|| heard.lock().unwrap().len() == 3).await;
    let heard = heard.lock().unwrap().clone();
    for id in [first.session.id(), second.session.id(), third.session.id()] {
        assert_eq!(heard.iter().filter(|h| **h == id).count(), 1);
    }
}
