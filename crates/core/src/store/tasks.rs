//! The tasks port: task rows, written in group commits by the lifecycle's
//! task writer and read by `tasks/get`, the API and the figures; with the
//! queries it answers.

use async_trait::async_trait;
use serde::Serialize;

use super::error::StoreResult;
use crate::clock::Timestamp;
use crate::ids::TaskId;
use crate::task::{TaskRecord, TaskStatus, TaskUpdate};

/// Which tasks to list, newest first by `created_at`.
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    pub status: Option<TaskStatus>,
    pub limit: u32,
    pub offset: u64,
}

/// One page of tasks and the number matching the query.
#[derive(Debug, Clone, Default)]
pub struct TaskPage {
    pub tasks: Vec<TaskRecord>,
    pub total: u64,
}

/// Tasks by status, over the whole store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TaskCounts {
    pub working: u64,
    pub input_required: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
}

impl TaskCounts {
    pub fn get(&self, status: TaskStatus) -> u64 {
        match status {
            TaskStatus::Working => self.working,
            TaskStatus::InputRequired => self.input_required,
            TaskStatus::Completed => self.completed,
            TaskStatus::Failed => self.failed,
            TaskStatus::Cancelled => self.cancelled,
        }
    }

    pub fn slot(&mut self, status: TaskStatus) -> &mut u64 {
        match status {
            TaskStatus::Working => &mut self.working,
            TaskStatus::InputRequired => &mut self.input_required,
            TaskStatus::Completed => &mut self.completed,
            TaskStatus::Failed => &mut self.failed,
            TaskStatus::Cancelled => &mut self.cancelled,
        }
    }
}

/// A task the store deleted, and the status it had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunedTask {
    pub task_id: TaskId,
    pub status: TaskStatus,
}

/// Durable task rows.
#[async_trait]
pub trait TaskStore: Send + Sync + 'static {
    /// Inserts new tasks and applies status changes of tasks stored
    /// before the call (a task at most once), all in one transaction: the
    /// task writer's round, one commit however many tasks it carries. (A
    /// round never changes a task it creates: a task's work starts only
    /// once its creation is committed.) A finished task never changes: an
    /// update of one is skipped. Returns, for each update, whether it
    /// applied.
    async fn write_tasks(
        &self,
        inserts: &[TaskRecord],
        updates: &[TaskUpdate],
    ) -> StoreResult<Vec<bool>>;

    /// Inserts new tasks in one transaction.
    async fn insert_tasks(&self, tasks: &[TaskRecord]) -> StoreResult<()> {
        self.write_tasks(tasks, &[]).await.map(drop)
    }

    /// [`TaskStore::write_tasks`] with status changes only.
    async fn update_tasks(&self, updates: &[TaskUpdate]) -> StoreResult<Vec<bool>> {
        self.write_tasks(&[], updates).await
    }

    async fn get_task(&self, id: TaskId) -> StoreResult<Option<TaskRecord>>;

    async fn list_tasks(&self, query: &TaskQuery) -> StoreResult<TaskPage>;

    async fn task_counts(&self) -> StoreResult<TaskCounts>;

    /// Fails every unfinished task at `at` with `reason`, as an internal
    /// error: at startup, since their work died with the previous process.
    /// Returns how many.
    async fn fail_unfinished_tasks(&self, at: Timestamp, reason: &str) -> StoreResult<u64>;

    /// Deletes up to `limit` tasks whose time to live has passed at `now`;
    /// returns them.
    async fn prune_tasks(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<PrunedTask>>;
}
