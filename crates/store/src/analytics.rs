//! Analytics on either database: [`AnalyticsStore`] for every [`SqlStore`],
//! all of it shared: every timestamp is an integer of milliseconds and
//! every aggregate is cast to BIGINT, so one SQL text runs on SQLite and on
//! PostgreSQL. Percentiles are nearest-rank over a window function, so they
//! are computed in the database too. Reads go to the reader pool.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};

use sessiongate_core::clock::Timestamp;
use sessiongate_core::store::{
    AnalyticsStore, ClientRequests, Latency, RequestBucket, RequestTotals, SessionFlow,
    StoreResult, Window,
};

use crate::dialect::{Dialect, SqlStore};
use crate::rows::{db_err, unsigned};

const REQUEST_BUCKETS: &str = "\
    SELECT CAST((started_at - $1) / $3 AS BIGINT) AS idx, \
      CAST(COUNT(*) AS BIGINT) AS requests, \
      CAST(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS BIGINT) AS errors, \
      CAST(SUM(duration_us) AS BIGINT) AS duration_us \
    FROM requests WHERE started_at >= $1 AND started_at < $2 \
    GROUP BY 1 ORDER BY 1";

const REQUEST_TOTALS: &str = "\
    SELECT CAST(COUNT(*) AS BIGINT) AS requests, \
      CAST(COALESCE(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), 0) AS BIGINT) AS errors, \
      CAST(COALESCE(SUM(duration_us), 0) AS BIGINT) AS duration_us, \
      CAST(COUNT(DISTINCT session_id) AS BIGINT) AS unique_sessions, \
      CAST(COUNT(DISTINCT client_key) AS BIGINT) AS unique_clients \
    FROM requests WHERE started_at >= $1 AND started_at < $2";

const CLIENT_REQUESTS: &str = "\
    SELECT client_key, CAST(COUNT(*) AS BIGINT) AS requests, \
      CAST(MIN(started_at) AS BIGINT) AS first_seen, \
      CAST(MAX(started_at) AS BIGINT) AS last_seen \
    FROM requests WHERE started_at >= $1 AND started_at < $2 AND client_key IS NOT NULL \
    GROUP BY client_key";

/// Per tool (tools/call rows) and then over every request; the 'k' column
/// orders the two parts.
const LATENCY: &str = "\
    WITH per_tool AS ( \
      SELECT tool_name AS tool, duration_us, status, \
        ROW_NUMBER() OVER (PARTITION BY tool_name ORDER BY duration_us) AS rn, \
        COUNT(*) OVER (PARTITION BY tool_name) AS n \
      FROM requests \
      WHERE started_at >= $1 AND started_at < $2 AND tool_name IS NOT NULL), \
    overall AS ( \
      SELECT CAST(NULL AS TEXT) AS tool, duration_us, status, \
        ROW_NUMBER() OVER (ORDER BY duration_us) AS rn, \
        COUNT(*) OVER () AS n \
      FROM requests WHERE started_at >= $1 AND started_at < $2), \
    tagged AS ( \
      SELECT 0 AS k, * FROM per_tool UNION ALL SELECT 1 AS k, * FROM overall) \
    SELECT tool, \
      CAST(COUNT(*) AS BIGINT) AS count, \
      CAST(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS BIGINT) AS errors, \
      CAST(SUM(duration_us) AS BIGINT) AS sum_us, \
      CAST(MIN(duration_us) AS BIGINT) AS min_us, \
      CAST(MAX(duration_us) AS BIGINT) AS max_us, \
      CAST(MAX(CASE WHEN rn = (n * 50 + 99) / 100 THEN duration_us END) AS BIGINT) AS p50_us, \
      CAST(MAX(CASE WHEN rn = (n * 95 + 99) / 100 THEN duration_us END) AS BIGINT) AS p95_us, \
      CAST(MAX(CASE WHEN rn = (n * 99 + 99) / 100 THEN duration_us END) AS BIGINT) AS p99_us \
    FROM tagged GROUP BY k, tool ORDER BY k, count DESC, tool";

/// 'c': connected per bucket; 'd': ended per bucket; 'a' (twice): active at
/// the window's start, split so each half uses an index.
const SESSION_FLOW: &str = "\
    SELECT 'c' AS kind, CAST((connected_at - $1) / $3 AS BIGINT) AS idx, \
      CAST(COUNT(*) AS BIGINT) AS n \
    FROM sessions WHERE connected_at >= $1 AND connected_at < $2 GROUP BY 2 \
    UNION ALL \
    SELECT 'd', CAST((disconnected_at - $1) / $3 AS BIGINT), CAST(COUNT(*) AS BIGINT) \
    FROM sessions WHERE status = 'disconnected' \
      AND disconnected_at >= $1 AND disconnected_at < $2 GROUP BY 2 \
    UNION ALL \
    SELECT 'a', CAST(0 AS BIGINT), CAST(COUNT(*) AS BIGINT) \
    FROM sessions WHERE status = 'active' AND connected_at < $1 \
    UNION ALL \
    SELECT 'a', CAST(0 AS BIGINT), CAST(COUNT(*) AS BIGINT) \
    FROM sessions WHERE status = 'disconnected' \
      AND disconnected_at >= $1 AND connected_at < $1";

#[derive(FromRow)]
pub struct BucketRow {
    idx: i64,
    requests: i64,
    errors: i64,
    duration_us: i64,
}

