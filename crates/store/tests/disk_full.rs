//! SQLite on a full disk: a write that fails is reported as failed, and
//! once space is back the same store commits again — every write it
//! acknowledges is visible to another connection, and survives a reopen.
//!
//! The database lives on a small tmpfs mounted for the test (root only);
//! where mounting is impossible the test says so and is skipped.

use std::path::Path;

use serde_json::json;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

use sessiongate_core::session::{ClientIdentity, DisconnectReason, SessionEnd, SessionRecord};
use sessiongate_core::{SessionId, SessionStatus, Timestamp};
use sessiongate_store::SqliteStore;
use sessiongate_testkit::tmpfs::Tmpfs;

fn session(now: Timestamp) -> SessionRecord {
    SessionRecord {
        session_id: SessionId::generate(),
        client: ClientIdentity {
            client_type: "test".into(),
            client_name: Some("disk-full".into()),
            client_version: None,
            // Bulky rows, so a handful of them needs new pages.
            client_capabilities: json!({ "pad": "x".repeat(4000) }),
            protocol_version: "2025-11-25".into(),
            principal: None,
            remote_addr: None,
            user_agent: None,
        },
        connected_at: now,
        last_activity: now,
        status: SessionStatus::Active,
        disconnected_at: None,
        disconnect_reason: None,
        total_duration: None,
        request_count: 1,
        metadata: json!({}),
        reconnect_count: 0,
        reconnect_token: None,
    }
}

/// Session statuses as a connection of its own reads them.
async fn stored(path: &Path, ids: &[SessionId]) -> Vec<Option<String>> {
    let mut conn = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path))
        .await
        .unwrap();
    let mut out = Vec::new();
    for id in ids {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM sessions WHERE session_id = ?")
                .bind(id.to_string())
                .fetch_optional(&mut conn)
                .await
                .unwrap();
        out.push(status);
    }
    conn.close().await.unwrap();
    out
}

#[tokio::test]
async fn a_full_disk_fails_writes_and_the_store_commits_again_once_space_is_back() {
    let fs = match Tmpfs::mount("8m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("SKIPPED disk-full test: cannot mount a tmpfs ({why}); run as root");
            return;
        }
    };
    let path = fs.path().join("sessions.db");
    let store = SqliteStore::open(&path).await.unwrap();
    use sessiongate_core::store::SessionStore;

    let now = Timestamp::from_millis(1_800_000_000_000);
    let before = session(now);
    store
        .insert_sessions(std::slice::from_ref(&before))
        .await
        .unwrap();

    // Writes that find room in pages the files already hold may still
    // commit; the rest must fail, and nothing may be acknowledged that is
    // not committed.
    let ballast = fs.fill();
    let mut acked = Vec::new();
    let mut failed = 0;
    for _ in 0..50 {
        let batch: Vec<SessionRecord> = (0..20).map(|_| session(now)).collect();
        match store.insert_sessions(&batch).await {
            Ok(()) => acked.extend(batch),
            Err(_) => failed += 1,
        }
    }
    assert!(failed > 0, "the disk never filled up");
    std::fs::remove_file(&ballast).unwrap();

    // Space is back: writes commit again, without reopening the store.
    for _ in 0..30 {
        let rec = session(now);
        store
            .insert_sessions(std::slice::from_ref(&rec))
            .await
            .expect("a write once space is back");
        acked.push(rec);
    }
    let end = SessionEnd {
        session_id: before.session_id,
        at: now,
        reason: DisconnectReason::ClientDisconnect,
        total_duration: std::time::Duration::ZERO,
        last_activity: now,
        request_count: 1,
    };
    assert_eq!(store.end_sessions(&[end]).await.unwrap(), 1);

    let mut ids: Vec<SessionId> = acked.iter().map(|r| r.session_id).collect();
    ids.push(before.session_id);
    let mut want = vec![Some("active".to_string()); acked.len()];
    want.push(Some("disconnected".into()));
    let missing = |got: Vec<Option<String>>| got.iter().zip(&want).filter(|(g, w)| g != w).count();
    assert_eq!(
        missing(stored(&path, &ids).await),
        0,
        "of {} acknowledged writes, some are not visible to another connection",
        want.len()
    );

    // And they are still there after the store is closed and reopened.
    store.close().await;
    drop(store);
    assert_eq!(
        missing(stored(&path, &ids).await),
        0,
        "acknowledged writes lost at reopen"
    );
}
