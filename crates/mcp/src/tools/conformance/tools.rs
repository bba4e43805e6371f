//! The fixture tools: static content of every kind, logging, progress,
//! sampling and elicitation (asked on a session's stream, or by
//! input-required results in 2026-07-28), SSE polling, a JSON Schema
//! 2020-12 input, an argument mirrored in a header, and the 2026-07-28
//! diagnostics (a capability the client must declare, elicitation within a
//! response stream, logging only at a requested level).

use std::time::Duration;

use async_trait::async_trait;
use rmcp::model::{CallToolResult, ContentBlock, ErrorData, JsonObject, ResourceContents, Tool};
use serde_json::{json, Value};

use super::media::{PNG, WAV};
use crate::context::RequestContext;
use crate::input::InputRequest;
use crate::server::ToolHandler;
use crate::tools::helpers::{schema, string_arg, text_result};

/// Pause between the notifications of the logging and progress tools.
const STEP: Duration = Duration::from_millis(50);

/// A fixture tool: its listing and what a call does.
pub(super) struct Fixture {
    pub(super) name: &'static str,
    pub(super) description: &'static str,
    input_schema: fn() -> Value,
    run: Run,
}

enum Run {
    /// Returns fixed content; `is_error` marks a tool-level error result.
    Content {
        content: fn() -> Vec<ContentBlock>,
        is_error: bool,
    },
    /// Sends three info log messages, then succeeds.
    Logging,
    /// Reports progress 0, 50 and 100 of 100, then succeeds.
    Progress,
    /// Asks the client to sample a completion; `prompt` `None` takes the
    /// `prompt` argument.
    Sampling { prompt: Option<&'static str> },
    /// Asks the client to fill in a form; `message` `None` takes the
    /// `message` argument.
    Elicit {
        message: Option<&'static str>,
        requested_schema: fn() -> Value,
    },
    /// Answers on an SSE stream (it logs first), after a short pause.
    Reconnection,
    /// Echoes its arguments (the tool's point is its input schema).
    EchoArguments,
}

pub(super) fn no_arguments() -> Value {
    json!({ "type": "object", "properties": {} })
}

fn embedded(uri: &str, mime_type: &str, text: &str) -> ContentBlock {
    ContentBlock::resource(ResourceContents::text(text, uri).with_mime_type(mime_type))
}

pub(super) const FIXTURES: &[Fixture] = &[
    Fixture {
        name: "test_simple_text",
        description: "Returns a simple text content block",
        input_schema: no_arguments,
        run: Run::Content {
            content: || {
                vec![ContentBlock::text(
                    "This is a simple text response for testing.",
                )]
            },
            is_error: false,
        },
    },
    Fixture {
        name: "test_image_content",
        description: "Returns an image content block (a 1x1 PNG)",
        input_schema: no_arguments,
        run: Run::Content {
            content: || vec![ContentBlock::image(PNG, "image/png")],
            is_error: false,
        },
    },
    Fixture {
        name: "test_audio_content",
        description: "Returns an audio content block (a short WAV)",
        input_schema: no_arguments,
        run: Run::Content {
            content: || vec![ContentBlock::audio(WAV, "audio/wav")],
            is_error: false,
        },
    },
    Fixture {
        name: "test_embedded_resource",
        description: "Returns an embedded text resource",
        input_schema: no_arguments,
        run: Run::Content {
            content: || {
                vec![embedded(
                    "test://embedded-resource",
                    "text/plain",
                    "This is an embedded resource content.",
                )]
            },
            is_error: false,
        },
    },
    Fixture {
        name: "test_multiple_content_types",
        description: "Returns text, image and embedded resource content together",
        input_schema: no_arguments,
        run: Run::Content {
            content: || {
                vec![
                    ContentBlock::text("Multiple content types test:"),
                    ContentBlock::image(PNG, "image/png"),
                    embedded(
                        "test://mixed-content-resource",
                        "application/json",
                        r#"{"test":"data","value":123}"#,
                    ),
                ]
            },
            is_error: false,
        },
    },
    Fixture {
        name: "test_error_handling",
        description: "Always fails with a tool-level error result (isError: true)",
        input_schema: no_arguments,
        run: Run::Content {
            content: || {
                vec![ContentBlock::text(
                    "This tool intentionally returns an error for testing",
                )]
            },
            is_error: true,
        },
    },
    Fixture {
        name: "test_tool_with_logging",
        description: "Sends three log messages while it runs",
        input_schema: no_arguments,
        run: Run::Logging,
    },
    Fixture {
        name: "test_tool_with_progress",
        description: "Reports progress three times while it runs (needs a progressToken)",
        input_schema: no_arguments,
        run: Run::Progress,
    },
    Fixture {
        name: "test_sampling",
        description: "Asks the client to sample an LLM completion of `prompt`",
        input_schema: || {
            json!({
                "type": "object",
                "properties": {
                    "prompt": { "type": "string", "description": "The prompt to send to the LLM" }
                },
                "required": ["prompt"],
            })
        },
        run: Run::Sampling { prompt: None },
    },
    Fixture {
        name: "test_elicitation",
        description: "Asks the user for a username and an email address (form elicitation)",
        input_schema: || {
            json!({
                "type": "object",
                "properties": {
                    "message": { "type": "string", "description": "The message to show the user" }
                },
                "required": ["message"],
            })
        },
        run: Run::Elicit {
            message: None,
            requested_schema: || {
                json!({
                    "type": "object",
                    "properties": {
                        "username": { "type": "string", "description": "User's response" },
                        "email": { "type": "string", "description": "User's email address" },
                    },
                    "required": ["username", "email"],
                })
            },
        },
    },
    Fixture {
        name: "test_elicitation_sep1034_defaults",
        description: "Elicits a form whose fields carry default values (SEP-1034)",
        input_schema: no_arguments,
        run: Run::Elicit {
            message: Some("Please review and update the form fields with defaults"),
            requested_schema: || {
                json!({
                    "type": "object",
                    "properties": {
                        "name": { "type": "string", "description": "User name", "default": "John Doe" },
                        "age": { "type": "integer", "description": "User age", "default": 30 },
                        "score": { "type": "number", "description": "User score", "default": 95.5 },
                        "status": {
                            "type": "string",
                            "description": "User status",
                            "enum": ["active", "inactive", "pending"],
                            "default": "active",
                        },
                        "verified": { "type": "boolean", "description": "Verification status", "default": true },
                    },
                    "required": [],
                })
            },
        },
    },
    Fixture {
        name: "test_elicitation_sep1330_enums",
        description: "Elicits a form with every enum field variant (SEP-1330)",
        input_schema: no_arguments,
        run: Run::Elicit {
            message: Some("Please select options from the enum fields"),
            requested_schema: || {
                let titled = |titles: [&str; 3]| {
                    titles
                        .iter()
                        .enumerate()
                        .map(|(i, t)| json!({ "const": format!("value{}", i + 1), "title": t }))
                        .collect::<Vec<_>>()
                };
                json!({
                    "type": "object",
                    "properties": {
                        "untitledSingle": {
                            "type": "string",
                            "description": "Select one option",
                            "enum": ["option1", "option2", "option3"],
                        },
                        "titledSingle": {
                            "type": "string",
                            "description": "Select one option with titles",
                            "oneOf": titled(["First Option", "Second Option", "Third Option"]),
                        },
                        "legacyEnum": {
                            "type": "string",
                            "description": "Select one option (legacy)",
                            "enum": ["opt1", "opt2", "opt3"],
                            "enumNames": ["Option One", "Option Two", "Option Three"],
                        },
                        "untitledMulti": {
                            "type": "array",
                            "description": "Select multiple options",
                            "minItems": 1,
                            "maxItems": 3,
                            "items": { "type": "string", "enum": ["option1", "option2", "option3"] },
                        },
                        "titledMulti": {
                            "type": "array",
                            "description": "Select multiple options with titles",
                            "minItems": 1,
                            "maxItems": 3,
                            "items": { "anyOf": titled(["First Choice", "Second Choice", "Third Choice"]) },
                        },
                    },
                    "required": [],
                })
            },
        },
    },
    Fixture {
        name: "test_reconnection",
        description: "Answers on an SSE stream after a short pause (SSE polling, SEP-1699)",
        input_schema: no_arguments,
        run: Run::Reconnection,
    },
    Fixture {
        name: "json_schema_2020_12_tool",
        description: "Tool with JSON Schema 2020-12 features",
        input_schema: || {
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "$defs": {
                    "address": {
                        "$anchor": "addressDef",
                        "type": "object",
                        "properties": {
                            "street": { "type": "string" },
                            "city": { "type": "string" },
                        },
                    },
                },
                "properties": {
                    "name": { "type": "string" },
                    "address": { "$ref": "#/$defs/address" },
                    "contactMethod": { "type": "string", "enum": ["phone", "email"] },
                    "phone": { "type": "string" },
                    "email": { "type": "string" },
                },
                // The composition and conditional keywords the 2026-07-28
                // suite looks for (SEP-2106).
                "allOf": [{ "anyOf": [{ "required": ["phone"] }, { "required": ["email"] }] }],
                "if": {
                    "properties": { "contactMethod": { "const": "phone" } },
                    "required": ["contactMethod"],
                },
                "then": { "required": ["phone"] },
                "else": { "required": ["email"] },
                "additionalProperties": false,
            })
        },
        run: Run::EchoArguments,
    },
    Fixture {
        name: "test_custom_headers",
        description: "Tool whose region argument is mirrored in Mcp-Param-Region (SEP-2243)",
        input_schema: || {
            json!({
                "type": "object",
                "properties": {
                    "region": { "type": "string", "x-mcp-header": "Region" },
                    "query": { "type": "string" },
                },
                "required": ["region"],
            })
        },
        run: Run::EchoArguments,
    },
    Fixture {
        name: "test_missing_capability",
        description: "Needs the client's sampling capability: without it the call is refused \
                      with -32021 (SEP-2575)",
        input_schema: no_arguments,
        run: Run::Sampling {
            prompt: Some("Say hello"),
        },
    },
    Fixture {
        name: "test_streaming_elicitation",
        description: "Asks the user to confirm; on 2026-07-28 never as a request on the \
                      response stream (SEP-2575)",
        input_schema: no_arguments,
        run: Run::Elicit {
            message: Some("Please confirm to continue"),
            requested_schema: || {
                json!({
                    "type": "object",
                    "properties": { "confirmed": { "type": "boolean", "description": "Go on?" } },
                    "required": ["confirmed"],
                })
            },
        },
    },
    Fixture {
        name: "test_logging_tool",
        description: "Logs while it runs; a 2026-07-28 request gets the messages only at \
                      the logLevel its _meta asks for (SEP-2575)",
        input_schema: no_arguments,
        run: Run::Logging,
    },
];

