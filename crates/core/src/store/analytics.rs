//! The analytics port: aggregates over the request log and the sessions in
//! a window of time. The store aggregates and never hands back raw rows,
//! so a report costs the same with a million logged requests as with ten.

use std::time::Duration;

use async_trait::async_trait;

use super::error::StoreResult;
use crate::clock::Timestamp;

/// A half-open span of time, `[since, until)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub since: Timestamp,
    pub until: Timestamp,
}

impl Window {
    /// The `count` whole buckets of `bucket` length whose last one holds `now`.
    pub fn aligned(now: Timestamp, bucket: Duration, count: u32) -> Window {
        let ms = bucket_ms(bucket);
        let until = Timestamp::from_millis((now.as_millis().div_euclid(ms) + 1) * ms);
        Window {
            since: Timestamp::from_millis(until.as_millis() - ms * i64::from(count)),
            until,
        }
    }

    /// The window of the same length just before this one.
    pub fn previous(self) -> Window {
        Window {
            since: Timestamp::from_millis(2 * self.since.as_millis() - self.until.as_millis()),
            until: self.since,
        }
    }

    /// How many whole buckets of `bucket` length the window holds.
    pub fn buckets(self, bucket: Duration) -> u64 {
        ((self.until.as_millis() - self.since.as_millis()) / bucket_ms(bucket)).max(0) as u64
    }

    /// Where the bucket numbered `index` from the window's start begins.
    pub fn start_of(self, bucket: Duration, index: u64) -> Timestamp {
        Timestamp::from_millis(self.since.as_millis() + bucket_ms(bucket) * index as i64)
    }
}

fn bucket_ms(bucket: Duration) -> i64 {
    (bucket.as_millis() as i64).max(1)
}

/// Logged requests that started in one bucket of a window; `index` counts
/// buckets from the window's start. The store returns only non-empty buckets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestBucket {
    pub index: u64,
    pub requests: u64,
    pub errors: u64,
    pub duration_us: i64,
}

/// Logged requests over a whole window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestTotals {
    pub requests: u64,
    pub errors: u64,
    pub duration_us: i64,
    pub unique_sessions: u64,
    pub unique_clients: u64,
}

/// One stateless client's logged requests over a window, by its client key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequests {
    pub client_key: String,
    pub requests: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

/// Durations of one tool's calls in a window (`tool: None`: of every
/// request). Percentiles are nearest-rank, computed by the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Latency {
    pub tool: Option<String>,
    pub count: u64,
    pub errors: u64,
    pub sum_us: i64,
    pub min_us: i64,
    pub max_us: i64,
    pub p50_us: i64,
    pub p95_us: i64,
    pub p99_us: i64,
}

/// Sessions connecting and ending in each bucket of a window (only
/// non-empty buckets, by index), and how many were active at its start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFlow {
    pub active_at_start: u64,
    pub connected: Vec<(u64, u64)>,
    pub disconnected: Vec<(u64, u64)>,
}

/// Aggregates over the request log and the sessions.
#[async_trait]
pub trait AnalyticsStore: Send + Sync + 'static {
    /// Logged requests started in `window`, per `bucket`-long slice of it;
    /// only non-empty buckets, by index.
    async fn request_buckets(
        &self,
        window: Window,
        bucket: Duration,
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
    async fn session_flow(&self, window: Window, bucket: Duration) -> StoreResult<SessionFlow>;
}
