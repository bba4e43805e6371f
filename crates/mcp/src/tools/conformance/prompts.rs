//! The fixture prompts: plain, with arguments, with an embedded resource,
//! with an image.

use async_trait::async_trait;
use rmcp::model::ErrorData;
use serde_json::{json, Map, Value};

use super::media::PNG;
use crate::context::RequestContext;
use crate::server::PromptHandler;

/// A prompt; every argument it lists is required.
pub(super) struct Prompt {
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

pub(super) const PROMPTS: &[Prompt] = &[
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
