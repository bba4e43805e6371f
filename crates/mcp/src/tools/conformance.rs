//! The fixtures of the official MCP conformance suite
//! (`@modelcontextprotocol/conformance`), served only with
//! `serve --conformance`: the tools, resources, resource template, prompts
//! and argument completions its server scenarios call, with the names,
//! arguments and result shapes those scenarios check.
//!
//! Everything is table-driven: [`FIXTURES`] lists the tools (static content,
//! logging, progress, sampling, elicitation, ...), [`RESOURCES`] the static
//! resources, [`PROMPTS`] the prompts and [`COMPLETIONS`] the argument
//! suggestions. `scripts/conformance` runs the suite against them.

use std::time::Duration;

use async_trait::async_trait;
use rmcp::model::{CallToolResult, ContentBlock, ErrorData, JsonObject, ResourceContents, Tool};
use serde_json::{json, Map, Value};

use super::{schema, string_arg, text_result};
use crate::context::RequestContext;
use crate::server::{Completer, McpServer, PromptHandler, ResourceProvider, ToolHandler};

/// A 1×1 red PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A WAV file: 8 kHz, mono, 16 bit, four samples of silence.
const WAV: &str = "UklGRiwAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQgAAAAAAAAAAAAAAA==";

/// Pause between the notifications of the logging and progress tools.
const STEP: Duration = Duration::from_millis(50);

/// Adds every conformance fixture to a server.
pub fn with_conformance_fixtures(server: McpServer) -> McpServer {
    let server = FIXTURES.iter().fold(server, McpServer::with_tool);
    PROMPTS
        .iter()
        .fold(server, McpServer::with_prompt)
        .with_resources(Resources)
        .with_completer(Completions)
}

// -------------------------------------------------------------------- tools

/// A fixture tool: its listing and what a call does.
struct Fixture {
    name: &'static str,
    description: &'static str,
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
    /// Asks the client to sample a completion of the `prompt` argument.
    Sampling,
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

fn no_arguments() -> Value {
    json!({ "type": "object", "properties": {} })
}

fn embedded(uri: &str, mime_type: &str, text: &str) -> ContentBlock {
    ContentBlock::resource(ResourceContents::text(text, uri).with_mime_type(mime_type))
}

const FIXTURES: &[Fixture] = &[
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
        run: Run::Sampling,
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
                },
                "additionalProperties": false,
            })
        },
        run: Run::EchoArguments,
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
            Run::Sampling => {
                let prompt = string_arg(&args, "prompt")?;
                let params = json!({
                    "messages": [{ "role": "user", "content": { "type": "text", "text": prompt } }],
                    "maxTokens": 100,
                });
                Ok(
                    match ask_client(ctx, "sampling", "sampling/createMessage", params).await {
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
                    match ask_client(ctx, "elicitation", "elicitation/create", params).await {
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
                "JSON Schema 2020-12 tool called with: {}",
                Value::Object(args)
            ))),
        }
    }
}

/// Sends a request to the client if it declared `capability`; a missing
/// capability or a failed request becomes a tool-level error result.
async fn ask_client(
    ctx: &RequestContext,
    capability: &str,
    method: &str,
    params: Value,
) -> Result<Value, CallToolResult> {
    let failed = |why: String| CallToolResult::error(vec![ContentBlock::text(why)]);
    if ctx.client_capabilities().get(capability).is_none() {
        return Err(failed(format!(
            "The client does not support {capability} (no `{capability}` capability)"
        )));
    }
    ctx.request_client(method, params)
        .await
        .map_err(|e| failed(format!("{method} failed: {}", e.message)))
}

