//! The tasks of the tasks extension, for operators: `GET /api/mcp/tasks`
//! (newest first, filterable by status, with the counts by status) and
//! `GET /api/mcp/tasks/{id}` (one task with its result or error), and the
//! JSON the live stream carries for tasks. The admin sees every client's
//! tasks; nothing here changes one.

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sessiongate_core::store::{TaskCounts, TaskQuery};
use sessiongate_core::task::{TaskError, TaskRecord, TaskStatus};
use sessiongate_core::{TaskId, Timestamp};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody, Params};
use crate::ApiState;

/// Tasks per page when the query does not say.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page of `GET /api/mcp/tasks`.
pub const MAX_LIMIT: u32 = 500;

/// A task as the API shows it. Its result is shown only by
/// `GET /api/mcp/tasks/{id}`: a list of results could be any size.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskSummary {
    pub task_id: String,
    /// `client` (a stateless client's key) or `principal`.
    pub owner_kind: &'static str,
    /// The client key or principal that created it, the only one who sees it.
    pub owner: String,
    pub tool: String,
    /// `working`, `input_required`, `completed`, `failed` or `cancelled`.
    pub status: &'static str,
    pub status_message: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// When it is deleted, finished or not.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    /// The JSON-RPC error of a failed task.
    #[schema(value_type = Option<Object>)]
    pub error: Option<TaskError>,
}

impl From<&TaskRecord> for TaskSummary {
    fn from(t: &TaskRecord) -> Self {
        TaskSummary {
            task_id: t.task_id.to_string(),
            owner_kind: t.owner.kind(),
            owner: t.owner.id().to_string(),
            tool: t.tool.clone(),
            status: t.status.as_str(),
            status_message: t.status_message.clone(),
            created_at: t.created_at,
            updated_at: t.updated_at,
            expires_at: t.expires_at(),
            error: t.error.clone(),
        }
    }
}

/// Filters and pagination of the task list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskListParams {
    /// Only tasks with this status.
    pub status: Option<String>,
    /// Tasks per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Tasks to skip (default 0).
    pub offset: Option<u64>,
}

impl TaskListParams {
    fn to_query(&self) -> Result<TaskQuery, ApiError> {
        let status = match self.status.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(s.parse::<TaskStatus>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "invalid status {s:?}: expected working, input_required, completed, \
                     failed or cancelled"
                ))
            })?),
        };
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::BadRequest(format!(
                "limit must be between 1 and {MAX_LIMIT}, got {limit}"
            )));
        }
        let offset = self.offset.unwrap_or(0);
        if offset > i64::MAX as u64 {
            return Err(ApiError::BadRequest(format!(
                "offset {offset} is out of range"
            )));
        }
        Ok(TaskQuery {
            status,
            limit,
            offset,
        })
    }
}

/// `GET /api/mcp/tasks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskList {
    pub tasks: Vec<TaskSummary>,
    /// Tasks matching the filter.
    pub total: u64,
    /// Every stored task by status.
    #[schema(value_type = Object)]
    pub counts: TaskCounts,
}

/// The tasks clients created, newest first.
#[utoipa::path(
    get,
    path = "/api/mcp/tasks",
    tag = "tasks",
    params(TaskListParams),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "A page of tasks", body = TaskList),
        (status = 400, description = "Invalid filter", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub async fn list_tasks(
    State(state): State<ApiState>,
    Params(params): Params<TaskListParams>,
) -> Result<Json<TaskList>, ApiError> {
    let page = state.tasks.list(&params.to_query()?).await?;
    Ok(Json(TaskList {
        tasks: page.tasks.iter().map(TaskSummary::from).collect(),
        total: page.total,
        counts: state.tasks.counts(),
    }))
}

/// `GET /api/mcp/tasks/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskDetail {
    #[serde(flatten)]
    pub task: TaskSummary,
    /// The result of a completed task, as the client receives it.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
}

/// One task, with its result.
#[utoipa::path(
    get,
    path = "/api/mcp/tasks/{id}",
    tag = "tasks",
    params(("id" = String, Path, description = "The task id (32 hex digits)")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The task", body = TaskDetail),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
    )
)]
pub async fn show_task(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<TaskDetail>, ApiError> {
    let id: TaskId = id.parse().map_err(|_| ApiError::NotFound)?;
    let task = state.tasks.stored(id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(TaskDetail {
        task: TaskSummary::from(&task),
        result: task.result,
    }))
}
