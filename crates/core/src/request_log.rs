//! The request log: one row per MCP request, for the session detail view and
//! analytics. Rows are written behind the request path, in batches.

use std::time::Duration;

use serde::Serialize;

use crate::clock::Timestamp;
use crate::ids::SessionId;
use crate::upstream::UpstreamName;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Success,
    Error,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Success => "success",
            RequestStatus::Error => "error",
        }
    }
}

impl std::str::FromStr for RequestStatus {
    type Err = crate::session::UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "success" => Ok(RequestStatus::Success),
            "error" => Ok(RequestStatus::Error),
            _ => Err(crate::session::UnknownValue(s.to_string())),
        }
    }
}

/// One logged request. Sessionful traffic carries its session id; stateless
/// (2026-07-28) traffic carries the client key it is attributed to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestLogEntry {
    pub session_id: Option<SessionId>,
    pub client_key: Option<String>,
    pub method: String,
    pub tool_name: Option<String>,
    pub started_at: Timestamp,
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
    pub status: RequestStatus,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The upstream the request was relayed to; `None` for the built-in
    /// tools and the protocol's own methods.
    pub upstream: Option<UpstreamName>,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_micros() as f64 / 1000.0)
}
