//! The event-log port: server-to-client stream events, stored in pages
//! per session so a client can resume a stream after a restart.

use async_trait::async_trait;

use super::error::StoreResult;
use crate::clock::Timestamp;
use crate::ids::SessionId;
use crate::stream::{EventPage, PageId, PageKey};

/// The durable event log.
#[async_trait]
pub trait EventLogStore: Send + Sync + 'static {
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
