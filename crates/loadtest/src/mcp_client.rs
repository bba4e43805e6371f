//! A small async MCP client over Streamable HTTP, for both protocol
//! generations: JSON-RPC over POST answered as JSON or as an SSE stream,
//! `Mcp-Session-Id` and DELETE for sessionful revisions, per-request `_meta`
//! and mirrored headers for 2026-07-28, and sessiongate's reconnect tokens.
//! Every client shares one connection-pooling `reqwest::Client`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{Response, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::sse;
use crate::stats::{Op, Stats};
use crate::Error;

pub const HEADER_SESSION_ID: &str = "mcp-session-id";
pub const HEADER_PROTOCOL_VERSION: &str = "mcp-protocol-version";
pub const HEADER_METHOD: &str = "mcp-method";
pub const HEADER_NAME: &str = "mcp-name";
/// sessiongate's: issued with a session, sent back to reclaim it after a timeout.
pub const HEADER_RECONNECT_TOKEN: &str = "mcp-reconnect-token";
const META_RECONNECT_TOKEN: &str = "io.sessiongate/reconnectToken";

const CLIENT_NAME: &str = "sessiongate-loadtest";
const CLIENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How a request failed; `kind()` is the key the report counts it under.
#[derive(Debug, Clone)]
pub enum Failure {
    /// A non-2xx answer, with the JSON-RPC error code its body carried.
    Status {
        status: u16,
        code: Option<i64>,
        detail: String,
    },
    /// A JSON-RPC error answer.
    Rpc {
        code: i64,
        message: String,
    },
    /// A tool result with `isError: true`.
    Tool(String),
    /// A tool answer without the text the client sent.
    WrongAnswer(String),
    Timeout,
    Connect,
    /// The connection broke mid-exchange.
    Transport,
    /// Not a JSON-RPC answer to the request.
    Invalid(String),
}

impl Failure {
    pub fn kind(&self) -> String {
        match self {
            Failure::Status {
                status,
                code: Some(c),
                ..
            } => format!("http {status} (jsonrpc {c})"),
            Failure::Status { status, .. } => format!("http {status}"),
            Failure::Rpc { code, .. } => format!("jsonrpc {code}"),
            Failure::Tool(_) => "tool error".into(),
            Failure::WrongAnswer(_) => "wrong answer".into(),
            Failure::Timeout => "timeout".into(),
            Failure::Connect => "connect".into(),
            Failure::Transport => "transport".into(),
            Failure::Invalid(_) => "invalid response".into(),
        }
    }

    /// The server does not know the session (ended, expired or never existed).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Failure::Status { status: 404, .. })
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Status { detail, .. } if !detail.is_empty() => {
                write!(f, "{}: {detail}", self.kind())
            }
            Failure::Rpc { message, .. } => write!(f, "{}: {message}", self.kind()),
            Failure::Tool(m) | Failure::WrongAnswer(m) | Failure::Invalid(m) => {
                write!(f, "{}: {m}", self.kind())
            }
            Failure::Connect => f.write_str("connect: nothing accepts connections there"),
            Failure::Timeout => f.write_str("timeout: no answer within --request-timeout"),
            Failure::Transport => f.write_str("transport: the connection broke mid-exchange"),
            Failure::Status { .. } => f.write_str(&self.kind()),
        }
    }
}

fn from_reqwest(e: reqwest::Error) -> Failure {
    if e.is_timeout() {
        Failure::Timeout
    } else if e.is_connect() {
        Failure::Connect
    } else {
        Failure::Transport
    }
}

/// A header value as the 2026-07-28 transport mirrors it: plain when it is
/// safe visible ASCII, else the `=?base64?...?=` sentinel form.
pub fn mirrored_header(value: &str) -> String {
    use base64::Engine;
    let plain = !value.is_empty()
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && value.trim() == value
        && !(value.starts_with("=?base64?") && value.ends_with("?="));
    if plain {
        value.to_string()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(value)
        )
    }
}

