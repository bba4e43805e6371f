//! Whether the session store is working, as every call to it found.
//!
//! [`Monitored`] wraps the store the server uses, every port of it, so no
//! write path can fail without being counted
//! (`sessiongate_store_errors_total`, by operation) and reflected in
//! [`StoreHealth`]: the store is failing from a failed call until a later
//! call of the same kind (read or write) succeeds. Writes and reads are told apart because a full disk fails
//! writes while reads go on working. The health endpoint and the
//! `sessiongate_store_up` gauge report it; the errors themselves go to the
//! log only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::clock::{SharedClock, Timestamp};
use crate::ids::{SessionId, TaskId};
use crate::request_log::RequestLogEntry;
use crate::session::{ActivityUpdate, SessionEnd, SessionRecord, SessionStatus};
use crate::store::{
    AnalyticsStore, ClientRequests, ConnectionBucket, DisconnectStats, EventLogStore, Latency,
    PrunedTask, RequestBucket, RequestLogStore, RequestTotals, SessionFlow, SessionPage,
    SessionQuery, SessionStore, StatusCounts, Store, StoreResult, TaskCounts, TaskPage, TaskQuery,
    TaskStore, TokenStore, UpstreamMappingStore, Window,
};
use crate::stream::{EventPage, PageId, PageKey};
use crate::task::{TaskRecord, TaskUpdate};
use crate::token::{ReconnectState, Redemption, TokenGrant};
use crate::upstream::{UpstreamMapping, UpstreamName};

/// What a client is told when the store fails it: nothing of the error,
/// which may name the database, its host or its files; that goes to the log.
pub const UNAVAILABLE: &str = "the session store is unavailable, retry later";

/// `Retry-After` on a 503 for a failing store, in seconds: the writers try
/// again within a quarter of a second.
pub const RETRY_AFTER_SECS: u64 = 1;

/// The kind of a store call, each tracked on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Write,
    Read,
}

/// Since when and doing what the store has been failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Failure {
    since: Timestamp,
    operation: &'static str,
}

/// The store's health as the server's calls found it.
pub struct StoreHealth {
    backend: &'static str,
    clock: SharedClock,
    writes: Mutex<Option<Failure>>,
    reads: Mutex<Option<Failure>>,
    errors: AtomicU64,
}

/// What `/api/health` shows of the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreStatus {
    /// False while the store's last write or read failed.
    pub ok: bool,
    /// What failed, in words fit for a public endpoint (no error text).
    pub reason: Option<String>,
    /// When the current failure began.
    pub failing_since: Option<Timestamp>,
    /// Failed store calls since the server started.
    pub errors_total: u64,
}

impl StoreHealth {
    fn new(backend: &'static str, clock: SharedClock) -> Self {
        metrics::gauge!("sessiongate_store_up").set(1.0);
        StoreHealth {
            backend,
            clock,
            writes: Mutex::new(None),
            reads: Mutex::new(None),
            errors: AtomicU64::new(0),
        }
    }

    fn slot(&self, kind: Kind) -> &Mutex<Option<Failure>> {
        match kind {
            Kind::Write => &self.writes,
            Kind::Read => &self.reads,
        }
    }

    fn observe<T>(&self, kind: Kind, operation: &'static str, result: &StoreResult<T>) {
        let mut slot = self.slot(kind).lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(_) if slot.is_none() => return,
            Ok(_) => {
                let failure = slot.take().expect("checked above");
                tracing::warn!(
                    failed = failure.operation,
                    after = ?self.clock.now().since(failure.since),
                    "the session store works again"
                );
            }
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("sessiongate_store_errors_total", "operation" => operation)
                    .increment(1);
                tracing::debug!(error = %e, operation, "a store call failed");
                if slot.is_none() {
                    tracing::error!(error = %e, operation, "the session store is failing");
                    *slot = Some(Failure {
                        since: self.clock.now(),
                        operation,
                    });
                }
            }
        }
        drop(slot);
        metrics::gauge!("sessiongate_store_up").set(if self.is_ok() { 1.0 } else { 0.0 });
    }

    /// Which backend the store is (see [`Store::backend`]).
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Whether the last write and the last read both succeeded.
    pub fn is_ok(&self) -> bool {
        [Kind::Write, Kind::Read].into_iter().all(|kind| {
            self.slot(kind)
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_none()
        })
    }

    /// The store's state, for the health endpoint.
    pub fn status(&self) -> StoreStatus {
        let get = |kind| *self.slot(kind).lock().unwrap_or_else(|e| e.into_inner());
        let (write, read) = (get(Kind::Write), get(Kind::Read));
        let reason = match (write, read) {
            (Some(w), _) => Some(format!(
                "writes to the session store are failing ({})",
                w.operation
            )),
            (None, Some(r)) => Some(format!(
                "reads from the session store are failing ({})",
                r.operation
            )),
            (None, None) => None,
        };
        let since = [write, read].into_iter().flatten().map(|f| f.since).min();
        StoreStatus {
            ok: reason.is_none(),
            reason,
            failing_since: since,
            errors_total: self.errors.load(Ordering::Relaxed),
        }
    }

    /// How long the store has been failing, if it is.
    pub fn failing_for(&self) -> Option<Duration> {
        self.status()
            .failing_since
            .map(|since| self.clock.now().since(since))
    }
}

