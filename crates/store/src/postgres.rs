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
use sqlx::{ConnectOptions, Connection, Postgres};

use sessiongate_core::store::{StoreError, StoreResult};
use sessiongate_core::stream::{EventPage, PageKey};

use crate::dialect::{Dialect, SqlStore};
use crate::rows::{
    self, db_err, migrate_err, ActivityValues, EndValues, RequestValues, SessionValues,
    TaskUpdateValues, TaskValues, EVENT_PAGE_COLUMNS, REQUEST_COLUMNS, SESSION_COLUMNS,
    TASK_COLUMNS,
};
use crate::Migrated;

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

/// The store on a PostgreSQL database.
pub type PostgresStore = SqlStore<PostgresDb>;

/// A PostgreSQL database's pool, for reads and writes alike.
pub struct PostgresDb {
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
        Ok((
            SqlStore {
                db: PostgresDb { pool },
            },
            migrated,
        ))
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.db.pool.close().await;
    }
}

#[async_trait]
impl Dialect for PostgresDb {
    type DB = Postgres;

    const NAME: &'static str = BACKEND;

    fn latest_of_both_statuses() -> String {
        format!(
            "(SELECT {SESSION_COLUMNS} FROM sessions WHERE status = 'active' \
               ORDER BY last_activity DESC, session_id DESC LIMIT $1) \
             UNION ALL \
             (SELECT {SESSION_COLUMNS} FROM sessions WHERE status = 'disconnected' \
               ORDER BY last_activity DESC, session_id DESC LIMIT $1) \
             ORDER BY last_activity DESC, session_id DESC LIMIT $1"
        )
    }

    const CONNECTION_BUCKETS: &'static str = "SELECT connected_at / 1000 AS second, \
           COUNT(*) AS connected, \
           COUNT(*) FILTER (WHERE status = 'disconnected') AS ended, \
           COALESCE(SUM(GREATEST(COALESCE(disconnected_at, connected_at) - connected_at, 0)) \
             FILTER (WHERE status = 'disconnected'), 0)::BIGINT AS ended_duration_ms, \
           COALESCE(SUM(connected_at) FILTER (WHERE status = 'active'), 0)::BIGINT \
             AS active_connected_at_ms \
         FROM sessions WHERE connected_at >= $1 \
         GROUP BY connected_at / 1000 ORDER BY second";

    const REDEEM_TOKEN: &'static str = "UPDATE sessions SET \
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
         RETURNING reconnect_count";

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    async fn insert_sessions(&self, values: &[SessionValues<'_>]) -> StoreResult<()> {
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

    async fn record_activity(&self, updates: &[ActivityValues]) -> StoreResult<()> {
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

    async fn end_sessions(&self, ends: &[EndValues]) -> StoreResult<u64> {
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

    async fn insert_requests(&self, values: &[RequestValues<'_>]) -> StoreResult<()> {
        // One statement: atomic without an explicit transaction.
        sqlx::query(&format!(
            "INSERT INTO requests ({REQUEST_COLUMNS}) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
               $5::int8[], $6::int8[], $7::text[], $8::int8[], $9::text[], $10::int8[], \
               $11::int8[], $12::text[])"
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
        .bind(column!(values, |v| v.upstream))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn append_event_pages(&self, pages: &[EventPage]) -> StoreResult<()> {
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

    async fn drop_event_pages(&self, pages: &[PageKey]) -> StoreResult<u64> {
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

    async fn write_tasks(
        &self,
        inserts: &[TaskValues<'_>],
        updates: &[TaskUpdateValues<'_>],
    ) -> StoreResult<Vec<bool>> {
        // One statement, so one round trip and one commit: the insert and
        // the update are data-modifying CTEs over the same snapshot, so the
        // update does not see the rows the insert adds (the writer never
        // changes a task in the round that creates it). The rows the
        // update returns say which changes applied. "Not finished" is
        // written as NOT IN: `status IN (unfinished)` led the planner to
        // the status index, whose entries for rows since finished it then
        // visited one by one, every round, until a vacuum; this way each
        // task is found by its key.
        let applied: Vec<(String,)> = sqlx::query_as(&format!(
            "WITH created AS ( \
               INSERT INTO tasks ({TASK_COLUMNS}) \
               SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
                 $5::text[], $6::text[], $7::int8[], $8::int8[], $9::int8[], $10::int8[], \
                 $11::text[], $12::int8[], $13::text[])), \
             changed AS ( \
               UPDATE tasks AS t SET \
                 status = u.status, status_message = u.status_message, updated_at = u.at, \
                 result = u.result, error_code = u.error_code, \
                 error_message = u.error_message \
               FROM UNNEST($14::text[], $15::text[], $16::text[], $17::int8[], $18::text[], \
                 $19::int8[], $20::text[]) \
                 AS u(task_id, status, status_message, at, result, error_code, error_message) \
               WHERE t.task_id = u.task_id \
                 AND t.status NOT IN ('completed', 'failed', 'cancelled') \
               RETURNING t.task_id) \
             SELECT task_id FROM changed"
        ))
        .bind(column!(inserts, |v| v.task_id.as_str()))
        .bind(column!(inserts, |v| v.owner_kind))
        .bind(column!(inserts, |v| &*v.owner))
        .bind(column!(inserts, |v| &*v.tool))
        .bind(column!(inserts, |v| v.status))
        .bind(column!(inserts, |v| v.status_message.as_deref()))
        .bind(column!(inserts, |v| v.created_at))
        .bind(column!(inserts, |v| v.updated_at))
        .bind(column!(inserts, |v| v.ttl_ms))
        .bind(column!(inserts, |v| v.expires_at))
        .bind(column!(inserts, |v| v.result.as_deref()))
        .bind(column!(inserts, |v| v.error_code))
        .bind(column!(inserts, |v| v.error_message.as_deref()))
        .bind(column!(updates, |v| v.task_id.as_str()))
        .bind(column!(updates, |v| v.status))
        .bind(column!(updates, |v| v.status_message.as_deref()))
        .bind(column!(updates, |v| v.at))
        .bind(column!(updates, |v| v.result.as_deref()))
        .bind(column!(updates, |v| v.error_code))
        .bind(column!(updates, |v| v.error_message.as_deref()))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let applied: std::collections::HashSet<String> =
            applied.into_iter().map(|(id,)| id).collect();
        Ok(updates
            .iter()
            .map(|v| applied.contains(&v.task_id))
            .collect())
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
