//! Asking the client for input while a request runs — elicitation,
//! sampling, roots — one way on both generations. A handler calls
//! [`RequestContext::ask`](crate::RequestContext::ask) (or `ask_all` for
//! several inputs at once) and gets the client's answer:
//!
//! - on a sessionful revision the ask is a request to the client on the
//!   request's stream, and the handler waits for its answer;
//! - on 2026-07-28 (multi-round-trip requests) an ask the retry did not
//!   answer ends the handler: the request answers with an
//!   `InputRequiredResult` naming every unanswered input and a
//!   `requestState` ([`state`]) holding the answers the handler used so
//!   far. The client retries with `inputResponses` and that state, and the
//!   handler runs again from the start; this time its asks are answered
//!   from the retry's responses or the state. A handler must therefore be
//!   safe to re-run up to its last ask, and give each input its own key.
//!
//! Either way an ask needs the client to have declared the capability its
//! kind needs; one it did not declare is refused with
//! `MissingRequiredClientCapability` and never sent. Only `tools/call`,
//! `prompts/get` and `resources/read` may answer input-required.

mod state;

pub use state::{RequestStates, StateError, StateKey, DEFAULT_TTL};

use std::sync::Mutex;

use rmcp::model::{ErrorCode, ErrorData};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use sessiongate_core::Timestamp;

use crate::context::Caller;
use crate::protocol;
use crate::request::Request;
use state::{Binding, Carried};

/// The kinds of input a server may ask a client for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Elicitation,
    Sampling,
    Roots,
}

impl InputKind {
    /// The server-to-client method that asks for it.
    pub fn method(self) -> &'static str {
        match self {
            InputKind::Elicitation => "elicitation/create",
            InputKind::Sampling => "sampling/createMessage",
            InputKind::Roots => "roots/list",
        }
    }

    /// The client capability it needs.
    pub fn capability(self) -> &'static str {
        match self {
            InputKind::Elicitation => "elicitation",
            InputKind::Sampling => "sampling",
            InputKind::Roots => "roots",
        }
    }

    /// Whether `answer` has the shape of this kind's result; what is wrong if not.
    fn check(self, answer: &Value) -> Result<(), &'static str> {
        let has = |member: &str, ok: fn(&Value) -> bool| answer.get(member).is_some_and(ok);
        match self {
            InputKind::Elicitation => {
                let action = answer.get("action").and_then(Value::as_str);
                if !matches!(action, Some("accept" | "decline" | "cancel")) {
                    return Err(
                        "an elicitation result needs an `action` of accept, decline or cancel",
                    );
                }
                if answer.get("content").is_some_and(|c| !c.is_object()) {
                    return Err("an elicitation result's `content` must be an object");
                }
            }
            InputKind::Sampling => {
                if !has("role", Value::is_string)
                    || !has("content", |c| c.is_object() || c.is_array())
                {
                    return Err("a sampling result needs a `role` and `content`");
                }
            }
            InputKind::Roots => {
                if !has("roots", Value::is_array) {
                    return Err("a roots result needs a `roots` array");
                }
            }
        }
        Ok(())
    }
}

/// One request for input: what a server-to-client request of its kind
/// would carry.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRequest {
    kind: InputKind,
    params: Value,
}

impl InputRequest {
    /// `elicitation/create` with `params` (`message`, `requestedSchema`,
    /// `mode`, ...).
    pub fn elicit(params: Value) -> InputRequest {
        InputRequest {
            kind: InputKind::Elicitation,
            params,
        }
    }

    /// `sampling/createMessage` with `params` (`messages`, `maxTokens`, ...).
    pub fn sample(params: Value) -> InputRequest {
        InputRequest {
            kind: InputKind::Sampling,
            params,
        }
    }

    /// `roots/list`.
    pub fn list_roots() -> InputRequest {
        InputRequest {
            kind: InputKind::Roots,
            params: json!({}),
        }
    }

    pub fn kind(&self) -> InputKind {
        self.kind
    }

    pub fn params(&self) -> &Value {
        &self.params
    }

    /// Whether `capabilities` (the client's) allow asking this: the kind's
    /// capability, and for a URL elicitation its `url` mode.
    pub fn allowed_by(&self, capabilities: &Value) -> bool {
        let Some(declared) = capabilities.get(self.kind.capability()) else {
            return false;
        };
        match self.params.get("mode").and_then(Value::as_str) {
            Some("url") if self.kind == InputKind::Elicitation => declared.get("url").is_some(),
            _ => true,
        }
    }

