//! The MCP methods. The protocol's own — the handshakes' results, `ping`,
//! the lists, log levels, subscriptions, the tasks extension's `tasks/*`
//! (but those of tasks a relayed server owns) — are answered here; the
//! rest go to the [`Service`], which also hears of
//! log levels and subscriptions ([`Service::client_setting`]). Results are shaped
//! for the caller's generation; a 2026-07-28 request whose handler asked for
//! input it was not given answers input-required ([`input`](crate::input)),
//! and one relayed to a server that asks for input itself carries that
//! server's rounds both ways untouched.
//! Transport-neutral: the HTTP layer decides the generation and hands a
//! [`RequestContext`] here.

mod initialize;

pub(crate) use initialize::InitializeParams;

use std::sync::Arc;

use rmcp::model::{CallToolResult, ErrorCode, ErrorData, MetaObject, ResultType};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sessiongate_core::upstream::UpstreamName;

use crate::context::{is_log_level, RequestContext};
use crate::input::{self, RequestStates, Rounds, StateKey};
use crate::protocol::{self, META_SERVER_INFO};
use crate::request::Request;
use crate::service::{Answer, Capabilities, LiveCatalog, Service};
use crate::tasks;

/// Who the server says it is.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub name: String,
    pub version: String,
    /// What `initialize` and `server/discover` tell the client about using it.
    pub instructions: Option<String>,
}

impl ServerInfo {
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        ServerInfo {
            name: name.into(),
            version: version.into(),
            instructions: None,
        }
    }

    fn to_json(&self) -> Value {
        json!({ "name": self.name, "version": self.version })
    }
}

/// The server's identity, the service behind it, and how it seals the
/// state of requests that ask for input.
pub struct Dispatcher {
    info: ServerInfo,
    service: Arc<dyn Service>,
    states: RequestStates,
}

impl Dispatcher {
    /// A dispatcher whose request states are signed with a key of its own,
    /// good until it is dropped; see [`with_request_states`](Self::with_request_states).
    pub fn new(info: ServerInfo, service: Arc<dyn Service>) -> Self {
        Dispatcher {
            info,
            service,
            states: RequestStates::new(&StateKey::generate(), input::DEFAULT_TTL),
        }
    }

    /// Seals and opens 2026-07-28 request states with `states`: a key kept
    /// across restarts lets a retry complete after one.
    pub fn with_request_states(mut self, states: RequestStates) -> Self {
        self.states = states;
        self
    }

    pub fn catalog(&self) -> &LiveCatalog {
        self.service.catalog()
    }

    /// The upstream that will serve `request`, for its request-log row:
    /// only `tools/call`, `prompts/get`, `resources/read` and a relayed
    /// task's `tasks/*` are relayed by what they name, so only they are
    /// looked up.
    pub fn upstream_of(&self, ctx: &RequestContext, request: &Request) -> Option<UpstreamName> {
        match request.method.as_str() {
            "tools/call" | "prompts/get" | "resources/read" | "tasks/get" | "tasks/update"
            | "tasks/cancel" => self.service.upstream_of(ctx, request),
            _ => None,
        }
    }

    /// Whether the server offers a tool of this name now.
    pub fn has_tool(&self, name: &str) -> bool {
        self.catalog().has_tool(name)
    }

    /// What the service serves besides tools.
    pub fn offered(&self) -> Capabilities {
        self.service.capabilities()
    }

    /// The capabilities advertised to a generation, from what the service
    /// serves. The lists can change at run time, and resources be
    /// updated: sessionful clients hear of it on their standalone stream
    /// (resource updates once subscribed), 2026-07-28 clients on a
    /// `subscriptions/listen` stream.
    pub fn capabilities(&self, stateless: bool) -> Value {
        let offered = self.offered();
        let mut caps = Map::new();
        caps.insert("tools".into(), json!({ "listChanged": true }));
        if !stateless {
            caps.insert("logging".into(), json!({}));
        }
        if offered.resources {
            caps.insert(
                "resources".into(),
                json!({ "subscribe": true, "listChanged": true }),
            );
        }
        if offered.prompts {
            caps.insert("prompts".into(), json!({ "listChanged": true }));
        }
        if offered.completions {
            caps.insert("completions".into(), json!({}));
        }
        if stateless {
            // Tasks are an extension of the stateless revision only.
            caps.insert(
                "extensions".into(),
                json!({ rmcp::model::TASKS_EXTENSION_ID: {} }),
            );
        }
        Value::Object(caps)
    }

    /// The `initialize` result for a negotiated sessionful revision.
    pub fn initialize_result(&self, version: &str) -> Value {
        let mut result = json!({
            "protocolVersion": version,
            "capabilities": self.capabilities(false),
            "serverInfo": self.info.to_json(),
        });
        if let Some(i) = &self.info.instructions {
            result["instructions"] = json!(i);
        }
        result
    }

    /// The `server/discover` result.
    fn discover(&self) -> Value {
        let mut result = json!({
            "supportedVersions": protocol::supported_versions(),
            "capabilities": self.capabilities(true),
            "serverInfo": self.info.to_json(),
        });
        if let Some(i) = &self.info.instructions {
            result["instructions"] = json!(i);
        }
        result
    }

