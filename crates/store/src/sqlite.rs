//! The SQLite backend: one database file in WAL mode, for single-node
//! deployments.
//!
//! It owns the SQLite connection settings and its SQL. Writes go through a
//! pool of one connection, so they queue in-process instead of contending for
//! SQLite's write lock; reads use a separate pool and never block the writer
//! (WAL). `synchronous=NORMAL` keeps every committed transaction across a
//! crash of the process (`kill -9`); only a power loss or OS crash may lose
//! the last few.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, QueryBuilder, Sqlite};

use sessiongate_core::store::{StoreError, StoreResult};
use sessiongate_core::stream::{EventPage, PageKey};

use crate::dialect::{Dialect, SqlStore};
use crate::rows::{
    self, db_err, migrate_err, ActivityValues, EndValues, RequestValues, SessionValues,
    TaskUpdateValues, TaskValues, EVENT_PAGE_COLUMNS, REQUEST_COLUMNS, REQUEST_COLUMN_COUNT,
    SESSION_COLUMNS, SESSION_COLUMN_COUNT, TASK_COLUMNS, TASK_COLUMN_COUNT,
    TASK_UPDATE_COLUMN_COUNT,
};
use crate::Migrated;

pub(crate) const BACKEND: &str = "sqlite";

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite's default limit on bind parameters per statement (since 3.32).
const MAX_BINDS: usize = 32_766;

/// Rows in the largest batch statement.
const MAX_ROWS_PER_STATEMENT: usize = 256;
/// Connections reading concurrently, besides the one writer.
const READERS: u32 = 3;
/// The writer's page cache, in KiB (SQLite's negative `cache_size`); it is
/// filled only as pages are used.
const WRITER_CACHE_KIB: &str = "-32768";
/// How often the write-ahead log is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Pages in the write-ahead log (4 MiB) past which the writer finishes a
/// checkpoint itself, so the log starts over.
const RESTART_LOG_AT_PAGES: i64 = 1000;
/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The store on an SQLite file.
pub type SqliteStore = SqlStore<SqliteDb>;

/// An SQLite file's pools: one writer, a few readers, and the task that
/// checkpoints the write-ahead log beside them.
pub struct SqliteDb {
    writer: SqlitePool,
    reader: SqlitePool,
    checkpoints: tokio::task::AbortHandle,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and its parent
    /// directory, and applies pending migrations. What it creates is private
    /// (directory 0700, file 0600): the rows hold session ids, which are
    /// credentials. SQLite gives the `-wal` and `-shm` files the database
    /// file's mode.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        Ok(Self::open_migrated(path).await?.0)
    }

    /// [`SqliteStore::open`], also telling which migrations it applied.
    pub(crate) async fn open_migrated(path: &Path) -> StoreResult<(Self, Migrated)> {
        let created = |what: &Path, e: std::io::Error| {
            StoreError::Database(format!("creating {}: {e}", what.display()))
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            private::create_dir(parent).map_err(|e| created(parent, e))?;
        }
        private::create_file(path).map_err(|e| created(path, e))?;
        let base = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(false)
            .synchronous(SqliteSynchronous::Normal)
            // Statement journals of multi-row inserts inside a transaction
            // stay in memory instead of going through a temporary file.
            .pragma("temp_store", "memory");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(
                base.clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // Checkpoints run on a connection of their own (below):
                    // in the writer, each one's copy and fsync held up every
                    // write queued behind it.
                    .pragma("wal_autocheckpoint", "0")
                    // Session ids are random, so inserts land all over the
                    // primary-key B-tree; past the default 2 MB of cache
                    // each one would read pages back from disk.
                    .pragma("cache_size", WRITER_CACHE_KIB),
            )
            .await
            .map_err(|e| open_err(path, e))?;
        let before = applied_migrations(&writer).await;
        MIGRATOR.run(&writer).await.map_err(migrate_err)?;
        let migrated = Migrated {
            before,
            applied: applied_migrations(&writer).await - before,
        };
        // Refresh the planner's statistics where they are missing or stale.
        sqlx::query("PRAGMA optimize = 0x10002")
            .execute(&writer)
            .await
            .map_err(db_err)?;
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(base.clone())
            .await
            .map_err(|e| open_err(path, e))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(base)
            .await
            .map_err(|e| open_err(path, e))?;
        let checkpoints = tokio::spawn(checkpoint(checkpointer, writer.clone())).abort_handle();
        let db = SqliteDb {
            writer,
            reader,
            checkpoints,
        };
        Ok((SqlStore { db }, migrated))
    }

    /// Closes every connection, checkpointing the write-ahead log.
    pub async fn close(&self) {
        self.db.checkpoints.abort();
        self.db.reader.close().await;
        self.db.writer.close().await;
    }
}