/// The MCP endpoint and the pooled HTTP client every session uses.
pub struct Endpoint {
    http: reqwest::Client,
    url: reqwest::Url,
}

impl Endpoint {
    pub fn new(url: &str, timeout: Duration, pool: usize) -> Result<Endpoint, Error> {
        let url = reqwest::Url::parse(url)
            .map_err(|e| Error::Options(format!("--url {url:?} is not a URL: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .tcp_nodelay(true)
            .pool_max_idle_per_host(pool)
            .user_agent(concat!("sessiongate-loadtest/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::Http)?;
        Ok(Endpoint { http, url })
    }

    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

/// A successful answer.
#[derive(Debug)]
pub struct Reply {
    /// The JSON-RPC result, unparsed: callers read what they need.
    pub result: Box<RawValue>,
    pub session_id: Option<String>,
    /// A reconnect token the server issued with this answer.
    pub token: Option<String>,
}

#[derive(serde::Serialize)]
struct Request<'a> {
    jsonrpc: &'static str,
    id: u64,
    method: &'a str,
    params: &'a Value,
}

/// Extra per-request headers (`Mcp-Param-*`).
pub type Extra = Vec<(HeaderName, String)>;

/// One client's protocol state: its session (if the revision has one), the
/// negotiated revision and its newest reconnect token.
pub struct Session {
    endpoint: Arc<Endpoint>,
    stats: Arc<Stats>,
    pub version: String,
    pub stateless: bool,
    pub id: Option<String>,
    pub token: Option<String>,
    initialized: bool,
    next_id: u64,
}

impl Reply {
    /// The result as a JSON tree.
    pub fn value(&self) -> Value {
        serde_json::from_str(self.result.get()).unwrap_or(Value::Null)
    }
}

impl Session {
    pub fn new(endpoint: Arc<Endpoint>, stats: Arc<Stats>, version: &str, stateless: bool) -> Self {
        Session {
            endpoint,
            stats,
            version: version.to_string(),
            stateless,
            id: None,
            token: None,
            initialized: false,
            next_id: 0,
        }
    }

    /// `initialize` and `notifications/initialized` (sessionful revisions).
    pub async fn initialize(&mut self) -> Result<(), Failure> {
        let params = json!({
            "protocolVersion": self.version,
            "capabilities": {},
            "clientInfo": {"name": CLIENT_NAME, "version": CLIENT_VERSION},
        });
        let reply = self
            .request(Op::Initialize, "initialize", params, Vec::new(), false)
            .await?;
        let result = reply.value();
        if let Some(v) = result["protocolVersion"].as_str() {
            self.version = v.to_string();
        }
        self.id = reply.session_id;
        self.token = reply.token.or_else(|| {
            result["_meta"][META_RECONNECT_TOKEN]
                .as_str()
                .map(str::to_string)
        });
        self.initialized = true;
        self.notify("notifications/initialized").await
    }

    /// Sends a request and waits for its answer. With `reclaim`, the request
    /// carries the session's reconnect token.
    pub async fn request(
        &mut self,
        op: Op,
        method: &str,
        mut params: Value,
        extra: Extra,
        reclaim: bool,
    ) -> Result<Reply, Failure> {
        self.next_id += 1;
        let id = self.next_id;
        let mut headers = self.headers(method, &mut params, reclaim);
        for (name, value) in extra {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        let body = serde_json::to_string(&Request {
            jsonrpc: "2.0",
            id,
            method,
            params: &params,
        })
        .unwrap_or_default();
        let reply = self.post(op, body, headers, Some(id)).await?;
        if let Some(token) = &reply.token {
            // Each use rotates the token; only the newest works.
            self.token = Some(token.clone());
        }
        Ok(reply)
    }

    /// Sends a notification; the server answers 202 without a body.
    pub async fn notify(&mut self, method: &str) -> Result<(), Failure> {
        let mut params = json!({});
        let headers = self.headers(method, &mut params, false);
        let body = json!({"jsonrpc": "2.0", "method": method}).to_string();
        self.post(Op::Initialized, body, headers, None)
            .await
            .map(drop)
    }

    /// Ends the session with `DELETE`. A server that does not let clients end
    /// sessions answers 405, which is reported as such.
    pub async fn delete(&mut self) -> Result<(), Failure> {
        let Some(id) = self.id.take() else {
            return Ok(());
        };
        let started = Instant::now();
        let sent = self
            .endpoint
            .http
            .delete(self.endpoint.url.clone())
            .header(HEADER_SESSION_ID, &id)
            .header(HEADER_PROTOCOL_VERSION, &self.version)
            .send()
            .await;
        self.stats.request(Op::Delete, started.elapsed());
        let response = sent.map_err(from_reqwest)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        Err(error_answer(status, response).await)
    }

    fn headers(&self, method: &str, params: &mut Value, reclaim: bool) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        let version = HeaderValue::from_str(&self.version).ok();
        if self.stateless {
            if !params.is_object() {
                *params = json!({});
            }
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": self.version,
                "io.modelcontextprotocol/clientInfo": {"name": CLIENT_NAME, "version": CLIENT_VERSION},
                "io.modelcontextprotocol/clientCapabilities": {},
            });
            if let Some(v) = version {
                h.insert(HEADER_PROTOCOL_VERSION, v);
            }
            if let Ok(v) = HeaderValue::from_str(method) {
                h.insert(HEADER_METHOD, v);
            }
            let name = match method {
                "tools/call" | "prompts/get" => params["name"].as_str(),
                "resources/read" => params["uri"].as_str(),
                _ => None,
            };
            if let Some(v) = name.and_then(|n| HeaderValue::from_str(&mirrored_header(n)).ok()) {
                h.insert(HEADER_NAME, v);
            }
            return h;
        }
        if self.initialized {
            if let Some(v) = version {
                h.insert(HEADER_PROTOCOL_VERSION, v);
            }
        }
        if let Some(v) = self
            .id
            .as_deref()
            .and_then(|i| HeaderValue::from_str(i).ok())
        {
            h.insert(HEADER_SESSION_ID, v);
        }
        if reclaim {
            if let Some(v) = self
                .token
                .as_deref()
                .and_then(|t| HeaderValue::from_str(t).ok())
            {
                h.insert(HEADER_RECONNECT_TOKEN, v);
            }
        }
        h
    }

    async fn post(
        &self,
        op: Op,
        body: String,
        headers: HeaderMap,
        id: Option<u64>,
    ) -> Result<Reply, Failure> {
        let started = Instant::now();
        let sent = self
            .endpoint
            .http
            .post(self.endpoint.url.clone())
            .headers(headers)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                self.stats.request(op, started.elapsed());
                return Err(from_reqwest(e));
            }
        };
        let (outcome, rest) = answer(response, id).await;
        self.stats.request(op, started.elapsed());
        if let Some(rest) = rest {
            drain(rest).await;
        }
        outcome
    }
}

fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Reads the answer to request `id` (`None`: a notification). An SSE
/// response may go on after the answer; it comes back to be drained.
async fn answer(
    mut response: Response,
    id: Option<u64>,
) -> (Result<Reply, Failure>, Option<Response>) {
    let status = response.status();
    if !status.is_success() {
        return (Err(error_answer(status, response).await), None);
    }
    let session_id = header(&response, HEADER_SESSION_ID);
    let token = header(&response, HEADER_RECONNECT_TOKEN);
    let reply = |result| Reply {
        result,
        session_id: session_id.clone(),
        token: token.clone(),
    };
    let Some(id) = id else {
        return (Ok(reply(RawValue::NULL.to_owned())), None);
    };
    let sse = header(&response, CONTENT_TYPE.as_str())
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    if !sse {
        let outcome = match response.bytes().await {
            Ok(body) => json_answer(&body, id),
            Err(e) => Err(from_reqwest(e)),
        };
        return (outcome.map(reply), None);
    }
    let mut parser = sse::Parser::default();
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => {
                let e = Failure::Invalid("the SSE stream ended without the answer".into());
                return (Err(e), None);
            }
            Err(e) => return (Err(from_reqwest(e)), None),
        };
        for event in parser.feed(&chunk) {
            // Notifications and server requests before the answer are
            // skipped: the tester declares no client capabilities.
            if let Ok(msg) = serde_json::from_str::<Message>(&event.data) {
                if msg.answers(id) {
                    return (msg.outcome().map(reply), Some(response));
                }
            }
        }
    }
}

