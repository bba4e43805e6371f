//! The end of a request: its answer as a JSON-RPC response body with the
//! status the caller's generation gives it, its row in the request log and
//! its observation in the duration metric. The one place either is made.

use std::sync::Arc;
use std::time::Instant;

use axum::http::StatusCode;
use rmcp::model::{ErrorCode, ErrorData};
use sessiongate_core::lifecycle::RequestLog;
use sessiongate_core::request_log::{RequestLogEntry, RequestStatus};
use sessiongate_core::upstream::UpstreamName;
use sessiongate_core::{SessionId, Timestamp};

use super::state::McpState;
use crate::context::Caller;
use crate::jsonrpc::{self, Id};
use crate::metrics::RequestDurations;
use crate::service::Answer;

/// A request's account, opened when it starts.
pub(super) struct Finisher {
    request_log: Arc<RequestLog>,
    durations: Arc<RequestDurations>,
    id: Id,
    method: String,
    tool_name: Option<String>,
    /// Whether `tool_name` is one of the server's tools.
    known_tool: bool,
    session: Option<SessionId>,
    client_key: Option<String>,
    stateless: bool,
    started: Instant,
    started_at: Timestamp,
    bytes_in: u64,
    upstream: Option<UpstreamName>,
}

impl Finisher {
    /// Opens the account of request `id`, which arrived `at`; its duration
    /// counts from now.
    pub fn start(
        st: &McpState,
        id: Id,
        method: &str,
        tool_name: Option<&str>,
        bytes_in: u64,
        at: Timestamp,
    ) -> Finisher {
        Finisher {
            request_log: st.request_log.clone(),
            durations: st.durations.clone(),
            id,
            method: method.to_string(),
            known_tool: tool_name.is_some_and(|t| st.dispatcher.has_tool(t)),
            tool_name: tool_name.map(str::to_string),
            session: None,
            client_key: None,
            stateless: false,
            started: Instant::now(),
            started_at: at,
            bytes_in,
            upstream: None,
        }
    }

    /// Names the upstream that serves the request.
    pub fn upstream(mut self, upstream: Option<UpstreamName>) -> Finisher {
        self.upstream = upstream;
        self
    }

    /// Attributes the request to its caller.
    pub fn caller(mut self, caller: &Caller) -> Finisher {
        match caller {
            Caller::Session(session) => self.session = Some(session.id()),
            Caller::Client { key, .. } => {
                self.client_key = Some(key.to_string());
                self.stateless = true;
            }
        }
        self
    }

    /// When the request started, by the server's clock.
    pub fn started_at(&self) -> Timestamp {
        self.started_at
    }

    /// Turns a handler's outcome into the response body and accounts for it.
    pub async fn complete(self, outcome: Result<Answer, ErrorData>) -> (StatusCode, Vec<u8>) {
        let (status, body, error) = match &outcome {
            Ok(answer) => (
                StatusCode::OK,
                answer.response_bytes(&self.id),
                answer.tool_error().map(|text| (None, text)),
            ),
            Err(e) => (
                error_status(e, self.stateless),
                jsonrpc::error_bytes(Some(&self.id), e),
                Some((Some(e.code.0 as i64), Some(e.message.to_string()))),
            ),
        };
        // Labels only from the server's own vocabulary: a client naming
        // made-up methods or tools must not mint new time series.
        let unknown_method = matches!(&outcome, Err(e) if e.code == ErrorCode::METHOD_NOT_FOUND);
        let tool = match &self.tool_name {
            Some(t) if self.known_tool => t.as_str(),
            Some(_) => "unknown",
            None => "",
        };
        self.durations.record(
            if unknown_method {
                "unknown"
            } else {
                &self.method
            },
            tool,
            error.is_some(),
            self.stateless,
            self.started.elapsed(),
        );
        self.request_log
            .record(RequestLogEntry {
                session_id: self.session,
                client_key: self.client_key,
                method: self.method,
                tool_name: self.tool_name,
                started_at: self.started_at,
                duration: self.started.elapsed(),
                status: if error.is_some() {
                    RequestStatus::Error
                } else {
                    RequestStatus::Success
                },
                error_code: error.as_ref().and_then(|e| e.0),
                error_message: error.and_then(|e| e.1),
                bytes_in: self.bytes_in,
                bytes_out: body.len() as u64,
                upstream: self.upstream,
            })
            .await;
        (status, body)
    }
}

/// 2026-07-28 puts protocol-level failures in the HTTP status; earlier
/// revisions answer 200 with a JSON-RPC error.
fn error_status(e: &ErrorData, stateless: bool) -> StatusCode {
    if !stateless {
        return StatusCode::OK;
    }
    match e.code {
        ErrorCode::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        ErrorCode::HEADER_MISMATCH
        | ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
        | ErrorCode::UNSUPPORTED_PROTOCOL_VERSION => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}
