//! What a request to `/mcp` says about itself, read once and passed along:
//! the headers the transport reads, the remote address, what `Accept`
//! allows, the session it names, and for a POST the body's size and its
//! messages, each with the head of its params read ([`Request`]). The
//! Origin/Host guard runs before any of it.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, Request as HttpRequest};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rmcp::model::ErrorData;
use serde_json::Value;
use sessiongate_core::stream::EventId;
use sessiongate_core::SessionId;

use super::responses::{refused, rpc_error};
use super::state::McpState;
use crate::client_info::Origin;
use crate::guard;
use crate::jsonrpc::{self, Body, Id, Invalid, Message};
use crate::protocol::{self, *};
use crate::request::Request;

/// What the client's `Accept` allows.
#[derive(Clone, Copy)]
pub(super) struct Accepts {
    pub json: bool,
    pub sse: bool,
}

impl Accepts {
    /// What a batch's items are answered as: JSON, inside the batch's array.
    pub const JSON: Accepts = Accepts {
        json: true,
        sse: false,
    };

    fn of(headers: &HeaderMap) -> Accepts {
        let Some(accept) = header_str(headers, header::ACCEPT) else {
            // No Accept header means anything is acceptable.
            return Accepts {
                json: true,
                sse: true,
            };
        };
        let mut a = Accepts {
            json: false,
            sse: false,
        };
        // Bytes, not chars: this runs on every request.
        for item in accept.as_bytes().split(|&b| b == b',') {
            let media = item
                .split(|&b| b == b';')
                .next()
                .unwrap_or(b"")
                .trim_ascii();
            let is = |name: &str| media.eq_ignore_ascii_case(name.as_bytes());
            if is("application/json") || is("application/*") {
                a.json = true;
            } else if is("text/event-stream") || is("text/*") {
                a.sse = true;
            } else if media == b"*/*" {
                a.json = true;
                a.sse = true;
            }
        }
        a
    }
}

/// `Mcp-Session-Id` as sent.
#[derive(Clone, Copy)]
pub(super) enum SessionHeader {
    Absent,
    /// Present, but no session's id.
    Malformed,
    Id(SessionId),
}

/// The facts of one request.
pub(super) struct Inbound {
    headers: HeaderMap,
    /// The client's address; formatted only where it is recorded.
    pub remote: Option<IpAddr>,
    pub accept: Accepts,
    pub session: SessionHeader,
    /// Bytes of the body: a POST's, else none.
    pub size: u64,
}

/// The messages of a POST body.
pub(super) enum Messages {
    Single(Incoming),
    /// 2025-03-26 only; each item read on its own.
    Batch(Vec<Result<Incoming, Invalid>>),
}

/// One message, the head of its params read.
pub(super) enum Incoming {
    Request {
        id: Id,
        request: Request,
    },
    Notification(Request),
    /// The client's answer to a request the server sent it.
    Response {
        id: Id,
        outcome: Result<Value, ErrorData>,
    },
}

impl From<Message> for Incoming {
    fn from(message: Message) -> Self {
        match message {
            Message::Request { id, method, params } => Incoming::Request {
                id,
                request: Request::new(method, params),
            },
            Message::Notification { method, params } => {
                Incoming::Notification(Request::new(method, params))
            }
            Message::Response { id, outcome } => Incoming::Response { id, outcome },
        }
    }
}

impl Incoming {
    pub fn request(&self) -> Option<&Request> {
        match self {
            Incoming::Request { request, .. } | Incoming::Notification(request) => Some(request),
            Incoming::Response { .. } => None,
        }
    }
}

impl Messages {
    /// The id of the request a refusal of the whole body answers.
    pub fn request_id(&self) -> Option<&Id> {
        match self {
            Messages::Single(Incoming::Request { id, .. }) => Some(id),
            _ => None,
        }
    }
}

impl Inbound {
    /// Reads the facts of a request's head, once the guard lets it through.
    fn read(st: &McpState, parts: Parts) -> Result<Inbound, Box<Response>> {
        // Origin and Host first, before anything else looks at the request.
        if let Some(refused) = guard::check(&st.config.origins, &parts.headers) {
            return Err(Box::new(refused));
        }
        let headers = parts.headers;
        Ok(Inbound {
            remote: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
            accept: Accepts::of(&headers),
            session: match headers.get(HEADER_SESSION_ID) {
                None => SessionHeader::Absent,
                Some(v) => v
                    .to_str()
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .map_or(SessionHeader::Malformed, SessionHeader::Id),
            },
            headers,
            size: 0,
        })
    }

