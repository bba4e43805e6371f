//! Session rows on either database: [`SessionStore`] for every
//! [`SqlStore`]. The reads are written once; the batch writes and the two
//! statements the databases spell differently come from its [`Dialect`].

use async_trait::async_trait;
use sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use sessiongate_core::clock::Timestamp;
use sessiongate_core::ids::SessionId;
use sessiongate_core::session::{ActivityUpdate, SessionEnd, SessionRecord, SessionStatus};
use sessiongate_core::store::{
    ConnectionBucket, DisconnectStats, SessionPage, SessionQuery, SessionStore, StatusCounts,
    StoreResult,
};

use crate::dialect::{Dialect, SqlStore};
use crate::rows::{
    self, db_err, BucketRow, ReasonRow, SessionRow, SessionValues, StatusCountRow, SESSION_COLUMNS,
};

/// Aggregates over the ended sessions of each disconnect reason since a
/// time. Binds: the time.
const DISCONNECT_REASONS: &str = "\
    SELECT disconnect_reason AS reason, COUNT(*) AS sessions, \
      COUNT(total_duration_ms) AS timed, CAST(SUM(total_duration_ms) AS BIGINT) AS sum_ms, \
      MAX(total_duration_ms) AS max_ms, MIN(total_duration_ms) AS min_ms \
    FROM sessions WHERE status = 'disconnected' AND disconnected_at >= $1 \
    GROUP BY disconnect_reason";

const STATUS_COUNTS: &str = "SELECT status, COUNT(*) AS sessions FROM sessions GROUP BY status";

#[async_trait]
impl<D> SessionStore for SqlStore<D>
where
    D: Dialect,
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    for<'q> <D::DB as Database>::Arguments<'q>: IntoArguments<'q, D::DB>,
    i64: for<'q> Encode<'q, D::DB> + for<'r> Decode<'r, D::DB> + Type<D::DB>,
    String: for<'q> Encode<'q, D::DB> + Type<D::DB>,
    for<'q> &'q str: Encode<'q, D::DB> + Type<D::DB>,
    for<'r> (i64,): FromRow<'r, <D::DB as Database>::Row>,
    for<'r> SessionRow: FromRow<'r, <D::DB as Database>::Row>,
    for<'r> StatusCountRow: FromRow<'r, <D::DB as Database>::Row>,
    for<'r> BucketRow: FromRow<'r, <D::DB as Database>::Row>,
    for<'r> ReasonRow: FromRow<'r, <D::DB as Database>::Row>,
{
    async fn insert_sessions(&self, sessions: &[SessionRecord]) -> StoreResult<()> {
        if sessions.is_empty() {
            return Ok(());
        }
        let values: Vec<SessionValues> = sessions.iter().map(SessionValues::new).collect();
        self.db.insert_sessions(&values).await
    }

    async fn record_activity(&self, updates: &[ActivityUpdate]) -> StoreResult<()> {
        let updates = rows::merge_activity(updates);
        if updates.is_empty() {
            return Ok(());
        }
        self.db.record_activity(&updates).await
    }

    async fn end_sessions(&self, ends: &[SessionEnd]) -> StoreResult<u64> {
        let ends = rows::merge_ends(ends);
        if ends.is_empty() {
            return Ok(0);
        }
        self.db.end_sessions(&ends).await
    }

    async fn load_active(
        &self,
        after: Option<SessionId>,
        limit: u32,
    ) -> StoreResult<Vec<SessionRecord>> {
        // Ids are 32 lowercase hex digits, so "" sorts before every one.
        let rows: Vec<SessionRow> = sqlx::query_as(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions \
             WHERE status = 'active' AND session_id > $1 ORDER BY session_id LIMIT $2"
        ))
        .bind(after.map(|id| id.to_string()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(self.db.reader())
        .await
        .map_err(db_err)?;
        rows::into_records(rows)
    }

    async fn get_session(&self, id: SessionId) -> StoreResult<Option<SessionRecord>> {
        let row: Option<SessionRow> = sqlx::query_as(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(self.db.reader())
        .await
        .map_err(db_err)?;
        row.map(SessionRow::into_record).transpose()
    }

    async fn list_sessions(&self, query: &SessionQuery) -> StoreResult<SessionPage> {
        let (filters, values) = rows::session_filters(query);
        let sql = format!("SELECT COUNT(*) FROM sessions{filters}");
        let mut count = sqlx::query_scalar(&sql);
        for value in &values {
            count = count.bind(*value);
        }
        let total: i64 = count.fetch_one(self.db.reader()).await.map_err(db_err)?;

        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions{filters} \
             ORDER BY connected_at DESC, session_id DESC LIMIT ${} OFFSET ${}",
            values.len() + 1,
            values.len() + 2
        );
        let mut select = sqlx::query_as(&sql);
        for value in &values {
            select = select.bind(*value);
        }
        let page: Vec<SessionRow> = select
            .bind(i64::from(query.limit))
            .bind(rows::to_i64(query.offset))
            .fetch_all(self.db.reader())
            .await
            .map_err(db_err)?;
        Ok(SessionPage {
            sessions: rows::into_records(page)?,
            total: u64::try_from(total).unwrap_or(0),
        })
    }

    async fn latest_by_activity(
        &self,
        status: Option<SessionStatus>,
        limit: u32,
    ) -> StoreResult<Vec<SessionRecord>> {
        let limit = i64::from(limit);
        let rows: Vec<SessionRow> = match status {
            Some(status) => {
                sqlx::query_as(&format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE status = $1 \
                     ORDER BY last_activity DESC, session_id DESC LIMIT $2"
                ))
                .bind(status.as_str())
                .bind(limit)
                .fetch_all(self.db.reader())
                .await
            }
            None => {
                sqlx::query_as(&D::latest_of_both_statuses())
                    .bind(limit)
                    .fetch_all(self.db.reader())
                    .await
            }
        }
        .map_err(db_err)?;
        rows::into_records(rows)
    }

    async fn status_counts(&self) -> StoreResult<StatusCounts> {
        let rows: Vec<StatusCountRow> = sqlx::query_as(STATUS_COUNTS)
            .fetch_all(self.db.reader())
            .await
            .map_err(db_err)?;
        rows::status_counts(rows)
    }

    async fn connection_buckets(&self, since: Timestamp) -> StoreResult<Vec<ConnectionBucket>> {
        let rows: Vec<BucketRow> = sqlx::query_as(D::CONNECTION_BUCKETS)
            .bind(since.as_millis())
            .fetch_all(self.db.reader())
            .await
            .map_err(db_err)?;
        rows::into_buckets(rows)
    }

    async fn disconnected_since(
        &self,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<(Vec<SessionRecord>, DisconnectStats)> {
        let rows: Vec<SessionRow> = sqlx::query_as(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions \
             WHERE status = 'disconnected' AND disconnected_at >= $1 \
             ORDER BY disconnected_at DESC, session_id DESC LIMIT $2"
        ))
        .bind(since.as_millis())
        .bind(i64::from(limit))
        .fetch_all(self.db.reader())
        .await
        .map_err(db_err)?;
        let reasons: Vec<ReasonRow> = sqlx::query_as(DISCONNECT_REASONS)
            .bind(since.as_millis())
            .fetch_all(self.db.reader())
            .await
            .map_err(db_err)?;
        Ok((rows::into_records(rows)?, rows::disconnect_stats(reasons)?))
    }
}
