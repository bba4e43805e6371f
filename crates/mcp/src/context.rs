//! What a handler knows about the request it serves, and how it talks back:
//! notifications and server-to-client requests related to the request go on
//! the request's own SSE stream, and input from the client is asked for
//! the same way on both generations ([`input`](crate::input)).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use rmcp::model::{ErrorCode, ErrorData};
use serde_json::{json, Value};
use sessiongate_core::lifecycle::{ActiveSession, Reclaim, SessionManager, TaskHandle, Tasks};
use sessiongate_core::session::ClientIdentity;
use sessiongate_core::Timestamp;
use tokio::sync::{mpsc, Notify};

use crate::input::{InputRequest, Rounds};
use crate::jsonrpc::{self, Id};
use crate::peers::{Asked, PeerState, Peers};
use crate::protocol;

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

/// A stateless client's name: its principal and client key. What is kept
/// for such a client alone (a gateway's pooled upstream session) is kept
/// under it, and its listen streams hear of what changed for it under it.
pub fn stateless_client(key: &str, identity: &ClientIdentity) -> Arc<str> {
    format!("{}|{key}", identity.principal.as_deref().unwrap_or("")).into()
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
    /// A stateless request's rounds of input, set by the dispatcher on the
    /// methods that may answer input-required.
    pub(crate) input: OnceLock<Box<Rounds>>,
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

    /// Who a stateless caller is, as [`stateless_client`] names it; `None`
    /// for a session.
    pub fn stateless_client(&self) -> Option<Arc<str>> {
        match &self.caller {
            Caller::Session(_) => None,
            Caller::Client { key, identity } => Some(stateless_client(key, identity)),
        }
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
            input: self
                .input
                .get()
                .map(|rounds| OnceLock::from(Box::new(Rounds::gathered(rounds.answered()))))
                .unwrap_or_default(),
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
        Err(protocol::missing_client_capability(
            format!("The client did not declare the {capability} capability this request needs"),
            json!({ capability: {} }),
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

    /// Whether the client declared what asking for `request` needs.
    pub fn can_ask(&self, request: &InputRequest) -> bool {
        request.allowed_by(self.client_capabilities())
    }

    /// Asks the client for one input and returns its answer (the result of
    /// the request's method). On a sessionful revision it is a request to
    /// the client on this request's stream. On 2026-07-28 the answer comes
    /// from the retry's `inputResponses[key]` or an earlier round's state;
    /// if neither has it, the error ends the handler and the request
    /// answers input-required (see [`input`](crate::input)): pass it on
    /// with `?`. A capability the client did not declare is refused with
    /// `MissingRequiredClientCapability`.
    pub async fn ask(&self, key: &str, request: InputRequest) -> Result<Value, ErrorData> {
        let mut answers = self.ask_all(vec![(key, request)]).await?;
        Ok(answers.pop().expect("one answer per ask"))
    }

    /// Asks for several inputs at once: on 2026-07-28 every unanswered one
    /// goes into the same input-required result. Answers come in order.
    pub async fn ask_all(&self, asks: Vec<(&str, InputRequest)>) -> Result<Vec<Value>, ErrorData> {
        if let Some((_, refused)) = asks.iter().find(|(_, r)| !self.can_ask(r)) {
            return Err(refused.missing_capability());
        }
        if self.task.is_some() {
            // A task's work is answered from what its call gathered before
            // the task began, else through the task (`tasks/update`); all
            // at once, so the task shows every open question together.
            let gathered = self.input.get();
            let asks = asks.into_iter().map(|(key, request)| async move {
                match gathered.and_then(|rounds| rounds.given(key)) {
                    Some(answer) => Ok(answer.clone()),
                    None => {
                        self.request_client(request.kind().method(), request.params().clone())
                            .await
                    }
                }
            });
            return futures::future::try_join_all(asks).await;
        }
        match &self.caller {
            Caller::Session(_) => {
                let mut answers = Vec::with_capacity(asks.len());
                for (_, request) in asks {
                    let method = request.kind().method();
                    answers.push(
                        self.request_client(method, request.params().clone())
                            .await?,
                    );
                }
                Ok(answers)
            }
            Caller::Client { .. } => match self.input.get() {
                Some(rounds) => rounds.answer(asks),
                None => Err(ErrorData::internal_error(
                    "only tools/call, prompts/get and resources/read may ask the client for \
                     input in 2026-07-28",
                    None,
                )),
            },
        }
    }

    /// Rounds of input behind this request: 0 on a first call, `n` on a
    /// 2026-07-28 retry whose verified state comes from the `n`th. Always
    /// 0 for a session, which asks on its stream.
    pub fn input_round(&self) -> u32 {
        self.input.get().map_or(0, |r| r.round())
    }

    /// Sends a request to the client (sampling, elicitation, roots) on this
    /// request's stream and waits for its answer. Sessionful revisions only:
    /// 2026-07-28 replaced these with input-required results, which
    /// [`ask`](Self::ask) speaks for both; but within a task (2026-07-28)
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
        // Guarded before it is sent: dropped while the stream has no room,
        // the request is forgotten too.
        let asked = Asked::new(&peer, id, |frame| {
            let _ = out.try_send(frame);
        });
        if out.send(Bytes::from(frame)).await.is_err() {
            return Err(ErrorData::internal_error(
                "the client's stream closed",
                None,
            ));
        }
        asked.answer(method, answer, CLIENT_REQUEST_TIMEOUT).await
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
