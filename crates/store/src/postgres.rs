//! The PostgreSQL backend, for deployments that share one database between
//! gateway instances or want a managed server.
//!
//! It owns the PostgreSQL pool and its SQL. Batches go in as one statement
//! each: rows are passed as one array per column and expanded with `UNNEST`,
//! so a statement has a fixed text (prepared once per connection) and no
//! bind-parameter limit. Batch updates lock their rows in session-id order
//! first, so concurrent writers (this instance's or another's) cannot
//! deadlock each other.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use sqlx::{Postgres, QueryBuilder};

use sessiongate_core::analytics::{
    ClientRequests, Latency, RequestBucket, RequestTotals, SessionFlow, Window,
};
use sessiongate_core::clock::Timestamp;
use sessiongate_core::ids::SessionId;
use sessiongate_core::request_log::RequestLogEntry;
use sessiongate_core::session::{ActivityUpdate, SessionEnd, SessionRecord, SessionStatus};
use sessiongate_core::store::{
    ConnectionBucket, DisconnectStats, SessionPage, SessionQuery, SessionStore, StatusCounts,
    StoreError, StoreResult,
};
use sessiongate_core::stream::{EventPage, PageId, PageKey};
use sessiongate_core::token::{ReconnectState, Redemption, TokenGrant};

use crate::rows::{
    self, db_err, migrate_err, BucketRow, EventPageRow, ReasonRow, ReconnectRow, RequestRow,
    RequestValues, SessionRow, SessionValues, StatusCountRow, EVENT_PAGE_COLUMNS,
    RECONNECT_COLUMNS, REQUEST_COLUMNS, SESSION_COLUMNS,
};
use crate::{analytics, retention, Migrated};

pub(crate) const BACKEND: &str = "postgres";

/// One column of a batch, as an array to `UNNEST`.
macro_rules! column {
    ($values:expr, |$v:ident| $field:expr) => {
        $values.iter().map(|$v| $field).collect::<Vec<_>>()
    };
}

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

const MAX_CONNECTIONS: u32 = 10;
/// How long a call waits for a connection: while the database is
/// unreachable, a request fails (503) after this long instead of hanging.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

fn connect_err(at: &str, e: sqlx::Error) -> StoreError {
    let cause = match &e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused; is PostgreSQL running there, and are the host and port \
             in the URL right?"
                .to_string()
        }
        sqlx::Error::Io(io) => io.to_string(),
        e => e.to_string(),
    };
    StoreError::Database(format!("cannot connect to PostgreSQL at {at}: {cause}"))
}

/// Migrations recorded as applied; none before the first migration made
/// sqlx's table.
async fn applied_migrations(pool: &PgPool) -> usize {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .map_or(0, |n| usize::try_from(n).unwrap_or(0))
}

