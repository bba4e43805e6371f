//! The store contract: every test here runs against both backends for real,
//! SQLite in a temporary directory and PostgreSQL in a fresh schema of its
//! own (so the tests run in parallel and leave nothing behind).
//!
//! PostgreSQL is the test PostgreSQL of `sessiongate_testkit::postgres`
//! (`$DATABASE_URL`). When it cannot be reached the PostgreSQL tests fail;
//! set `SESSIONGATE_SKIP_POSTGRES=1` to skip them instead.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use serde_json::{json, Value};
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, PgConnection, SqliteConnection};

use sessiongate_core::health::ConnectionWindow;
use sessiongate_core::lifecycle::{EventLogConfig, Lifecycle, LifecycleConfig};
use sessiongate_core::request_log::{RequestLogEntry, RequestStatus};
use sessiongate_core::session::{
    ActivityUpdate, ClientIdentity, DisconnectReason, SessionEnd, SessionRecord, SessionStatus,
};
use sessiongate_core::store::{
    ConnectionBucket, Latency, PrunedTask, RequestBucket, RequestTotals, SessionFlow, SessionQuery,
    StatusCounts, Store, StoreError, TaskCounts, TaskQuery, Window,
};
use sessiongate_core::stream::{EventPage, PageId, PageKey, StoredEvent, StreamId, StreamKind};
use sessiongate_core::task::{
    TaskError, TaskOutcome, TaskOwner, TaskRecord, TaskStatus, TaskUpdate, RESTARTED,
};
use sessiongate_core::token::{Redemption, TokenGrant, TokenHash};
use sessiongate_core::upstream::{UpstreamMapping, UpstreamName};
use sessiongate_core::{ManualClock, SessionId, TaskId, Timestamp};
use sessiongate_store::{connect, migrate, Database, Migrated};
use sessiongate_testkit::postgres::{self as pg, Schema};

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// One test's database.
#[derive(Clone)]
struct Ctx {
    backend: Backend,
    db: Database,
    _dir: Option<Arc<tempfile::TempDir>>,
}

impl Ctx {
    async fn store(&self) -> Arc<dyn Store> {
        connect(&self.db)
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.db))
    }

    /// Runs raw SQL (one or more statements) on a connection of its own,
    /// behind the store's back.
    async fn raw(&self, sql: &str) {
        match &self.db {
            Database::Sqlite { path } => {
                let mut conn =
                    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path))
                        .await
                        .expect("raw sqlite connection");
                sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
                conn.close().await.expect("closing raw connection");
            }
            Database::Postgres { url } => {
                let mut conn = PgConnection::connect(url)
                    .await
                    .expect("raw postgres connection");
                sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
                conn.close().await.expect("closing raw connection");
            }
        }
    }

    /// Brings a new database to schema `version` (an earlier release's), so
    /// that a test can fill it before the store migrates the rest.
    async fn migrate_to(&self, version: usize) {
        let dir = match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(dir);
        let mut migrator = Migrator::new(source).await.expect("reading the migrations");
        migrator.migrations = migrator.migrations[..version].to_vec().into();
        match &self.db {
            Database::Sqlite { path } => {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true);
                let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
                migrator.run(&mut conn).await.expect("migrating");
                conn.close().await.unwrap();
            }
            Database::Postgres { url } => {
                let mut conn = PgConnection::connect(url).await.unwrap();
                migrator.run(&mut conn).await.expect("migrating");
                conn.close().await.unwrap();
            }
        }
    }

    /// Runs `sql` with CHECK constraints out of the way, to store values the
    /// schema would refuse.
    async fn raw_unchecked(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                self.raw(&format!("PRAGMA ignore_check_constraints = ON; {sql}"))
                    .await
            }
            Backend::Postgres => {
                self.raw(&format!(
                    "ALTER TABLE sessions DROP CONSTRAINT IF EXISTS sessions_status_check; \
                     ALTER TABLE requests DROP CONSTRAINT IF EXISTS requests_status_check; \
                     {sql}"
                ))
                .await
            }
        }
    }
}

/// Runs one contract test on one backend.
async fn run<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()>,
{
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let ctx = Ctx {
                backend,
                // A directory that does not exist yet: the store creates it.
                db: Database::Sqlite {
                    path: dir.path().join("data").join("sessions.db"),
                },
                _dir: Some(Arc::new(dir)),
            };
            test(ctx).await;
        }
        Backend::Postgres => {
            if pg::skipped("the PostgreSQL contract test") {
                return;
            }
            let schema = Schema::create("sg_contract").await;
            let ctx = Ctx {
                backend,
                db: Database::Postgres {
                    url: schema.url.clone(),
                },
                _dir: None,
            };
            // Catch the test's panic so the schema is dropped either way.
            let outcome = AssertUnwindSafe(test(ctx)).catch_unwind().await;
            let dropped = schema.drop().await;
            if let Err(panic) = outcome {
                std::panic::resume_unwind(panic);
            }
            dropped.expect("dropping the test schema");
        }
    }
}

/// Instantiates each named test once per backend: `sqlite::NAME` and
/// `postgres::NAME`.
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    crate::run(crate::Backend::Sqlite, crate::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    crate::run(crate::Backend::Postgres, crate::$name).await;
                }
            )*
        }
    };
}

contract_tests!(
    reports_its_backend,
    round_trips_every_field,
    insert_is_atomic_and_rejects_duplicates,
    replaces_nul_characters_instead_of_failing,
    empty_batches_are_no_ops,
    batches_larger_than_one_statement,
    end_only_changes_active_sessions_and_is_idempotent,
    activity_only_moves_forward_and_skips_ended_sessions,
    load_active_returns_only_active_sessions,
    list_filters_paginates_and_counts,
    status_counts_by_status,
    connection_buckets_group_by_second,
    disconnected_since_lists_newest_and_aggregates,
    latest_by_activity_orders_by_last_activity,
    request_log_round_trips_orders_and_prunes,
    prune_deletes_in_chunks,
    corrupt_rows_are_errors_not_panics,
    migrations_are_idempotent,
    migrate_reports_what_it_applied,
    concurrent_batches_do_not_deadlock,
    reconnect_tokens_rotate_by_compare_and_swap,
    redeeming_revives_only_revivable_sessions,
    event_log_pages_round_trip_and_prune,
    event_log_upgrade_keeps_logged_events,
    event_log_replays_streams_and_drops_what_leaves_a_session_window,
    request_aggregates_bucket_count_and_rank,
    session_flow_counts_arrivals_ends_and_the_active_at_start,
    tasks_round_trip_and_finished_tasks_never_change,
    tasks_list_count_fail_unfinished_and_prune,
    task_batches_larger_than_one_statement,
    a_task_round_is_one_transaction,
    upstream_mappings_round_trip_replace_delete_and_count,
    upstream_mappings_survive_a_new_store,
    upstream_mappings_go_with_a_session_that_cannot_come_back,
);

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// A whole second, so per-second buckets are easy to reason about.
const T0: i64 = 1_700_000_000_000;

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn session(connected_at: i64) -> SessionRecord {
    SessionRecord {
        session_id: SessionId::generate(),
        client: ClientIdentity {
            client_type: "Claude Code".into(),
            client_name: Some("claude-code".into()),
            client_version: Some("1.0.0".into()),
            client_capabilities: json!({"roots": {"listChanged": true}}),
            protocol_version: "2025-06-18".into(),
            principal: None,
            remote_addr: Some("127.0.0.1:50000".into()),
            user_agent: None,
        },
        connected_at: ts(connected_at),
        last_activity: ts(connected_at),
        status: SessionStatus::Active,
        disconnected_at: None,
        disconnect_reason: None,
        total_duration: None,
        request_count: 1,
        metadata: json!({"clientInfo": {"name": "claude-code", "version": "1.0.0"}}),
        reconnect_count: 0,
        reconnect_token: None,
    }
}

fn ended(mut r: SessionRecord, at: i64, reason: DisconnectReason) -> SessionRecord {
    r.status = SessionStatus::Disconnected;
    r.disconnected_at = Some(ts(at));
    r.disconnect_reason = Some(reason);
    r.total_duration = Some(ts(at).since(r.connected_at));
    r
}

fn end_of(r: &SessionRecord, at: i64, reason: DisconnectReason) -> SessionEnd {
    SessionEnd {
        session_id: r.session_id,
        at: ts(at),
        reason,
        total_duration: ts(at).since(r.connected_at),
        last_activity: r.last_activity,
        request_count: r.request_count,
    }
}

fn ids(records: &[SessionRecord]) -> Vec<SessionId> {
    records.iter().map(|r| r.session_id).collect()
}

async fn get(store: &dyn Store, id: SessionId) -> SessionRecord {
    store
        .get_session(id)
        .await
        .expect("get_session")
        .unwrap_or_else(|| panic!("session {id} not found"))
}