/// The parts of a JSON-RPC message the client reads. Borrowed and typed,
/// so an answer costs no JSON tree: at full speed the tester spends less
/// CPU per request than the servers it measures.
#[derive(Deserialize)]
struct Message<'a> {
    id: Option<u64>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    error: Option<RpcError<'a>>,
}

#[derive(Deserialize)]
struct RpcError<'a> {
    #[serde(default)]
    code: i64,
    #[serde(borrow, default)]
    message: Cow<'a, str>,
}

impl Message<'_> {
    fn answers(&self, id: u64) -> bool {
        self.id == Some(id) && (self.result.is_some() || self.error.is_some())
    }

    fn outcome(self) -> Result<Box<RawValue>, Failure> {
        if let Some(e) = self.error {
            return Err(Failure::Rpc {
                code: e.code,
                message: e.message.into_owned(),
            });
        }
        self.result
            .map(RawValue::to_owned)
            .ok_or_else(|| Failure::Invalid("neither result nor error".into()))
    }
}

/// The answer to request `id` in a JSON body: one message, or a batch.
fn json_answer(body: &[u8], id: u64) -> Result<Box<RawValue>, Failure> {
    let not_json = || Failure::Invalid("the body is not a JSON-RPC answer".into());
    if body.trim_ascii_start().starts_with(b"[") {
        let batch: Vec<Message> = serde_json::from_slice(body).map_err(|_| not_json())?;
        return batch
            .into_iter()
            .find(|m| m.answers(id))
            .ok_or_else(|| Failure::Invalid("no answer in the batch".into()))?
            .outcome();
    }
    serde_json::from_slice::<Message>(body)
        .map_err(|_| not_json())?
        .outcome()
}