/// The text of a sampling answer, whose `content` is one block or a list.
fn sampled_text(answer: &Value) -> String {
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

// ---------------------------------------------------------------- resources

/// A static resource and its contents.
struct StaticResource {
    uri: &'static str,
    name: &'static str,
    title: &'static str,
    description: &'static str,
    mime_type: &'static str,
    body: Body,
}

enum Body {
    Text(&'static str),
    /// Base64.
    Blob(&'static str),
}

const RESOURCES: &[StaticResource] = &[
    StaticResource {
        uri: "test://static-text",
        name: "static-text",
        title: "Static Text Resource",
        description: "A static text resource for testing",
        mime_type: "text/plain",
        body: Body::Text("This is the content of the static text resource."),
    },
    StaticResource {
        uri: "test://static-binary",
        name: "static-binary",
        title: "Static Binary Resource",
        description: "A static binary resource (image) for testing",
        mime_type: "image/png",
        body: Body::Blob(PNG),
    },
    StaticResource {
        uri: "test://watched-resource",
        name: "watched-resource",
        title: "Watched Resource",
        description: "A resource to subscribe to",
        mime_type: "text/plain",
        body: Body::Text("Watched resource content"),
    },
];

/// The resource template: `{id}` is any non-empty path segment.
const TEMPLATE: (&str, &str) = ("test://template/", "/data");

struct Resources;

#[async_trait]
impl ResourceProvider for Resources {
    fn resources(&self) -> Vec<Value> {
        RESOURCES
            .iter()
            .map(|r| {
                json!({
                    "uri": r.uri,
                    "name": r.name,
                    "title": r.title,
                    "description": r.description,
                    "mimeType": r.mime_type,
                })
            })
            .collect()
    }

    fn templates(&self) -> Vec<Value> {
        vec![json!({
            "uriTemplate": format!("{}{{id}}{}", TEMPLATE.0, TEMPLATE.1),
            "name": "template",
            "title": "Resource Template",
            "description": "A resource template with parameter substitution",
            "mimeType": "application/json",
        })]
    }

    async fn read(&self, _: &RequestContext, uri: &str) -> Result<Option<Vec<Value>>, ErrorData> {
        if let Some(r) = RESOURCES.iter().find(|r| r.uri == uri) {
            let (key, value) = match r.body {
                Body::Text(text) => ("text", text),
                Body::Blob(blob) => ("blob", blob),
            };
            return Ok(Some(vec![
                json!({ "uri": uri, "mimeType": r.mime_type, key: value }),
            ]));
        }
        let id = uri
            .strip_prefix(TEMPLATE.0)
            .and_then(|rest| rest.strip_suffix(TEMPLATE.1))
            .filter(|id| !id.is_empty() && !id.contains('/'));
        Ok(id.map(|id| {
            let data =
                json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") });
            vec![json!({ "uri": uri, "mimeType": "application/json", "text": data.to_string() })]
        }))
    }
}

// ------------------------------------------------------------------ prompts

/// A prompt; every argument it lists is required.
struct Prompt {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    /// `(name, description)` of each argument.
    arguments: &'static [(&'static str, &'static str)],
    /// The messages, from the (validated) arguments.
    messages: fn(&Map<String, Value>) -> Value,
}

fn user(content: Value) -> Value {
    json!({ "role": "user", "content": content })
}

fn text(text: impl Into<String>) -> Value {
    json!({ "type": "text", "text": text.into() })
}

fn arg<'a>(args: &'a Map<String, Value>, name: &str) -> &'a str {
    args.get(name).and_then(Value::as_str).unwrap_or_default()
}

const PROMPTS: &[Prompt] = &[
    Prompt {
        name: "test_simple_prompt",
        title: "Simple Test Prompt",
        description: "A simple prompt without arguments",
        arguments: &[],
        messages: |_| json!([user(text("This is a simple prompt for testing."))]),
    },
    Prompt {
        name: "test_prompt_with_arguments",
        title: "Prompt With Arguments",
        description: "A prompt with required arguments",
        arguments: &[
            ("arg1", "First test argument"),
            ("arg2", "Second test argument"),
        ],
        messages: |args| {
            json!([user(text(format!(
                "Prompt with arguments: arg1='{}', arg2='{}'",
                arg(args, "arg1"),
                arg(args, "arg2")
            )))])
        },
    },
    Prompt {
        name: "test_prompt_with_embedded_resource",
        title: "Prompt With Embedded Resource",
        description: "A prompt that includes an embedded resource",
        arguments: &[("resourceUri", "URI of the resource to embed")],
        messages: |args| {
            let resource = json!({
                "uri": arg(args, "resourceUri"),
                "mimeType": "text/plain",
                "text": "Embedded resource content for testing.",
            });
            json!([
                user(json!({ "type": "resource", "resource": resource })),
                user(text("Please process the embedded resource above.")),
            ])
        },
    },
    Prompt {
        name: "test_prompt_with_image",
        title: "Prompt With Image",
        description: "A prompt that includes image content",
        arguments: &[],
        messages: |_| {
            json!([
                user(json!({ "type": "image", "data": PNG, "mimeType": "image/png" })),
                user(text("Please analyze the image above.")),
            ])
        },
    },
];

#[async_trait]
impl PromptHandler for &'static Prompt {
    fn prompt(&self) -> Value {
        let mut prompt = json!({
            "name": self.name,
            "title": self.title,
            "description": self.description,
        });
        if !self.arguments.is_empty() {
            prompt["arguments"] = self
                .arguments
                .iter()
                .map(|(name, description)| {
                    json!({ "name": name, "description": description, "required": true })
                })
                .collect();
        }
        prompt
    }

    async fn get(&self, _: &RequestContext, args: Map<String, Value>) -> Result<Value, ErrorData> {
        if let Some((missing, _)) = self
            .arguments
            .iter()
            .find(|(name, _)| !args.get(*name).is_some_and(Value::is_string))
        {
            return Err(ErrorData::invalid_params(
                format!("prompt {} needs the string argument {missing:?}", self.name),
                None,
            ));
        }
        Ok(json!({ "description": self.description, "messages": (self.messages)(&args) }))
    }
}

