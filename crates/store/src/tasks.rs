//! Tasks on either database: [`TaskStore`] for every [`SqlStore`]. Reads,
//! counts, the startup failure of unfinished tasks and pruning are written
//! once; batch inserts and updates come from the [`Dialect`].

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};

use sessiongate_core::clock::Timestamp;
use sessiongate_core::ids::TaskId;
use sessiongate_core::store::{
    PrunedTask, StoreResult, TaskCounts, TaskPage, TaskQuery, TaskStore,
};
use sessiongate_core::task::{TaskRecord, TaskUpdate, INTERNAL_ERROR};

use crate::dialect::{Dialect, RowsAffected, SqlStore};
use crate::rows::{
    self, db_err, PrunedTaskRow, TaskCountRow, TaskRow, TaskUpdateValues, TaskValues, TASK_COLUMNS,
};

#[async_trait]
impl<D> TaskStore for SqlStore<D>
where
    D: Dialect,
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    for<'q> <D::DB as Database>::Arguments<'q>: IntoArguments<'q, D::DB>,
    <D::DB as Database>::QueryResult: RowsAffected,
    i64: for<'q> Encode<'q, D::DB> + Type<D::DB>,
    String: for<'q> Encode<'q, D::DB> + Type<D::DB>,
    for<'q> &'q str: Encode<'q, D::DB> + Type<D::DB>,
    for<'r> (i64,): FromRow<'r, <D::DB as Database>::Row>,
    for<'r> TaskRow: FromRow<'r, <D::DB as Database>::Row>,
    for<'r> TaskCountRow: FromRow<'r, <D::DB as Database>::Row>,
    for<'r> PrunedTaskRow: FromRow<'r, <D::DB as Database>::Row>,
{
    async fn write_tasks(
        &self,
        inserts: &[TaskRecord],
        updates: &[TaskUpdate],
    ) -> StoreResult<Vec<bool>> {
        if inserts.is_empty() && updates.is_empty() {
            return Ok(Vec::new());
        }
        let inserts: Vec<TaskValues> = inserts.iter().map(TaskValues::new).collect();
        let updates: Vec<TaskUpdateValues> = updates.iter().map(TaskUpdateValues::new).collect();
        self.db.write_tasks(&inserts, &updates).await
    }

    async fn get_task(&self, id: TaskId) -> StoreResult<Option<TaskRecord>> {
        let row: Option<TaskRow> = sqlx::query_as(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(self.db.reader())
        .await
        .map_err(db_err)?;
        row.map(TaskRow::into_record).transpose()
    }

    async fn list_tasks(&self, query: &TaskQuery) -> StoreResult<TaskPage> {
        // A status is one of the enum's own words, never a client's text.
        let filter = query
            .status
            .map(|s| format!("WHERE status = '{}'", s.as_str()))
            .unwrap_or_default();
        let rows: Vec<TaskRow> = sqlx::query_as(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks {filter} \
             ORDER BY created_at DESC, task_id DESC LIMIT $1 OFFSET $2"
        ))
        .bind(i64::from(query.limit))
        .bind(rows::to_i64(query.offset))
        .fetch_all(self.db.reader())
        .await
        .map_err(db_err)?;
        let (total,): (i64,) = sqlx::query_as(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM tasks {filter}"
        ))
        .fetch_one(self.db.reader())
        .await
        .map_err(db_err)?;
        Ok(TaskPage {
            tasks: rows::into_tasks(rows)?,
            total: rows::unsigned("count", total)?,
        })
    }

    async fn task_counts(&self) -> StoreResult<TaskCounts> {
        let rows: Vec<TaskCountRow> = sqlx::query_as(
            "SELECT status, CAST(COUNT(*) AS BIGINT) AS n FROM tasks GROUP BY status",
        )
        .fetch_all(self.db.reader())
        .await
        .map_err(db_err)?;
        rows::task_counts(rows)
    }

    async fn fail_unfinished_tasks(&self, at: Timestamp, reason: &str) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE tasks SET status = 'failed', status_message = $1, updated_at = $2, \
             error_code = $3, error_message = $1 \
             WHERE status IN ('working', 'input_required')",
        )
        .bind(reason)
        .bind(at.as_millis())
        .bind(INTERNAL_ERROR)
        .execute(self.db.writer())
        .await
        .map_err(db_err)?;
        Ok(done.rows())
    }

    async fn prune_tasks(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<PrunedTask>> {
        let rows: Vec<PrunedTaskRow> = sqlx::query_as(
            "DELETE FROM tasks WHERE task_id IN \
               (SELECT task_id FROM tasks WHERE expires_at <= $1 LIMIT $2) \
             RETURNING task_id, status",
        )
        .bind(now.as_millis())
        .bind(i64::from(limit))
        .fetch_all(self.db.writer())
        .await
        .map_err(db_err)?;
        rows::pruned_tasks(rows)
    }
}
