//! The tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663) on the
//! wire: whether a request declared it, a `tools/call` turned into a task
//! (a `CreateTaskResult` at once, the work going on in the background), and
//! `tasks/get`, `tasks/update` and `tasks/cancel`. The tasks themselves —
//! durable, owned, expiring — are `core::lifecycle::Tasks`.
//!
//! Only 2026-07-28 requests may use it: the extension is declared per
//! request, in `_meta`'s client capabilities, and a task belongs to the
//! caller's principal or, without one, its client key. Anyone else asking
//! about a task is answered as for one that does not exist (-32602).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolResult, CreateTaskResult, ErrorCode, ErrorData, Task, TaskStatus as WireStatus,
    TASKS_EXTENSION_ID,
};
use serde_json::{json, Map, Value};
use sessiongate_core::lifecycle::{LifecycleError, TaskView, Tasks};
use sessiongate_core::store_health::UNAVAILABLE;
use sessiongate_core::task::{TaskError, TaskOutcome, TaskOwner, TaskRecord, TaskStatus};
use sessiongate_core::TaskId;

use crate::context::{Caller, RequestContext};
use crate::protocol;
use crate::request::Request;

/// Whether a tool's calls become tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskSupport {
    /// Always answered at once.
    #[default]
    Forbidden,
    /// A task for a client that declared the extension, else answered at once.
    Optional,
    /// Only as a task: a client that did not declare the extension is
    /// refused with -32021.
    Required,
}

/// Who owns the tasks `ctx`'s request may create and see, if it declared
/// the extension.
pub(crate) fn declared(ctx: &RequestContext) -> Option<TaskOwner> {
    let Caller::Client { key, identity } = &ctx.caller else {
        return None;
    };
    identity.client_capabilities["extensions"][TASKS_EXTENSION_ID]
        .is_object()
        .then(|| TaskOwner::of(identity.principal.as_deref(), key))
}

/// -32021: the request needs the extension its client did not declare.
pub(crate) fn missing_capability() -> ErrorData {
    protocol::missing_client_capability(
        format!("Missing required client capability: the {TASKS_EXTENSION_ID} extension"),
        json!({ "extensions": { TASKS_EXTENSION_ID: {} } }),
    )
}

/// Creates a task for a call of `tool` by `owner` and starts `work` in it;
/// answers with the `CreateTaskResult` once the task is durable.
pub(crate) async fn start<F, Fut>(
    ctx: &RequestContext,
    owner: TaskOwner,
    tool: &str,
    work: F,
) -> Result<Value, ErrorData>
where
    F: FnOnce(RequestContext) -> Fut,
    Fut: Future<Output = Result<CallToolResult, ErrorData>> + Send + 'static,
{
    let handle = ctx
        .tasks
        .create(owner, tool)
        .await
        .map_err(lifecycle_error)?;
    let created = wire_task(handle.record(), ctx.tasks.config().poll_interval);
    let work = work(ctx.for_task(handle.clone()));
    ctx.tasks.run(handle, async move { outcome(work.await) });
    Ok(serde_json::to_value(CreateTaskResult::new(created)).unwrap_or_default())
}

/// What a tool's call ended with, as the task keeps it.
fn outcome(result: Result<CallToolResult, ErrorData>) -> TaskOutcome {
    match result {
        Ok(result) => TaskOutcome::Completed(serde_json::to_value(result).unwrap_or_default()),
        Err(e) => TaskOutcome::Failed(TaskError {
            code: i64::from(e.code.0),
            message: e.message.into_owned(),
        }),
    }
}

