//! Event-log retention, shared by both backends: one SQL text each (with
//! `$n` placeholders, which SQLite also reads) and one pruning plan.
//!
//! Every event the log appends is deleted again once it leaves the window,
//! so deleting must cost little and must never hold the writer for long. A
//! whole-table statement did both wrong: ranking every row with a window
//! function and deleting through a `created_at` index took 7 s of SQLite's
//! single writer for 600,000 rows, and the streams waiting to append stalled
//! meanwhile. Pruning now goes session by session: one read finds the
//! sessions with something to drop, and each gets one `DELETE` over its own
//! primary-key range, so writers of other data get their turn in between.

use sqlx::{Database, Decode, Encode, Executor, IntoArguments, Type};

use sessiongate_core::store::StoreResult;
use sessiongate_core::Timestamp;

use crate::rows::db_err;

/// Every session with events: how many, and the oldest one's time.
const SESSIONS: &str = "SELECT session_id, CAST(COUNT(*) AS BIGINT), MIN(created_at) \
     FROM session_events GROUP BY session_id";

/// The position of a session's newest event beyond those kept (binds:
/// session, how many are kept).
const FIRST_DROPPED: &str = "SELECT created_at, stream_id, seq FROM session_events \
     WHERE session_id = $1 ORDER BY created_at DESC, stream_id DESC, seq DESC LIMIT 1 OFFSET $2";

/// Deletes a session's events up to and including a position (binds:
/// session, created_at, stream_id, seq).
const DROP_UP_TO: &str = "DELETE FROM session_events \
     WHERE session_id = $1 AND (created_at, stream_id, seq) <= ($2, $3, $4)";

/// Deletes a session's events written before a time (binds: session, time).
const DROP_BEFORE: &str = "DELETE FROM session_events WHERE session_id = $1 AND created_at < $2";

/// What a backend's `DELETE` reports.
pub(crate) trait RowsAffected {
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

/// Deletes events written before `before`, and every session's events
/// beyond its newest `keep` (newest by time, then stream, then position);
/// returns how many. `read` finds what to delete, `write` deletes it.
pub(crate) async fn prune_events<'c, DB, R, W>(
    read: R,
    write: W,
    before: Timestamp,
    keep: u32,
) -> StoreResult<u64>
where
    DB: Database,
    R: Executor<'c, Database = DB> + Copy,
    W: Executor<'c, Database = DB> + Copy,
    DB::QueryResult: RowsAffected,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    for<'r> (String, i64, i64): sqlx::FromRow<'r, DB::Row>,
    for<'r> (i64, String, i64): sqlx::FromRow<'r, DB::Row>,
{
    let before = before.as_millis();
    let sessions: Vec<(String, i64, i64)> = sqlx::query_as(SESSIONS)
        .fetch_all(read)
        .await
        .map_err(db_err)?;
    let mut pruned = 0;
    for (session, count, oldest) in sessions {
        // Over its limit: delete up to the newest event not kept, which
        // takes everything older than the window along; unless that event
        // is older than the window itself, when deleting by time does both.
        let first_dropped: Option<(i64, String, i64)> = if count > i64::from(keep) {
            sqlx::query_as(FIRST_DROPPED)
                .bind(session.clone())
                .bind(i64::from(keep))
                .fetch_optional(read)
                .await
                .map_err(db_err)?
        } else {
            None
        };
        let done = match first_dropped {
            Some((at, stream, seq)) if at >= before => sqlx::query(DROP_UP_TO)
                .bind(session)
                .bind(at)
                .bind(stream)
                .bind(seq)
                .execute(write),
            _ if oldest < before => sqlx::query(DROP_BEFORE)
                .bind(session)
                .bind(before)
                .execute(write),
            _ => continue,
        };
        pruned += done.await.map_err(db_err)?.rows();
    }
    Ok(pruned)
}
