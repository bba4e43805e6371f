//! The fixtures of the suite's tasks scenarios (SEP-2663): a tool that
//! never runs as a task, tools that may or must, one that fails at the
//! protocol level, and tools that ask the client for input while they run.

use std::time::Duration;

use async_trait::async_trait;
use rmcp::model::{CallToolResult, ContentBlock, ErrorData, JsonObject, Tool};
use serde_json::{json, Value};

use crate::context::RequestContext;
use crate::input::InputRequest;
use crate::server::ToolHandler;
use crate::tasks::TaskSupport;
use crate::tools::helpers::{schema, string_arg, text_result};

/// A tasks fixture: its listing, whether it runs as a task, what it does.
pub(super) struct TaskFixture {
    pub(super) name: &'static str,
    pub(super) description: &'static str,
    input_schema: fn() -> Value,
    support: TaskSupport,
    run: Run,
}

enum Run {
    /// `Hello, {name}!`
    Greet,
    /// Sleeps `seconds` (0 by default), then answers with its `label`.
    SlowCompute,
    /// A tool error result, after about a second.
    ToolError,
    /// A protocol-level error.
    ProtocolError,
    /// Asks the user to confirm deleting `filename` (one elicitation).
    ConfirmDelete,
    /// Asks for two inputs at once (two elicitations in parallel).
    MultiInput,
    /// Asks for the user's name before its task begins (MRTR), then greets
    /// them from the task.
    NameThenTask,
}

fn object(properties: Value) -> Value {
    json!({ "type": "object", "properties": properties })
}

pub(super) const TASK_FIXTURES: &[TaskFixture] = &[
    TaskFixture {
        name: "greet",
        description: "Greets `name`; never runs as a task",
        input_schema: || object(json!({ "name": { "type": "string" } })),
        support: TaskSupport::Forbidden,
        run: Run::Greet,
    },
    TaskFixture {
        name: "slow_compute",
        description: "Sleeps `seconds`, then answers with `label`; a task when the client \
                      declared the tasks extension",
        input_schema: || {
            object(json!({
                "seconds": { "type": "number", "minimum": 0 },
                "label": { "type": "string" },
            }))
        },
        support: TaskSupport::Optional,
        run: Run::SlowCompute,
    },
    TaskFixture {
        name: "failing_job",
        description: "Runs only as a task, and ends with a tool error after about a second",
        input_schema: || object(json!({})),
        support: TaskSupport::Required,
        run: Run::ToolError,
    },
    TaskFixture {
        name: "protocol_error_job",
        description: "A task that fails with a protocol (JSON-RPC) error",
        input_schema: || object(json!({})),
        support: TaskSupport::Optional,
        run: Run::ProtocolError,
    },
    TaskFixture {
        name: "confirm_delete",
        description: "Asks the user to confirm deleting `filename`, then says what it did",
        input_schema: || object(json!({ "filename": { "type": "string" } })),
        support: TaskSupport::Optional,
        run: Run::ConfirmDelete,
    },
    TaskFixture {
        name: "multi_input",
        description: "Asks the user two questions at once, then echoes both answers",
        input_schema: || object(json!({})),
        support: TaskSupport::Optional,
        run: Run::MultiInput,
    },
    TaskFixture {
        name: "test_tool_with_task",
        description: "Asks for the user's name with an input-required result, then greets them \
                      from a task",
        input_schema: || object(json!({})),
        support: TaskSupport::Required,
        run: Run::NameThenTask,
    },
];

/// The `user_name` question of `test_tool_with_task`.
fn ask_name() -> InputRequest {
    InputRequest::elicit(json!({
        "mode": "form",
        "message": "What is your name?",
        "requestedSchema": {
            "type": "object",
            "properties": { "name": { "type": "string" } },
            "required": ["name"],
        },
    }))
}

/// A form elicitation of one boolean and one string.
fn elicitation(message: String) -> Value {
    json!({
        "mode": "form",
        "message": message,
        "requestedSchema": {
            "type": "object",
            "properties": {
                "confirm": { "type": "boolean" },
                "name": { "type": "string" },
            },
        },
    })
}

#[async_trait]
impl ToolHandler for &'static TaskFixture {
    fn tool(&self) -> Tool {
        Tool::new(self.name, self.description, schema((self.input_schema)()))
    }

    fn task_support(&self) -> TaskSupport {
        self.support
    }

    async fn before_task(&self, ctx: &RequestContext, _: &JsonObject) -> Result<(), ErrorData> {
        if let Run::NameThenTask = self.run {
            ctx.ask("user_name", ask_name()).await?;
        }
        Ok(())
    }

    async fn call(
        &self,
        ctx: &RequestContext,
        args: JsonObject,
    ) -> Result<CallToolResult, ErrorData> {
        match self.run {
            Run::Greet => Ok(text_result(format!(
                "Hello, {}!",
                args.get("name").and_then(Value::as_str).unwrap_or("World")
            ))),
            Run::SlowCompute => {
                let seconds = args.get("seconds").and_then(Value::as_f64).unwrap_or(0.0);
                if !(0.0..=3600.0).contains(&seconds) {
                    return Err(ErrorData::invalid_params(
                        "`seconds` must be between 0 and 3600",
                        None,
                    ));
                }
                tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
                let label = args.get("label").and_then(Value::as_str).unwrap_or("");
                Ok(text_result(format!("Computed {label:?} after {seconds} s")))
            }
            Run::ToolError => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok(CallToolResult::error(vec![ContentBlock::text(
                    "The job failed, as it always does",
                )]))
            }
            Run::ProtocolError => Err(ErrorData::internal_error(
                "The job failed with an internal error, as it always does",
                None,
            )),
            Run::ConfirmDelete => {
                let filename = string_arg(&args, "filename")?;
                let params = elicitation(format!("Delete {filename}?"));
                let answer = ctx.ask("confirm", InputRequest::elicit(params)).await?;
                let confirmed =
                    answer["action"] == "accept" && answer["content"]["confirm"] == true;
                Ok(text_result(if confirmed {
                    format!("Deleted {filename}")
                } else {
                    format!("Kept {filename}")
                }))
            }
            Run::MultiInput => {
                let answers = ctx
                    .ask_all(vec![
                        ("first", InputRequest::elicit(elicitation("First?".into()))),
                        (
                            "second",
                            InputRequest::elicit(elicitation("Second?".into())),
                        ),
                    ])
                    .await?;
                Ok(text_result(format!(
                    "Answers: {} and {}",
                    answers[0]["content"], answers[1]["content"]
                )))
            }
            Run::NameThenTask => {
                let answer = ctx.ask("user_name", ask_name()).await?;
                let name = answer["content"]["name"].as_str().unwrap_or("stranger");
                Ok(text_result(format!("Hello, {name}! (from a task)")))
            }
        }
    }
}
