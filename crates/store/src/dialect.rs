//! What tells the two databases apart, and the store written once over it.
//!
//! [`SqlStore`] implements every port of `sessiongate-core` on either
//! database. The SQL both accept is written once, in the module of its
//! concern (`sessions`, `request_log`, `analytics`, `tokens`, `event_log`,
//! `tasks`, `upstreams`):
//! `$n` placeholders, which SQLite reads too, integer millisecond
//! timestamps, aggregates cast to BIGINT. A [`Dialect`] supplies the rest:
//! its pools, the few statements the databases spell differently, and the
//! batch writes, whose shapes differ (SQLite: multi-row `VALUES` in chunks
//! on its single writer; PostgreSQL: one `UNNEST` statement per batch).

use async_trait::async_trait;
use sqlx::{Database, Pool};

use sessiongate_core::store::{
    AnalyticsStore, EventLogStore, RequestLogStore, SessionStore, Store, StoreResult, TaskStore,
    TokenStore, UpstreamMappingStore,
};
use sessiongate_core::stream::{EventPage, PageKey};

use crate::rows::{
    ActivityValues, EndValues, RequestValues, SessionValues, TaskUpdateValues, TaskValues,
};

/// One database's pools and what it spells its own way. The batch methods
/// get at least one row, merged and sorted by session id where that
/// matters (see `rows::merge_activity`).
#[async_trait]
pub trait Dialect: Send + Sync + 'static {
    type DB: Database;

    /// The backend's name, as [`Store::backend`] reports it.
    const NAME: &'static str;

    /// The sessions with the latest activity of either status: the newest
    /// of each status's index range, merged, instead of a full scan.
    /// Binds: how many.
    fn latest_of_both_statuses() -> String;

    /// Per-second aggregates of the sessions connected since a time, as
    /// `rows::BucketRow`. Binds: the time.
    const CONNECTION_BUCKETS: &'static str;

    /// One use of a reconnect token: compare-and-swap on the current hash,
    /// returning the new reconnect count. Binds: next hash, next expiry,
    /// expected hash, revive time (or NULL), session id. A session its
    /// client or an admin ended is never revived.
    const REDEEM_TOKEN: &'static str;

    /// Where reads go.
    fn reader(&self) -> &Pool<Self::DB>;

    /// Where writes go.
    fn writer(&self) -> &Pool<Self::DB>;

    /// Inserts new sessions in one transaction.
    async fn insert_sessions(&self, rows: &[SessionValues<'_>]) -> StoreResult<()>;

    /// Records the activity of sessions still active.
    async fn record_activity(&self, rows: &[ActivityValues]) -> StoreResult<()>;

    /// Ends sessions still active; returns how many rows changed.
    async fn end_sessions(&self, rows: &[EndValues]) -> StoreResult<u64>;

    /// Appends request-log rows in one transaction.
    async fn insert_requests(&self, rows: &[RequestValues<'_>]) -> StoreResult<()>;

    /// Appends event-log pages in one transaction, keeping pages already
    /// stored as they are.
    async fn append_event_pages(&self, pages: &[EventPage]) -> StoreResult<()>;

    /// Deletes the named pages; returns how many there were.
    async fn drop_event_pages(&self, pages: &[PageKey]) -> StoreResult<u64>;

    /// Inserts new tasks and applies status changes of unfinished tasks
    /// stored before (one per task at most), in one transaction; returns,
    /// for each change, whether it applied.
    async fn write_tasks(
        &self,
        inserts: &[TaskValues<'_>],
        updates: &[TaskUpdateValues<'_>],
    ) -> StoreResult<Vec<bool>>;
}

/// Every store port on the database of one [`Dialect`].
pub struct SqlStore<D> {
    pub(crate) db: D,
}

impl<D> Store for SqlStore<D>
where
    D: Dialect,
    Self: SessionStore
        + RequestLogStore
        + AnalyticsStore
        + TokenStore
        + EventLogStore
        + TaskStore
        + UpstreamMappingStore,
{
    fn backend(&self) -> &'static str {
        D::NAME
    }
}

/// What a backend's `UPDATE` or `DELETE` reports.
pub trait RowsAffected {
    fn rows(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}
