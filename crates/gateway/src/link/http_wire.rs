//! JSON-RPC as the links write and read it: request, notification and
//! response bodies serialized once, from borrowed values, into bytes
//! (stdio writes the same bytes as a line); messages read off a body or an
//! SSE event; and the mapping of reqwest's failures and HTTP error statuses
//! onto [`LinkError`]. Shared by Streamable HTTP, HTTP+SSE and stdio.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Incoming, LinkError, OutboundId, RpcError};

/// How much of an unexpected body an error quotes.
const EXCERPT: usize = 200;

#[derive(Serialize)]
struct OutRequest<'a> {
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<OutboundId>,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a Value>,
}

#[derive(Serialize)]
struct OutResponse<'a> {
    jsonrpc: &'static str,
    id: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<OutError<'a>>,
}

#[derive(Serialize)]
struct OutError<'a> {
    code: i32,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Value>,
}

/// A request (`id: Some`) or notification body.
pub(crate) fn encode_request(
    id: Option<OutboundId>,
    method: &str,
    params: Option<&Value>,
) -> Bytes {
    Bytes::from(request_vec(id, method, params))
}

/// [`encode_request`] as a vector, to append to.
pub(crate) fn request_vec(id: Option<OutboundId>, method: &str, params: Option<&Value>) -> Vec<u8> {
    let out = OutRequest {
        jsonrpc: "2.0",
        id,
        method,
        params,
    };
    // Serializing borrowed `Value`s into a Vec cannot fail.
    serde_json::to_vec(&out).unwrap_or_default()
}

/// The body answering an upstream's request.
pub(crate) fn encode_response(id: &Value, outcome: &Result<Value, RpcError>) -> Bytes {
    Bytes::from(response_vec(id, outcome))
}

/// [`encode_response`] as a vector, to append to.
pub(crate) fn response_vec(id: &Value, outcome: &Result<Value, RpcError>) -> Vec<u8> {
    let out = match outcome {
        Ok(result) => OutResponse {
            jsonrpc: "2.0",
            id,
            result: Some(result),
            error: None,
        },
        Err(e) => OutResponse {
            jsonrpc: "2.0",
            id,
            result: None,
            error: Some(OutError {
                code: e.code,
                message: &e.message,
                data: e.data.as_ref(),
            }),
        },
    };
    serde_json::to_vec(&out).unwrap_or_default()
}

/// Any JSON-RPC message the upstream sends, read in one pass.
#[derive(Deserialize)]
struct InMessage {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<Value>,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<InError>,
}

#[derive(Deserialize)]
struct InError {
    code: i32,
    #[serde(default)]
    message: String,
    #[serde(default)]
    data: Option<Value>,
}

impl From<InError> for RpcError {
    fn from(e: InError) -> Self {
        RpcError {
            code: e.code,
            message: e.message,
            data: e.data,
        }
    }
}

/// What one message from the upstream is.
pub(crate) enum Message {
    /// A response: the id it answers (`None` when the id is not one the
    /// gateway sends) and its outcome.
    Response {
        id: Option<OutboundId>,
        outcome: Result<Value, LinkError>,
    },
    /// A notification or request of the upstream's own.
    Incoming(Incoming),
}

/// Reads one JSON-RPC message; `related` is what an incoming message
/// relates to.
pub(crate) fn decode(bytes: &[u8], related: Option<OutboundId>) -> Result<Message, LinkError> {
    let m: InMessage = serde_json::from_slice(bytes).map_err(|e| not_jsonrpc(&e, bytes))?;
    if let Some(method) = m.method {
        return Ok(Message::Incoming(match m.id {
            Some(id) => Incoming::Request {
                id,
                method,
                params: m.params,
                related,
            },
            None => Incoming::Notification {
                method,
                params: m.params,
                related,
            },
        }));
    }
    let id = m.id.as_ref().and_then(Value::as_u64);
    let outcome = match (m.result, m.error) {
        (_, Some(error)) => Err(LinkError::Rpc(error.into())),
        (Some(result), None) => Ok(result),
        (None, None) => Err(LinkError::Transport {
            reason: format!(
                "the upstream sent a message that is neither a request nor a response: {}",
                excerpt(bytes)
            ),
            delivered: true,
        }),
    };
    Ok(Message::Response { id, outcome })
}

