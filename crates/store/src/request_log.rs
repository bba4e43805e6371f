//! The request log on either database: [`RequestLogStore`] for every
//! [`SqlStore`]. Reads and pruning are written once; the batch insert comes
//! from its [`Dialect`].

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};

use sessiongate_core::clock::Timestamp;
use sessiongate_core::ids::SessionId;
use sessiongate_core::request_log::RequestLogEntry;
use sessiongate_core::store::{RequestLogStore, StoreResult};

use crate::dialect::{Dialect, RowsAffected, SqlStore};
use crate::retention;
use crate::rows::{self, db_err, RequestRow, RequestValues, REQUEST_COLUMNS};

#[async_trait]
impl<D> RequestLogStore for SqlStore<D>
where
    D: Dialect,
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    for<'q> <D::DB as Database>::Arguments<'q>: IntoArguments<'q, D::DB>,
    <D::DB as Database>::QueryResult: RowsAffected,
    i64: for<'q> Encode<'q, D::DB> + Type<D::DB>,
    String: for<'q> Encode<'q, D::DB> + Type<D::DB>,
    for<'r> RequestRow: FromRow<'r, <D::DB as Database>::Row>,
{
    async fn insert_requests(&self, entries: &[RequestLogEntry]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let values: Vec<RequestValues> = entries.iter().map(RequestValues::new).collect();
        self.db.insert_requests(&values).await
    }

    async fn session_requests(
        &self,
        id: SessionId,
        limit: u32,
    ) -> StoreResult<Vec<RequestLogEntry>> {
        let rows: Vec<RequestRow> = sqlx::query_as(&format!(
            "SELECT {REQUEST_COLUMNS} FROM requests WHERE session_id = $1 \
             ORDER BY started_at DESC, id DESC LIMIT $2"
        ))
        .bind(id.to_string())
        .bind(i64::from(limit))
        .fetch_all(self.db.reader())
        .await
        .map_err(db_err)?;
        rows::into_entries(rows)
    }

    async fn prune_requests(&self, before: Timestamp) -> StoreResult<u64> {
        retention::prune_before(self.db.writer(), retention::REQUESTS_BEFORE, before).await
    }
}
