//! The multi-round-trip fixtures (`test_input_required_result_*`): tools
//! and a prompt that ask the client for input with
//! [`RequestContext::ask`], so on 2026-07-28 they answer input-required
//! until the retry brings the answers, and on a session they ask on the
//! request's stream. Keys and texts are the ones the suite sends back.

use async_trait::async_trait;
use rmcp::model::{CallToolResult, ErrorData, JsonObject, Tool};
use serde_json::{json, Map, Value};

use super::tools::{no_arguments, sampled_text};
use crate::context::RequestContext;
use crate::input::InputRequest;
use crate::server::{PromptHandler, ToolHandler};
use crate::tools::helpers::{schema, text_result};

/// A fixture tool that asks for input.
pub(super) struct InputFixture {
    pub(super) name: &'static str,
    pub(super) description: &'static str,
    asks: Asks,
}

enum Asks {
    /// `user_name`: a name, by elicitation.
    Name,
    /// `capital_question`: a sampled answer.
    Sample,
    /// `client_roots`: the client's roots.
    Roots,
    /// `confirm`: a yes, by elicitation; says `state-ok` when the answer
    /// came with a verified requestState.
    Confirm,
    /// A name, a sampled greeting and the roots, all in one round.
    All,
    /// A name, then a favourite colour in a second round.
    TwoRounds,
    /// Whichever of elicitation, sampling and roots the client declared.
    Declared,
}

pub(super) const INPUT_FIXTURES: &[InputFixture] = &[
    InputFixture {
        name: "test_input_required_result_elicitation",
        description: "Asks for the user's name (elicitation key `user_name`), then greets them",
        asks: Asks::Name,
    },
    InputFixture {
        name: "test_input_required_result_sampling",
        description: "Asks the client's LLM a question (sampling key `capital_question`)",
        asks: Asks::Sample,
    },
    InputFixture {
        name: "test_input_required_result_list_roots",
        description: "Asks for the client's roots (key `client_roots`) and lists them",
        asks: Asks::Roots,
    },
    InputFixture {
        name: "test_input_required_result_request_state",
        description: "Asks for a confirmation (key `confirm`); says state-ok once its \
                      requestState comes back verified",
        asks: Asks::Confirm,
    },
    InputFixture {
        name: "test_input_required_result_multiple_inputs",
        description: "Asks for a name, a sampled greeting and the roots at once",
        asks: Asks::All,
    },
    InputFixture {
        name: "test_input_required_result_multi_round",
        description: "Asks for a name (`step1`), then a favourite colour (`step2`)",
        asks: Asks::TwoRounds,
    },
    InputFixture {
        name: "test_input_required_result_tampered_state",
        description: "Asks for a confirmation (key `confirm`) under an integrity-protected \
                      requestState",
        asks: Asks::Confirm,
    },
    InputFixture {
        name: "test_input_required_result_capabilities",
        description: "Asks only for the kinds of input the client declared",
        asks: Asks::Declared,
    },
];

/// A form asking for one string field.
fn form(message: &str, field: &str, kind: &str) -> InputRequest {
    InputRequest::elicit(json!({
        "mode": "form",
        "message": message,
        "requestedSchema": {
            "type": "object",
            "properties": { field: { "type": kind } },
            "required": [field],
        },
    }))
}

fn name_form(message: &str) -> InputRequest {
    form(message, "name", "string")
}

fn sample(question: &str, max_tokens: u32) -> InputRequest {
    InputRequest::sample(json!({
        "messages": [{ "role": "user", "content": { "type": "text", "text": question } }],
        "maxTokens": max_tokens,
    }))
}

/// A field of an accepted elicitation, as text; what happened otherwise.
fn field(answer: &Value, name: &str) -> String {
    match answer["action"].as_str() {
        Some("accept") => match &answer["content"][name] {
            Value::String(s) => s.clone(),
            Value::Null => format!("(no {name})"),
            other => other.to_string(),
        },
        Some(action) => format!("({action})"),
        None => "(?)".into(),
    }
}

