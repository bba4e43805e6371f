//! The request-log port: one row per request, appended in batches behind
//! the request path, read per session and pruned by age.

use async_trait::async_trait;

use super::error::StoreResult;
use crate::clock::Timestamp;
use crate::ids::SessionId;
use crate::request_log::RequestLogEntry;

/// The durable request log.
#[async_trait]
pub trait RequestLogStore: Send + Sync + 'static {
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
}
