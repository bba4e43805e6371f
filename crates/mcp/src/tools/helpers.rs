//! Small helpers for writing tools: results of text or JSON, required
//! arguments, input schemas.

use rmcp::model::{CallToolResult, ContentBlock, ErrorData, JsonObject};
use serde_json::Value;

/// A tool result with one text block.
pub fn text_result(text: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

/// A tool result carrying a JSON value, as pretty text and as structured content.
pub fn json_result(value: Value) -> CallToolResult {
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    let mut result = text_result(text);
    result.structured_content = Some(value);
    result
}

/// A required string argument.
pub fn string_arg<'a>(args: &'a JsonObject, name: &str) -> Result<&'a str, ErrorData> {
    match args.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ErrorData::invalid_params(
            format!("argument {name:?} must be a string"),
            None,
        )),
        None => Err(ErrorData::invalid_params(
            format!("missing required argument {name:?}"),
            None,
        )),
    }
}

/// A JSON Schema object for a tool's input, from a `json!` literal.
pub fn schema(value: Value) -> std::sync::Arc<JsonObject> {
    match value {
        Value::Object(map) => std::sync::Arc::new(map),
        _ => unreachable!("tool schemas are object literals"),
    }
}