    /// The `MissingRequiredClientCapability` error for a client that did
    /// not declare what this needs.
    pub(crate) fn missing_capability(&self) -> ErrorData {
        let capability = self.kind.capability();
        let required = match self.params.get("mode").and_then(Value::as_str) {
            Some("url") if self.kind == InputKind::Elicitation => json!({ "url": {} }),
            _ => json!({}),
        };
        protocol::missing_client_capability(
            format!(
                "this request needs {} from the client, which did not declare the `{capability}` \
                 capability it takes",
                self.kind.method()
            ),
            json!({ capability: required }),
        )
    }

    fn into_json(self) -> Value {
        json!({ "method": self.kind.method(), "params": self.params })
    }
}

/// The methods whose 2026-07-28 results may be input-required.
const ASKING_METHODS: [&str; 3] = ["tools/call", "prompts/get", "resources/read"];

/// The binding of a stateless caller's states.
pub(crate) fn client_binding(caller: &Caller) -> String {
    match caller {
        Caller::Client { key, identity } => Binding::client(identity.principal.as_deref(), key),
        // A sessionful caller's asks go to its stream; it never holds a state.
        Caller::Session(s) => Binding::client(s.identity().principal.as_deref(), "session"),
    }
}

/// One round of a stateless request that may ask for input: the answers
/// it arrived with, and what its handler asked for.
pub(crate) struct Rounds {
    /// The retry's `inputResponses`.
    responses: Map<String, Value>,
    /// What its `requestState` carried.
    carried: Carried,
    request: Salient,
    asked: Mutex<Asked>,
}

/// What binds a state to its request.
enum Salient {
    /// [`Binding::request`], computed to verify the state presented.
    Digest(String),
    /// The request's method and params as sent, digested only if a state
    /// is sealed: most calls never ask, and copying the params costs them
    /// less than digesting them would.
    Sent {
        method: &'static str,
        params: Option<Box<RawValue>>,
    },
}

impl Salient {
    fn digest(&self) -> String {
        match self {
            Salient::Digest(digest) => digest.clone(),
            Salient::Sent { method, params } => Binding::request_sent(method, params.as_deref()),
        }
    }
}

#[derive(Default)]
struct Asked {
    /// The answers the handler used this round, by key.
    answered: Map<String, Value>,
    /// What it asked for that no one has answered yet.
    pending: Map<String, Value>,
    /// Why an answer it was given is not one: a protocol error, whatever
    /// the handler makes of it.
    refused: Option<ErrorData>,
}

/// A retry's `inputResponses`: an object of the client's results.
fn input_responses(sent: Option<Value>) -> Result<Map<String, Value>, ErrorData> {
    match sent {
        None => Ok(Map::new()),
        Some(Value::Object(responses)) => match responses.iter().find(|(_, v)| !v.is_object()) {
            Some((key, _)) => Err(ErrorData::invalid_params(
                format!(
                    "inputResponses[{key:?}] must be an object: the client's result for that \
                     input request"
                ),
                None,
            )),
            None => Ok(responses),
        },
        Some(_) => Err(ErrorData::invalid_params(
            "inputResponses must be an object of the client's results by input request key",
            None,
        )),
    }
}

impl Rounds {
    /// Reads a request's `inputResponses` and `requestState` (taking them:
    /// they are this layer's, not the handler's) and verifies the state.
    /// `None` for a method that may not ask.
    pub fn open(
        states: &RequestStates,
        request: &mut Request,
        client: impl FnOnce() -> String,
        now: Timestamp,
    ) -> Result<Option<Rounds>, ErrorData> {
        let Some(method) = ASKING_METHODS.into_iter().find(|m| *m == request.method) else {
            return Ok(None);
        };
        let retry = request.params.retry.take().map(|r| *r).unwrap_or_default();
        let responses = input_responses(retry.input_responses)?;
        let (carried, salient) = match retry.request_state {
            None => (
                Carried::default(),
                Salient::Sent {
                    method,
                    params: request.raw.clone(),
                },
            ),
            Some(Value::String(sealed)) => {
                let digest = Binding::request(request);
                let carried = states.open(&sealed, client, &digest, now)?;
                (carried, Salient::Digest(digest))
            }
            Some(_) => {
                return Err(ErrorData::invalid_params(
                    "requestState must be the string the server issued",
                    None,
                ))
            }
        };
        Ok(Some(Rounds {
            responses,
            carried,
            request: salient,
            asked: Mutex::default(),
        }))
    }

    /// What a task's work is answered from: the input its call gathered
    /// (in rounds of MRTR) before the task was created.
    pub(crate) fn gathered(answers: Map<String, Value>) -> Rounds {
        Rounds {
            responses: answers,
            carried: Carried::default(),
            request: Salient::Digest(String::new()),
            asked: Mutex::default(),
        }
    }