#[async_trait]
impl ToolHandler for &'static Fixture {
    fn tool(&self) -> Tool {
        Tool::new(self.name, self.description, schema((self.input_schema)()))
    }

    async fn call(
        &self,
        ctx: &RequestContext,
        args: JsonObject,
    ) -> Result<CallToolResult, ErrorData> {
        match &self.run {
            Run::Content { content, is_error } => Ok(if *is_error {
                CallToolResult::error(content())
            } else {
                CallToolResult::success(content())
            }),
            Run::Logging => {
                let steps = [
                    "Tool execution started",
                    "Tool processing data",
                    "Tool execution completed",
                ];
                for (i, message) in steps.into_iter().enumerate() {
                    if i > 0 {
                        tokio::time::sleep(STEP).await;
                    }
                    ctx.log("info", None, json!(message)).await;
                }
                Ok(text_result("Tool with logging executed successfully"))
            }
            Run::Progress => {
                for (i, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
                    if i > 0 {
                        tokio::time::sleep(STEP).await;
                    }
                    ctx.progress(progress, Some(100.0), None).await;
                }
                Ok(text_result(match &ctx.progress_token {
                    Some(token) => format!("Reported progress 0, 50, 100 of 100 for token {token}"),
                    None => "Done (no progressToken, so no progress was reported)".into(),
                }))
            }
            Run::Sampling { prompt } => {
                ctx.require_client_capability("sampling")?;
                let prompt = match prompt {
                    Some(p) => *p,
                    None => string_arg(&args, "prompt")?,
                };
                let params = json!({
                    "messages": [{ "role": "user", "content": { "type": "text", "text": prompt } }],
                    "maxTokens": 100,
                });
                Ok(
                    match ask_client(ctx, "sampling", InputRequest::sample(params)).await {
                        Ok(answer) => {
                            text_result(format!("LLM response: {}", sampled_text(&answer)))
                        }
                        Err(failed) => failed,
                    },
                )
            }
            Run::Elicit {
                message,
                requested_schema,
            } => {
                ctx.require_client_capability("elicitation")?;
                let message = match message {
                    Some(m) => *m,
                    None => string_arg(&args, "message")?,
                };
                let mut params =
                    json!({ "message": message, "requestedSchema": requested_schema() });
                // Elicitation modes arrived in 2025-11-25.
                if &*ctx.protocol_version >= "2025-11-25" {
                    params["mode"] = json!("form");
                }
                Ok(
                    match ask_client(ctx, "elicitation", InputRequest::elicit(params)).await {
                        Ok(answer) => text_result(format!(
                            "Elicitation completed: action={}, content={}",
                            answer["action"].as_str().unwrap_or("?"),
                            answer.get("content").unwrap_or(&json!({}))
                        )),
                        Err(failed) => failed,
                    },
                )
            }
            Run::Reconnection => {
                // Talking to the client turns the response into an SSE
                // stream; closing the connection makes the client poll for
                // the result with Last-Event-ID.
                ctx.log("info", None, json!("Reconnection test started"))
                    .await;
                ctx.close_stream();
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(text_result("Reconnection test completed successfully."))
            }
            Run::EchoArguments => Ok(text_result(format!(
                "{} called with: {}",
                self.name,
                Value::Object(args)
            ))),
        }
    }
}

/// Asks the client for input under `key`: on a session a request on the
/// stream, on 2026-07-28 input-required until the retry answers. An input
/// the client cannot give (no capability, a failed request) becomes a
/// tool-level error result.
async fn ask_client(
    ctx: &RequestContext,
    key: &str,
    request: InputRequest,
) -> Result<Value, CallToolResult> {
    let method = request.kind().method();
    ctx.ask(key, request).await.map_err(|e| {
        CallToolResult::error(vec![ContentBlock::text(format!(
            "{method} failed: {}",
            e.message
        ))])
    })
}

/// The text of a sampling answer, whose `content` is one block or a list.
pub(super) fn sampled_text(answer: &Value) -> String {
    let content = &answer["content"];
    let blocks = content
        .as_array()
        .map_or_else(|| vec![content], |a| a.iter().collect());
    blocks
        .iter()
        .filter_map(|b| b["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}