/// Creating files readable by their owner only, whatever the umask.
mod private {
    use std::io;
    use std::path::Path;

    #[cfg(unix)]
    pub(super) fn create_dir(path: &Path) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
    }

    #[cfg(not(unix))]
    pub(super) fn create_dir(path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    /// Creates an empty file of mode 0600 unless `path` exists; SQLite
    /// takes an empty file for a new database.
    #[cfg(unix)]
    pub(super) fn create_file(path: &Path) -> io::Result<()> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            // The umask may have taken bits away from the mode, never added.
            Ok(file) => file.set_permissions(std::fs::Permissions::from_mode(0o600)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    #[cfg(not(unix))]
    pub(super) fn create_file(_path: &Path) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SqliteDb {
    fn drop(&mut self) {
        self.checkpoints.abort();
    }
}

/// Copies committed pages from the write-ahead log into the database file,
/// beside the writer: a passive checkpoint never blocks it. But the log
/// starts over only from a checkpoint that caught up with every write, and
/// writes go on while this one runs; so once the log is long, the writer
/// runs one too, between its writes, with little left to copy.
async fn checkpoint(checkpointer: SqlitePool, writer: SqlitePool) {
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        // (busy, pages in the log, pages checkpointed)
        let passive = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)");
        let done = match passive.fetch_one(&checkpointer).await {
            Ok((_, log, _)) if log >= RESTART_LOG_AT_PAGES => {
                sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&writer)
                    .await
                    .map(drop)
            }
            other => other.map(drop),
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, "checkpointing the SQLite write-ahead log failed");
        }
    }
}

/// Hands the writer connection back after a write. SQLite rolls a
/// transaction back by itself when a statement or the commit fails with
/// SQLITE_FULL or an I/O error, but sqlx 0.8 still counts it open; every
/// later `begin` then opened a savepoint inside a transaction that never
/// committed, so writes were acknowledged and lost until a restart. After
/// any failure the connection is closed instead, and the pool opens a fresh
/// one in autocommit mode for the next write.
async fn settle<T>(conn: PoolConnection<Sqlite>, result: Result<T, sqlx::Error>) -> StoreResult<T> {
    if result.is_err() {
        if let Err(e) = conn.close().await {
            tracing::warn!(error = %e, "closing the SQLite writer after a failed write failed");
        }
    }
    result.map_err(db_err)
}

/// Migrations recorded as applied; none before the first migration made
/// sqlx's table.
async fn applied_migrations(pool: &SqlitePool) -> usize {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .map_or(0, |n| usize::try_from(n).unwrap_or(0))
}

fn open_err(path: &Path, e: sqlx::Error) -> StoreError {
    StoreError::Database(format!("opening SQLite database {}: {e}", path.display()))
}

#[async_trait]
impl Dialect for SqliteDb {
    type DB = Sqlite;

    const NAME: &'static str = BACKEND;

    fn latest_of_both_statuses() -> String {
        format!(
            "SELECT * FROM (SELECT {SESSION_COLUMNS} FROM sessions \
               WHERE status = 'active' \
               ORDER BY last_activity DESC, session_id DESC LIMIT ?1) \
             UNION ALL \
             SELECT * FROM (SELECT {SESSION_COLUMNS} FROM sessions \
               WHERE status = 'disconnected' \
               ORDER BY last_activity DESC, session_id DESC LIMIT ?1) \
             ORDER BY last_activity DESC, session_id DESC LIMIT ?1"
        )
    }

