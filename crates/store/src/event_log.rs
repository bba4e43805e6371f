//! The event log on either database: [`EventLogStore`] for every
//! [`SqlStore`]. Reads and pruning by age are written once; appending and
//! dropping pages by key come from its [`Dialect`].

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};

use sessiongate_core::clock::Timestamp;
use sessiongate_core::ids::SessionId;
use sessiongate_core::store::{EventLogStore, StoreResult};
use sessiongate_core::stream::{EventPage, PageId, PageKey};

use crate::dialect::{Dialect, RowsAffected, SqlStore};
use crate::retention;
use crate::rows::{self, db_err, EventPageRow, EVENT_PAGE_COLUMNS};

#[async_trait]
impl<D> EventLogStore for SqlStore<D>
where
    D: Dialect,
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    for<'q> <D::DB as Database>::Arguments<'q>: IntoArguments<'q, D::DB>,
    <D::DB as Database>::QueryResult: RowsAffected,
    i64: for<'q> Encode<'q, D::DB> + Type<D::DB>,
    String: for<'q> Encode<'q, D::DB> + Type<D::DB>,
    for<'r> EventPageRow: FromRow<'r, <D::DB as Database>::Row>,
{
    async fn append_event_pages(&self, pages: &[EventPage]) -> StoreResult<()> {
        if pages.is_empty() {
            return Ok(());
        }
        self.db.append_event_pages(pages).await
    }

    async fn event_pages(&self, session: SessionId, from: PageId) -> StoreResult<Vec<EventPage>> {
        let rows: Vec<EventPageRow> = sqlx::query_as(&format!(
            "SELECT {EVENT_PAGE_COLUMNS} FROM session_event_pages \
             WHERE session_id = $1 AND page_id >= $2 ORDER BY page_id"
        ))
        .bind(session.to_string())
        .bind(rows::to_i64(from.0))
        .fetch_all(self.db.reader())
        .await
        .map_err(db_err)?;
        rows::into_pages(rows)
    }

    async fn prune_event_pages(&self, before: Timestamp) -> StoreResult<u64> {
        retention::prune_before(self.db.writer(), retention::EVENT_PAGES_BEFORE, before).await
    }

    async fn drop_event_pages(&self, pages: &[PageKey]) -> StoreResult<u64> {
        if pages.is_empty() {
            return Ok(0);
        }
        self.db.drop_event_pages(pages).await
    }
}
