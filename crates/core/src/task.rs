//! Tasks (the MCP tasks extension, `io.modelcontextprotocol/tasks`): a
//! `tools/call` answered with a handle at once while its work goes on, the
//! result fetched later by polling. What a task is — its id, owner, status
//! and outcome — and the transitions the lifecycle's [`Tasks`] service
//! writes.
//!
//! [`Tasks`]: crate::lifecycle::Tasks

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::clock::Timestamp;
use crate::ids::TaskId;
use crate::session::UnknownValue;

/// Where a task stands. `completed`, `failed` and `cancelled` are final:
/// a finished task never changes again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Working,
    /// Waiting for the client to answer requests (elicitation, sampling).
    InputRequired,
    /// The work ended with a result (a tool error result included).
    Completed,
    /// The work ended with a protocol error, or never ended (the server
    /// restarted, or the task outlived its time to live).
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 5] = [
        TaskStatus::Working,
        TaskStatus::InputRequired,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Working => "working",
            TaskStatus::InputRequired => "input_required",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }
}

impl FromStr for TaskStatus {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskStatus::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownValue(s.to_string()))
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who created a task, and so the only one who may see or cancel it: the
/// authenticated principal when the transport knows one, else the
/// stateless client's key. Anyone else is answered as for an unknown task.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum TaskOwner {
    Principal(String),
    Client(String),
}

impl TaskOwner {
    /// The owner of a caller known by `client_key` and maybe a principal.
    pub fn of(principal: Option<&str>, client_key: &str) -> TaskOwner {
        match principal {
            Some(p) => TaskOwner::Principal(p.to_string()),
            None => TaskOwner::Client(client_key.to_string()),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            TaskOwner::Principal(_) => "principal",
            TaskOwner::Client(_) => "client",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            TaskOwner::Principal(id) | TaskOwner::Client(id) => id,
        }
    }

    /// From its stored kind and id.
    pub fn from_parts(kind: &str, id: String) -> Result<TaskOwner, UnknownValue> {
        match kind {
            "principal" => Ok(TaskOwner::Principal(id)),
            "client" => Ok(TaskOwner::Client(id)),
            other => Err(UnknownValue(other.to_string())),
        }
    }
}

/// A JSON-RPC error a task failed with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskError {
    pub code: i64,
    pub message: String,
}

/// What a task ended with, once it has.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskOutcome {
    /// The request's result (for `tools/call`, the `CallToolResult`).
    Completed(Value),
    Failed(TaskError),
    Cancelled,
}

impl TaskOutcome {
    pub fn status(&self) -> TaskStatus {
        match self {
            TaskOutcome::Completed(_) => TaskStatus::Completed,
            TaskOutcome::Failed(_) => TaskStatus::Failed,
            TaskOutcome::Cancelled => TaskStatus::Cancelled,
        }
    }
}

/// One task's durable record.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub task_id: TaskId,
    pub owner: TaskOwner,
    /// The tool whose call the task runs.
    pub tool: String,
    pub status: TaskStatus,
    /// Why it stands where it does, in words (e.g. why it failed).
    pub status_message: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// How long after its creation the task is kept; then it is deleted,
    /// finished or not.
    pub ttl: Duration,
    /// The result of a completed task.
    pub result: Option<Value>,
    /// The error of a failed one.
    pub error: Option<TaskError>,
}

impl TaskRecord {
    /// When the task stops existing.
    pub fn expires_at(&self) -> Timestamp {
        self.created_at.saturating_add(self.ttl)
    }

    pub fn is_expired(&self, now: Timestamp) -> bool {
        now >= self.expires_at()
    }
}

/// A change of an unfinished task's status, as written to the store.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskUpdate {
    pub task_id: TaskId,
    pub status: TaskStatus,
    pub status_message: Option<String>,
    pub at: Timestamp,
    pub result: Option<Value>,
    pub error: Option<TaskError>,
}

impl TaskUpdate {
    /// The task ends with `outcome` at `at`.
    pub fn finish(task_id: TaskId, outcome: TaskOutcome, at: Timestamp) -> TaskUpdate {
        let status = outcome.status();
        let (result, error, status_message) = match outcome {
            TaskOutcome::Completed(result) => (Some(result), None, None),
            TaskOutcome::Failed(error) => {
                let message = error.message.clone();
                (None, Some(error), Some(message))
            }
            TaskOutcome::Cancelled => (None, None, Some("cancelled by the client".into())),
        };
        TaskUpdate {
            task_id,
            status,
            status_message,
            at,
            result,
            error,
        }
    }

    /// The task waits for the client's input, or works again.
    pub fn waiting(task_id: TaskId, waiting: bool, at: Timestamp) -> TaskUpdate {
        TaskUpdate {
            task_id,
            status: if waiting {
                TaskStatus::InputRequired
            } else {
                TaskStatus::Working
            },
            status_message: None,
            at,
            result: None,
            error: None,
        }
    }
}

/// Why a task that was still running when the server stopped has failed.
pub const RESTARTED: &str = "the server restarted before the task finished";

/// The JSON-RPC code of an internal error, which such a task failed with.
pub const INTERNAL_ERROR: i64 = -32603;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_only_three_are_final() {
        for s in TaskStatus::ALL {
            assert_eq!(s.as_str().parse::<TaskStatus>().unwrap(), s);
        }
        let terminal: Vec<_> = TaskStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [
                TaskStatus::Completed,
                TaskStatus::Failed,
                TaskStatus::Cancelled
            ]
        );
        assert!("done".parse::<TaskStatus>().is_err());
    }

    #[test]
    fn owners_round_trip_and_prefer_the_principal() {
        let o = TaskOwner::of(Some("alice"), "anonymous/x/1");
        assert_eq!(o, TaskOwner::Principal("alice".into()));
        let c = TaskOwner::of(None, "anonymous/x/1");
        assert_eq!(TaskOwner::from_parts(c.kind(), c.id().into()).unwrap(), c);
        assert!(TaskOwner::from_parts("session", "x".into()).is_err());
    }
}
