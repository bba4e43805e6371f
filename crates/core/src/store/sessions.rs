//! The sessions port: session rows, written in batches by the lifecycle and
//! read by the registry's rebuild, the API and the health figures; with the
//! queries and summaries it answers.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

use super::error::StoreResult;
use crate::clock::Timestamp;
use crate::ids::SessionId;
use crate::session::{ActivityUpdate, SessionEnd, SessionRecord, SessionStatus};

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
    pub disconnect_reasons: BTreeMap<String, u64>,
    pub avg_duration_seconds: f64,
    pub max_duration_seconds: f64,
    pub min_duration_seconds: f64,
}

/// Durable session rows.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
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
}
