//! What the server offers — tools, resources, prompts, completions — and the
//! dispatch of a method to them. Transport-neutral: the HTTP layer decides
//! the generation and hands a [`RequestContext`] here.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use rmcp::model::{CallToolResult, ErrorCode, ErrorData, JsonObject, MetaObject, ResultType, Tool};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::context::{is_log_level, RequestContext};
use crate::jsonrpc::{self, Id};
use crate::protocol::{self, META_SERVER_INFO};

/// A tool the server can run.
#[async_trait]
pub trait ToolHandler: Send + Sync + 'static {
    fn tool(&self) -> Tool;
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

/// The server's catalog and identity.
#[derive(Default)]
pub struct McpServer {
    pub name: String,
    pub version: String,
    pub instructions: Option<String>,
    tools: Vec<Arc<dyn ToolHandler>>,
    tool_index: HashMap<String, usize>,
    tool_list: Vec<Tool>,
    resources: Option<Arc<dyn ResourceProvider>>,
    prompts: Vec<Arc<dyn PromptHandler>>,
    completer: Option<Arc<dyn Completer>>,
}

impl McpServer {
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        McpServer {
            name: name.into(),
            version: version.into(),
            ..Default::default()
        }
    }

    pub fn with_tool(mut self, tool: impl ToolHandler) -> Self {
        let descriptor = tool.tool();
        self.tool_index
            .insert(descriptor.name.to_string(), self.tools.len());
        self.tool_list.push(descriptor);
        self.tools.push(Arc::new(tool));
        self
    }

    pub fn with_resources(mut self, provider: impl ResourceProvider) -> Self {
        self.resources = Some(Arc::new(provider));
        self
    }

    pub fn with_prompt(mut self, prompt: impl PromptHandler) -> Self {
        self.prompts.push(Arc::new(prompt));
        self
    }

    pub fn with_completer(mut self, completer: impl Completer) -> Self {
        self.completer = Some(Arc::new(completer));
        self
    }

    /// Whether the server offers a tool of this name.
    pub fn has_tool(&self, name: &str) -> bool {
        self.tool_index.contains_key(name)
    }

    pub fn server_info(&self) -> Value {
        json!({ "name": self.name, "version": self.version })
    }

    /// Capabilities, derived from what the catalog holds.
    pub fn capabilities(&self, stateless: bool) -> Value {
        let mut caps = Map::new();
        caps.insert("tools".into(), json!({ "listChanged": false }));
        if !stateless {
            caps.insert("logging".into(), json!({}));
        }
        if self.resources.is_some() {
            let resources = if stateless {
                json!({ "listChanged": false })
            } else {
                json!({ "subscribe": true, "listChanged": false })
            };
            caps.insert("resources".into(), resources);
        }
        if !self.prompts.is_empty() {
            caps.insert("prompts".into(), json!({ "listChanged": false }));
        }
        if self.completer.is_some() {
            caps.insert("completions".into(), json!({}));
        }
        Value::Object(caps)
    }

    /// The `initialize` result for a negotiated sessionful revision.
    pub fn initialize_result(&self, version: &str) -> Value {
        let mut result = json!({
            "protocolVersion": version,
            "capabilities": self.capabilities(false),
            "serverInfo": self.server_info(),
        });
        if let Some(i) = &self.instructions {
            result["instructions"] = json!(i);
        }
        result
    }

    /// Serves one request. Results come back shaped for the caller's generation.
    pub async fn dispatch(
        &self,
        ctx: &RequestContext,
        method: &str,
        params: Option<&RawValue>,
    ) -> Result<Answer, ErrorData> {
        let stateless = ctx.is_stateless();
        let mut result = match method {
            "ping" if !stateless => Ok(json!({})),
            "server/discover" if stateless => Ok(self.discover()),
            "tools/list" => Ok(json!({ "tools": self.tool_list })),
            "tools/call" => return self.call_tool(ctx, params).await.map(Answer::Tool),
            "resources/list" if self.resources.is_some() => Ok(json!({
                "resources": self.resources.as_ref().map(|r| r.resources()).unwrap_or_default()
            })),
            "resources/templates/list" if self.resources.is_some() => Ok(json!({
                "resourceTemplates": self.resources.as_ref().map(|r| r.templates()).unwrap_or_default()
            })),
            "resources/read" if self.resources.is_some() => self.read_resource(ctx, params).await,
            "resources/subscribe" | "resources/unsubscribe"
                if self.resources.is_some() && !stateless =>
            {
                self.subscription(ctx, method, params)
            }
            "prompts/list" if !self.prompts.is_empty() => Ok(json!({
                "prompts": self.prompts.iter().map(|p| p.prompt()).collect::<Vec<_>>()
            })),
            "prompts/get" if !self.prompts.is_empty() => self.get_prompt(ctx, params).await,
            "completion/complete" if self.completer.is_some() => {
                let params: Value = parse_params(params)?;
                let completion = self
                    .completer
                    .as_ref()
                    .expect("guarded")
                    .complete(ctx, &params)
                    .await?;
                Ok(json!({ "completion": completion }))
            }
            "logging/setLevel" if !stateless => self.set_log_level(ctx, params),
            _ => Err(ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!("Method not found: {method}"),
                None,
            )),
        }?;
        shape_result(&mut result, method, stateless, || self.server_info());
        Ok(Answer::Json(result))
    }

    fn discover(&self) -> Value {
        let mut result = json!({
            "supportedVersions": protocol::supported_versions(),
            "capabilities": self.capabilities(true),
            "serverInfo": self.server_info(),
        });
        if let Some(i) = &self.instructions {
            result["instructions"] = json!(i);
        }
        result
    }

    async fn call_tool(
        &self,
        ctx: &RequestContext,
        params: Option<&RawValue>,
    ) -> Result<CallToolResult, ErrorData> {
        #[derive(Deserialize)]
        struct CallParams {
            name: String,
            #[serde(default)]
            arguments: Option<JsonObject>,
        }
        let p: CallParams = parse_params(params)?;
        let Some(&index) = self.tool_index.get(&p.name) else {
            return Err(ErrorData::invalid_params(
                format!("Unknown tool: {}", p.name),
                None,
            ));
        };
        let mut result = self.tools[index]
            .call(ctx, p.arguments.unwrap_or_default())
            .await?;
        // What `shape_result` does to other results, on the typed one.
        if ctx.is_stateless() {
            result.result_type.get_or_insert(ResultType::COMPLETE);
            result
                .meta
                .get_or_insert_with(MetaObject::default)
                .0
                .insert(META_SERVER_INFO.into(), self.server_info());
        } else {
            result.result_type = None;
        }
        Ok(result)
    }

    async fn read_resource(
        &self,
        ctx: &RequestContext,
        params: Option<&RawValue>,
    ) -> Result<Value, ErrorData> {
        let uri = uri_param(params)?;
        let provider = self.resources.as_ref().expect("guarded");
        match provider.read(ctx, &uri).await? {
            Some(contents) => Ok(json!({ "contents": contents })),
            None => Err(ErrorData::new(
                // 2026-07-28 retired -32002 in favour of invalid params.
                if ctx.is_stateless() {
                    ErrorCode::INVALID_PARAMS
                } else {
                    ErrorCode::RESOURCE_NOT_FOUND
                },
                format!("Resource not found: {uri}"),
                Some(json!({ "uri": uri })),
            )),
        }
    }

    fn subscription(
        &self,
        ctx: &RequestContext,
        method: &str,
        params: Option<&RawValue>,
    ) -> Result<Value, ErrorData> {
        let uri = uri_param(params)?;
        let session = ctx.session().expect("sessionful");
        let peer = ctx.peers.get_or_create(session);
        if method == "resources/subscribe" {
            peer.subscribe(uri);
        } else {
            peer.unsubscribe(&uri);
        }
        Ok(json!({}))
    }

    async fn get_prompt(
        &self,
        ctx: &RequestContext,
        params: Option<&RawValue>,
    ) -> Result<Value, ErrorData> {
        #[derive(Deserialize)]
        struct GetParams {
            name: String,
            #[serde(default)]
            arguments: Option<Map<String, Value>>,
        }
        let p: GetParams = parse_params(params)?;
        let prompt = self
            .prompts
            .iter()
            .find(|h| h.prompt()["name"] == p.name)
            .ok_or_else(|| {
                ErrorData::invalid_params(format!("Unknown prompt: {}", p.name), None)
            })?;
        prompt.get(ctx, p.arguments.unwrap_or_default()).await
    }

    fn set_log_level(
        &self,
        ctx: &RequestContext,
        params: Option<&RawValue>,
    ) -> Result<Value, ErrorData> {
        #[derive(Deserialize)]
        struct LevelParams {
            level: String,
        }
        let p: LevelParams = parse_params(params)?;
        if !is_log_level(&p.level) {
            return Err(ErrorData::invalid_params(
                format!("Unknown log level: {}", p.level),
                None,
            ));
        }
        let session = ctx.session().expect("sessionful");
        ctx.peers.get_or_create(session).set_log_level(p.level);
        Ok(json!({}))
    }
}