/// The JSON-RPC error an HTTP error status's body carries, if it does.
pub(crate) fn rpc_error_in(body: &[u8]) -> Option<RpcError> {
    #[derive(Deserialize)]
    struct Body {
        error: InError,
    }
    serde_json::from_slice::<Body>(body)
        .ok()
        .map(|b| b.error.into())
}

/// An HTTP status the exchange does not expect: the JSON-RPC error its
/// body carries, or the status with the start of its body.
pub(crate) fn status_error(status: reqwest::StatusCode, body: &[u8]) -> LinkError {
    match rpc_error_in(body) {
        Some(e) => LinkError::Rpc(e),
        None => LinkError::Transport {
            reason: format!("the upstream answered HTTP {status}: {}", excerpt(body)),
            delivered: true,
        },
    }
}

/// A failure of reqwest's: before a connection was made nothing was sent.
pub(crate) fn send_error(e: &reqwest::Error) -> LinkError {
    LinkError::Transport {
        reason: format!("the upstream could not be reached: {}", chain(e)),
        delivered: !e.is_connect(),
    }
}

/// A failure while reading what the upstream answered: the request was
/// delivered.
pub(crate) fn read_error(e: &dyn std::error::Error) -> LinkError {
    LinkError::Transport {
        reason: format!("reading the upstream's answer failed: {}", chain(e)),
        delivered: true,
    }
}

fn not_jsonrpc(e: &serde_json::Error, bytes: &[u8]) -> LinkError {
    LinkError::Transport {
        reason: format!(
            "the upstream sent something other than JSON-RPC ({e}): {}",
            excerpt(bytes)
        ),
        delivered: true,
    }
}

/// The error and its causes on one line: reqwest's own message alone
/// ("error sending request") does not say what went wrong.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The start of a body, as text, for an error message.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(EXCERPT)]);
    let text = text.trim();
    if body.len() > EXCERPT {
        format!("{text}…")
    } else if text.is_empty() {
        "(empty body)".to_string()
    } else {
        text.to_string()
    }
}

/// Why an HTTP upstream's configuration cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpConfigError {
    #[error("the upstream URL {url:?} is not valid: {reason}")]
    Url { url: String, reason: String },
    #[error("the upstream URL {0:?} is not an http:// or https:// URL")]
    Scheme(String),
    #[error("the header {name:?} cannot be sent: {reason}")]
    Header { name: String, reason: String },
    #[error("the HTTP client could not be built: {0}")]
    Client(String),
}

/// The one client an upstream's links share (pooled connections,
/// TCP_NODELAY, the connect timeout, the static headers on every request),
/// and the URL it names.
pub(crate) fn client_for(
    config: &crate::config::HttpConfig,
) -> Result<(reqwest::Client, reqwest::Url), HttpConfigError> {
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

    let url = reqwest::Url::parse(&config.url).map_err(|e| HttpConfigError::Url {
        url: config.url.clone(),
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(HttpConfigError::Scheme(config.url.clone()));
    }
    let mut headers = HeaderMap::with_capacity(config.headers.len());
    for (name, value) in &config.headers {
        let header = |reason: String| HttpConfigError::Header {
            name: name.clone(),
            reason,
        };
        let key = HeaderName::from_bytes(name.as_bytes()).map_err(|e| header(e.to_string()))?;
        let mut value = HeaderValue::from_str(value).map_err(|e| header(e.to_string()))?;
        value.set_sensitive(true);
        headers.insert(key, value);
    }
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(config.connect_timeout)
        .pool_idle_timeout(config.idle_timeout)
        .default_headers(headers)
        .build()
        .map_err(|e| HttpConfigError::Client(chain(&e)))?;
    Ok((client, url))
}