    /// The answers the handler has used, by key.
    pub(crate) fn answered(&self) -> Map<String, Value> {
        self.asked.lock().expect("not poisoned").answered.clone()
    }

    /// The answer given under `key`, this round or an earlier one.
    pub(crate) fn given(&self, key: &str) -> Option<&Value> {
        self.responses
            .get(key)
            .or_else(|| self.carried.answers.get(key))
    }

    /// Rounds of input behind this request: 0 on a first call.
    pub fn round(&self) -> u32 {
        self.carried.round
    }

    /// The answers to `asks`, in order; or, if any is unanswered, an error
    /// after noting each unanswered one for the input-required result.
    pub fn answer(&self, asks: Vec<(&str, InputRequest)>) -> Result<Vec<Value>, ErrorData> {
        let mut asked = self.asked.lock().expect("not poisoned");
        let mut answers = Vec::with_capacity(asks.len());
        let mut missing = Vec::new();
        for (key, request) in asks {
            match self.given(key) {
                Some(answer) => {
                    if let Err(why) = request.kind.check(answer) {
                        let refused = ErrorData::invalid_params(
                            format!("inputResponses[{key:?}] is not a valid answer: {why}"),
                            None,
                        );
                        asked.refused = Some(refused.clone());
                        return Err(refused);
                    }
                    asked.answered.insert(key.to_string(), answer.clone());
                    answers.push(answer.clone());
                }
                None => {
                    asked.pending.insert(key.to_string(), request.into_json());
                    missing.push(key);
                }
            }
        }
        if missing.is_empty() {
            return Ok(answers);
        }
        // Never reaches the client: the dispatcher answers input-required
        // whatever the handler makes of it.
        Err(ErrorData::new(
            ErrorCode::INTERNAL_ERROR,
            format!("input required: {}", missing.join(", ")),
            None,
        ))
    }

    /// The error for an answer that is not one, if the handler was given
    /// such: a tool must not turn it into its own error result.
    pub fn refused(&self) -> Option<ErrorData> {
        self.asked.lock().expect("not poisoned").refused.clone()
    }

    /// The `InputRequiredResult` if the handler asked for input it was not
    /// given, with a state carrying the answers it used.
    pub fn input_required(
        &self,
        states: &RequestStates,
        client: impl FnOnce() -> String,
        now: Timestamp,
    ) -> Option<Value> {
        let asked = self.asked.lock().expect("not poisoned");
        if asked.pending.is_empty() {
            return None;
        }
        let binding = Binding {
            client: client(),
            request: self.request.digest(),
        };
        let carried = Carried {
            round: self.carried.round.saturating_add(1),
            answers: asked.answered.clone(),
        };
        Some(json!({
            "resultType": "input_required",
            "inputRequests": asked.pending,
            "requestState": states.seal(&binding, carried, now),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_need_the_declared_capability() {
        let form = InputRequest::elicit(json!({"message": "m", "requestedSchema": {}}));
        let url = InputRequest::elicit(json!({"mode": "url", "url": "https://x", "message": "m"}));
        let caps = json!({"elicitation": {}, "sampling": {}});
        assert!(form.allowed_by(&caps));
        assert!(!url.allowed_by(&caps));
        assert!(url.allowed_by(&json!({"elicitation": {"url": {}}})));
        assert!(InputRequest::sample(json!({})).allowed_by(&caps));
        assert!(!InputRequest::list_roots().allowed_by(&caps));
        let e = InputRequest::list_roots().missing_capability();
        assert_eq!(e.code, ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY);
        assert_eq!(
            e.data.unwrap()["requiredCapabilities"],
            json!({"roots": {}})
        );
    }

    #[test]
    fn answers_are_checked_against_their_kind() {
        let ok = [
            (InputKind::Elicitation, json!({"action": "decline"})),
            (
                InputKind::Elicitation,
                json!({"action": "accept", "content": {"a": 1}}),
            ),
            (
                InputKind::Sampling,
                json!({"role": "assistant", "content": {"type": "text"}}),
            ),
            (InputKind::Roots, json!({"roots": []})),
        ];
        for (kind, answer) in ok {
            assert_eq!(kind.check(&answer), Ok(()), "{answer}");
        }
        let bad = [
            (InputKind::Elicitation, json!({"action": "maybe"})),
            (
                InputKind::Elicitation,
                json!({"action": "accept", "content": 3}),
            ),
            (InputKind::Sampling, json!({"content": {}})),
            (InputKind::Roots, json!({"roots": {}})),
        ];
        for (kind, answer) in bad {
            assert!(kind.check(&answer).is_err(), "{answer}");
        }
    }
}
