//! Lists that change while the server runs, for the suite's listen-stream
//! checks: a service of its own beside the fixtures, as an upstream server
//! would be, whose `test_trigger_tool_change` and
//! `test_trigger_prompt_change` each add or remove one entry of its
//! catalog (`test_dynamic_tool`, `test_dynamic_prompt`). Clients hear of it
//! the way they hear of any catalog change.

use std::sync::Mutex;

use async_trait::async_trait;
use rmcp::model::{ErrorCode, ErrorData, Tool};
use serde_json::{json, Value};

use crate::context::RequestContext;
use crate::request::Request;
use crate::service::{Answer, Capabilities, Catalog, LiveCatalog, Service};
use crate::tools::helpers::{schema, text_result};

const TRIGGER_TOOL: &str = "test_trigger_tool_change";
const TRIGGER_PROMPT: &str = "test_trigger_prompt_change";
const DYNAMIC_TOOL: &str = "test_dynamic_tool";
const DYNAMIC_PROMPT: &str = "test_dynamic_prompt";

/// The service; its dynamic entries start unlisted.
pub(crate) struct ListChanges {
    catalog: LiveCatalog,
    /// Whether the dynamic tool and the dynamic prompt are listed. Under
    /// the lock the catalog is set, so the last one set is the last state.
    listed: Mutex<(bool, bool)>,
}

impl ListChanges {
    pub(crate) fn new() -> Self {
        let changes = ListChanges {
            catalog: LiveCatalog::default(),
            listed: Mutex::new((false, false)),
        };
        changes.catalog.set(catalog(false, false));
        changes
    }

    /// Adds the dynamic tool (`tool`) or prompt if it is not listed, else
    /// removes it; says which.
    fn toggle(&self, tool: bool) -> &'static str {
        let mut listed = self.listed.lock().expect("listed poisoned");
        let now = if tool {
            listed.0 = !listed.0;
            listed.0
        } else {
            listed.1 = !listed.1;
            listed.1
        };
        self.catalog.set(catalog(listed.0, listed.1));
        if now {
            "added"
        } else {
            "removed"
        }
    }

    fn is_listed(&self, tool: bool) -> bool {
        let listed = self.listed.lock().expect("listed poisoned");
        if tool {
            listed.0
        } else {
            listed.1
        }
    }
}

/// A tool without arguments.
fn tool(name: &'static str, description: &'static str) -> Tool {
    let no_arguments = json!({ "type": "object", "properties": {} });
    Tool::new(name, description, schema(no_arguments))
}

fn catalog(dynamic_tool: bool, dynamic_prompt: bool) -> Catalog {
    let mut tools = vec![
        tool(
            TRIGGER_TOOL,
            "Adds test_dynamic_tool to the tool list, or removes it: clients are told the list changed",
        ),
        tool(
            TRIGGER_PROMPT,
            "Adds test_dynamic_prompt to the prompt list, or removes it: clients are told the list changed",
        ),
    ];
    if dynamic_tool {
        tools.push(tool(
            DYNAMIC_TOOL,
            "Listed while test_trigger_tool_change has added it",
        ));
    }
    let prompts = dynamic_prompt
        .then(|| {
            json!({
                "name": DYNAMIC_PROMPT,
                "description": "Listed while test_trigger_prompt_change has added it",
            })
        })
        .into_iter()
        .collect();
    Catalog {
        tools,
        prompts,
        ..Catalog::default()
    }
}

#[async_trait]
impl Service for ListChanges {
    fn catalog(&self) -> &LiveCatalog {
        &self.catalog
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            prompts: true,
            ..Capabilities::default()
        }
    }

    async fn serve(&self, _: &RequestContext, request: Request) -> Result<Answer, ErrorData> {
        match request.method.as_str() {
            "tools/call" => {
                let name = request.name()?;
                let text = match name {
                    TRIGGER_TOOL => format!("{DYNAMIC_TOOL} {}", self.toggle(true)),
                    TRIGGER_PROMPT => format!("{DYNAMIC_PROMPT} {}", self.toggle(false)),
                    DYNAMIC_TOOL if self.is_listed(true) => "dynamic".into(),
                    _ => {
                        return Err(ErrorData::invalid_params(
                            format!("Unknown tool: {name}"),
                            None,
                        ))
                    }
                };
                Ok(Answer::Tool(text_result(text)))
            }
            "prompts/get" => {
                let name = request.name()?;
                if name != DYNAMIC_PROMPT || !self.is_listed(false) {
                    return Err(ErrorData::invalid_params(
                        format!("Unknown prompt: {name}"),
                        None,
                    ));
                }
                let message: Value = json!({
                    "role": "user",
                    "content": { "type": "text", "text": "A prompt listed at run time." },
                });
                Ok(Answer::Json(json!({ "messages": [message] })))
            }
            method => Err(ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!("Method not found: {method}"),
                None,
            )),
        }
    }
}
