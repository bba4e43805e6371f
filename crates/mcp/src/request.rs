//! An MCP request as the server reads it: the method and the members of
//! `params` that anything before the handler needs — the `_meta` that
//! decides the generation and carries the progress token, the `name`,
//! `uri` or `taskId` a request targets, a call's `arguments`, and a
//! 2026-07-28 retry's `inputResponses` and `requestState`. They are read once per
//! message, when the transport classifies it, and handed on: routing,
//! header checks, the request log and the handler all read this value.

use rmcp::model::{ErrorData, JsonObject};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// The parts of `params._meta` the server reads.
#[derive(Deserialize, Default, Debug, Clone)]
pub struct RequestMeta {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion")]
    pub protocol_version: Option<Value>,
    // Kept raw: a stateless client repeats both on every request, and the
    // identity cache reads them only when they change.
    #[serde(rename = "io.modelcontextprotocol/clientInfo")]
    pub client_info: Option<Box<RawValue>>,
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities")]
    pub client_capabilities: Option<Box<RawValue>>,
    #[serde(rename = "io.modelcontextprotocol/logLevel")]
    pub log_level: Option<String>,
    #[serde(rename = "progressToken")]
    pub progress_token: Option<Value>,
}

/// The members of `params` read before a method runs, as sent. A member
/// of the wrong type is the method's to refuse; reading never fails.
#[derive(Default, Debug, Clone)]
pub struct Params {
    /// `_meta`; `None` when absent or not of the expected shape. Boxed:
    /// most sessionful requests have none.
    pub meta: Option<Box<RequestMeta>>,
    /// What `tools/call` and `prompts/get` name.
    pub name: Option<Value>,
    /// What `resources/read` and the subscriptions name.
    pub uri: Option<Value>,
    /// The arguments of `tools/call` and `prompts/get`.
    pub arguments: Option<Value>,
    /// The task `tasks/get`, `tasks/update` and `tasks/cancel` name.
    pub task_id: Option<Value>,
    /// What a 2026-07-28 retry brings back; boxed, as few requests are one.
    pub retry: Option<Box<Retry>>,
}

/// The members of a 2026-07-28 retry of a request that asked for input,
/// as sent (`null` included: it is not a valid `inputResponses`, and must
/// not read as none sent).
#[derive(Default, Debug, Clone, PartialEq)]
pub struct Retry {
    /// The client's answers to the server's input requests.
    pub input_responses: Option<Value>,
    /// The `requestState` the server issued, echoed.
    pub request_state: Option<Value>,
}

impl Params {
    /// Reads `params`. Params that are not an object (an array) read as empty.
    pub fn read(params: Option<&RawValue>) -> Params {
        #[derive(Deserialize)]
        struct Head {
            // Raw, so a malformed `_meta` costs only itself: the request is
            // then one without `_meta`, as before the head was read once.
            #[serde(rename = "_meta")]
            meta: Option<Box<RawValue>>,
            name: Option<Value>,
            uri: Option<Value>,
            arguments: Option<Value>,
            #[serde(rename = "taskId")]
            task_id: Option<Value>,
            #[serde(rename = "inputResponses", default, deserialize_with = "present")]
            input_responses: Option<Value>,
            #[serde(rename = "requestState", default, deserialize_with = "present")]
            request_state: Option<Value>,
        }
        let Some(head) = params.and_then(|p| serde_json::from_str::<Head>(p.get()).ok()) else {
            return Params::default();
        };
        Params {
            meta: head
                .meta
                .and_then(|m| serde_json::from_str::<Option<Box<RequestMeta>>>(m.get()).ok())
                .flatten(),
            name: head.name,
            uri: head.uri,
            arguments: head.arguments,
            task_id: head.task_id,
            retry: (head.input_responses.is_some() || head.request_state.is_some()).then(|| {
                Box::new(Retry {
                    input_responses: head.input_responses,
                    request_state: head.request_state,
                })
            }),
        }
    }

    pub fn progress_token(&self) -> Option<&Value> {
        self.meta.as_ref()?.progress_token.as_ref()
    }
}

/// One request on its way to whatever serves it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub params: Params,
    /// `params` as sent: for members the head does not read, and for a
    /// service that passes the request on as it came.
    pub raw: Option<Box<RawValue>>,
}