#[derive(FromRow)]
pub struct TotalsRow {
    requests: i64,
    errors: i64,
    duration_us: i64,
    unique_sessions: i64,
    unique_clients: i64,
}

#[derive(FromRow)]
pub struct ClientRow {
    client_key: String,
    requests: i64,
    first_seen: i64,
    last_seen: i64,
}

#[derive(FromRow)]
pub struct LatencyRow {
    tool: Option<String>,
    count: i64,
    errors: i64,
    sum_us: i64,
    min_us: i64,
    max_us: i64,
    p50_us: Option<i64>,
    p95_us: Option<i64>,
    p99_us: Option<i64>,
}

#[derive(FromRow)]
pub struct FlowRow {
    kind: String,
    idx: i64,
    n: i64,
}

fn millis(d: Duration) -> i64 {
    (d.as_millis() as i64).max(1)
}

#[async_trait]
impl<D> AnalyticsStore for SqlStore<D>
where
    D: Dialect,
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    for<'q> <D::DB as Database>::Arguments<'q>: IntoArguments<'q, D::DB>,
    i64: for<'q> Encode<'q, D::DB> + Type<D::DB>,
    for<'r> BucketRow: FromRow<'r, <D::DB as Database>::Row>,
    for<'r> TotalsRow: FromRow<'r, <D::DB as Database>::Row>,
    for<'r> ClientRow: FromRow<'r, <D::DB as Database>::Row>,
    for<'r> LatencyRow: FromRow<'r, <D::DB as Database>::Row>,
    for<'r> FlowRow: FromRow<'r, <D::DB as Database>::Row>,
{
    async fn request_buckets(
        &self,
        window: Window,
        bucket: Duration,
    ) -> StoreResult<Vec<RequestBucket>> {
        let rows: Vec<BucketRow> = sqlx::query_as(REQUEST_BUCKETS)
            .bind(window.since.as_millis())
            .bind(window.until.as_millis())
            .bind(millis(bucket))
            .fetch_all(self.db.reader())
            .await
            .map_err(db_err)?;
        rows.into_iter()
            .map(|r| {
                Ok(RequestBucket {
                    index: unsigned("bucket index", r.idx)?,
                    requests: unsigned("bucket requests", r.requests)?,
                    errors: unsigned("bucket errors", r.errors)?,
                    duration_us: r.duration_us,
                })
            })
            .collect()
    }

    async fn request_totals(&self, window: Window) -> StoreResult<RequestTotals> {
        let r: TotalsRow = sqlx::query_as(REQUEST_TOTALS)
            .bind(window.since.as_millis())
            .bind(window.until.as_millis())
            .fetch_one(self.db.reader())
            .await
            .map_err(db_err)?;
        Ok(RequestTotals {
            requests: unsigned("request count", r.requests)?,
            errors: unsigned("error count", r.errors)?,
            duration_us: r.duration_us,
            unique_sessions: unsigned("session count", r.unique_sessions)?,
            unique_clients: unsigned("client count", r.unique_clients)?,
        })
    }

    async fn client_requests(&self, window: Window) -> StoreResult<Vec<ClientRequests>> {
        let rows: Vec<ClientRow> = sqlx::query_as(CLIENT_REQUESTS)
            .bind(window.since.as_millis())
            .bind(window.until.as_millis())
            .fetch_all(self.db.reader())
            .await
            .map_err(db_err)?;
        rows.into_iter()
            .map(|r| {
                Ok(ClientRequests {
                    client_key: r.client_key,
                    requests: unsigned("client request count", r.requests)?,
                    first_seen: Timestamp::from_millis(r.first_seen),
                    last_seen: Timestamp::from_millis(r.last_seen),
                })
            })
            .collect()
    }

    async fn latency(&self, window: Window) -> StoreResult<Vec<Latency>> {
        let rows: Vec<LatencyRow> = sqlx::query_as(LATENCY)
            .bind(window.since.as_millis())
            .bind(window.until.as_millis())
            .fetch_all(self.db.reader())
            .await
            .map_err(db_err)?;
        rows.into_iter()
            .map(|r| {
                Ok(Latency {
                    tool: r.tool,
                    count: unsigned("call count", r.count)?,
                    errors: unsigned("error count", r.errors)?,
                    sum_us: r.sum_us,
                    min_us: r.min_us,
                    max_us: r.max_us,
                    p50_us: r.p50_us.unwrap_or_default(),
                    p95_us: r.p95_us.unwrap_or_default(),
                    p99_us: r.p99_us.unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn session_flow(&self, window: Window, bucket: Duration) -> StoreResult<SessionFlow> {
        let rows: Vec<FlowRow> = sqlx::query_as(SESSION_FLOW)
            .bind(window.since.as_millis())
            .bind(window.until.as_millis())
            .bind(millis(bucket))
            .fetch_all(self.db.reader())
            .await
            .map_err(db_err)?;
        let mut flow = SessionFlow::default();
        for r in rows {
            let n = unsigned("session count", r.n)?;
            let idx = unsigned("bucket index", r.idx)?;
            match r.kind.as_str() {
                "a" => flow.active_at_start += n,
                "c" => flow.connected.push((idx, n)),
                _ => flow.disconnected.push((idx, n)),
            }
        }
        // UNION ALL keeps no order; the report walks buckets in order.
        flow.connected.sort_unstable();
        flow.disconnected.sort_unstable();
        Ok(flow)
    }
}