fn request(session: Option<SessionId>, i: u64, started_at: i64) -> RequestLogEntry {
    let failed = i % 7 == 3;
    let call = i & 1 == 0;
    RequestLogEntry {
        session_id: session,
        client_key: session.is_none().then(|| format!("client-{i}")),
        method: if call { "tools/call" } else { "ping" }.into(),
        tool_name: call.then(|| format!("tool_{i}")),
        started_at: ts(started_at),
        duration: Duration::from_micros(1_234 + i),
        status: if failed {
            RequestStatus::Error
        } else {
            RequestStatus::Success
        },
        error_code: failed.then_some(-32_601),
        error_message: failed.then(|| format!("no such method {i}")),
        bytes_in: 100 + i,
        bytes_out: 2_000 + i,
        upstream: (call && i.is_multiple_of(4)).then(|| UpstreamName::new("files").unwrap()),
    }
}

fn assert_corrupt<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Corrupt(msg)) => eprintln!("{what}: Corrupt({msg})"),
        other => panic!("{what}: expected StoreError::Corrupt, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

async fn reports_its_backend(ctx: Ctx) {
    let store = ctx.store().await;
    let want = match ctx.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(store.backend(), want);
    assert_eq!(ctx.db.backend(), want);
}

async fn round_trips_every_field(ctx: Ctx) {
    let store = ctx.store().await;
    let mut full = session(T0);
    full.client = ClientIdentity {
        client_type: "Cursor".into(),
        client_name: Some("cursor-vscode".into()),
        client_version: Some("0.42.3".into()),
        client_capabilities: json!({
            "roots": {"listChanged": true},
            "sampling": {},
            "elicitation": {"form": {}, "url": {}},
            "experimental": {"x": [1, -2, 2.5, "ünïcødé ✓", null, true, {"deep": [[]]}]},
        }),
        protocol_version: "2025-11-25".into(),
        principal: Some("alice@example.com".into()),
        remote_addr: Some("[2001:db8::1]:443".into()),
        user_agent: Some("Cursor/0.42.3 (it's \"quoted\")".into()),
    };
    full.last_activity = ts(T0 + 42_123);
    full.request_count = 17;
    full.metadata = json!({"clientInfo": {"name": "cursor-vscode", "title": "Cursor"}, "n": 42});
    let full = ended(full, T0 + 60_789, DisconnectReason::AdminTerminated);

    let mut minimal = session(T0 + 1);
    minimal.client = ClientIdentity {
        client_type: "unknown".into(),
        client_name: None,
        client_version: None,
        client_capabilities: json!({}),
        protocol_version: "2024-11-05".into(),
        principal: None,
        remote_addr: None,
        user_agent: None,
    };
    minimal.request_count = 0;
    minimal.metadata = Value::Null;

    let mut listy = session(T0 + 2);
    listy.client.client_capabilities = json!([]);
    listy.metadata = json!(["a", 1]);
    let listy = ended(listy, T0 + 2, DisconnectReason::ServerShutdown);

    let records = vec![full, minimal, listy];
    store.insert_sessions(&records).await.unwrap();
    for r in &records {
        assert_eq!(&get(&*store, r.session_id).await, r);
    }
    assert_eq!(
        store.get_session(SessionId::generate()).await.unwrap(),
        None
    );
}

async fn insert_is_atomic_and_rejects_duplicates(ctx: Ctx) {
    let store = ctx.store().await;
    let existing = session(T0);
    store
        .insert_sessions(std::slice::from_ref(&existing))
        .await
        .unwrap();
    let fresh = session(T0 + 1);
    let err = store
        .insert_sessions(&[fresh.clone(), existing.clone()])
        .await
        .expect_err("a duplicate id must fail the batch");
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    assert_eq!(
        store.get_session(fresh.session_id).await.unwrap(),
        None,
        "a failed batch must leave nothing behind"
    );
    assert_eq!(get(&*store, existing.session_id).await, existing);
}

async fn replaces_nul_characters_instead_of_failing(ctx: Ctx) {
    let store = ctx.store().await;
    let mut r = session(T0);
    r.client.client_name = Some("evil\0name".into());
    r.client.user_agent = Some("\0".into());
    r.client.client_capabilities = json!({"k\0": ["v\0"]});
    r.metadata = json!({"clientInfo": {"name": "evil\0name"}});
    let healthy = session(T0);
    store
        .insert_sessions(&[r.clone(), healthy.clone()])
        .await
        .expect("NUL characters must not fail the batch");
    let back = get(&*store, r.session_id).await;
    assert_eq!(back.client.client_name.as_deref(), Some("evil\u{FFFD}name"));
    assert_eq!(back.client.user_agent.as_deref(), Some("\u{FFFD}"));
    assert_eq!(
        back.client.client_capabilities,
        json!({"k\u{FFFD}": ["v\u{FFFD}"]})
    );
    assert_eq!(
        back.metadata,
        json!({"clientInfo": {"name": "evil\u{FFFD}name"}})
    );
    assert_eq!(get(&*store, healthy.session_id).await, healthy);

    let mut entry = request(Some(r.session_id), 0, T0);
    entry.error_message = Some("bad\0bytes".into());
    store.insert_requests(&[entry]).await.unwrap();
    let logged = store.session_requests(r.session_id, 1).await.unwrap();
    assert_eq!(logged[0].error_message.as_deref(), Some("bad\u{FFFD}bytes"));
}

async fn empty_batches_are_no_ops(ctx: Ctx) {
    let store = ctx.store().await;
    store.insert_sessions(&[]).await.unwrap();
    store.record_activity(&[]).await.unwrap();
    assert_eq!(store.end_sessions(&[]).await.unwrap(), 0);
    store.insert_requests(&[]).await.unwrap();
    assert_eq!(store.prune_requests(ts(T0)).await.unwrap(), 0);
    assert_eq!(
        store.status_counts().await.unwrap(),
        StatusCounts::default()
    );
    assert!(store.load_active(None, 10).await.unwrap().is_empty());
    let page = store
        .list_sessions(&SessionQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(page.sessions.is_empty());
    assert_eq!(page.total, 0);
    assert!(store.connection_buckets(ts(0)).await.unwrap().is_empty());
    let (rows, stats) = store.disconnected_since(ts(0), 10).await.unwrap();
    assert!(rows.is_empty());
    assert_eq!(stats, Default::default());
    assert!(store.latest_by_activity(None, 10).await.unwrap().is_empty());
}

/// More rows than SQLite takes bind parameters for in one statement.
async fn batches_larger_than_one_statement(ctx: Ctx) {
    let store = ctx.store().await;
    let n = 4_500;
    let records: Vec<SessionRecord> = (0..n).map(|i| session(T0 + i)).collect();
    store.insert_sessions(&records).await.unwrap();
    assert_eq!(
        store.status_counts().await.unwrap(),
        StatusCounts {
            active: n as u64,
            disconnected: 0
        }
    );
    let updates: Vec<ActivityUpdate> = records
        .iter()
        .map(|r| ActivityUpdate {
            session_id: r.session_id,
            last_activity: ts(T0 + 1_000_000),
            request_count: 5,
        })
        .collect();
    store.record_activity(&updates).await.unwrap();
    let ends: Vec<SessionEnd> = records
        .iter()
        .map(|r| end_of(r, T0 + 2_000_000, DisconnectReason::Timeout))
        .collect();
    assert_eq!(store.end_sessions(&ends).await.unwrap(), n as u64);
    let last = get(&*store, records[n as usize - 1].session_id).await;
    assert_eq!(last.last_activity, ts(T0 + 1_000_000));
    assert_eq!(last.request_count, 5);
    assert_eq!(last.status, SessionStatus::Disconnected);
}

async fn end_only_changes_active_sessions_and_is_idempotent(ctx: Ctx) {
    let store = ctx.store().await;
    let mut a = session(T0);
    a.last_activity = ts(T0 + 5_000);
    a.request_count = 9;
    let b = session(T0 + 1_000);
    let c = session(T0 + 2_000);
    store
        .insert_sessions(&[a.clone(), b.clone(), c.clone()])
        .await
        .unwrap();

    let end_a = end_of(&a, T0 + 65_000, DisconnectReason::Timeout);
    let end_b = end_of(&b, T0 + 3_000, DisconnectReason::ClientDisconnect);
    assert_eq!(store.end_sessions(&[end_a, end_b]).await.unwrap(), 2);
    let got_a = get(&*store, a.session_id).await;
    assert_eq!(
        got_a,
        ended(a.clone(), T0 + 65_000, DisconnectReason::Timeout)
    );
    assert_eq!(got_a.total_duration, Some(Duration::from_secs(65)));

    // Again, with other figures, plus a live session, an unknown id and a
    // duplicate: only the live session changes, once.
    let again_a = SessionEnd {
        at: ts(T0 + 99_000),
        reason: DisconnectReason::AdminTerminated,
        total_duration: Duration::from_secs(99),
        request_count: 1_000,
        last_activity: ts(T0 + 99_000),
        ..end_a
    };
    let end_c = end_of(&c, T0 + 4_000, DisconnectReason::Error);
    let ghost = SessionEnd {
        session_id: SessionId::generate(),
        ..end_c
    };
    let end_c_later = SessionEnd {
        at: ts(T0 + 5_000),
        reason: DisconnectReason::Timeout,
        ..end_c
    };
    assert_eq!(
        store
            .end_sessions(&[again_a, end_c, ghost, end_c_later])
            .await
            .unwrap(),
        1
    );
    assert_eq!(get(&*store, a.session_id).await, got_a);
    assert_eq!(
        get(&*store, c.session_id).await,
        ended(c.clone(), T0 + 4_000, DisconnectReason::Error),
        "the first end of a session in a batch wins"
    );
    assert_eq!(store.end_sessions(&[end_a, end_b, end_c]).await.unwrap(), 0);
}

async fn activity_only_moves_forward_and_skips_ended_sessions(ctx: Ctx) {
    let store = ctx.store().await;
    let a = session(T0);
    let b = ended(session(T0), T0 + 10_000, DisconnectReason::ClientDisconnect);
    store
        .insert_sessions(&[a.clone(), b.clone()])
        .await
        .unwrap();
    let update = |id, at, count| ActivityUpdate {
        session_id: id,
        last_activity: ts(at),
        request_count: count,
    };

    store
        .record_activity(&[update(a.session_id, T0 + 5_000, 7)])
        .await
        .unwrap();
    let got = get(&*store, a.session_id).await;
    assert_eq!((got.last_activity, got.request_count), (ts(T0 + 5_000), 7));

    // A stale update (e.g. a retried flush) does not move anything back.
    store
        .record_activity(&[update(a.session_id, T0 + 1_000, 3)])
        .await
        .unwrap();
    let got = get(&*store, a.session_id).await;
    assert_eq!((got.last_activity, got.request_count), (ts(T0 + 5_000), 7));

    // Duplicates in one batch: the latest figures win.
    store
        .record_activity(&[
            update(a.session_id, T0 + 8_000, 9),
            update(a.session_id, T0 + 6_000, 8),
        ])
        .await
        .unwrap();
    let got = get(&*store, a.session_id).await;
    assert_eq!((got.last_activity, got.request_count), (ts(T0 + 8_000), 9));

    // Ended and unknown sessions are left alone.
    store
        .record_activity(&[
            update(b.session_id, T0 + 99_000, 100),
            update(SessionId::generate(), T0, 1),
        ])
        .await
        .unwrap();
    assert_eq!(get(&*store, b.session_id).await, b);

    // Ending with older figures does not move last_activity back either.
    let end = SessionEnd {
        session_id: a.session_id,
        at: ts(T0 + 20_000),
        reason: DisconnectReason::Timeout,
        total_duration: Duration::from_secs(20),
        last_activity: ts(T0 + 1),
        request_count: 2,
    };
    assert_eq!(store.end_sessions(&[end]).await.unwrap(), 1);
    let got = get(&*store, a.session_id).await;
    assert_eq!((got.last_activity, got.request_count), (ts(T0 + 8_000), 9));
}

async fn load_active_returns_only_active_sessions(ctx: Ctx) {
    let store = ctx.store().await;
    let active: Vec<SessionRecord> = (0..3).map(|i| session(T0 + i * 1_000)).collect();
    let gone: Vec<SessionRecord> = (0..2)
        .map(|i| ended(session(T0 + i), T0 + 50_000, DisconnectReason::Timeout))
        .collect();
    store
        .insert_sessions(&[active.clone(), gone].concat())
        .await
        .unwrap();
    // Page by page, by id.
    let first = store.load_active(None, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    assert!(first[0].session_id.to_string() < first[1].session_id.to_string());
    let rest = store
        .load_active(Some(first[1].session_id), 2)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert!(store
        .load_active(Some(rest[0].session_id), 2)
        .await
        .unwrap()
        .is_empty());
    let mut loaded = [first, rest].concat();
    loaded.sort_by_key(|r| r.connected_at);
    assert_eq!(loaded, active);
}

async fn list_filters_paginates_and_counts(ctx: Ctx) {
    let store = ctx.store().await;
    let records: Vec<SessionRecord> = (0..10)
        .map(|i| {
            let mut r = session(T0 + i * 1_000);
            r.client.client_type = if i % 2 == 0 { "Cursor" } else { "Claude Code" }.into();
            if i % 3 == 0 {
                ended(r, T0 + 100_000, DisconnectReason::Timeout)
            } else {
                r
            }
        })
        .collect();
    store.insert_sessions(&records).await.unwrap();
    let newest_first: Vec<SessionRecord> = records.iter().rev().cloned().collect();
    let query = |status, client_type: Option<&str>, limit, offset| SessionQuery {
        status,
        client_type: client_type.map(str::to_string),
        limit,
        offset,
    };

    let page = store
        .list_sessions(&query(None, None, 100, 0))
        .await
        .unwrap();
    assert_eq!(page.total, 10);
    assert_eq!(page.sessions, newest_first);

    let page = store.list_sessions(&query(None, None, 3, 3)).await.unwrap();
    assert_eq!(page.total, 10);
    assert_eq!(page.sessions, newest_first[3..6]);

    for (limit, offset) in [(5, 10), (5, 1_000), (0, 0)] {
        let page = store
            .list_sessions(&query(None, None, limit, offset))
            .await
            .unwrap();
        assert_eq!(page.total, 10);
        assert!(page.sessions.is_empty());
    }

    let page = store
        .list_sessions(&query(Some(SessionStatus::Active), None, 100, 0))
        .await
        .unwrap();
    let want: Vec<SessionRecord> = newest_first
        .iter()
        .filter(|r| r.status == SessionStatus::Active)
        .cloned()
        .collect();
    assert_eq!(page.total, 6);
    assert_eq!(page.sessions, want);

    let page = store
        .list_sessions(&query(
            Some(SessionStatus::Disconnected),
            Some("Cursor"),
            1,
            1,
        ))
        .await
        .unwrap();
    // Disconnected Cursor sessions: i = 6, 0 (even and divisible by 3).
    assert_eq!(page.total, 2);
    assert_eq!(ids(&page.sessions), vec![records[0].session_id]);

    let page = store
        .list_sessions(&query(None, Some("Claude Code"), 100, 0))
        .await
        .unwrap();
    assert_eq!(page.total, 5);
    assert!(page
        .sessions
        .iter()
        .all(|r| r.client.client_type == "Claude Code"));

    let page = store
        .list_sessions(&query(None, Some("Nobody"), 100, 0))
        .await
        .unwrap();
    assert_eq!((page.total, page.sessions.len()), (0, 0));
}

async fn status_counts_by_status(ctx: Ctx) {
    let store = ctx.store().await;
    assert_eq!(
        store.status_counts().await.unwrap(),
        StatusCounts::default()
    );
    let mut records: Vec<SessionRecord> = (0..3).map(|i| session(T0 + i)).collect();
    records.extend((0..2).map(|i| ended(session(T0 + i), T0 + 9, DisconnectReason::Timeout)));
    store.insert_sessions(&records).await.unwrap();
    assert_eq!(
        store.status_counts().await.unwrap(),
        StatusCounts {
            active: 3,
            disconnected: 2
        }
    );
    store
        .end_sessions(&[end_of(&records[0], T0 + 10, DisconnectReason::Timeout)])
        .await
        .unwrap();
    assert_eq!(
        store.status_counts().await.unwrap(),
        StatusCounts {
            active: 2,
            disconnected: 3
        }
    );
}

async fn connection_buckets_group_by_second(ctx: Ctx) {
    let store = ctx.store().await;
    let before = session(T0 - 1);
    let s1 = session(T0 + 100);
    let s2 = ended(session(T0 + 900), T0 + 60_900, DisconnectReason::Timeout);
    let s3 = ended(
        session(T0 + 500),
        T0 + 1_734,
        DisconnectReason::ClientDisconnect,
    );
    let s4 = session(T0 + 5_000);
    let all = [before, s1, s2, s3, s4];
    store.insert_sessions(&all).await.unwrap();

    let buckets = store.connection_buckets(ts(T0)).await.unwrap();
    assert_eq!(
        buckets,
        vec![
            ConnectionBucket {
                second: T0 / 1000,
                connected: 3,
                ended: 2,
                ended_duration_ms: 60_000 + 1_234,
                active_connected_at_ms: T0 + 100,
            },
            ConnectionBucket {
                second: T0 / 1000 + 5,
                connected: 1,
                ended: 0,
                ended_duration_ms: 0,
                active_connected_at_ms: T0 + 5_000,
            },
        ]
    );

    // Seeding the health window from the store gives what counting live gave.
    let span = Duration::from_secs(24 * 3600);
    let now = ts(T0 + 120_000);
    let mut live = ConnectionWindow::new(span);
    for r in &all[1..] {
        live.on_connect(r.connected_at);
    }
    for r in &all[1..] {
        if let Some(at) = r.disconnected_at {
            live.on_end(r.connected_at, at);
        }
    }
    let mut seeded = ConnectionWindow::new(span);
    seeded.seed(buckets);
    assert_eq!(seeded.report(now), live.report(now));
}

async fn disconnected_since_lists_newest_and_aggregates(ctx: Ctx) {
    let store = ctx.store().await;
    let e1 = ended(session(T0), T0 + 10_000, DisconnectReason::Timeout);
    let e2 = ended(
        session(T0 - 10_000),
        T0 + 20_000,
        DisconnectReason::ClientDisconnect,
    );
    let e3 = ended(session(T0 + 10_000), T0 + 30_000, DisconnectReason::Timeout);
    let e4 = ended(session(T0), T0 + 40_000, DisconnectReason::Error);
    let old = ended(session(T0 - 2_000_000), T0 - 1, DisconnectReason::Error);
    let live = session(T0 + 50_000);
    store
        .insert_sessions(&[e1.clone(), e2.clone(), e3.clone(), e4.clone(), old, live])
        .await
        .unwrap();
    // A reason as the reference system wrote it.
    ctx.raw(&format!(
        "UPDATE sessions SET disconnect_reason = 'error: ConnectionReset' \
         WHERE session_id = '{}'",
        e4.session_id
    ))
    .await;

    let (rows, stats) = store.disconnected_since(ts(T0), 2).await.unwrap();
    assert_eq!(rows, vec![e4.clone(), e3.clone()]);
    assert_eq!(stats.total_disconnected, 4);
    assert_eq!(
        stats.disconnect_reasons,
        BTreeMap::from([
            ("client_disconnect".to_string(), 1),
            ("error".to_string(), 1),
            ("timeout".to_string(), 2),
        ])
    );
    // Durations 10 s, 30 s, 20 s, 40 s.
    assert_eq!(stats.avg_duration_seconds, 25.0);
    assert_eq!(stats.max_duration_seconds, 40.0);
    assert_eq!(stats.min_duration_seconds, 10.0);

    let (rows, _) = store.disconnected_since(ts(T0), 100).await.unwrap();
    assert_eq!(rows, vec![e4, e3, e2, e1]);

    // Sub-second durations keep their milliseconds.
    let quick = ended(session(T0 + 60_000), T0 + 60_250, DisconnectReason::Timeout);
    store.insert_sessions(&[quick]).await.unwrap();
    let (_, stats) = store.disconnected_since(ts(T0 + 60_000), 10).await.unwrap();
    assert_eq!(stats.total_disconnected, 1);
    assert_eq!(stats.min_duration_seconds, 0.25);
    assert_eq!(stats.avg_duration_seconds, 0.25);

    let (rows, stats) = store.disconnected_since(ts(T0 + 99_999), 10).await.unwrap();
    assert!(rows.is_empty());
    assert_eq!(stats, Default::default());
}

async fn latest_by_activity_orders_by_last_activity(ctx: Ctx) {
    let store = ctx.store().await;
    let with_activity = |r: SessionRecord, at: i64| SessionRecord {
        last_activity: ts(at),
        ..r
    };
    let a1 = with_activity(session(T0), T0 + 10);
    let a2 = with_activity(session(T0), T0 + 50);
    let a3 = with_activity(session(T0), T0 + 30);
    let d1 = with_activity(
        ended(session(T0), T0 + 100, DisconnectReason::Timeout),
        T0 + 40,
    );
    let d2 = with_activity(
        ended(session(T0), T0 + 100, DisconnectReason::Timeout),
        T0 + 20,
    );
    let d3 = with_activity(
        ended(session(T0), T0 + 100, DisconnectReason::Timeout),
        T0 + 60,
    );
    store
        .insert_sessions(&[
            a1.clone(),
            a2.clone(),
            a3.clone(),
            d1.clone(),
            d2.clone(),
            d3.clone(),
        ])
        .await
        .unwrap();

    let got = store
        .latest_by_activity(Some(SessionStatus::Disconnected), 2)
        .await
        .unwrap();
    assert_eq!(got, vec![d3.clone(), d1.clone()]);
    let got = store
        .latest_by_activity(Some(SessionStatus::Active), 10)
        .await
        .unwrap();
    assert_eq!(got, vec![a2.clone(), a3.clone(), a1.clone()]);
    let got = store.latest_by_activity(None, 4).await.unwrap();
    assert_eq!(got, vec![d3.clone(), a2, d1, a3]);
    let got = store.latest_by_activity(None, 100).await.unwrap();
    assert_eq!(got.len(), 6);
    assert!(store
        .latest_by_activity(Some(SessionStatus::Active), 0)
        .await
        .unwrap()
        .is_empty());
}

async fn request_log_round_trips_orders_and_prunes(ctx: Ctx) {
    let store = ctx.store().await;
    let s = session(T0);
    let other = session(T0);
    store
        .insert_sessions(&[s.clone(), other.clone()])
        .await
        .unwrap();

    // Pairs of rows share a start time: insertion order breaks the tie.
    let mine: Vec<RequestLogEntry> = (0..1_000u64)
        .map(|i| request(Some(s.session_id), i, T0 + (i / 2) as i64))
        .collect();
    let started = Instant::now();
    store.insert_requests(&mine).await.unwrap();
    let took = started.elapsed();
    eprintln!(
        "{:?}: inserting 1000 request rows took {took:?}",
        ctx.backend
    );
    assert!(took < Duration::from_secs(5), "1000 rows took {took:?}");

    let theirs: Vec<RequestLogEntry> = (0..10u64)
        .map(|i| request(Some(other.session_id), i, T0 + 10_000))
        .collect();
    let stateless: Vec<RequestLogEntry> =
        (0..5u64).map(|i| request(None, i, T0 + 10_000)).collect();
    store
        .insert_requests(&[theirs, stateless].concat())
        .await
        .unwrap();

    let newest_first: Vec<RequestLogEntry> = mine.iter().rev().cloned().collect();
    assert_eq!(
        store.session_requests(s.session_id, 10).await.unwrap(),
        newest_first[..10]
    );
    assert_eq!(
        store.session_requests(s.session_id, 5_000).await.unwrap(),
        newest_first
    );
    assert_eq!(
        store
            .session_requests(other.session_id, 100)
            .await
            .unwrap()
            .len(),
        10
    );
    assert!(store
        .session_requests(SessionId::generate(), 10)
        .await
        .unwrap()
        .is_empty());

    // Rows started before T0 + 250 ms: the first 500 of this session.
    assert_eq!(store.prune_requests(ts(T0 + 250)).await.unwrap(), 500);
    assert_eq!(
        store.session_requests(s.session_id, 5_000).await.unwrap(),
        newest_first[..500]
    );
    assert_eq!(store.prune_requests(ts(T0 + 250)).await.unwrap(), 0);
    assert_eq!(store.prune_requests(ts(T0 + 10_001)).await.unwrap(), 515);
}

async fn prune_deletes_in_chunks(ctx: Ctx) {
    let store = ctx.store().await;
    let id = SessionId::generate();
    let rows: Vec<RequestLogEntry> = (0..25_000u64)
        .map(|i| request(Some(id), i, T0 + i as i64))
        .collect();
    for batch in rows.chunks(5_000) {
        store.insert_requests(batch).await.unwrap();
    }
    assert_eq!(store.prune_requests(ts(T0 + 24_990)).await.unwrap(), 24_990);
    let left = store.session_requests(id, 100).await.unwrap();
    assert_eq!(left.len(), 10);
    assert_eq!(left[0], rows[24_999]);
}

async fn corrupt_rows_are_errors_not_panics(ctx: Ctx) {
    let store = ctx.store().await;
    let zombie = session(T0);
    let negative = session(T0 + 1);
    let odd_reason = ended(session(T0 + 2), T0 + 3, DisconnectReason::Timeout);
    let healthy = ended(session(T0 + 3), T0 + 4, DisconnectReason::Timeout);
    store
        .insert_sessions(&[
            zombie.clone(),
            negative.clone(),
            odd_reason.clone(),
            healthy.clone(),
        ])
        .await
        .unwrap();
    store
        .insert_requests(&[
            request(Some(healthy.session_id), 1, T0),
            request(Some(zombie.session_id), 1, T0),
        ])
        .await
        .unwrap();
    ctx.raw_unchecked(&format!(
        "UPDATE sessions SET status = 'zombie' WHERE session_id = '{z}'; \
         UPDATE sessions SET request_count = -5 WHERE session_id = '{n}'; \
         UPDATE sessions SET disconnect_reason = 'abducted' WHERE session_id = '{o}'; \
         UPDATE requests SET status = 'maybe' WHERE session_id = '{z}'",
        z = zombie.session_id,
        n = negative.session_id,
        o = odd_reason.session_id,
    ))
    .await;

    assert_corrupt(store.get_session(zombie.session_id).await, "bad status");
    assert_corrupt(
        store.get_session(negative.session_id).await,
        "negative count",
    );
    assert_corrupt(
        store.get_session(odd_reason.session_id).await,
        "unknown reason",
    );
    assert_corrupt(store.load_active(None, 100).await, "load_active");
    assert_corrupt(
        store
            .list_sessions(&SessionQuery {
                limit: 10,
                ..Default::default()
            })
            .await,
        "list_sessions",
    );
    assert_corrupt(store.status_counts().await, "status_counts");
    assert_corrupt(
        store.session_requests(zombie.session_id, 10).await,
        "request status",
    );

    if ctx.backend == Backend::Sqlite {
        // Only SQLite can hold text that is not JSON.
        ctx.raw(&format!(
            "UPDATE sessions SET metadata = '{{not json' WHERE session_id = '{}'",
            healthy.session_id
        ))
        .await;
        assert_corrupt(store.get_session(healthy.session_id).await, "bad JSON");
    } else {
        // The store is still usable.
        assert_eq!(get(&*store, healthy.session_id).await, healthy);
    }
    assert_eq!(
        store
            .session_requests(healthy.session_id, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn migrations_are_idempotent(ctx: Ctx) {
    let first = ctx.store().await;
    let r = session(T0);
    first
        .insert_sessions(std::slice::from_ref(&r))
        .await
        .unwrap();
    // A second store on the same database while the first is open, then an
    // explicit migration, then a third.
    let second = ctx.store().await;
    assert_eq!(get(&*second, r.session_id).await, r);
    drop((first, second));
    migrate(&ctx.db).await.expect("migrating again is a no-op");
    let third = ctx.store().await;
    assert_eq!(get(&*third, r.session_id).await, r);
    assert_eq!(third.status_counts().await.unwrap().active, 1);
}

/// `sessiongate migrate` says whether it created the schema, applied some
/// migrations or found nothing to do.
async fn migrate_reports_what_it_applied(ctx: Ctx) {
    let first = migrate(&ctx.db).await.unwrap();
    assert_eq!(first.before, 0);
    assert!(first.applied > 0, "{first:?}");
    let again = migrate(&ctx.db).await.unwrap();
    assert_eq!(
        again,
        Migrated {
            before: first.applied,
            applied: 0
        }
    );
}

/// Two stores (two gateway instances) write overlapping batches in opposite
/// orders at once; every write succeeds.
async fn concurrent_batches_do_not_deadlock(ctx: Ctx) {
    let first = ctx.store().await;
    let second = ctx.store().await;
    let records: Vec<SessionRecord> = (0..300).map(|i| session(T0 + i)).collect();
    first.insert_sessions(&records).await.unwrap();

    let mut tasks = Vec::new();
    for w in 0..4i64 {
        let store = if w % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let mut order = ids(&records);
        if w % 2 == 1 {
            order.reverse();
        }
        tasks.push(tokio::spawn(async move {
            for round in 0..15i64 {
                let updates: Vec<ActivityUpdate> = order
                    .iter()
                    .map(|&id| ActivityUpdate {
                        session_id: id,
                        last_activity: ts(T0 + 1_000 + round * 10 + w),
                        request_count: (round * 4 + w) as u64,
                    })
                    .collect();
                store.record_activity(&updates).await?;
            }
            Ok::<u64, StoreError>(0)
        }));
    }
    for (k, chunk) in records.chunks(30).rev().enumerate() {
        let store = if k % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let mut ends: Vec<SessionEnd> = chunk
            .iter()
            .map(|r| end_of(r, T0 + 5_000, DisconnectReason::Timeout))
            .collect();
        ends.reverse();
        tasks.push(tokio::spawn(async move { store.end_sessions(&ends).await }));
    }
    let mut ended = 0;
    for task in tasks {
        ended += task.await.unwrap().expect("concurrent write failed");
    }
    assert_eq!(ended, 300);
    assert_eq!(
        first.status_counts().await.unwrap(),
        StatusCounts {
            active: 0,
            disconnected: 300
        }
    );
}

// ---------------------------------------------------------------------------
// Reconnect tokens and the event log
// ---------------------------------------------------------------------------

fn grant(token: &str, expires_at: i64) -> TokenGrant {
    TokenGrant {
        hash: TokenHash::of(token),
        expires_at: ts(expires_at),
    }
}

async fn reconnect_tokens_rotate_by_compare_and_swap(ctx: Ctx) {
    let store = ctx.store().await;
    let mut s = session(T0);
    s.reconnect_token = Some(grant("t0", T0 + 900_000));
    store
        .insert_sessions(std::slice::from_ref(&s))
        .await
        .unwrap();
    let id = s.session_id;
    let state = store.reconnect_state(id).await.unwrap().unwrap();
    assert_eq!(state.current, Some(grant("t0", T0 + 900_000)));
    assert_eq!((state.used, state.count), (None, 0));
    assert_eq!(get(&*store, id).await.reconnect_token, state.current);

    // Issuing replaces the current token.
    assert!(store
        .set_reconnect_token(id, grant("t1", T0 + 1_000_000))
        .await
        .unwrap());
    assert!(!store
        .set_reconnect_token(SessionId::generate(), grant("x", T0))
        .await
        .unwrap());
    let redeem = |expected: &str, next: &str| Redemption {
        session_id: id,
        expected: TokenHash::of(expected),
        next: grant(next, T0 + 2_000_000),
        revive_at: None,
    };
    // A superseded token does not match; the current one does, once.
    assert_eq!(
        store
            .redeem_reconnect_token(&redeem("t0", "t2"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .redeem_reconnect_token(&redeem("t1", "t2"))
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        store
            .redeem_reconnect_token(&redeem("t1", "t3"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .redeem_reconnect_token(&redeem("t2", "t3"))
            .await
            .unwrap(),
        Some(2)
    );
    let state = store.reconnect_state(id).await.unwrap().unwrap();
    assert_eq!(state.current, Some(grant("t3", T0 + 2_000_000)));
    assert_eq!(state.used, Some(TokenHash::of("t2")));
    assert_eq!(state.count, 2);
    assert_eq!(get(&*store, id).await.reconnect_count, 2);
    assert_eq!(
        store.reconnect_state(SessionId::generate()).await.unwrap(),
        None
    );
}

async fn redeeming_revives_only_revivable_sessions(ctx: Ctx) {
    let store = ctx.store().await;
    let mut timed_out = session(T0);
    timed_out.reconnect_token = Some(grant("a", T0 + 900_000));
    let mut deleted = session(T0);
    deleted.reconnect_token = Some(grant("b", T0 + 900_000));
    store
        .insert_sessions(&[timed_out.clone(), deleted.clone()])
        .await
        .unwrap();
    store
        .end_sessions(&[
            end_of(&timed_out, T0 + 5_000, DisconnectReason::Timeout),
            end_of(&deleted, T0 + 5_000, DisconnectReason::ClientDisconnect),
        ])
        .await
        .unwrap();
    let revive = |s: &SessionRecord, token: &str| Redemption {
        session_id: s.session_id,
        expected: TokenHash::of(token),
        next: grant("next", T0 + 900_000),
        revive_at: Some(ts(T0 + 60_000)),
    };
    assert_eq!(
        store
            .redeem_reconnect_token(&revive(&deleted, "b"))
            .await
            .unwrap(),
        None,
        "a session its client ended stays ended"
    );
    assert_eq!(
        get(&*store, deleted.session_id).await.status,
        SessionStatus::Disconnected
    );

    assert_eq!(
        store
            .redeem_reconnect_token(&revive(&timed_out, "a"))
            .await
            .unwrap(),
        Some(1)
    );
    let back = get(&*store, timed_out.session_id).await;
    assert_eq!(back.status, SessionStatus::Active);
    assert_eq!(back.last_activity, ts(T0 + 60_000));
    assert_eq!(
        (
            back.disconnected_at,
            back.disconnect_reason,
            back.total_duration
        ),
        (None, None, None)
    );
    assert_eq!(back.reconnect_count, 1);
    assert_eq!(
        store.status_counts().await.unwrap(),
        StatusCounts {
            active: 1,
            disconnected: 1
        }
    );
}

async fn event_log_pages_round_trip_and_prune(ctx: Ctx) {
    let store = ctx.store().await;
    let a = SessionId::generate();
    let b = SessionId::generate();
    let stream = StreamId::generate(StreamKind::Request);
    let other = StreamId::generate(StreamKind::Standalone);
    let page = |session, at: i64, events: &[(StreamId, u64)]| {
        let mut page = EventPage::new(session, ts(at));
        for &(stream, seq) in events {
            // Stored as bytes: NUL and invalid UTF-8 come back unchanged.
            let mut message = format!("{{\"n\":{seq},\"s\":\"ü\0\"}}").into_bytes();
            message.push(0xff);
            page.push(stream, seq, &message);
        }
        page
    };
    let p1 = page(
        a,
        T0 + 1,
        &[(stream, 1), (stream, 2), (other, 1), (stream, 3)],
    );
    let p2 = page(a, T0 + 3, &[(stream, 4), (stream, 5)]);
    let q = page(b, T0, &[(stream, 1)]);
    store
        .append_event_pages(&[p1.clone(), q.clone(), p2.clone()])
        .await
        .unwrap();
    // A page already stored stays as it is (a retried batch).
    let retried = EventPage {
        body: b"garbage".to_vec(),
        ..p1.clone()
    };
    store.append_event_pages(&[retried]).await.unwrap();
    store.append_event_pages(&[]).await.unwrap();

    let pages = |session, from| {
        let store = store.clone();
        async move { store.event_pages(session, PageId(from)).await.unwrap() }
    };
    assert_eq!(pages(a, 0).await, [p1.clone(), p2.clone()]);
    assert_eq!(pages(a, p1.id.0 + 1).await, std::slice::from_ref(&p2));
    assert_eq!(pages(b, 0).await, std::slice::from_ref(&q));
    assert!(pages(SessionId::generate(), 0).await.is_empty());
    let back = pages(a, 0).await.remove(0).into_events().unwrap();
    assert_eq!(back.len(), 4);
    assert_eq!(
        back[3].message,
        p1.clone().into_events().unwrap()[3].message
    );

    // Older than the cutoff: gone, whoever's.
    assert_eq!(store.prune_event_pages(ts(T0 + 2)).await.unwrap(), 2);
    assert_eq!(pages(a, 0).await, std::slice::from_ref(&p2));
    assert!(pages(b, 0).await.is_empty());
    assert_eq!(store.prune_event_pages(ts(T0 + 2)).await.unwrap(), 0);

    // Dropped by key, in its session only.
    let q2 = page(b, T0 + 9, &[(other, 2)]);
    store
        .append_event_pages(std::slice::from_ref(&q2))
        .await
        .unwrap();
    let key = |session_id, page: &EventPage| PageKey {
        session_id,
        page: page.id,
    };
    let dropped = store
        .drop_event_pages(&[key(a, &p2), key(a, &q2), key(b, &p2)])
        .await
        .unwrap();
    assert_eq!(dropped, 1);
    assert!(pages(a, 0).await.is_empty());
    assert_eq!(pages(b, 0).await, std::slice::from_ref(&q2));
    assert_eq!(store.drop_event_pages(&[]).await.unwrap(), 0);

    // Many chunks' worth by age: all of them, and nothing newer.
    let c = SessionId::generate();
    let mut many: Vec<EventPage> = (0..25_000)
        .map(|_| page(c, T0 + 10, &[(StreamId::generate(StreamKind::Request), 1)]))
        .collect();
    let newest = page(c, T0 + 20, &[(stream, 1)]);
    many.push(newest.clone());
    store.append_event_pages(&many).await.unwrap();
    // c's and b's one.
    assert_eq!(
        store.prune_event_pages(ts(T0 + 11)).await.unwrap(),
        25_000 + 1
    );
    assert_eq!(pages(c, 0).await, [newest]);
}

/// Events logged by a release that kept a row per event replay after the
/// upgrade to pages (schema 6).
async fn event_log_upgrade_keeps_logged_events(ctx: Ctx) {
    ctx.migrate_to(5).await;
    let (a, b) = (SessionId::generate(), SessionId::generate());
    // Logged in the millisecond the stream opened, which was far from the
    // first of that millisecond: its pages must still come after it.
    let at = T0;
    let stream = StreamId {
        kind: StreamKind::Request,
        n: ((at as u64) << 20) + 500,
    };
    ctx.raw(&format!(
        "INSERT INTO session_events (session_id, stream_id, seq, created_at, message) VALUES \
         ('{a}', '{stream}', 2, {at}, '{{\"s\":\"ü€\"}}'), \
         ('{a}', '{stream}', 1, {at}, '{{}}'), \
         ('{b}', '{stream}', 1, {at}, 'b')"
    ))
    .await;
    let store = ctx.store().await;
    let mut events = Vec::new();
    for page in store.event_pages(a, PageId(stream.n)).await.unwrap() {
        assert_eq!(page.at, ts(at));
        events.extend(page.into_events().unwrap());
    }
    events.sort_by_key(|e| e.seq);
    let got: Vec<(SessionId, StreamId, u64, &[u8])> = events
        .iter()
        .map(|e| (e.session_id, e.stream, e.seq, &e.message[..]))
        .collect();
    assert_eq!(
        got,
        [
            (a, stream, 1, b"{}".as_slice()),
            (a, stream, 2, "{\"s\":\"ü€\"}".as_bytes())
        ]
    );
    assert_eq!(
        store.event_pages(b, PageId(stream.n)).await.unwrap().len(),
        1
    );
}

/// The lifecycle's event log over the store: a stream replays from the
/// pages its session's batches were written to, and once newer pages push
/// a session's oldest out of its window, the pruner drops it there.
async fn event_log_replays_streams_and_drops_what_leaves_a_session_window(ctx: Ctx) {
    let store = ctx.store().await;
    let config = LifecycleConfig {
        event_log: EventLogConfig {
            keep_per_session: 3,
            prune_interval: Duration::from_millis(20),
            flush_interval: Duration::from_millis(5),
            ..EventLogConfig::default()
        },
        ..LifecycleConfig::default()
    };
    let clock = ManualClock::starting_now();
    let lifecycle = Lifecycle::start(store.clone(), Arc::new(clock.clone()), config, Vec::new())
        .await
        .unwrap();
    let (a, b) = (SessionId::generate(), SessionId::generate());
    let streams: Vec<StreamId> = (0..3)
        .map(|_| StreamId::generate(StreamKind::Request))
        .collect();
    let event = |session, stream, seq| StoredEvent {
        session_id: session,
        stream,
        seq,
        message: format!("{{\"seq\":{seq}}}").into(),
    };
    let log = &lifecycle.event_log;
    // One batch each: a's streams land on three pages of two events.
    for &s in &streams {
        for seq in 1..=2 {
            log.append(event(a, s, seq)).await;
        }
        log.append(event(b, streams[0], 1)).await;
        log.flushed().await.unwrap();
    }
    let seqs = |session, stream| async move {
        let events = log.after(session, stream, 0).await.unwrap();
        assert!(events
            .iter()
            .all(|e| e.session_id == session && e.stream == stream));
        events.into_iter().map(|e| e.seq).collect::<Vec<_>>()
    };
    assert_eq!(seqs(b, streams[0]).await, [1, 1, 1]);
    assert_eq!(
        log.after(a, streams[2], 1).await.unwrap()[0].message,
        "{\"seq\":2}"
    );

    // Six events, three kept: the first page goes, the rest stay.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !seqs(a, streams[0]).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the oldest page was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for &s in &streams[1..] {
        assert_eq!(seqs(a, s).await, [1, 2]);
    }
    assert_eq!(seqs(b, streams[0]).await, [1, 1, 1]);
    lifecycle.shutdown().await;
}

fn window(since: i64, until: i64) -> Window {
    Window {
        since: ts(since),
        until: ts(until),
    }
}

/// A logged request of a given tool, duration (ms) and outcome.
fn call(
    session: Option<SessionId>,
    tool: Option<&str>,
    at: i64,
    ms: u64,
    ok: bool,
) -> RequestLogEntry {
    RequestLogEntry {
        session_id: session,
        client_key: session.is_none().then(|| "stateless-client".to_string()),
        method: if tool.is_some() { "tools/call" } else { "ping" }.into(),
        tool_name: tool.map(str::to_string),
        started_at: ts(at),
        duration: Duration::from_millis(ms),
        status: if ok {
            RequestStatus::Success
        } else {
            RequestStatus::Error
        },
        error_code: None,
        error_message: None,
        bytes_in: 0,
        bytes_out: 0,
        upstream: None,
    }
}

async fn request_aggregates_bucket_count_and_rank(ctx: Ctx) {
    let store = ctx.store().await;
    let a = session(T0);
    let b = session(T0);
    store
        .insert_sessions(&[a.clone(), b.clone()])
        .await
        .unwrap();
    let (a, b) = (Some(a.session_id), Some(b.session_id));
    let mut rows = vec![
        // Outside the window on both sides.
        call(a, Some("echo"), T0 - 1, 1_000, true),
        call(a, Some("echo"), T0 + 120_000, 1_000, true),
        call(b, None, T0 + 30_000, 7, true),
        call(None, Some("search"), T0 + 61_000, 40, false),
        call(None, Some("search"), T0 + 62_000, 20, true),
    ];
    // echo: 1..=100 ms, so nearest-rank p50/p95/p99 are 50/95/99.
    rows.extend((1..=100).map(|i| call(a, Some("echo"), T0 + i, i as u64, i % 10 != 0)));
    store.insert_requests(&rows).await.unwrap();
    let w = window(T0, T0 + 120_000);

    let buckets = store
        .request_buckets(w, Duration::from_secs(60))
        .await
        .unwrap();
    let echo_us: i64 = (1..=100).sum::<i64>() * 1000;
    assert_eq!(
        buckets,
        vec![
            RequestBucket {
                index: 0,
                requests: 101,
                errors: 10,
                duration_us: echo_us + 7_000,
            },
            RequestBucket {
                index: 1,
                requests: 2,
                errors: 1,
                duration_us: 60_000,
            },
        ]
    );

    assert_eq!(
        store.request_totals(w).await.unwrap(),
        RequestTotals {
            requests: 103,
            errors: 11,
            duration_us: echo_us + 67_000,
            unique_sessions: 2,
            unique_clients: 1,
        }
    );
    assert_eq!(
        store.request_totals(window(0, 1)).await.unwrap(),
        RequestTotals::default()
    );

    let latency = store.latency(w).await.unwrap();
    assert_eq!(
        latency,
        vec![
            Latency {
                tool: Some("echo".into()),
                count: 100,
                errors: 10,
                sum_us: echo_us,
                min_us: 1_000,
                max_us: 100_000,
                p50_us: 50_000,
                p95_us: 95_000,
                p99_us: 99_000,
            },
            Latency {
                tool: Some("search".into()),
                count: 2,
                errors: 1,
                sum_us: 60_000,
                min_us: 20_000,
                max_us: 40_000,
                p50_us: 20_000,
                p95_us: 40_000,
                p99_us: 40_000,
            },
            Latency {
                tool: None,
                count: 103,
                errors: 11,
                sum_us: echo_us + 67_000,
                min_us: 1_000,
                max_us: 100_000,
                // The 52nd of 103: 49 of echo's below it, and 7, 20, 40.
                p50_us: 49_000,
                p95_us: 95_000,
                p99_us: 99_000,
            },
        ]
    );
    assert!(store.latency(window(0, 1)).await.unwrap().is_empty());
}

async fn session_flow_counts_arrivals_ends_and_the_active_at_start(ctx: Ctx) {
    let store = ctx.store().await;
    let minute = 60_000;
    let sessions = [
        // Active at the start: still active, and ended inside the window.
        session(T0 - 5 * minute),
        ended(session(T0 - minute), T0 + 90_000, DisconnectReason::Timeout),
        // Over before the window: not counted anywhere.
        ended(session(T0 - 3 * minute), T0 - 1, DisconnectReason::Timeout),
        // Arrive in the window.
        session(T0 + 10),
        session(T0 + 20),
        ended(
            session(T0 + 61_000),
            T0 + 62_000,
            DisconnectReason::ClientDisconnect,
        ),
        // After it.
        session(T0 + 3 * minute),
    ];
    store.insert_sessions(&sessions).await.unwrap();
    let flow = store
        .session_flow(window(T0, T0 + 2 * minute), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        flow,
        SessionFlow {
            active_at_start: 2,
            connected: vec![(0, 2), (1, 1)],
            disconnected: vec![(1, 2)],
        }
    );
}

// ---------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------

fn task(owner: &str, created_at: i64, ttl_ms: u64) -> TaskRecord {
    TaskRecord {
        task_id: TaskId::generate(),
        owner: TaskOwner::Client(owner.into()),
        tool: "slow_compute".into(),
        status: TaskStatus::Working,
        status_message: None,
        created_at: ts(created_at),
        updated_at: ts(created_at),
        ttl: Duration::from_millis(ttl_ms),
        result: None,
        error: None,
    }
}

async fn stored_task(store: &dyn Store, id: TaskId) -> TaskRecord {
    store.get_task(id).await.unwrap().expect("stored task")
}

/// Every field comes back as written; a status change applies to an
/// unfinished task only, so whichever end comes first stays.
async fn tasks_round_trip_and_finished_tasks_never_change(ctx: Ctx) {
    let store = ctx.store().await;
    let mut a = task("anonymous/a/1", T0, 60_000);
    a.owner = TaskOwner::Principal("alice".into());
    // A client key is the client's own text: a NUL in it must not fail the batch.
    let b = task("anonymous/b\0x/1", T0 + 1, 60_000);
    store.insert_tasks(&[a.clone(), b.clone()]).await.unwrap();
    let back = stored_task(&*store, a.task_id).await;
    assert_eq!(back.owner, TaskOwner::Principal("alice".into()));
    assert_eq!((back.created_at, back.ttl), (a.created_at, a.ttl));
    let b_back = stored_task(&*store, b.task_id).await;
    assert_eq!(
        b_back.owner,
        TaskOwner::Client("anonymous/b\u{FFFD}x/1".into())
    );
    assert!(store.get_task(TaskId::generate()).await.unwrap().is_none());

    let result = json!({ "content": [{ "type": "text", "text": "done" }], "isError": false });
    let waiting = TaskUpdate::waiting(a.task_id, true, ts(T0 + 10));
    let done = TaskUpdate::finish(
        a.task_id,
        TaskOutcome::Completed(result.clone()),
        ts(T0 + 20),
    );
    let failed = TaskUpdate::finish(
        b.task_id,
        TaskOutcome::Failed(TaskError {
            code: -32603,
            message: "boom".into(),
        }),
        ts(T0 + 20),
    );
    assert_eq!(
        store.update_tasks(&[waiting, failed]).await.unwrap(),
        [true, true]
    );
    assert_eq!(
        stored_task(&*store, a.task_id).await.status,
        TaskStatus::InputRequired
    );
    assert_eq!(store.update_tasks(&[done]).await.unwrap(), [true]);
    let cancel = |id| TaskUpdate::finish(id, TaskOutcome::Cancelled, ts(T0 + 30));
    assert_eq!(
        store
            .update_tasks(&[
                cancel(a.task_id),
                cancel(b.task_id),
                cancel(TaskId::generate())
            ])
            .await
            .unwrap(),
        [false, false, false]
    );
    let a_done = stored_task(&*store, a.task_id).await;
    assert_eq!(
        (
            a_done.status,
            a_done.updated_at,
            a_done.result,
            a_done.error
        ),
        (TaskStatus::Completed, ts(T0 + 20), Some(result), None)
    );
    let b_failed = stored_task(&*store, b.task_id).await;
    assert_eq!(b_failed.status, TaskStatus::Failed);
    assert_eq!(
        b_failed.error,
        Some(TaskError {
            code: -32603,
            message: "boom".into()
        })
    );
    assert_eq!(b_failed.status_message.as_deref(), Some("boom"));
    assert!(store.insert_tasks(&[a]).await.is_err(), "duplicate id");
}

/// Listing is newest first, by status, paged and counted; a restart fails
/// what was unfinished; expired tasks are deleted in chunks, with the
/// status they had.
async fn tasks_list_count_fail_unfinished_and_prune(ctx: Ctx) {
    let store = ctx.store().await;
    let tasks: Vec<TaskRecord> = (0..6)
        .map(|i| task("c", T0 + i, 1_000 + i as u64))
        .collect();
    store.insert_tasks(&tasks).await.unwrap();
    let finish = |t: &TaskRecord| {
        TaskUpdate::finish(t.task_id, TaskOutcome::Completed(json!({})), ts(T0 + 100))
    };
    store
        .update_tasks(&[finish(&tasks[0]), finish(&tasks[1])])
        .await
        .unwrap();
    let page = store
        .list_tasks(&TaskQuery {
            status: Some(TaskStatus::Working),
            limit: 3,
            offset: 1,
        })
        .await
        .unwrap();
    assert_eq!(page.total, 4);
    let listed: Vec<TaskId> = page.tasks.iter().map(|t| t.task_id).collect();
    assert_eq!(
        listed,
        [tasks[4].task_id, tasks[3].task_id, tasks[2].task_id]
    );
    let all = store
        .list_tasks(&TaskQuery {
            status: None,
            limit: 100,
            offset: 0,
        })
        .await
        .unwrap();
    assert_eq!((all.total, all.tasks.len()), (6, 6));
    assert_eq!(
        store.task_counts().await.unwrap(),
        TaskCounts {
            working: 4,
            completed: 2,
            ..TaskCounts::default()
        }
    );

    assert_eq!(
        store
            .fail_unfinished_tasks(ts(T0 + 200), RESTARTED)
            .await
            .unwrap(),
        4
    );
    let failed = stored_task(&*store, tasks[5].task_id).await;
    assert_eq!(failed.status, TaskStatus::Failed);
    assert_eq!(failed.status_message.as_deref(), Some(RESTARTED));
    assert_eq!(failed.error.unwrap().message, RESTARTED);
    assert_eq!(
        stored_task(&*store, tasks[0].task_id).await.status,
        TaskStatus::Completed
    );

    // Tasks 0..=2 expire at T0 + 1000 + 2i, ...; at T0 + 1005 the first three.
    let pruned = store.prune_tasks(ts(T0 + 1005), 2).await.unwrap();
    assert_eq!(pruned.len(), 2);
    let pruned_more = store.prune_tasks(ts(T0 + 1005), 2).await.unwrap();
    let mut gone: Vec<PrunedTask> = pruned.into_iter().chain(pruned_more).collect();
    gone.sort_by_key(|p| tasks.iter().position(|t| t.task_id == p.task_id));
    assert_eq!(
        gone,
        [
            PrunedTask {
                task_id: tasks[0].task_id,
                status: TaskStatus::Completed
            },
            PrunedTask {
                task_id: tasks[1].task_id,
                status: TaskStatus::Completed
            },
            PrunedTask {
                task_id: tasks[2].task_id,
                status: TaskStatus::Failed
            },
        ]
    );
    assert!(store.get_task(tasks[0].task_id).await.unwrap().is_none());
    assert!(store.get_task(tasks[3].task_id).await.unwrap().is_some());
}

/// Batches past one multi-row statement insert and update every row.
async fn task_batches_larger_than_one_statement(ctx: Ctx) {
    let store = ctx.store().await;
    let tasks: Vec<TaskRecord> = (0..700).map(|i| task("c", T0 + i, 60_000)).collect();
    store.insert_tasks(&tasks).await.unwrap();
    let updates: Vec<TaskUpdate> = tasks
        .iter()
        .map(|t| TaskUpdate::finish(t.task_id, TaskOutcome::Cancelled, ts(T0 + 1000)))
        .collect();
    let applied = store.update_tasks(&updates).await.unwrap();
    assert_eq!(applied, vec![true; 700]);
    assert_eq!(store.task_counts().await.unwrap().cancelled, 700);
    assert!(store.insert_tasks(&[]).await.is_ok());
    assert!(store.update_tasks(&[]).await.unwrap().is_empty());
}

/// The writer's round: creations and status changes commit together, and
/// a round that fails leaves nothing of itself behind.
async fn a_task_round_is_one_transaction(ctx: Ctx) {
    let store = ctx.store().await;
    let a = task("c", T0, 60_000);
    store.insert_tasks(std::slice::from_ref(&a)).await.unwrap();
    let b = task("c", T0 + 1, 60_000);
    let done = |id| TaskUpdate::finish(id, TaskOutcome::Completed(json!({"ok": 1})), ts(T0 + 50));
    let applied = store
        .write_tasks(
            std::slice::from_ref(&b),
            &[done(a.task_id), done(TaskId::generate())],
        )
        .await
        .unwrap();
    assert_eq!(applied, [true, false]);
    let a_done = stored_task(&*store, a.task_id).await;
    assert_eq!(
        (a_done.status, a_done.result),
        (TaskStatus::Completed, Some(json!({"ok": 1})))
    );
    assert_eq!(
        stored_task(&*store, b.task_id).await.status,
        TaskStatus::Working
    );

    // A duplicate id fails the insert, and with it the round's updates.
    let c = task("c", T0 + 2, 60_000);
    store.insert_tasks(std::slice::from_ref(&c)).await.unwrap();
    let fresh = task("c", T0 + 3, 60_000);
    let failed = store
        .write_tasks(&[fresh.clone(), a.clone()], &[done(c.task_id)])
        .await;
    assert!(failed.is_err(), "duplicate id");
    assert!(store.get_task(fresh.task_id).await.unwrap().is_none());
    assert_eq!(
        stored_task(&*store, c.task_id).await.status,
        TaskStatus::Working
    );
    assert!(store.write_tasks(&[], &[]).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// Upstream mappings
// ---------------------------------------------------------------------------

fn upstream(name: &str) -> UpstreamName {
    UpstreamName::new(name).unwrap()
}

fn mapping(session_id: SessionId, name: &str, at: i64) -> UpstreamMapping {
    UpstreamMapping {
        session_id,
        upstream: upstream(name),
        upstream_session_id: Some(format!("upstream-session-of-{name}")),
        protocol_version: "2025-11-25".into(),
        initialize_params: json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {"sampling": {}, "elicitation": {"form": {}}},
            "clientInfo": {"name": "claude-code", "version": "2.1.0"},
        }),
        log_level: Some("debug".into()),
        subscriptions: vec!["file:///tmp/a.txt".into(), "memo://insights".into()],
        updated_at: ts(at),
    }
}

async fn upstream_mappings_round_trip_replace_delete_and_count(ctx: Ctx) {
    let store = ctx.store().await;
    let (a, b) = (SessionId::generate(), SessionId::generate());
    assert_eq!(
        store.upstream_mapping(a, &upstream("files")).await.unwrap(),
        None
    );
    assert!(store.upstream_mapping_counts().await.unwrap().is_empty());

    // Every field, set and unset, comes back as saved.
    let full = mapping(a, "files", T0);
    let bare = UpstreamMapping {
        upstream_session_id: None,
        log_level: None,
        subscriptions: Vec::new(),
        initialize_params: json!({}),
        ..mapping(a, "github", T0 + 1)
    };
    for m in [&full, &bare, &mapping(b, "files", T0 + 2)] {
        store.save_upstream_mapping(m).await.unwrap();
    }
    assert_eq!(
        store.upstream_mapping(a, &upstream("files")).await.unwrap(),
        Some(full.clone())
    );
    assert_eq!(
        store
            .upstream_mapping(a, &upstream("github"))
            .await
            .unwrap(),
        Some(bare.clone())
    );
    assert_eq!(
        store.upstream_mapping(a, &upstream("db")).await.unwrap(),
        None
    );

    // Saving again replaces the row whole: a healed upstream session.
    let healed = UpstreamMapping {
        upstream_session_id: Some("a-new-one".into()),
        protocol_version: "2025-06-18".into(),
        log_level: None,
        subscriptions: vec!["file:///tmp/b.txt".into()],
        updated_at: ts(T0 + 10),
        ..full.clone()
    };
    store.save_upstream_mapping(&healed).await.unwrap();
    assert_eq!(
        store.upstream_mapping(a, &upstream("files")).await.unwrap(),
        Some(healed)
    );
    assert_eq!(
        store.upstream_mapping_counts().await.unwrap(),
        vec![(upstream("files"), 2), (upstream("github"), 1)]
    );

    // NUL characters are replaced, as everywhere else.
    let nul = UpstreamMapping {
        upstream_session_id: Some("id\0x".into()),
        initialize_params: json!({"clientInfo": {"name": "a\0b"}}),
        subscriptions: vec!["memo://\0".into()],
        ..mapping(b, "github", T0 + 3)
    };
    store.save_upstream_mapping(&nul).await.unwrap();
    let stored = store
        .upstream_mapping(b, &upstream("github"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.upstream_session_id.as_deref(), Some("id\u{FFFD}x"));
    assert_eq!(
        stored.initialize_params,
        json!({"clientInfo": {"name": "a\u{FFFD}b"}})
    );
    assert_eq!(stored.subscriptions, vec!["memo://\u{FFFD}".to_string()]);

    // A session's end takes all of its mappings and no one else's.
    assert_eq!(store.delete_upstream_mappings(a).await.unwrap(), 2);
    assert_eq!(store.delete_upstream_mappings(a).await.unwrap(), 0);
    assert_eq!(
        store.upstream_mapping(a, &upstream("files")).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .upstream_mapping(a, &upstream("github"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.upstream_mapping(b, &upstream("files")).await.unwrap(),
        Some(mapping(b, "files", T0 + 2))
    );
    assert_eq!(
        store.upstream_mapping_counts().await.unwrap(),
        vec![(upstream("files"), 1), (upstream("github"), 1)]
    );
}

/// What one gateway process saved, the next one reads: the mapping is how
/// a client goes on with its session after a restart.
async fn upstream_mappings_survive_a_new_store(ctx: Ctx) {
    let id = SessionId::generate();
    let m = mapping(id, "everything", T0);
    let first = ctx.store().await;
    first.save_upstream_mapping(&m).await.unwrap();
    drop(first);
    let second = ctx.store().await;
    assert_eq!(
        second
            .upstream_mapping(id, &upstream("everything"))
            .await
            .unwrap(),
        Some(m)
    );

    // Rows no gateway could have written are errors, not panics.
    let other = SessionId::generate();
    ctx.raw(&format!(
        "INSERT INTO upstream_mappings (session_id, upstream, protocol_version, \
         subscriptions, updated_at) VALUES ('{other}', 'files', '2025-11-25', '{{}}', 0)"
    ))
    .await;
    assert_corrupt(
        second.upstream_mapping(other, &upstream("files")).await,
        "subscriptions that are not a list",
    );
    ctx.raw(&format!(
        "INSERT INTO upstream_mappings (session_id, upstream, protocol_version, updated_at) \
         VALUES ('{id}', 'not a name', '2025-11-25', 0)"
    ))
    .await;
    assert_corrupt(
        second.upstream_mapping_counts().await,
        "an invalid upstream name",
    );
}

/// A session its client or an admin ended, or whose row is deleted, takes
/// its mappings with it; a timed-out one keeps them, for its reconnect
/// token may revive it.
async fn upstream_mappings_go_with_a_session_that_cannot_come_back(ctx: Ctx) {
    let store = ctx.store().await;
    let sessions: Vec<SessionRecord> = (0..4).map(|_| session(T0)).collect();
    store.insert_sessions(&sessions).await.unwrap();
    for s in &sessions {
        for name in ["files", "search"] {
            store
                .save_upstream_mapping(&mapping(s.session_id, name, T0))
                .await
                .unwrap();
        }
    }
    let [deleted, terminated, timed_out, kept] = [0, 1, 2, 3].map(|i| &sessions[i]);
    let ends = [
        end_of(deleted, T0 + 10, DisconnectReason::ClientDisconnect),
        end_of(terminated, T0 + 10, DisconnectReason::AdminTerminated),
        end_of(timed_out, T0 + 10, DisconnectReason::Timeout),
    ];
    assert_eq!(store.end_sessions(&ends).await.unwrap(), 3);
    let mapped = |id: SessionId| {
        let store = store.clone();
        async move {
            store
                .upstream_mapping(id, &upstream("files"))
                .await
                .unwrap()
                .is_some()
        }
    };
    assert!(!mapped(deleted.session_id).await, "ended by its client");
    assert!(!mapped(terminated.session_id).await, "ended by an admin");
    assert!(
        mapped(timed_out.session_id).await,
        "a timed-out session may come back"
    );
    assert!(mapped(kept.session_id).await);
    assert_eq!(
        store.upstream_mapping_counts().await.unwrap(),
        vec![(upstream("files"), 2), (upstream("search"), 2)]
    );

    ctx.raw(&format!(
        "DELETE FROM sessions WHERE session_id = '{}'",
        kept.session_id
    ))
    .await;
    assert!(!mapped(kept.session_id).await, "a deleted session's row");
    assert!(mapped(timed_out.session_id).await);
}
