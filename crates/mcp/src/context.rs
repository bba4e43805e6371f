//! What a handler knows about the request it serves, and how it talks back:
//! notifications and server-to-client requests related to the request go on
//! the request's own SSE stream.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rmcp::model::{ErrorCode, ErrorData};
use serde_json::{json, Value};
use sessiongate_core::lifecycle::{ActiveSession, Reclaim, SessionManager, TaskHandle, Tasks};
use sessiongate_core::session::ClientIdentity;
use sessiongate_core::Timestamp;
use tokio::sync::{mpsc, Notify};

use crate::jsonrpc::{self, Id};
use crate::peers::{PeerState, Peers};

/// How long a server-to-client request waits for the client's answer.
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Who is calling, in which generation.
#[derive(Clone)]
pub enum Caller {
    /// A sessionful client (2025-03-26 .. 2025-11-25).
    Session(Arc<ActiveSession>),
    /// A stateless client (2026-07-28), attributed to a client key.
    Client {
        key: Arc<str>,
        identity: Arc<ClientIdentity>,
    },
}

pub struct RequestContext {
    pub manager: Arc<SessionManager>,
    /// Reconnect tokens, for the tools that issue and redeem them.
    pub reclaim: Arc<Reclaim>,
    /// Tasks of the tasks extension.
    pub tasks: Arc<Tasks>,
    pub caller: Caller,
    pub request_id: Id,
    pub protocol_version: Arc<str>,
    /// When the request arrived, by the lifecycle's clock: the time of its
    /// request-log row and of its client's activity.
    pub received_at: Timestamp,
    pub progress_token: Option<Value>,
    /// The client's stateless `logLevel`; `None` means send no log messages.
    pub(crate) stateless_log_level: Option<String>,
    pub(crate) peers: Peers,
    pub(crate) outbound: Option<mpsc::Sender<Bytes>>,
    /// Notified to end the client's connection to this request's resumable
    /// stream early (SSE polling); the request runs on.
    pub(crate) poll: Option<Arc<Notify>>,
    /// The task this request's work runs as, once it has become one: its
    /// requests to the client then wait in the task for `tasks/update`.
    pub(crate) task: Option<TaskHandle>,
}

impl RequestContext {
    pub fn session(&self) -> Option<&Arc<ActiveSession>> {
        match &self.caller {
            Caller::Session(s) => Some(s),
            Caller::Client { .. } => None,
        }
    }

    pub fn identity(&self) -> &ClientIdentity {
        match &self.caller {
            Caller::Session(s) => s.identity(),
            Caller::Client { identity, .. } => identity,
        }
    }

    pub fn client_capabilities(&self) -> &Value {
        &self.identity().client_capabilities
    }

    pub fn is_stateless(&self) -> bool {
        matches!(self.caller, Caller::Client { .. })
    }

    /// The context the work of `task` runs in, in the background: the same
    /// caller, nothing streamed (the client polls the task instead), and
    /// requests to the client asked through the task.
    pub(crate) fn for_task(&self, task: TaskHandle) -> RequestContext {
        RequestContext {
            manager: self.manager.clone(),
            reclaim: self.reclaim.clone(),
            tasks: self.tasks.clone(),
            caller: self.caller.clone(),
            request_id: self.request_id.clone(),
            protocol_version: self.protocol_version.clone(),
            received_at: self.received_at,
            progress_token: None,
            stateless_log_level: None,
            peers: self.peers.clone(),
            outbound: None,
            poll: None,
            task: Some(task),
        }
    }

    /// Ends the client's connection to this request's stream with a retry
    /// hint, so it polls with `Last-Event-ID` (2025-11-25, SEP-1699). The
    /// request goes on; later messages reach the client when it resumes.
    /// Does nothing unless the response is a session's resumable stream.
    pub fn close_stream(&self) {
        if let Some(poll) = &self.poll {
            poll.notify_one();
        }
    }