impl Request {
    /// Reads the head of a request's `params`.
    pub fn new(method: String, raw: Option<Box<RawValue>>) -> Request {
        Request {
            params: Params::read(raw.as_deref()),
            method,
            raw,
        }
    }

    /// The tool a `tools/call` names, if it names one by a string.
    pub fn tool_name(&self) -> Option<&str> {
        (self.method == "tools/call")
            .then(|| self.params.name.as_ref()?.as_str())
            .flatten()
    }

    /// The `name` a `tools/call` or `prompts/get` must carry.
    pub fn name(&self) -> Result<&str, ErrorData> {
        required_str(self.params.name.as_ref(), "name")
    }

    /// The `uri` a resource request must carry.
    pub fn uri(&self) -> Result<&str, ErrorData> {
        required_str(self.params.uri.as_ref(), "uri")
    }

    /// The `arguments` object of a call; absent or `null` is empty.
    pub fn take_arguments(&mut self) -> Result<JsonObject, ErrorData> {
        match self.params.arguments.take() {
            None | Some(Value::Null) => Ok(JsonObject::new()),
            Some(Value::Object(arguments)) => Ok(arguments),
            Some(_) => Err(invalid_params("`arguments` must be an object")),
        }
    }

    /// Members of `params` beyond the head, read by the method that needs them.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ErrorData> {
        let text = self.raw.as_deref().map(RawValue::get).unwrap_or("{}");
        serde_json::from_str(text).map_err(invalid_params)
    }
}

/// A member that is present, `null` included.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

fn invalid_params(detail: impl std::fmt::Display) -> ErrorData {
    ErrorData::invalid_params(format!("Invalid params: {detail}"), None)
}

fn required_str<'a>(value: Option<&'a Value>, member: &str) -> Result<&'a str, ErrorData> {
    match value {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(invalid_params(format!("`{member}` must be a string"))),
        None => Err(invalid_params(format!("missing field `{member}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, params: &str) -> Request {
        let raw = serde_json::from_str::<Box<RawValue>>(params).unwrap();
        Request::new(method.into(), Some(raw))
    }

    #[test]
    fn reads_the_head_once_with_meta() {
        let mut r = request(
            "tools/call",
            r#"{"name":"echo","arguments":{"text":"x"},"_meta":{"progressToken":7}}"#,
        );
        assert_eq!(r.tool_name(), Some("echo"));
        assert_eq!(r.params.progress_token(), Some(&Value::from(7)));
        assert_eq!(r.take_arguments().unwrap()["text"], "x");
    }

    #[test]
    fn a_malformed_meta_leaves_the_rest_readable() {
        let r = request(
            "tools/call",
            r#"{"name":"echo","_meta":{"io.modelcontextprotocol/logLevel":5}}"#,
        );
        assert!(r.params.meta.is_none());
        assert_eq!(r.name().unwrap(), "echo");
        assert!(request("tools/call", r#"{"name":"echo","_meta":3}"#)
            .params
            .meta
            .is_none());
    }

    #[test]
    fn a_null_input_responses_is_read_as_sent() {
        let retry = |params| request("tools/call", params).params.retry.map(|r| *r);
        assert_eq!(retry(r#"{"name":"t"}"#), None);
        assert_eq!(
            retry(r#"{"name":"t","inputResponses":null}"#),
            Some(Retry {
                input_responses: Some(Value::Null),
                request_state: None
            })
        );
        assert_eq!(
            retry(r#"{"name":"t","requestState":"s"}"#),
            Some(Retry {
                input_responses: None,
                request_state: Some(Value::from("s"))
            })
        );
    }

    #[test]
    fn members_of_the_wrong_type_are_invalid_params() {
        let code = |e: ErrorData| e.code.0;
        assert_eq!(
            code(request("tools/call", "{}").name().unwrap_err()),
            -32602
        );
        assert_eq!(
            code(request("tools/call", r#"{"name":5}"#).name().unwrap_err()),
            -32602
        );
        assert_eq!(
            code(
                request("tools/call", r#"{"name":"a","arguments":[1]}"#)
                    .take_arguments()
                    .unwrap_err()
            ),
            -32602
        );
        assert!(request("tools/call", r#"{"name":"a","arguments":null}"#)
            .take_arguments()
            .unwrap()
            .is_empty());
        assert_eq!(request("tools/call", "[1]").tool_name(), None);
    }
}
