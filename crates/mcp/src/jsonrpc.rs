//! JSON-RPC 2.0 framing: classifying an incoming body into messages and
//! writing responses, without building a generic JSON tree on the hot path.

use rmcp::model::{ErrorCode, ErrorData};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

/// A request id: a number or a string, kept as sent.
pub type Id = Value;

/// One incoming JSON-RPC message.
#[derive(Debug)]
pub enum Message {
    Request {
        id: Id,
        method: String,
        params: Option<Box<RawValue>>,
    },
    Notification {
        method: String,
        params: Option<Box<RawValue>>,
    },
    /// The client's answer to a request the server sent it.
    Response {
        id: Id,
        outcome: Result<Value, ErrorData>,
    },
}

impl Message {
    pub fn method(&self) -> Option<&str> {
        match self {
            Message::Request { method, .. } | Message::Notification { method, .. } => Some(method),
            Message::Response { .. } => None,
        }
    }
}

/// A POST body: one message or (2025-03-26 only) a batch.
#[derive(Debug)]
pub enum Body {
    Single(Message),
    Batch(Vec<Result<Message, Invalid>>),
}

/// A message that is not valid JSON-RPC, with the id if one could be read.
#[derive(Debug)]
pub struct Invalid {
    pub id: Option<Id>,
    pub error: ErrorData,
}

#[derive(Deserialize)]
struct Envelope {
    jsonrpc: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "present")]
    id: Option<Value>,
    method: Option<String>,
    params: Option<Box<RawValue>>,
    // `"result": null` is a result; only an absent one is none.
    #[serde(default, deserialize_with = "present")]
    result: Option<Value>,
    error: Option<ErrorData>,
}

/// Distinguishes a member that is `null` (present) from an absent one.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

pub fn parse_error(detail: impl std::fmt::Display) -> ErrorData {
    ErrorData::new(
        ErrorCode::PARSE_ERROR,
        format!("Parse error: {detail}"),
        None,
    )
}

pub fn invalid_request(detail: impl Into<String>) -> ErrorData {
    ErrorData::new(
        ErrorCode::INVALID_REQUEST,
        format!("Invalid Request: {}", detail.into()),
        None,
    )
}

/// Parses a POST body. A body that is not JSON is a parse error; JSON that
/// is not a JSON-RPC message is an invalid request.
pub fn parse(body: &[u8]) -> Result<Body, Invalid> {
    // JSON is UTF-8 throughout, also in the members the envelope skips,
    // which serde_json would pass over unchecked.
    let body = std::str::from_utf8(body).map_err(|e| Invalid {
        id: None,
        error: parse_error(e),
    })?;
    let first = body.bytes().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'[') => {
            let items: Vec<Box<RawValue>> = serde_json::from_str(body).map_err(|e| Invalid {
                id: None,
                error: parse_error(e),
            })?;
            if items.is_empty() {
                return Err(Invalid {
                    id: None,
                    error: invalid_request("empty batch"),
                });
            }
            Ok(Body::Batch(
                items.iter().map(|raw| classify(raw.get())).collect(),
            ))
        }
        Some(b'{') => classify(body).map(Body::Single),
        _ => {
            // Not an object or array: still tell parse errors from valid JSON.
            match serde_json::from_str::<serde::de::IgnoredAny>(body) {
                Err(e) => Err(Invalid {
                    id: None,
                    error: parse_error(e),
                }),
                Ok(_) => Err(Invalid {
                    id: None,
                    error: invalid_request("a message must be a JSON object"),
                }),
            }
        }
    }
}

fn classify(raw: &str) -> Result<Message, Invalid> {
    let env: Envelope = serde_json::from_str(raw).map_err(|e| {
        let error = if e.is_syntax() || e.is_eof() {
            parse_error(e)
        } else {
            // A member of the wrong type stops the read before the rest is
            // seen: it is an invalid request only if the rest is JSON.
            match serde_json::from_str::<serde::de::IgnoredAny>(raw) {
                Err(syntax) => parse_error(syntax),
                Ok(_) => invalid_request(e.to_string()),
            }
        };
        Invalid { id: None, error }
    })?;
    let id = env.id;
    let invalid = |id: Option<Id>, why: &str| Invalid {
        id,
        error: invalid_request(why),
    };
    if env.jsonrpc.as_deref().map(RawValue::get) != Some("\"2.0\"") {
        return Err(invalid(id, "\"jsonrpc\" must be \"2.0\""));
    }
    if let Some(id) = &id {
        if !(id.is_string() || id.is_i64() || id.is_u64()) {
            return Err(invalid(None, "\"id\" must be a string or an integer"));
        }
    }
    if let Some(params) = &env.params {
        let p = params.get().trim_start();
        if !(p.starts_with('{') || p.starts_with('[')) {
            return Err(invalid(id, "\"params\" must be an object or an array"));
        }
    }
    match (env.method, id, env.result, env.error) {
        (Some(method), Some(id), None, None) => Ok(Message::Request {
            id,
            method,
            params: env.params,
        }),
        (Some(method), None, None, None) => Ok(Message::Notification {
            method,
            params: env.params,
        }),
        (None, Some(id), Some(result), None) => Ok(Message::Response {
            id,
            outcome: Ok(result),
        }),
        (None, Some(id), None, Some(error)) => Ok(Message::Response {
            id,
            outcome: Err(error),
        }),
        (_, id, _, _) => Err(invalid(id, "not a request, notification or response")),
    }
}