    /// Serves one request. Results come back shaped for the caller's generation.
    pub async fn dispatch(
        &self,
        ctx: &RequestContext,
        request: Request,
    ) -> Result<Answer, ErrorData> {
        let stateless = ctx.is_stateless();
        // Not asked for tools/call, the hot path.
        let offered = || self.service.capabilities();
        let method = request.method.as_str();
        let available = match method {
            "ping" | "logging/setLevel" => !stateless,
            "server/discover" => stateless,
            "resources/list" | "resources/templates/list" | "resources/read" => offered().resources,
            "resources/subscribe" | "resources/unsubscribe" => offered().resources && !stateless,
            "prompts/list" | "prompts/get" => offered().prompts,
            "completion/complete" => offered().completions,
            "tasks/get" | "tasks/update" | "tasks/cancel" => stateless,
            _ => true,
        };
        if !available {
            return Err(ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!("Method not found: {method}"),
                None,
            ));
        }
        let catalog = || {
            self.service
                .catalog_for(ctx)
                .unwrap_or_else(|| self.catalog().current())
        };
        let mut result = match method {
            "ping" => json!({}),
            "server/discover" => self.discover(),
            "tools/list" => json!({ "tools": catalog().tools }),
            "resources/list" => json!({ "resources": catalog().resources }),
            "resources/templates/list" => json!({ "resourceTemplates": catalog().templates }),
            "prompts/list" => json!({ "prompts": catalog().prompts }),
            "resources/subscribe" | "resources/unsubscribe" => {
                subscription(ctx, &request, self.service.catalog())?;
                self.service.client_setting(ctx, &request).await?;
                json!({})
            }
            "logging/setLevel" => {
                set_log_level(ctx, &request)?;
                self.service.client_setting(ctx, &request).await?;
                json!({})
            }
            "tasks/get" | "tasks/update" | "tasks/cancel" => {
                let relayed = request.params.task_id.as_ref().and_then(Value::as_str);
                if relayed.is_some_and(|id| self.service.owns_task(id)) {
                    return self.serve(ctx, request).await;
                }
                tasks::serve(ctx, &request).await?
            }
            _ => return self.serve(ctx, request).await,
        };
        self.shape(&mut result, CACHEABLE.contains(&method), stateless);
        Ok(Answer::Json(result))
    }

    /// Hands a request to the service and shapes what it answers.
    async fn serve(&self, ctx: &RequestContext, mut request: Request) -> Result<Answer, ErrorData> {
        let stateless = ctx.is_stateless();
        let cacheable = CACHEABLE.contains(&request.method.as_str());
        let client = || input::client_binding(&ctx.caller);
        // The upstream's own rounds: its state is not the dispatcher's to open.
        let relayed = stateless && self.service.passes_input_through(&request);
        if stateless && !relayed {
            if let Some(rounds) = Rounds::open(&self.states, &mut request, client, ctx.received_at)?
            {
                let _ = ctx.input.set(Box::new(rounds));
            }
        }
        let outcome = self.service.serve(ctx, request).await;
        // Whatever the handler made of an invalid answer or an unanswered ask.
        if let Some(refused) = ctx.input.get().and_then(|r| r.refused()) {
            return Err(refused);
        }
        if let Some(mut asking) = ctx
            .input
            .get()
            .and_then(|r| r.input_required(&self.states, client, ctx.received_at))
        {
            self.shape(&mut asking, false, stateless);
            return Ok(Answer::Json(asking));
        }
        match outcome {
            Ok(Answer::Tool(result)) => Ok(Answer::Tool(self.shape_tool(result, stateless))),
            Ok(Answer::Json(mut result)) => {
                self.shape(&mut result, cacheable, stateless);
                Ok(Answer::Json(result))
            }
            // 2026-07-28 retired -32002 in favour of invalid params.
            Err(mut e) if stateless && e.code == ErrorCode::RESOURCE_NOT_FOUND => {
                e.code = ErrorCode::INVALID_PARAMS;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// What `shape` does to other results, on a tool's typed one.
    fn shape_tool(&self, mut result: CallToolResult, stateless: bool) -> CallToolResult {
        if stateless {
            result.result_type.get_or_insert(ResultType::COMPLETE);
            result
                .meta
                .get_or_insert_with(MetaObject::default)
                .0
                .insert(META_SERVER_INFO.into(), self.info.to_json());
        } else {
            result.result_type = None;
        }
        result
    }

    /// A 2026-07-28 result the transport makes itself, shaped as the
    /// dispatcher's are.
    pub(crate) fn stateless_result(&self, mut result: Value) -> Value {
        self.shape(&mut result, false, true);
        result
    }

    /// Sessionful results never carry `resultType`; stateless ones always
    /// do, plus cache hints and the server's identity in `_meta`.
    fn shape(&self, result: &mut Value, cacheable: bool, stateless: bool) {
        let Some(obj) = result.as_object_mut() else {
            return;
        };
        if !stateless {
            obj.remove("resultType");
            return;
        }
        obj.entry("resultType").or_insert_with(|| json!("complete"));
        if cacheable {
            obj.entry("ttlMs").or_insert_with(|| json!(0));
            obj.entry("cacheScope").or_insert_with(|| json!("private"));
        }
        let meta = obj.entry("_meta").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert(META_SERVER_INFO.into(), self.info.to_json());
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

fn subscription(
    ctx: &RequestContext,
    request: &Request,
    catalog: &LiveCatalog,
) -> Result<(), ErrorData> {
    let uri = request.uri()?;
    let session = ctx.session().expect("sessionful");
    let peer = ctx.peers.get_or_create(session);
    if request.method == "resources/subscribe" {
        peer.subscribe(uri.to_string(), catalog.watch_resource(uri));
    } else {
        peer.unsubscribe(uri);
    }
    Ok(())
}

fn set_log_level(ctx: &RequestContext, request: &Request) -> Result<(), ErrorData> {
    #[derive(Deserialize)]
    struct LevelParams {
        level: String,
    }
    let p: LevelParams = request.parse()?;
    if !is_log_level(&p.level) {
        return Err(ErrorData::invalid_params(
            format!("Unknown log level: {}", p.level),
            None,
        ));
    }
    let session = ctx.session().expect("sessionful");
    ctx.peers.get_or_create(session).set_log_level(p.level);
    Ok(())
}