// -------------------------------------------------------------- completions

/// `(reference type, prompt name or template URI, argument, candidates)`.
const COMPLETIONS: &[(&str, &str, &str, &[&str])] = &[
    (
        "ref/prompt",
        "test_prompt_with_arguments",
        "arg1",
        &["test", "testValue1", "sample1"],
    ),
    (
        "ref/prompt",
        "test_prompt_with_arguments",
        "arg2",
        &["test", "testValue2", "sample2"],
    ),
    (
        "ref/prompt",
        "test_prompt_with_embedded_resource",
        "resourceUri",
        &[
            "test://static-text",
            "test://static-binary",
            "test://watched-resource",
        ],
    ),
    (
        "ref/resource",
        "test://template/{id}/data",
        "id",
        &["1", "2", "3", "123"],
    ),
];

/// Suggests the candidates of [`COMPLETIONS`] that start with the value typed so far.
struct Completions;

#[async_trait]
impl Completer for Completions {
    async fn complete(&self, _: &RequestContext, params: &Value) -> Result<Value, ErrorData> {
        let reference = &params["ref"];
        let target = reference["name"]
            .as_str()
            .or_else(|| reference["uri"].as_str());
        let argument = params["argument"]["name"].as_str();
        let typed = params["argument"]["value"].as_str().unwrap_or_default();
        let values: Vec<&str> = COMPLETIONS
            .iter()
            .filter(|(kind, name, arg, _)| {
                reference["type"] == *kind && target == Some(*name) && argument == Some(*arg)
            })
            .flat_map(|(.., candidates)| candidates.iter().copied())
            .filter(|c| c.starts_with(typed))
            .collect();
        Ok(json!({ "values": values, "total": values.len(), "hasMore": false }))
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    fn decode(b64: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("valid base64")
    }

    #[test]
    fn binary_fixtures_are_valid_png_and_wav() {
        let png = decode(PNG);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(png.ends_with(b"IEND\xae\x42\x60\x82"));
        let wav = decode(WAV);
        assert_eq!((&wav[..4], &wav[8..16]), (&b"RIFF"[..], &b"WAVEfmt "[..]));
        let riff_len = u32::from_le_bytes(wav[4..8].try_into().unwrap()) as usize;
        let data_len = u32::from_le_bytes(wav[40..44].try_into().unwrap()) as usize;
        assert_eq!((riff_len + 8, 44 + data_len), (wav.len(), wav.len()));
    }

    #[test]
    fn every_listing_is_well_formed() {
        let server = with_conformance_fixtures(McpServer::new("t", "0"));
        let caps = server.capabilities(false);
        for key in ["tools", "resources", "prompts", "completions", "logging"] {
            assert!(caps.get(key).is_some(), "{key}");
        }
        for fixture in FIXTURES {
            let tool = fixture.tool();
            assert!(!fixture.description.is_empty());
            assert_eq!(tool.input_schema["type"], "object", "{}", fixture.name);
        }
        for prompt in PROMPTS {
            assert!(!prompt.prompt()["description"].as_str().unwrap().is_empty());
        }
    }
}