/// What a method answers. A tool's result stays typed until it is written
/// out: `tools/call` is the hot path, and serializing it straight to the
/// wire spares building and dropping a JSON tree per call.
#[derive(Debug)]
pub enum Answer {
    Json(Value),
    Tool(CallToolResult),
}

impl Answer {
    /// `Some` when a tool reported failure (`isError`), with the first
    /// text it gave. Only tools report failure in a result.
    pub fn tool_error(&self) -> Option<Option<String>> {
        let Answer::Tool(r) = self else {
            return None;
        };
        (r.is_error == Some(true)).then(|| {
            r.content
                .iter()
                .find_map(|c| Some(c.as_text()?.text.chars().take(500).collect()))
        })
    }

    /// The JSON-RPC response that carries this result.
    pub fn response_bytes(&self, id: &Id) -> Vec<u8> {
        match self {
            Answer::Json(v) => jsonrpc::result_bytes(id, v),
            Answer::Tool(r) => jsonrpc::result_bytes(id, r),
        }
    }
}

/// Methods whose 2026-07-28 results are cacheable (`ttlMs`, `cacheScope`).
const CACHEABLE: [&str; 6] = [
    "server/discover",
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
];

/// Sessionful results never carry `resultType`; stateless ones always do,
/// plus cache hints and the server's identity in `_meta`.
fn shape_result(result: &mut Value, method: &str, stateless: bool, info: impl FnOnce() -> Value) {
    let Some(obj) = result.as_object_mut() else {
        return;
    };
    if !stateless {
        obj.remove("resultType");
        return;
    }
    obj.entry("resultType").or_insert_with(|| json!("complete"));
    if CACHEABLE.contains(&method) {
        obj.entry("ttlMs").or_insert_with(|| json!(0));
        obj.entry("cacheScope").or_insert_with(|| json!("private"));
    }
    let meta = obj.entry("_meta").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        meta.insert(META_SERVER_INFO.into(), info());
    }
}

pub(crate) fn parse_params<T: serde::de::DeserializeOwned>(
    params: Option<&RawValue>,
) -> Result<T, ErrorData> {
    let text = params.map(RawValue::get).unwrap_or("{}");
    serde_json::from_str(text)
        .map_err(|e| ErrorData::invalid_params(format!("Invalid params: {e}"), None))
}

fn uri_param(params: Option<&RawValue>) -> Result<String, ErrorData> {
    #[derive(Deserialize)]
    struct UriParams {
        uri: String,
    }
    parse_params::<UriParams>(params).map(|p| p.uri)
}