fn roots(answer: &Value) -> String {
    let listed: Vec<String> = answer["roots"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| match r["name"].as_str() {
            Some(name) => format!("{} ({name})", r["uri"].as_str().unwrap_or("?")),
            None => r["uri"].as_str().unwrap_or("?").to_string(),
        })
        .collect();
    format!("{} root(s): {}", listed.len(), listed.join(", "))
}

#[async_trait]
impl ToolHandler for &'static InputFixture {
    fn tool(&self) -> Tool {
        Tool::new(self.name, self.description, schema(no_arguments()))
    }

    async fn call(&self, ctx: &RequestContext, _: JsonObject) -> Result<CallToolResult, ErrorData> {
        let text = match self.asks {
            Asks::Name => {
                let answer = ctx
                    .ask("user_name", name_form("What is your name?"))
                    .await?;
                format!("Hello, {}!", field(&answer, "name"))
            }
            Asks::Sample => {
                let question = sample("What is the capital of France?", 100);
                let answer = ctx.ask("capital_question", question).await?;
                format!("LLM response: {}", sampled_text(&answer))
            }
            Asks::Roots => {
                let answer = ctx.ask("client_roots", InputRequest::list_roots()).await?;
                format!("Client roots: {}", roots(&answer))
            }
            Asks::Confirm => {
                let answer = ctx
                    .ask("confirm", form("Please confirm", "ok", "boolean"))
                    .await?;
                let ok = field(&answer, "ok");
                match ctx.input_round() {
                    0 => format!("confirmed: {ok} (no requestState came back)"),
                    n => format!("state-ok: confirmed: {ok} after {n} round(s) of input"),
                }
            }
            Asks::All => {
                let answers = ctx
                    .ask_all(vec![
                        ("user_name", name_form("What is your name?")),
                        ("greeting", sample("Generate a greeting", 50)),
                        ("client_roots", InputRequest::list_roots()),
                    ])
                    .await?;
                format!(
                    "Hello, {}! Greeting: {}. {}",
                    field(&answers[0], "name"),
                    sampled_text(&answers[1]),
                    roots(&answers[2])
                )
            }
            Asks::TwoRounds => {
                let name = ctx
                    .ask("step1", name_form("Step 1: What is your name?"))
                    .await?;
                let color = ctx
                    .ask(
                        "step2",
                        form("Step 2: What is your favorite color?", "color", "string"),
                    )
                    .await?;
                format!("{} likes {}", field(&name, "name"), field(&color, "color"))
            }
            Asks::Declared => {
                let asks: Vec<_> = [
                    ("user_name", name_form("What is your name?")),
                    ("greeting", sample("Generate a greeting", 50)),
                    ("client_roots", InputRequest::list_roots()),
                ]
                .into_iter()
                .filter(|(_, request)| ctx.can_ask(request))
                .collect();
                if asks.is_empty() {
                    "The client declared none of elicitation, sampling and roots; nothing was asked"
                        .into()
                } else {
                    let keys: Vec<&str> = asks.iter().map(|(k, _)| *k).collect();
                    let keys = keys.join(", ");
                    ctx.ask_all(asks).await?;
                    format!("Answered: {keys}")
                }
            }
        };
        Ok(text_result(text))
    }
}

/// `test_input_required_result_prompt`: a prompt built from context the
/// user gives by elicitation (key `user_context`).
pub(super) struct InputRequiredPrompt;

#[async_trait]
impl PromptHandler for InputRequiredPrompt {
    fn prompt(&self) -> Value {
        json!({
            "name": "test_input_required_result_prompt",
            "title": "Prompt That Asks For Input",
            "description": "Asks the user for the context to use (elicitation key `user_context`)",
        })
    }

    async fn get(&self, ctx: &RequestContext, _: Map<String, Value>) -> Result<Value, ErrorData> {
        let request = form("What context should the prompt use?", "context", "string");
        let answer = ctx.ask("user_context", request).await?;
        let context = field(&answer, "context");
        Ok(json!({
            "description": "A prompt built from the context the user gave",
            "messages": [{
                "role": "user",
                "content": { "type": "text", "text": format!("Use this context: {context}") },
            }],
        }))
    }
}
