//! The store port: everything the domain needs from durable storage.
//! `sessiongate-store` implements it on SQLite and PostgreSQL; one contract
//! test suite holds both to the same behaviour.

use async_trait::async_trait;
use serde::Serialize;

use crate::analytics::{
    ClientRequests, Latency, RequestBucket, RequestTotals, SessionFlow, Window,
};
use crate::clock::Timestamp;
use crate::ids::SessionId;
use crate::request_log::RequestLogEntry;
use crate::session::{ActivityUpdate, SessionEnd, SessionRecord, SessionStatus};
use crate::stream::{EventPage, PageId, PageKey};
use crate::token::{ReconnectState, Redemption, TokenGrant};

/// A failure of the storage backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migration(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Which sessions to list, newest first by `connected_at`.
#[derive(Debug, Clone, Default)]
pub struct SessionQuery {
    pub status: Option<SessionStatus>,
    pub client_type: Option<String>,
    pub limit: u32,
    pub offset: u64,
}

/// One page of sessions and the number matching the query.
#[derive(Debug, Clone, Default)]
pub struct SessionPage {
    pub sessions: Vec<SessionRecord>,
    pub total: u64,
}

/// Sessions by status, over the whole store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    pub active: u64,
    pub disconnected: u64,
}

/// Sessions that connected within one second, for seeding the sliding 24 h
/// window at startup. Sums are in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionBucket {
    pub second: i64,
    pub connected: u64,
    pub ended: u64,
    pub ended_duration_ms: i64,
    pub active_connected_at_ms: i64,
}

/// Aggregates over sessions that ended in a period, computed by the store.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DisconnectStats {
    pub total_disconnected: u64,
    pub disconnect_reasons: std::collections::BTreeMap<String, u64>,
    pub avg_duration_seconds: f64,
    pub max_duration_seconds: f64,
    pub min_duration_seconds: f64,
}

#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Which backend this is, for logs and the health endpoint.
    fn backend(&self) -> &'static str;

    /// Inserts new sessions in one transaction.
    async fn insert_sessions(&self, sessions: &[SessionRecord]) -> StoreResult<()>;

    /// Records activity of sessions that are still active; ended rows keep
    /// their final figures.
    async fn record_activity(&self, updates: &[ActivityUpdate]) -> StoreResult<()>;

    /// Ends sessions that are still active; returns how many rows changed.
    async fn end_sessions(&self, ends: &[SessionEnd]) -> StoreResult<u64>;

    /// Up to `limit` active sessions with ids above `after`, by id: the
    /// registry is rebuilt page by page at startup, so a large store is
    /// never held in memory as full records all at once.
    async fn load_active(
        &self,
        after: Option<SessionId>,
        limit: u32,
    ) -> StoreResult<Vec<SessionRecord>>;

    async fn get_session(&self, id: SessionId) -> StoreResult<Option<SessionRecord>>;

    async fn list_sessions(&self, query: &SessionQuery) -> StoreResult<SessionPage>;

    /// The `limit` sessions with the latest `last_activity`, optionally of one status.
    async fn latest_by_activity(
        &self,
        status: Option<SessionStatus>,
        limit: u32,
    ) -> StoreResult<Vec<SessionRecord>>;

    async fn status_counts(&self) -> StoreResult<StatusCounts>;

    /// Per-second aggregates of sessions connected at or after `since`.
    async fn connection_buckets(&self, since: Timestamp) -> StoreResult<Vec<ConnectionBucket>>;

    /// Sessions that ended at or after `since`, newest first, and statistics
    /// over all of them.
    async fn disconnected_since(
        &self,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<(Vec<SessionRecord>, DisconnectStats)>;

    /// Appends request-log rows in one transaction.
    async fn insert_requests(&self, rows: &[RequestLogEntry]) -> StoreResult<()>;

    /// A session's latest requests, newest first.
    async fn session_requests(
        &self,
        id: SessionId,
        limit: u32,
    ) -> StoreResult<Vec<RequestLogEntry>>;

    /// Deletes request-log rows started before `before`; returns how many.
    async fn prune_requests(&self, before: Timestamp) -> StoreResult<u64>;

    /// Logged requests started in `window`, per `bucket`-long slice of it;
    /// only non-empty buckets, by index.
    async fn request_buckets(
        &self,
        window: Window,
        bucket: std::time::Duration,
    ) -> StoreResult<Vec<RequestBucket>>;

    /// Logged requests started in `window`, in all.
    async fn request_totals(&self, window: Window) -> StoreResult<RequestTotals>;

    /// Logged stateless requests started in `window`, per client key.
    async fn client_requests(&self, window: Window) -> StoreResult<Vec<ClientRequests>>;

    /// Durations of the requests started in `window`: one entry per tool
    /// (most called first), then one over every request (`tool: None`)
    /// unless there were none.
    async fn latency(&self, window: Window) -> StoreResult<Vec<Latency>>;

    /// Sessions connecting and ending in each `bucket` of `window`.
    async fn session_flow(
        &self,
        window: Window,
        bucket: std::time::Duration,
    ) -> StoreResult<SessionFlow>;

    /// Replaces a session's reconnect token; false if there is no such session.
    async fn set_reconnect_token(&self, id: SessionId, grant: TokenGrant) -> StoreResult<bool>;

    /// A session's reconnect fields, if the session exists.
    async fn reconnect_state(&self, id: SessionId) -> StoreResult<Option<ReconnectState>>;

    /// Applies one use of a token if it is still the session's current one:
    /// installs the next token, remembers the used one, counts the
    /// reconnect and, for a disconnected session, makes it active again.
    /// Returns the new reconnect count, or `None` if the token was no longer
    /// current (someone else used or replaced it first).
    async fn redeem_reconnect_token(&self, r: &Redemption) -> StoreResult<Option<u64>>;

    /// Appends pages of the event log in one transaction. A page already
    /// stored stays as it is (a retried batch).
    async fn append_event_pages(&self, pages: &[EventPage]) -> StoreResult<()>;

    /// A session's pages with ids from `from` on, oldest first.
    async fn event_pages(&self, session: SessionId, from: PageId) -> StoreResult<Vec<EventPage>>;

    /// Deletes the event log's pages written before `before`; returns how
    /// many.
    async fn prune_event_pages(&self, before: Timestamp) -> StoreResult<u64>;

    /// Deletes the named pages; returns how many there were.
    async fn drop_event_pages(&self, pages: &[PageKey]) -> StoreResult<u64>;
}