/// Reads what is left of an SSE response so the connection goes back to the
/// pool; a server that keeps the stream open gets it closed instead.
async fn drain(mut response: Response) {
    while let Ok(Ok(Some(_))) =
        tokio::time::timeout(Duration::from_millis(20), response.chunk()).await
    {}
}

/// A non-2xx answer, with whatever its body says (JSON-RPC error or
/// `{"detail": ...}`).
async fn error_answer(status: StatusCode, response: Response) -> Failure {
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let code = body["error"]["code"].as_i64();
    let detail = body["error"]["message"]
        .as_str()
        .or_else(|| body["detail"].as_str())
        .unwrap_or("")
        .to_string();
    Failure::Status {
        status: status.as_u16(),
        code,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrored_headers_encode_what_is_not_plain_ascii() {
        assert_eq!(mirrored_header("echo"), "echo");
        assert_eq!(
            mirrored_header("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(mirrored_header(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(
            mirrored_header("=?base64?literal?="),
            "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
        );
    }

    #[test]
    fn failures_are_counted_by_status_and_code() {
        let f = Failure::Status {
            status: 404,
            code: Some(-32001),
            detail: String::new(),
        };
        assert_eq!(f.kind(), "http 404 (jsonrpc -32001)");
        assert!(f.is_not_found());
        assert_eq!(
            Failure::Rpc {
                code: -32601,
                message: "no".into()
            }
            .kind(),
            "jsonrpc -32601"
        );
    }
}