    const CONNECTION_BUCKETS: &'static str = "SELECT connected_at / 1000 AS second, \
           COUNT(*) AS connected, \
           SUM(CASE WHEN status = 'disconnected' THEN 1 ELSE 0 END) AS ended, \
           SUM(CASE WHEN status = 'disconnected' \
               THEN max(COALESCE(disconnected_at, connected_at) - connected_at, 0) \
               ELSE 0 END) AS ended_duration_ms, \
           SUM(CASE WHEN status = 'active' THEN connected_at ELSE 0 END) \
             AS active_connected_at_ms \
         FROM sessions WHERE connected_at >= ? \
         GROUP BY connected_at / 1000 ORDER BY second";

    const REDEEM_TOKEN: &'static str = "UPDATE sessions SET \
           reconnect_token_hash = ?1, reconnect_expires_at = ?2, reconnect_used_hash = ?3, \
           reconnect_count = reconnect_count + 1, \
           status = CASE WHEN ?4 IS NULL THEN status ELSE 'active' END, \
           last_activity = CASE WHEN ?4 IS NULL THEN last_activity ELSE max(last_activity, ?4) END, \
           disconnected_at = CASE WHEN ?4 IS NULL THEN disconnected_at ELSE NULL END, \
           disconnect_reason = CASE WHEN ?4 IS NULL THEN disconnect_reason ELSE NULL END, \
           total_duration_ms = CASE WHEN ?4 IS NULL THEN total_duration_ms ELSE NULL END \
         WHERE session_id = ?5 AND reconnect_token_hash = ?3 \
           AND (disconnect_reason IS NULL \
                OR disconnect_reason NOT IN ('client_disconnect', 'admin_terminated')) \
         RETURNING reconnect_count";

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    async fn insert_sessions(&self, rows: &[SessionValues<'_>]) -> StoreResult<()> {
        self.write_chunks(rows, SESSION_COLUMN_COUNT, |chunk| {
            let mut qb = QueryBuilder::new(format!("INSERT INTO sessions ({SESSION_COLUMNS}) "));
            qb.push_values(chunk, |mut b, v| {
                b.push_bind(v.session_id.as_str())
                    .push_bind(&*v.client_type)
                    .push_bind(v.client_name.as_deref())
                    .push_bind(v.client_version.as_deref())
                    .push_bind(v.client_capabilities.as_str())
                    .push_bind(&*v.protocol_version)
                    .push_bind(v.principal.as_deref())
                    .push_bind(v.remote_addr.as_deref())
                    .push_bind(v.user_agent.as_deref())
                    .push_bind(v.connected_at)
                    .push_bind(v.last_activity)
                    .push_bind(v.status)
                    .push_bind(v.disconnected_at)
                    .push_bind(v.disconnect_reason)
                    .push_bind(v.total_duration_ms)
                    .push_bind(v.request_count)
                    .push_bind(v.metadata.as_str())
                    .push_bind(v.reconnect_count)
                    .push_bind(v.reconnect_token_hash.as_deref())
                    .push_bind(v.reconnect_expires_at);
            });
            qb
        })
        .await
        .map(drop)
    }

    async fn record_activity(&self, rows: &[ActivityValues]) -> StoreResult<()> {
        self.write_chunks(rows, 3, |chunk| {
            let mut qb = QueryBuilder::new(
                "UPDATE sessions SET \
                 last_activity = max(sessions.last_activity, u.column2), \
                 request_count = max(sessions.request_count, u.column3) \
                 FROM (",
            );
            qb.push_values(chunk, |mut b, u| {
                b.push_bind(u.session_id.to_string())
                    .push_bind(u.last_activity)
                    .push_bind(u.request_count);
            });
            qb.push(") AS u WHERE sessions.session_id = u.column1 AND sessions.status = 'active'");
            qb
        })
        .await
        .map(drop)
    }

    async fn end_sessions(&self, rows: &[EndValues]) -> StoreResult<u64> {
        self.write_chunks(rows, 6, |chunk| {
            let mut qb = QueryBuilder::new(
                "UPDATE sessions SET \
                 status = 'disconnected', \
                 disconnected_at = u.column2, \
                 disconnect_reason = u.column3, \
                 total_duration_ms = u.column4, \
                 last_activity = max(sessions.last_activity, u.column5), \
                 request_count = max(sessions.request_count, u.column6) \
                 FROM (",
            );
            qb.push_values(chunk, |mut b, e| {
                b.push_bind(e.session_id.to_string())
                    .push_bind(e.at)
                    .push_bind(e.reason)
                    .push_bind(e.total_duration_ms)
                    .push_bind(e.last_activity)
                    .push_bind(e.request_count);
            });
            qb.push(") AS u WHERE sessions.session_id = u.column1 AND sessions.status = 'active'");
            qb
        })
        .await
    }

    async fn insert_requests(&self, rows: &[RequestValues<'_>]) -> StoreResult<()> {
        self.write_chunks(rows, REQUEST_COLUMN_COUNT, |chunk| {
            let mut qb = QueryBuilder::new(format!("INSERT INTO requests ({REQUEST_COLUMNS}) "));
            qb.push_values(chunk, |mut b, v| {
                b.push_bind(v.session_id.as_deref())
                    .push_bind(v.client_key.as_deref())
                    .push_bind(&*v.method)
                    .push_bind(v.tool_name.as_deref())
                    .push_bind(v.started_at)
                    .push_bind(v.duration_us)
                    .push_bind(v.status)
                    .push_bind(v.error_code)
                    .push_bind(v.error_message.as_deref())
                    .push_bind(v.bytes_in)
                    .push_bind(v.bytes_out)
                    .push_bind(v.upstream);
            });
            qb
        })
        .await
        .map(drop)
    }

    async fn append_event_pages(&self, pages: &[EventPage]) -> StoreResult<()> {
        self.write_chunks(pages, 4, |chunk| {
            let mut qb = QueryBuilder::new(format!(
                "INSERT OR IGNORE INTO session_event_pages ({EVENT_PAGE_COLUMNS}) "
            ));
            qb.push_values(chunk, |mut b, p| {
                b.push_bind(p.session_id.to_string())
                    .push_bind(rows::to_i64(p.id.0))
                    .push_bind(p.at.as_millis())
                    .push_bind(p.body.as_slice());
            });
            qb
        })
        .await
        .map(drop)
    }

    async fn drop_event_pages(&self, pages: &[PageKey]) -> StoreResult<u64> {
        // One prepared statement per page: in-process calls cost little,
        // and each is a primary-key lookup.
        let mut conn = self.writer.acquire().await.map_err(db_err)?;
        let result = async {
            let mut tx = conn.begin().await?;
            let mut dropped = 0;
            for p in pages {
                dropped += sqlx::query(
                    "DELETE FROM session_event_pages WHERE session_id = ? AND page_id = ?",
                )
                .bind(p.session_id.to_string())
                .bind(rows::to_i64(p.page.0))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
            Ok(dropped)
        }
        .await;
        settle(conn, result).await
    }

    async fn write_tasks(
        &self,
        inserts: &[TaskValues<'_>],
        updates: &[TaskUpdateValues<'_>],
    ) -> StoreResult<Vec<bool>> {
        // Multi-row statements, one transaction: a statement is a round
        // trip to SQLite's worker thread and a commit costs more than the
        // rows it carries, so a round of single-row statements or one
        // transaction per kind spent most of its time on those.
        let mut conn = self.writer.acquire().await.map_err(db_err)?;
        let result = async {
            let mut tx = conn.begin().await?;
            for chunk in statement_chunks(inserts, TASK_COLUMN_COUNT) {
                let mut qb = QueryBuilder::new(format!("INSERT INTO tasks ({TASK_COLUMNS}) "));
                qb.push_values(chunk, |mut b, v| {
                    b.push_bind(v.task_id.as_str())
                        .push_bind(v.owner_kind)
                        .push_bind(&*v.owner)
                        .push_bind(&*v.tool)
                        .push_bind(v.status)
                        .push_bind(v.status_message.as_deref())
                        .push_bind(v.created_at)
                        .push_bind(v.updated_at)
                        .push_bind(v.ttl_ms)
                        .push_bind(v.expires_at)
                        .push_bind(v.result.as_deref())
                        .push_bind(v.error_code)
                        .push_bind(v.error_message.as_deref());
                });
                qb.build().execute(&mut *tx).await?;
            }
            // The rows an update returns say which changes applied.
            let mut applied = HashSet::with_capacity(updates.len());
            for chunk in statement_chunks(updates, TASK_UPDATE_COLUMN_COUNT) {
                let mut qb = QueryBuilder::new(
                    "WITH u (task_id, status, status_message, at, result, error_code, \
                     error_message) AS (",
                );
                qb.push_values(chunk, |mut b, u| {
                    b.push_bind(u.task_id.as_str())
                        .push_bind(u.status)
                        .push_bind(u.status_message.as_deref())
                        .push_bind(u.at)
                        .push_bind(u.result.as_deref())
                        .push_bind(u.error_code)
                        .push_bind(u.error_message.as_deref());
                });
                qb.push(
                    ") UPDATE tasks SET status = u.status, status_message = u.status_message, \
                     updated_at = u.at, result = u.result, error_code = u.error_code, \
                     error_message = u.error_message \
                     FROM u WHERE tasks.task_id = u.task_id \
                     AND tasks.status NOT IN ('completed', 'failed', 'cancelled') \
                     RETURNING tasks.task_id",
                );
                let ids: Vec<(String,)> = qb.build_query_as().fetch_all(&mut *tx).await?;
                applied.extend(ids.into_iter().map(|(id,)| id));
            }
            tx.commit().await?;
            Ok(updates
                .iter()
                .map(|u| applied.contains(&u.task_id))
                .collect())
        }
        .await;
        settle(conn, result).await
    }
}

impl SqliteDb {
    /// Writes a batch in one transaction on the writer, as the multi-row
    /// statements `statement` builds for each of [`statement_chunks`];
    /// returns how many rows they changed.
    async fn write_chunks<T: Sync>(
        &self,
        rows: &[T],
        columns: usize,
        statement: impl for<'a> Fn(&'a [T]) -> QueryBuilder<'a, Sqlite> + Sync,
    ) -> StoreResult<u64> {
        let mut conn = self.writer.acquire().await.map_err(db_err)?;
        let result = async {
            let mut tx = conn.begin().await?;
            let mut changed = 0;
            for chunk in statement_chunks(rows, columns) {
                let mut qb = statement(chunk);
                changed += qb.build().execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            Ok(changed)
        }
        .await;
        settle(conn, result).await
    }
}

/// Splits a batch into multi-row statements: as many of the largest size as
/// fit, then the rest in powers of two. Each size is one SQL text that the
/// connection prepares once and keeps; a statement sized to each batch was
/// parsed anew every time, its cost growing with the batch.
fn statement_chunks<T>(rows: &[T], columns: usize) -> impl Iterator<Item = &[T]> {
    let largest = (MAX_BINDS / columns).clamp(1, MAX_ROWS_PER_STATEMENT);
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = if rest.len() >= largest {
            largest
        } else {
            1 << rest.len().ilog2()
        };
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::statement_chunks;

    #[test]
    fn batches_split_into_recurring_statement_sizes() {
        let sizes = |n: usize, columns| {
            statement_chunks(&vec![0u8; n], columns)
                .map(<[u8]>::len)
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(0, 5), Vec::<usize>::new());
        assert_eq!(sizes(1, 5), [1]);
        assert_eq!(sizes(600, 5), [256, 256, 64, 16, 8]);
        assert_eq!(sizes(255, 5), [128, 64, 32, 16, 8, 4, 2, 1]);
        // Never more bind parameters than SQLite takes.
        assert_eq!(sizes(5000, 20_000), [1, 1, 1, 1, 1].repeat(1000));
    }
}