/// A [`SessionStore`] on a PostgreSQL database.
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects by URL and applies pending migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Ok(Self::connect_migrated(url).await?.0)
    }

    /// [`PostgresStore::connect`], also telling which migrations it applied.
    pub(crate) async fn connect_migrated(url: &str) -> StoreResult<(Self, Migrated)> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| StoreError::Database(format!("invalid PostgreSQL URL: {e}")))?;
        let at = format!("{}:{}", options.get_host(), options.get_port());
        // The pool retries a failed connection until its acquire timeout and
        // then reports only "pool timed out": one connection first names the
        // real cause, at once.
        match tokio::time::timeout(ACQUIRE_TIMEOUT, options.connect()).await {
            Ok(Ok(probe)) => {
                let _ = probe.close().await;
            }
            Ok(Err(e)) => return Err(connect_err(&at, e)),
            Err(_) => {
                return Err(StoreError::Database(format!(
                    "cannot connect to PostgreSQL at {at}: no answer within {} s; \
                     check the host and port in the URL",
                    ACQUIRE_TIMEOUT.as_secs()
                )))
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| connect_err(&at, e))?;
        let before = applied_migrations(&pool).await;
        MIGRATOR.run(&pool).await.map_err(migrate_err)?;
        let migrated = Migrated {
            before,
            applied: applied_migrations(&pool).await - before,
        };
        Ok((PostgresStore { pool }, migrated))
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn insert_sessions(&self, sessions: &[SessionRecord]) -> StoreResult<()> {
        if sessions.is_empty() {
            return Ok(());
        }
        let values: Vec<SessionValues> = sessions.iter().map(SessionValues::new).collect();
        // One statement: atomic without an explicit transaction.
        sqlx::query(&format!(
            "INSERT INTO sessions ({SESSION_COLUMNS}) \
             SELECT session_id, client_type, client_name, client_version, \
               client_capabilities::jsonb, protocol_version, principal, remote_addr, \
               user_agent, connected_at, last_activity, status, disconnected_at, \
               disconnect_reason, total_duration_ms, request_count, metadata::jsonb, \
               reconnect_count, reconnect_token_hash, reconnect_expires_at \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
               $6::text[], $7::text[], $8::text[], $9::text[], $10::int8[], $11::int8[], \
               $12::text[], $13::int8[], $14::text[], $15::int8[], $16::int8[], $17::text[], \
               $18::int8[], $19::text[], $20::int8[]) \
             AS t({SESSION_COLUMNS})"
        ))
        .bind(column!(values, |v| v.session_id.as_str()))
        .bind(column!(values, |v| &*v.client_type))
        .bind(column!(values, |v| v.client_name.as_deref()))
        .bind(column!(values, |v| v.client_version.as_deref()))
        .bind(column!(values, |v| v.client_capabilities.as_str()))
        .bind(column!(values, |v| &*v.protocol_version))
        .bind(column!(values, |v| v.principal.as_deref()))
        .bind(column!(values, |v| v.remote_addr.as_deref()))
        .bind(column!(values, |v| v.user_agent.as_deref()))
        .bind(column!(values, |v| v.connected_at))
        .bind(column!(values, |v| v.last_activity))
        .bind(column!(values, |v| v.status))
        .bind(column!(values, |v| v.disconnected_at))
        .bind(column!(values, |v| v.disconnect_reason))
        .bind(column!(values, |v| v.total_duration_ms))
        .bind(column!(values, |v| v.request_count))
        .bind(column!(values, |v| v.metadata.as_str()))
        .bind(column!(values, |v| v.reconnect_count))
        .bind(column!(values, |v| v.reconnect_token_hash.as_deref()))
        .bind(column!(values, |v| v.reconnect_expires_at))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn record_activity(&self, updates: &[ActivityUpdate]) -> StoreResult<()> {
        let updates = rows::merge_activity(updates);
        if updates.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = updates.iter().map(|u| u.session_id.to_string()).collect();
        let last: Vec<i64> = updates.iter().map(|u| u.last_activity).collect();
        let counts: Vec<i64> = updates.iter().map(|u| u.request_count).collect();
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        lock_active(&mut tx, &ids).await?;
        sqlx::query(
            "UPDATE sessions AS s SET \
               last_activity = GREATEST(s.last_activity, u.last_activity), \
               request_count = GREATEST(s.request_count, u.request_count) \
             FROM UNNEST($1::text[], $2::int8[], $3::int8[]) \
               AS u(session_id, last_activity, request_count) \
             WHERE s.session_id = u.session_id AND s.status = 'active'",
        )
        .bind(&ids)
        .bind(&last)
        .bind(&counts)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn end_sessions(&self, ends: &[SessionEnd]) -> StoreResult<u64> {
        let ends = rows::merge_ends(ends);
        if ends.is_empty() {
            return Ok(0);
        }
        let ids: Vec<String> = ends.iter().map(|e| e.session_id.to_string()).collect();
        let at: Vec<i64> = ends.iter().map(|e| e.at).collect();
        let reasons: Vec<&str> = ends.iter().map(|e| e.reason).collect();
        let durations: Vec<i64> = ends.iter().map(|e| e.total_duration_ms).collect();
        let last: Vec<i64> = ends.iter().map(|e| e.last_activity).collect();
        let counts: Vec<i64> = ends.iter().map(|e| e.request_count).collect();
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        lock_active(&mut tx, &ids).await?;
        let changed = sqlx::query(
            "UPDATE sessions AS s SET \
               status = 'disconnected', \
               disconnected_at = u.at, \
               disconnect_reason = u.reason, \
               total_duration_ms = u.total_duration_ms, \
               last_activity = GREATEST(s.last_activity, u.last_activity), \
               request_count = GREATEST(s.request_count, u.request_count) \
             FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::int8[], $5::int8[], \
               $6::int8[]) \
               AS u(session_id, at, reason, total_duration_ms, last_activity, request_count) \
             WHERE s.session_id = u.session_id AND s.status = 'active'",
        )
        .bind(&ids)
        .bind(&at)
        .bind(&reasons)
        .bind(&durations)
        .bind(&last)
        .bind(&counts)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        tx.commit().await.map_err(db_err)?;
        Ok(changed)
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
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows::into_records(rows)
    }

    async fn get_session(&self, id: SessionId) -> StoreResult<Option<SessionRecord>> {
        let row: Option<SessionRow> = sqlx::query_as(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(SessionRow::into_record).transpose()
    }

    async fn list_sessions(&self, query: &SessionQuery) -> StoreResult<SessionPage> {
        let mut count = QueryBuilder::<Postgres>::new("SELECT COUNT(*) FROM sessions");
        rows::push_session_filters(&mut count, query);
        let total: i64 = count
            .build_query_scalar()
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;

        let mut select =
            QueryBuilder::<Postgres>::new(format!("SELECT {SESSION_COLUMNS} FROM sessions"));
        rows::push_session_filters(&mut select, query);
        select
            .push(" ORDER BY connected_at DESC, session_id DESC LIMIT ")
            .push_bind(i64::from(query.limit))
            .push(" OFFSET ")
            .push_bind(rows::to_i64(query.offset));
        let page: Vec<SessionRow> = select
            .build_query_as()
            .fetch_all(&self.pool)
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
                .fetch_all(&self.pool)
                .await
            }
            // One index range per status, merged, instead of a full scan.
            None => {
                sqlx::query_as(&format!(
                    "(SELECT {SESSION_COLUMNS} FROM sessions WHERE status = 'active' \
                       ORDER BY last_activity DESC, session_id DESC LIMIT $1) \
                     UNION ALL \
                     (SELECT {SESSION_COLUMNS} FROM sessions WHERE status = 'disconnected' \
                       ORDER BY last_activity DESC, session_id DESC LIMIT $1) \
                     ORDER BY last_activity DESC, session_id DESC LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(db_err)?;
        rows::into_records(rows)
    }

    async fn status_counts(&self) -> StoreResult<StatusCounts> {
        let rows: Vec<StatusCountRow> =
            sqlx::query_as("SELECT status, COUNT(*) AS sessions FROM sessions GROUP BY status")
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
        rows::status_counts(rows)
    }

    async fn connection_buckets(&self, since: Timestamp) -> StoreResult<Vec<ConnectionBucket>> {
        let rows: Vec<BucketRow> = sqlx::query_as(
            "SELECT connected_at / 1000 AS second, \
               COUNT(*) AS connected, \
               COUNT(*) FILTER (WHERE status = 'disconnected') AS ended, \
               COALESCE(SUM(GREATEST(COALESCE(disconnected_at, connected_at) - connected_at, 0)) \
                 FILTER (WHERE status = 'disconnected'), 0)::BIGINT AS ended_duration_ms, \
               COALESCE(SUM(connected_at) FILTER (WHERE status = 'active'), 0)::BIGINT \
                 AS active_connected_at_ms \
             FROM sessions WHERE connected_at >= $1 \
             GROUP BY connected_at / 1000 ORDER BY second",
        )
        .bind(since.as_millis())
        .fetch_all(&self.pool)
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
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let reasons: Vec<ReasonRow> = sqlx::query_as(
            "SELECT disconnect_reason AS reason, COUNT(*) AS sessions, \
               COUNT(total_duration_ms) AS timed, SUM(total_duration_ms)::BIGINT AS sum_ms, \
               MAX(total_duration_ms) AS max_ms, MIN(total_duration_ms) AS min_ms \
             FROM sessions WHERE status = 'disconnected' AND disconnected_at >= $1 \
             GROUP BY disconnect_reason",
        )
        .bind(since.as_millis())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok((rows::into_records(rows)?, rows::disconnect_stats(reasons)?))
    }

    async fn insert_requests(&self, entries: &[RequestLogEntry]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let values: Vec<RequestValues> = entries.iter().map(RequestValues::new).collect();
        // One statement: atomic without an explicit transaction.
        sqlx::query(&format!(
            "INSERT INTO requests ({REQUEST_COLUMNS}) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
               $5::int8[], $6::int8[], $7::text[], $8::int8[], $9::text[], $10::int8[], \
               $11::int8[])"
        ))
        .bind(column!(values, |v| v.session_id.as_deref()))
        .bind(column!(values, |v| v.client_key.as_deref()))
        .bind(column!(values, |v| &*v.method))
        .bind(column!(values, |v| v.tool_name.as_deref()))
        .bind(column!(values, |v| v.started_at))
        .bind(column!(values, |v| v.duration_us))
        .bind(column!(values, |v| v.status))
        .bind(column!(values, |v| v.error_code))
        .bind(column!(values, |v| v.error_message.as_deref()))
        .bind(column!(values, |v| v.bytes_in))
        .bind(column!(values, |v| v.bytes_out))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
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
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows::into_entries(rows)
    }

    async fn prune_requests(&self, before: Timestamp) -> StoreResult<u64> {
        retention::prune_before(&self.pool, retention::REQUESTS_BEFORE, before).await
    }

    async fn request_buckets(
        &self,
        window: Window,
        bucket: Duration,
    ) -> StoreResult<Vec<RequestBucket>> {
        analytics::request_buckets(&self.pool, window, bucket).await
    }

    async fn request_totals(&self, window: Window) -> StoreResult<RequestTotals> {
        analytics::request_totals(&self.pool, window).await
    }

    async fn client_requests(&self, window: Window) -> StoreResult<Vec<ClientRequests>> {
        analytics::client_requests(&self.pool, window).await
    }

    async fn latency(&self, window: Window) -> StoreResult<Vec<Latency>> {
        analytics::latency(&self.pool, window).await
    }

    async fn session_flow(&self, window: Window, bucket: Duration) -> StoreResult<SessionFlow> {
        analytics::session_flow(&self.pool, window, bucket).await
    }

    async fn set_reconnect_token(&self, id: SessionId, grant: TokenGrant) -> StoreResult<bool> {
        let n = sqlx::query(
            "UPDATE sessions SET reconnect_token_hash = $1, reconnect_expires_at = $2 \
             WHERE session_id = $3",
        )
        .bind(grant.hash.to_hex())
        .bind(grant.expires_at.as_millis())
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected();
        Ok(n == 1)
    }

    async fn reconnect_state(&self, id: SessionId) -> StoreResult<Option<ReconnectState>> {
        let row: Option<ReconnectRow> = sqlx::query_as(&format!(
            "SELECT {RECONNECT_COLUMNS} FROM sessions WHERE session_id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(ReconnectRow::into_state).transpose()
    }

    async fn redeem_reconnect_token(&self, r: &Redemption) -> StoreResult<Option<u64>> {
        // Binds: next hash, next expiry, expected hash, revive time (or
        // NULL), session id. A session its client or an admin ended is never
        // revived.
        let count: Option<i64> = sqlx::query_scalar(
            "UPDATE sessions SET \
               reconnect_token_hash = $1, reconnect_expires_at = $2, reconnect_used_hash = $3, \
               reconnect_count = reconnect_count + 1, \
               status = CASE WHEN $4::int8 IS NULL THEN status ELSE 'active' END, \
               last_activity = CASE WHEN $4::int8 IS NULL THEN last_activity \
                 ELSE GREATEST(last_activity, $4::int8) END, \
               disconnected_at = CASE WHEN $4::int8 IS NULL THEN disconnected_at ELSE NULL END, \
               disconnect_reason = CASE WHEN $4::int8 IS NULL THEN disconnect_reason ELSE NULL END, \
               total_duration_ms = CASE WHEN $4::int8 IS NULL THEN total_duration_ms ELSE NULL END \
             WHERE session_id = $5 AND reconnect_token_hash = $3 \
               AND (disconnect_reason IS NULL \
                    OR disconnect_reason NOT IN ('client_disconnect', 'admin_terminated')) \
             RETURNING reconnect_count",
        )
        .bind(r.next.hash.to_hex())
        .bind(r.next.expires_at.as_millis())
        .bind(r.expected.to_hex())
        .bind(r.revive_at.map(Timestamp::as_millis))
        .bind(r.session_id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(count.map(|c| u64::try_from(c).unwrap_or(0)))
    }

    async fn append_event_pages(&self, pages: &[EventPage]) -> StoreResult<()> {
        if pages.is_empty() {
            return Ok(());
        }
        let sessions = column!(pages, |p| p.session_id.to_string());
        let ids = column!(pages, |p| rows::to_i64(p.id.0));
        let ats = column!(pages, |p| p.at.as_millis());
        let bodies = column!(pages, |p| p.body.as_slice());
        sqlx::query(&format!(
            "INSERT INTO session_event_pages ({EVENT_PAGE_COLUMNS}) \
             SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::bytea[]) \
             ON CONFLICT DO NOTHING"
        ))
        .bind(&sessions)
        .bind(&ids)
        .bind(&ats)
        .bind(&bodies)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn event_pages(&self, session: SessionId, from: PageId) -> StoreResult<Vec<EventPage>> {
        let rows: Vec<EventPageRow> = sqlx::query_as(&format!(
            "SELECT {EVENT_PAGE_COLUMNS} FROM session_event_pages \
             WHERE session_id = $1 AND page_id >= $2 ORDER BY page_id"
        ))
        .bind(session.to_string())
        .bind(rows::to_i64(from.0))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows::into_pages(rows)
    }

    async fn prune_event_pages(&self, before: Timestamp) -> StoreResult<u64> {
        retention::prune_before(&self.pool, retention::EVENT_PAGES_BEFORE, before).await
    }

    async fn drop_event_pages(&self, pages: &[PageKey]) -> StoreResult<u64> {
        if pages.is_empty() {
            return Ok(0);
        }
        let sessions = column!(pages, |p| p.session_id.to_string());
        let ids = column!(pages, |p| rows::to_i64(p.page.0));
        let done = sqlx::query(
            "DELETE FROM session_event_pages e \
             USING UNNEST($1::text[], $2::int8[]) AS d(session_id, page_id) \
             WHERE e.session_id = d.session_id AND e.page_id = d.page_id",
        )
        .bind(&sessions)
        .bind(&ids)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}

/// Locks the still-active rows of `ids` in id order, so that two batch
/// updates over overlapping sessions queue instead of deadlocking.
async fn lock_active(tx: &mut sqlx::PgConnection, ids: &[String]) -> StoreResult<()> {
    sqlx::query(
        "SELECT 1 FROM sessions WHERE session_id = ANY($1) AND status = 'active' \
         ORDER BY session_id FOR UPDATE",
    )
    .bind(ids)
    .execute(tx)
    .await
    .map_err(db_err)?;
    Ok(())
}