    /// Refuses the request unless the client declared `capability`: a
    /// server must not rely on one it did not. The error is
    /// MissingRequiredClientCapability (-32021), naming the capability in
    /// `requiredCapabilities`; on 2026-07-28's HTTP it is a 400.
    pub fn require_client_capability(&self, capability: &str) -> Result<(), ErrorData> {
        if self.client_capabilities().get(capability).is_some() {
            return Ok(());
        }
        Err(ErrorData::new(
            ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY,
            format!("The client did not declare the {capability} capability this request needs"),
            Some(json!({ "requiredCapabilities": { capability: {} } })),
        ))
    }

    fn peer(&self) -> Option<Arc<PeerState>> {
        self.session().map(|s| self.peers.get_or_create(s))
    }

    /// Sends a notification related to this request.
    pub async fn notify(&self, method: &str, params: Value) {
        if let Some(out) = &self.outbound {
            let _ = out
                .send(Bytes::from(jsonrpc::notification_bytes(
                    method,
                    Some(&params),
                )))
                .await;
        }
    }

    /// Reports progress, if the client asked for it with a progress token.
    pub async fn progress(&self, progress: f64, total: Option<f64>, message: Option<&str>) {
        let Some(token) = &self.progress_token else {
            return;
        };
        let mut params = json!({ "progressToken": token, "progress": progress });
        if let Some(total) = total {
            params["total"] = json!(total);
        }
        if let Some(message) = message {
            params["message"] = json!(message);
        }
        self.notify("notifications/progress", params).await;
    }

    /// Sends a log message if the client's level lets it through.
    pub async fn log(&self, level: &str, logger: Option<&str>, data: Value) {
        let threshold = match (&self.caller, &self.stateless_log_level) {
            (Caller::Client { .. }, None) => return,
            (Caller::Client { .. }, Some(l)) => l.clone(),
            (Caller::Session(_), _) => self
                .peer()
                .and_then(|p| p.log_level())
                .unwrap_or_else(|| "debug".to_string()),
        };
        if severity(level) < severity(&threshold) {
            return;
        }
        let mut params = json!({ "level": level, "data": data });
        if let Some(logger) = logger {
            params["logger"] = json!(logger);
        }
        self.notify("notifications/message", params).await;
    }

    /// Sends a request to the client (sampling, elicitation, roots) on this
    /// request's stream and waits for its answer. Sessionful revisions only:
    /// 2026-07-28 replaced these with input-required results, and its
    /// response streams carry no requests; but within a task (2026-07-28)
    /// the request waits in the task, as one of its `inputRequests`, until
    /// the client answers it with `tasks/update`.
    pub async fn request_client(&self, method: &str, params: Value) -> Result<Value, ErrorData> {
        if let Some(task) = &self.task {
            return task
                .ask(json!({ "method": method, "params": params }))
                .await
                .map_err(|e| ErrorData::internal_error(e.to_string(), None));
        }
        if self.is_stateless() {
            // 2026-07-28 sends no requests on a response stream, nor any other.
            return Err(ErrorData::new(
                ErrorCode::INVALID_REQUEST,
                format!(
                    "{method} cannot be sent to a 2026-07-28 client: the server asks for input \
                     with an input-required result"
                ),
                None,
            ));
        }
        let (Some(peer), Some(out)) = (self.peer(), &self.outbound) else {
            return Err(ErrorData::new(
                ErrorCode::INVALID_REQUEST,
                format!("{method} needs a stream to the client"),
                None,
            ));
        };
        let (id, answer) = peer.expect_response();
        let frame = jsonrpc::request_bytes(&id, method, &params);
        if out.send(Bytes::from(frame)).await.is_err() {
            peer.forget(&id);
            return Err(ErrorData::internal_error(
                "the client's stream closed",
                None,
            ));
        }
        match tokio::time::timeout(CLIENT_REQUEST_TIMEOUT, answer).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(ErrorData::internal_error("the session ended", None)),
            Err(_) => {
                peer.forget(&id);
                Err(ErrorData::internal_error(
                    format!("the client did not answer {method} in time"),
                    None,
                ))
            }
        }
    }
}

/// RFC 5424 severities as MCP names them, lowest first.
const LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

pub(crate) fn severity(level: &str) -> usize {
    LEVELS.iter().position(|l| *l == level).unwrap_or(0)
}

pub(crate) fn is_log_level(level: &str) -> bool {
    LEVELS.contains(&level)
}
