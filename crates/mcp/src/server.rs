//! What the server offers itself — tools, resources, prompts, completions —
//! as one [`Service`]: handlers registered at assembly, behind a catalog
//! that is fixed once the server is built.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use rmcp::model::{CallToolResult, ContentBlock, ErrorCode, ErrorData, JsonObject, Tool};
use serde_json::{json, Map, Value};

use crate::context::RequestContext;
use crate::request::Request;
use crate::service::{Answer, Capabilities, Catalog, LiveCatalog, Service};
use crate::tasks::{self, TaskSupport};

/// A tool the server can run.
#[async_trait]
pub trait ToolHandler: Send + Sync + 'static {
    fn tool(&self) -> Tool;
    /// Whether its calls run as tasks (the tasks extension): by default
    /// they never do.
    fn task_support(&self) -> TaskSupport {
        TaskSupport::Forbidden
    }
    /// Input a call needs before its task is created, asked with
    /// [`RequestContext::ask`]: on 2026-07-28 in rounds of input-required
    /// results, so the task begins only once the client has answered, and
    /// its work finds the answers when it asks again. By default none.
    async fn before_task(
        &self,
        _ctx: &RequestContext,
        _arguments: &JsonObject,
    ) -> Result<(), ErrorData> {
        Ok(())
    }
    async fn call(
        &self,
        ctx: &RequestContext,
        arguments: JsonObject,
    ) -> Result<CallToolResult, ErrorData>;
}

/// Resources: a static list, templates, and reads.
#[async_trait]
pub trait ResourceProvider: Send + Sync + 'static {
    /// `resources/list` entries.
    fn resources(&self) -> Vec<Value>;
    /// `resources/templates/list` entries.
    fn templates(&self) -> Vec<Value>;
    /// The `contents` of a resource, or `None` if there is no such resource.
    async fn read(&self, ctx: &RequestContext, uri: &str) -> Result<Option<Vec<Value>>, ErrorData>;
}

/// A prompt.
#[async_trait]
pub trait PromptHandler: Send + Sync + 'static {
    /// The `prompts/list` entry; its `name` identifies it.
    fn prompt(&self) -> Value;
    /// The `prompts/get` result.
    async fn get(
        &self,
        ctx: &RequestContext,
        arguments: Map<String, Value>,
    ) -> Result<Value, ErrorData>;
}

/// Argument completion (`completion/complete`).
#[async_trait]
pub trait Completer: Send + Sync + 'static {
    /// `params` as sent; returns the `completion` object.
    async fn complete(&self, ctx: &RequestContext, params: &Value) -> Result<Value, ErrorData>;
}

/// The built-in service: the handlers given to it, in order.
#[derive(Default)]
pub struct McpServer {
    tools: Vec<Arc<dyn ToolHandler>>,
    tool_index: HashMap<String, usize>,
    resources: Option<Arc<dyn ResourceProvider>>,
    prompts: Vec<Arc<dyn PromptHandler>>,
    completer: Option<Arc<dyn Completer>>,
    catalog: LiveCatalog,
}

impl McpServer {
    pub fn new() -> Self {
        McpServer::default()
    }

    pub fn with_tool(mut self, tool: impl ToolHandler) -> Self {
        self.tool_index
            .insert(tool.tool().name.to_string(), self.tools.len());
        self.tools.push(Arc::new(tool));
        self.listed()
    }

    pub fn with_resources(mut self, provider: impl ResourceProvider) -> Self {
        self.resources = Some(Arc::new(provider));
        self.listed()
    }

    pub fn with_prompt(mut self, prompt: impl PromptHandler) -> Self {
        self.prompts.push(Arc::new(prompt));
        self.listed()
    }

    pub fn with_completer(mut self, completer: impl Completer) -> Self {
        self.completer = Some(Arc::new(completer));
        self
    }

    /// Brings the catalog up to date with the handlers.
    fn listed(self) -> Self {
        let resources = self.resources.as_ref();
        self.catalog.set(Catalog {
            tools: self.tools.iter().map(|t| t.tool()).collect(),
            prompts: self.prompts.iter().map(|p| p.prompt()).collect(),
            resources: resources.map(|r| r.resources()).unwrap_or_default(),
            templates: resources.map(|r| r.templates()).unwrap_or_default(),
        });
        self
    }

