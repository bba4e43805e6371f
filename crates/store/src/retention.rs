//! Pruning by age, shared by both backends and both logs (requests and
//! events): one SQL text each (with `$n` placeholders, which SQLite also
//! reads) and one loop.
//!
//! Every row the logs append is deleted again once it leaves the window,
//! so deleting must cost little and must never hold the writer for long:
//! rows go oldest first, a bounded chunk per statement, so writes queued
//! behind get their turn in between. The event log's time index keeps its
//! oldest pages at the left edge of its B-tree. (A session's pages beyond
//! its newest N events are dropped by key instead, as the writer names
//! them: `EventLogStore::drop_event_pages`.)

use sqlx::{Database, Encode, Executor, IntoArguments, Type};

use sessiongate_core::store::StoreResult;
use sessiongate_core::Timestamp;

use crate::dialect::RowsAffected;
use crate::rows::db_err;

/// Rows deleted per statement.
const CHUNK: i64 = 10_000;

/// Deletes the oldest request-log rows written before a time (binds:
/// time, how many).
pub(crate) const REQUESTS_BEFORE: &str = "DELETE FROM requests WHERE id IN \
     (SELECT id FROM requests WHERE started_at < $1 LIMIT $2)";

/// Deletes the oldest event-log pages written before a time (binds: time,
/// how many).
pub(crate) const EVENT_PAGES_BEFORE: &str = "DELETE FROM session_event_pages \
     WHERE (session_id, page_id) IN \
     (SELECT session_id, page_id FROM session_event_pages \
      WHERE created_at < $1 ORDER BY created_at LIMIT $2)";

/// Runs `delete` (one of the statements above) until it deletes less than
/// a chunk; returns how many rows went.
pub(crate) async fn prune_before<'c, DB, W>(
    write: W,
    delete: &'static str,
    before: Timestamp,
) -> StoreResult<u64>
where
    DB: Database,
    W: Executor<'c, Database = DB> + Copy,
    DB::QueryResult: RowsAffected,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
{
    let mut pruned = 0;
    loop {
        let n = sqlx::query(delete)
            .bind(before.as_millis())
            .bind(CHUNK)
            .execute(write)
            .await
            .map_err(db_err)?
            .rows();
        pruned += n;
        if n < CHUNK as u64 {
            return Ok(pruned);
        }
    }
}
