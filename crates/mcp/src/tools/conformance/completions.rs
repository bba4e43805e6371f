//! Argument completions for the fixture prompts and the resource template.

use async_trait::async_trait;
use rmcp::model::ErrorData;
use serde_json::{json, Value};

use crate::context::RequestContext;
use crate::server::Completer;

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
pub(super) struct Completions;

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