    /// Reads a POST: its facts, then its body, within the limits, as
    /// JSON-RPC. The response to send instead when any of it fails.
    pub async fn receive(st: &McpState, req: HttpRequest) -> Result<(Inbound, Messages), Response> {
        let (parts, body) = req.into_parts();
        let mut inbound = Inbound::read(st, parts).map_err(|refused| *refused)?;
        if !is_json_content(&inbound.headers) {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json",
            )
                .into_response());
        }
        if !inbound.accept.json && !inbound.accept.sse {
            return Err((
                StatusCode::NOT_ACCEPTABLE,
                "Accept must allow application/json or text/event-stream",
            )
                .into_response());
        }
        let limit = st.config.max_body_bytes;
        let too_large = || {
            refused(
                "body_size",
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body exceeds the limit of {limit} bytes"),
                )
                    .into_response(),
            )
        };
        // A declared length over the limit is refused before a byte is read.
        let declared = header_str(&inbound.headers, header::CONTENT_LENGTH)
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let timeout = st.config.body_read_timeout;
        let bytes = match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
            Ok(Ok(b)) => b,
            Ok(Err(_)) => return Err(too_large()),
            Err(_) => {
                return Err(refused(
                    "body_read_timeout",
                    (
                        StatusCode::REQUEST_TIMEOUT,
                        [(header::CONNECTION, HeaderValue::from_static("close"))],
                        format!("the request body did not arrive within {timeout:?}"),
                    )
                        .into_response(),
                ))
            }
        };
        inbound.size = bytes.len() as u64;
        let messages = match jsonrpc::parse(&bytes) {
            Ok(Body::Single(message)) => Messages::Single(message.into()),
            Ok(Body::Batch(items)) => Messages::Batch(
                items
                    .into_iter()
                    .map(|item| item.map(Incoming::from))
                    .collect(),
            ),
            Err(Invalid { id, error }) => {
                return Err(rpc_error(StatusCode::BAD_REQUEST, id.as_ref(), error))
            }
        };
        Ok((inbound, messages))
    }

    fn header(&self, name: impl header::AsHeaderName) -> Option<&str> {
        header_str(&self.headers, name)
    }

    /// `MCP-Protocol-Version`.
    pub fn protocol_version(&self) -> Option<&str> {
        self.header(HEADER_PROTOCOL_VERSION)
    }

    /// Whether `MCP-Protocol-Version` names the stateless revision.
    pub fn is_stateless(&self) -> bool {
        self.protocol_version().is_some_and(protocol::is_stateless)
    }

    /// `Mcp-Method`.
    pub fn mcp_method(&self) -> Option<&str> {
        self.header(HEADER_METHOD)
    }

    /// `Mcp-Name`, decoded (`=?base64?...?=` for values that are not plain
    /// ASCII); `Some(None)` when it cannot be, or holds bytes that are not
    /// visible ASCII.
    pub fn mcp_name(&self) -> Option<Option<String>> {
        self.headers
            .get(HEADER_NAME)
            .map(|v| v.to_str().ok().and_then(decode_header_value))
    }

    /// `Mcp-Param-{name}`, decoded as `Mcp-Name` is; `None` when absent or
    /// when `name` cannot be part of a header's name.
    pub fn mcp_param(&self, name: &str) -> Option<Option<String>> {
        let header = header::HeaderName::try_from(format!("mcp-param-{name}")).ok()?;
        self.headers
            .get(header)
            .map(|v| v.to_str().ok().and_then(decode_header_value))
    }

    pub fn has_session_header(&self) -> bool {
        !matches!(self.session, SessionHeader::Absent)
    }

    /// `Mcp-Reconnect-Token`.
    pub fn reconnect_token(&self) -> Option<&str> {
        self.header(HEADER_RECONNECT_TOKEN)
    }

    /// `Last-Event-ID`; an id that is not one of ours resumes nothing.
    pub fn last_event_id(&self) -> Option<EventId> {
        self.header(HEADER_LAST_EVENT_ID)?.parse().ok()
    }

    pub fn origin(&self) -> Origin<'_> {
        Origin {
            remote: self.remote,
            user_agent: self.header(header::USER_AGENT),
        }
    }
}

impl FromRequest<McpState> for Inbound {
    type Rejection = Response;

    /// The facts of a request without a body to read (GET, DELETE, others).
    async fn from_request(req: HttpRequest, st: &McpState) -> Result<Self, Response> {
        Inbound::read(st, req.into_parts().0).map_err(|refused| *refused)
    }
}

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn is_json_content(headers: &HeaderMap) -> bool {
    header_str(headers, header::CONTENT_TYPE)
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

fn decode_header_value(value: &str) -> Option<String> {
    use base64::Engine;
    match value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|b| String::from_utf8(b).ok()),
        None => Some(value.to_string()),
    }
}