/// Answers `tasks/get`, `tasks/update` and `tasks/cancel`.
pub(crate) async fn serve(ctx: &RequestContext, request: &Request) -> Result<Value, ErrorData> {
    let owner = declared(ctx).ok_or_else(missing_capability)?;
    let id = task_id(request)?;
    match request.method.as_str() {
        "tasks/get" => {
            let view = ctx
                .tasks
                .get(&owner, id)
                .await
                .map_err(|e| lifecycle_error(e.into()))?
                .ok_or_else(not_found)?;
            Ok(detailed(&view, ctx.tasks.config().poll_interval))
        }
        "tasks/update" => {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Update {
                input_responses: Map<String, Value>,
            }
            let Update { input_responses } = request.parse()?;
            match ctx.tasks.answer(&owner, id, input_responses).await {
                Ok(true) => Ok(json!({})),
                Ok(false) => Err(not_found()),
                Err(e) => Err(lifecycle_error(e.into())),
            }
        }
        _ => match ctx.tasks.cancel(&owner, id).await {
            Ok(true) => Ok(json!({})),
            Ok(false) => Err(not_found()),
            Err(e) => Err(lifecycle_error(e)),
        },
    }
}

/// The tasks of `ids` that `owner` may see, as they stand now: those a
/// listen stream tells its client of.
pub(crate) async fn views(
    tasks: &Tasks,
    owner: &TaskOwner,
    ids: &[TaskId],
) -> Result<Vec<Arc<TaskView>>, ErrorData> {
    let mut views = Vec::with_capacity(ids.len());
    for id in ids {
        let view = tasks
            .get(owner, *id)
            .await
            .map_err(|e| lifecycle_error(e.into()))?;
        views.extend(view.map(Arc::new));
    }
    Ok(views)
}

/// The task a request names; one that cannot be an id names no task.
fn task_id(request: &Request) -> Result<TaskId, ErrorData> {
    match &request.params.task_id {
        Some(Value::String(id)) => id.parse().map_err(|_| not_found()),
        Some(_) => Err(ErrorData::invalid_params(
            "Invalid params: `taskId` must be a string",
            None,
        )),
        None => Err(ErrorData::invalid_params(
            "Invalid params: missing field `taskId`",
            None,
        )),
    }
}

fn not_found() -> ErrorData {
    ErrorData::invalid_params("Failed to retrieve task: Task not found", None)
}

fn lifecycle_error(e: LifecycleError) -> ErrorData {
    match e {
        LifecycleError::Store(e) => {
            tracing::warn!(error = %e, "a task's store call failed");
            ErrorData::internal_error(UNAVAILABLE, None)
        }
        e => ErrorData::internal_error(e.to_string(), None),
    }
}

/// The task's common fields, as the wire names them, suggesting polling
/// every `poll_interval`.
fn wire_task(record: &TaskRecord, poll_interval: Duration) -> Task {
    let status = match record.status {
        TaskStatus::Working => WireStatus::Working,
        TaskStatus::InputRequired => WireStatus::InputRequired,
        TaskStatus::Completed => WireStatus::Completed,
        TaskStatus::Failed => WireStatus::Failed,
        TaskStatus::Cancelled => WireStatus::Cancelled,
    };
    let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let mut task = Task::new(
        record.task_id.to_string(),
        status,
        record.created_at.to_rfc3339(),
        record.updated_at.to_rfc3339(),
    )
    .with_ttl_ms(millis(record.ttl))
    .with_poll_interval_ms(millis(poll_interval).max(1));
    task.status_message = record.status_message.clone();
    task
}

/// A `tasks/get` result (and a `notifications/tasks`'s params): the task,
/// with what it waits for, its result or its error inlined.
pub(crate) fn detailed(view: &TaskView, poll_interval: Duration) -> Value {
    let mut task = serde_json::to_value(wire_task(&view.record, poll_interval)).unwrap_or_default();
    let record = &view.record;
    match record.status {
        TaskStatus::InputRequired => {
            let requests: Map<String, Value> = view.input_requests.iter().cloned().collect();
            task["inputRequests"] = Value::Object(requests);
        }
        TaskStatus::Completed => {
            task["result"] = record.result.clone().unwrap_or_else(|| json!({}));
        }
        TaskStatus::Failed => {
            let error = record.error.clone().unwrap_or(TaskError {
                code: i64::from(ErrorCode::INTERNAL_ERROR.0),
                message: record.status_message.clone().unwrap_or_default(),
            });
            task["error"] = json!({ "code": error.code, "message": error.message });
        }
        TaskStatus::Working | TaskStatus::Cancelled => {}
    }
    task
}