/// A store whose every call, through any of its ports, is observed by one
/// [`StoreHealth`]. The server wraps its store once, at assembly, and hands
/// each consumer the port it uses.
pub struct Monitored {
    inner: Arc<dyn Store>,
    health: Arc<StoreHealth>,
}

impl Monitored {
    pub fn new(inner: Arc<dyn Store>, clock: SharedClock) -> Self {
        Monitored {
            health: Arc::new(StoreHealth::new(inner.backend(), clock)),
            inner,
        }
    }

    pub fn health(&self) -> &Arc<StoreHealth> {
        &self.health
    }

    fn write<T>(&self, operation: &'static str, result: StoreResult<T>) -> StoreResult<T> {
        self.health.observe(Kind::Write, operation, &result);
        result
    }

    fn read<T>(&self, operation: &'static str, result: StoreResult<T>) -> StoreResult<T> {
        self.health.observe(Kind::Read, operation, &result);
        result
    }
}

impl Store for Monitored {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

#[async_trait]
impl SessionStore for Monitored {
    async fn insert_sessions(&self, sessions: &[SessionRecord]) -> StoreResult<()> {
        self.write("create", self.inner.insert_sessions(sessions).await)
    }

    async fn record_activity(&self, updates: &[ActivityUpdate]) -> StoreResult<()> {
        self.write("activity", self.inner.record_activity(updates).await)
    }

    async fn end_sessions(&self, ends: &[SessionEnd]) -> StoreResult<u64> {
        self.write("end", self.inner.end_sessions(ends).await)
    }

    async fn load_active(
        &self,
        after: Option<SessionId>,
        limit: u32,
    ) -> StoreResult<Vec<SessionRecord>> {
        self.read("load", self.inner.load_active(after, limit).await)
    }

    async fn get_session(&self, id: SessionId) -> StoreResult<Option<SessionRecord>> {
        self.read("read", self.inner.get_session(id).await)
    }

    async fn list_sessions(&self, query: &SessionQuery) -> StoreResult<SessionPage> {
        self.read("read", self.inner.list_sessions(query).await)
    }

    async fn latest_by_activity(
        &self,
        status: Option<SessionStatus>,
        limit: u32,
    ) -> StoreResult<Vec<SessionRecord>> {
        self.read("read", self.inner.latest_by_activity(status, limit).await)
    }

    async fn status_counts(&self) -> StoreResult<StatusCounts> {
        self.read("read", self.inner.status_counts().await)
    }

    async fn connection_buckets(&self, since: Timestamp) -> StoreResult<Vec<ConnectionBucket>> {
        self.read("read", self.inner.connection_buckets(since).await)
    }

    async fn disconnected_since(
        &self,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<(Vec<SessionRecord>, DisconnectStats)> {
        self.read("read", self.inner.disconnected_since(since, limit).await)
    }
}

#[async_trait]
impl RequestLogStore for Monitored {
    async fn insert_requests(&self, rows: &[RequestLogEntry]) -> StoreResult<()> {
        self.write("request_log", self.inner.insert_requests(rows).await)
    }

    async fn session_requests(
        &self,
        id: SessionId,
        limit: u32,
    ) -> StoreResult<Vec<RequestLogEntry>> {
        self.read("read", self.inner.session_requests(id, limit).await)
    }

    async fn prune_requests(&self, before: Timestamp) -> StoreResult<u64> {
        self.write("prune", self.inner.prune_requests(before).await)
    }
}

#[async_trait]
impl AnalyticsStore for Monitored {
    async fn request_buckets(
        &self,
        window: Window,
        bucket: Duration,
    ) -> StoreResult<Vec<RequestBucket>> {
        self.read(
            "analytics",
            self.inner.request_buckets(window, bucket).await,
        )
    }

    async fn request_totals(&self, window: Window) -> StoreResult<RequestTotals> {
        self.read("analytics", self.inner.request_totals(window).await)
    }

    async fn client_requests(&self, window: Window) -> StoreResult<Vec<ClientRequests>> {
        self.read("analytics", self.inner.client_requests(window).await)
    }

    async fn latency(&self, window: Window) -> StoreResult<Vec<Latency>> {
        self.read("analytics", self.inner.latency(window).await)
    }

    async fn session_flow(&self, window: Window, bucket: Duration) -> StoreResult<SessionFlow> {
        self.read("analytics", self.inner.session_flow(window, bucket).await)
    }
}

#[async_trait]
impl TokenStore for Monitored {
    async fn set_reconnect_token(&self, id: SessionId, grant: TokenGrant) -> StoreResult<bool> {
        self.write("token", self.inner.set_reconnect_token(id, grant).await)
    }