    /// Calls a tool; as a task when the tool runs as one and the client
    /// declared the tasks extension.
    async fn call_tool(
        &self,
        ctx: &RequestContext,
        mut request: Request,
    ) -> Result<Answer, ErrorData> {
        let name = request.name()?;
        // The key, not the request's name: it outlives the borrow of `request`.
        let Some((tool, &index)) = self.tool_index.get_key_value(name) else {
            return Err(ErrorData::invalid_params(
                format!("Unknown tool: {name}"),
                None,
            ));
        };
        let handler = &self.tools[index];
        let owner = match handler.task_support() {
            TaskSupport::Forbidden => None,
            support => match tasks::declared(ctx) {
                Some(owner) => Some(owner),
                None if support == TaskSupport::Required => return Err(tasks::missing_capability()),
                None => None,
            },
        };
        let arguments = request.take_arguments()?;
        match owner {
            None => call(handler, ctx, arguments).await.map(Answer::Tool),
            Some(owner) => {
                handler.before_task(ctx, &arguments).await?;
                let handler = handler.clone();
                tasks::start(ctx, owner, tool, move |task_ctx| async move {
                    call(&handler, &task_ctx, arguments).await
                })
                .await
                .map(Answer::Json)
            }
        }
    }

    async fn read_resource(
        &self,
        ctx: &RequestContext,
        request: &Request,
    ) -> Result<Value, ErrorData> {
        let uri = request.uri()?;
        let contents = match &self.resources {
            Some(provider) => provider.read(ctx, uri).await?,
            None => None,
        };
        match contents {
            Some(contents) => Ok(json!({ "contents": contents })),
            None => Err(ErrorData::new(
                ErrorCode::RESOURCE_NOT_FOUND,
                format!("Resource not found: {uri}"),
                Some(json!({ "uri": uri })),
            )),
        }
    }

    async fn get_prompt(
        &self,
        ctx: &RequestContext,
        mut request: Request,
    ) -> Result<Value, ErrorData> {
        let name = request.name()?;
        let prompt = self
            .prompts
            .iter()
            .find(|h| h.prompt()["name"] == name)
            .ok_or_else(|| ErrorData::invalid_params(format!("Unknown prompt: {name}"), None))?
            .clone();
        prompt.get(ctx, request.take_arguments()?).await
    }
}

/// Calls a tool. From 2025-11-25 on, arguments a tool refuses are its own
/// execution error, which a model can read and correct.
async fn call(
    handler: &Arc<dyn ToolHandler>,
    ctx: &RequestContext,
    arguments: JsonObject,
) -> Result<CallToolResult, ErrorData> {
    match handler.call(ctx, arguments).await {
        Err(e) if e.code == ErrorCode::INVALID_PARAMS && &*ctx.protocol_version >= "2025-11-25" => {
            Ok(CallToolResult::error(vec![ContentBlock::text(e.message)]))
        }
        outcome => outcome,
    }
}

#[async_trait]
impl Service for McpServer {
    fn catalog(&self) -> &LiveCatalog {
        &self.catalog
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            resources: self.resources.is_some(),
            prompts: !self.prompts.is_empty(),
            completions: self.completer.is_some(),
        }
    }

    async fn serve(&self, ctx: &RequestContext, request: Request) -> Result<Answer, ErrorData> {
        match (request.method.as_str(), &self.completer) {
            ("tools/call", _) => self.call_tool(ctx, request).await,
            ("resources/read", _) => self.read_resource(ctx, &request).await.map(Answer::Json),
            ("prompts/get", _) => self.get_prompt(ctx, request).await.map(Answer::Json),
            ("completion/complete", Some(completer)) => {
                let params: Value = request.parse()?;
                let completion = completer.complete(ctx, &params).await?;
                Ok(Answer::Json(json!({ "completion": completion })))
            }
            (method, _) => Err(ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!("Method not found: {method}"),
                None,
            )),
        }
    }
}