#[derive(Serialize)]
struct ResultOut<'a, T: Serialize> {
    jsonrpc: &'static str,
    id: &'a Id,
    result: &'a T,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Id>,
    error: &'a ErrorData,
}

#[derive(Serialize)]
struct NotificationOut<'a, T: Serialize> {
    jsonrpc: &'static str,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a T>,
}

#[derive(Serialize)]
struct RequestOut<'a, T: Serialize> {
    jsonrpc: &'static str,
    id: &'a Id,
    method: &'a str,
    params: &'a T,
}

pub fn result_bytes<T: Serialize>(id: &Id, result: &T) -> Vec<u8> {
    serde_json::to_vec(&ResultOut {
        jsonrpc: "2.0",
        id,
        result,
    })
    .expect("JSON-RPC results serialize")
}

/// An error response; without an id when the request's id could not be read.
pub fn error_bytes(id: Option<&Id>, error: &ErrorData) -> Vec<u8> {
    serde_json::to_vec(&ErrorOut {
        jsonrpc: "2.0",
        id,
        error,
    })
    .expect("JSON-RPC errors serialize")
}

pub fn notification_bytes<T: Serialize>(method: &str, params: Option<&T>) -> Vec<u8> {
    serde_json::to_vec(&NotificationOut {
        jsonrpc: "2.0",
        method,
        params,
    })
    .expect("JSON-RPC notifications serialize")
}

pub fn request_bytes<T: Serialize>(id: &Id, method: &str, params: &T) -> Vec<u8> {
    serde_json::to_vec(&RequestOut {
        jsonrpc: "2.0",
        id,
        method,
        params,
    })
    .expect("JSON-RPC requests serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> i32 {
        parse(body.as_bytes()).unwrap_err().error.code.0
    }

    #[test]
    fn classifies_messages() {
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            Ok(Body::Single(Message::Request { .. }))
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Ok(Body::Single(Message::Notification { .. }))
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#),
            Ok(Body::Single(Message::Response { outcome: Ok(_), .. }))
        ));
        assert!(matches!(
            parse(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}, 3]"#),
            Ok(Body::Batch(v)) if v.len() == 2 && v[1].is_err()
        ));
    }

    #[test]
    fn rejects_bad_input_with_the_right_code() {
        assert_eq!(code("{not json"), -32700);
        assert_eq!(code(""), -32700);
        assert_eq!(code("42"), -32600);
        assert_eq!(code("[]"), -32600);
        assert_eq!(code(r#"{"id":1,"method":"ping"}"#), -32600);
        assert_eq!(code(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#), -32600);
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#), -32600);
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":7}"#), -32600);
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#),
            -32600
        );
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1}"#), -32600);
    }

    /// Found by the property tests (tests/props.rs).
    #[test]
    fn what_is_not_json_is_a_parse_error_wherever_it_shows() {
        // A member of the wrong type before the body breaks off.
        assert_eq!(code(r#"{"method":7,"id""#), -32700);
        // Invalid UTF-8 in a member the envelope skips.
        let mut body = br#"{"jsonrpc":"2.0","id":1,"method":"ping","x":"?"}"#.to_vec();
        let at = body.iter().position(|&b| b == b'?').unwrap();
        body[at] = 0xff;
        assert_eq!(parse(&body).unwrap_err().error.code.0, -32700);
    }

    #[test]
    fn a_null_result_is_a_result() {
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":3,"result":null}"#),
            Ok(Body::Single(Message::Response {
                outcome: Ok(Value::Null),
                ..
            }))
        ));
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","method":"m","result":null}"#),
            -32600
        );
    }

    #[test]
    fn error_keeps_id_when_readable() {
        let e = parse(br#"{"jsonrpc":"1.0","id":7,"method":"ping"}"#).unwrap_err();
        assert_eq!(e.id, Some(Value::from(7)));
    }
}