    async fn reconnect_state(&self, id: SessionId) -> StoreResult<Option<ReconnectState>> {
        self.read("read", self.inner.reconnect_state(id).await)
    }

    async fn redeem_reconnect_token(&self, r: &Redemption) -> StoreResult<Option<u64>> {
        self.write("token", self.inner.redeem_reconnect_token(r).await)
    }
}

#[async_trait]
impl EventLogStore for Monitored {
    async fn append_event_pages(&self, pages: &[EventPage]) -> StoreResult<()> {
        self.write("event_log", self.inner.append_event_pages(pages).await)
    }

    async fn event_pages(&self, session: SessionId, from: PageId) -> StoreResult<Vec<EventPage>> {
        self.read("read", self.inner.event_pages(session, from).await)
    }

    async fn prune_event_pages(&self, before: Timestamp) -> StoreResult<u64> {
        self.write("prune", self.inner.prune_event_pages(before).await)
    }

    async fn drop_event_pages(&self, pages: &[PageKey]) -> StoreResult<u64> {
        self.write("prune", self.inner.drop_event_pages(pages).await)
    }
}

#[async_trait]
impl TaskStore for Monitored {
    async fn write_tasks(
        &self,
        inserts: &[TaskRecord],
        updates: &[TaskUpdate],
    ) -> StoreResult<Vec<bool>> {
        self.write("task", self.inner.write_tasks(inserts, updates).await)
    }

    async fn get_task(&self, id: TaskId) -> StoreResult<Option<TaskRecord>> {
        self.read("read", self.inner.get_task(id).await)
    }

    async fn list_tasks(&self, query: &TaskQuery) -> StoreResult<TaskPage> {
        self.read("read", self.inner.list_tasks(query).await)
    }

    async fn task_counts(&self) -> StoreResult<TaskCounts> {
        self.read("read", self.inner.task_counts().await)
    }

    async fn fail_unfinished_tasks(&self, at: Timestamp, reason: &str) -> StoreResult<u64> {
        self.write("task", self.inner.fail_unfinished_tasks(at, reason).await)
    }

    async fn prune_tasks(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<PrunedTask>> {
        self.write("prune", self.inner.prune_tasks(now, limit).await)
    }
}

#[async_trait]
impl UpstreamMappingStore for Monitored {
    async fn save_upstream_mapping(&self, mapping: &UpstreamMapping) -> StoreResult<()> {
        self.write("upstream", self.inner.save_upstream_mapping(mapping).await)
    }

    async fn upstream_mapping(
        &self,
        session_id: SessionId,
        upstream: &UpstreamName,
    ) -> StoreResult<Option<UpstreamMapping>> {
        self.read(
            "read",
            self.inner.upstream_mapping(session_id, upstream).await,
        )
    }

    async fn delete_upstream_mappings(&self, session_id: SessionId) -> StoreResult<u64> {
        self.write(
            "upstream",
            self.inner.delete_upstream_mappings(session_id).await,
        )
    }

    async fn upstream_mapping_counts(&self) -> StoreResult<Vec<(UpstreamName, u64)>> {
        self.read("read", self.inner.upstream_mapping_counts().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::StoreError;

    fn health() -> (StoreHealth, ManualClock) {
        let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
        (StoreHealth::new("sqlite", Arc::new(clock.clone())), clock)
    }

    fn failed() -> StoreResult<()> {
        Err(StoreError::Database(
            "disk I/O error in /secret/path".into(),
        ))
    }

    #[test]
    fn a_failed_write_degrades_until_a_write_succeeds() {
        let (h, clock) = health();
        assert!(h.status().ok);
        h.observe(Kind::Write, "create", &failed());
        clock.advance(Duration::from_secs(3));
        h.observe(Kind::Write, "end", &failed());
        // A read working does not mean writes do (a full disk).
        h.observe(Kind::Read, "read", &Ok(()));
        let s = h.status();
        assert!(!s.ok);
        assert_eq!(s.errors_total, 2);
        assert_eq!(s.failing_since, Some(Timestamp::from_millis(1_000_000)));
        let reason = s.reason.unwrap();
        assert!(reason.contains("create"), "{reason}");
        assert!(!reason.contains("secret"), "no error text: {reason}");
        assert_eq!(h.failing_for(), Some(Duration::from_secs(3)));

        h.observe(Kind::Write, "request_log", &Ok(()));
        assert_eq!(
            h.status(),
            StoreStatus {
                ok: true,
                reason: None,
                failing_since: None,
                errors_total: 2
            }
        );
    }

    #[test]
    fn failing_reads_degrade_too() {
        let (h, _) = health();
        h.observe(Kind::Read, "read", &failed());
        assert!(!h.is_ok());
        assert!(h.status().reason.unwrap().starts_with("reads"));
        h.observe(Kind::Read, "read", &Ok(()));
        assert!(h.is_ok());
    }
}
