//! The seam between the protocol and what serves requests. A [`Service`]
//! offers a live [`Catalog`] (tools, prompts, resources, templates) and
//! serves the requests that name its entries; the dispatcher answers the
//! protocol's own methods around it. The built-in
//! [`McpServer`](crate::McpServer) is one service; a gateway's upstream
//! servers are others; a [`Composite`](composite::Composite) puts several
//! in order behind one.

pub mod catalog;
pub mod composite;

pub use catalog::{Catalog, ListKind, LiveCatalog, ResourceUpdate, ResourceWatch, Watched};

use std::sync::Arc;

use async_trait::async_trait;
use rmcp::model::{CallToolResult, ErrorData};
use serde_json::Value;
use sessiongate_core::upstream::UpstreamName;

use crate::context::RequestContext;
use crate::jsonrpc::{self, Id};
use crate::request::Request;

/// What serves requests.
///
/// A service answers the requests routed to it: `tools/call`,
/// `resources/read`, `prompts/get`, `completion/complete`, the `tasks/*`
/// of the tasks it [owns](Service::owns_task), and methods the protocol
/// does not define. While it runs it may talk to the client
/// through the [`RequestContext`] (progress, log messages, requests to the
/// client); the transport then streams those ahead of the answer.
///
/// Conventions the dispatcher relies on: a tool, prompt or method the
/// service does not have is refused as `tools/call`'s "Unknown tool"
/// (invalid params), "Unknown prompt" (invalid params) and method not
/// found; a resource it does not have as
/// [`ErrorCode::RESOURCE_NOT_FOUND`](rmcp::model::ErrorCode::RESOURCE_NOT_FOUND),
/// whichever generation asked.
#[async_trait]
pub trait Service: Send + Sync + 'static {
    /// What it offers now; subscribers hear when that changes.
    fn catalog(&self) -> &LiveCatalog;

    /// What it offers the client `ctx` serves, where that differs from
    /// [`catalog`](Self::catalog): an upstream whose server runs for each
    /// session alone and changed its lists for one. `None`: the catalog.
    fn catalog_for(&self, _ctx: &RequestContext) -> Option<Arc<Catalog>> {
        None
    }

    /// The kinds of request it serves besides tools.
    fn capabilities(&self) -> Capabilities;

    async fn serve(&self, ctx: &RequestContext, request: Request) -> Result<Answer, ErrorData>;

    /// The upstream server this service relays to, which request-log rows
    /// name; `None` for a service that answers by itself.
    fn upstream(&self) -> Option<&UpstreamName> {
        None
    }

    /// The upstream that serves `request` (a `tools/call`, `prompts/get` or
    /// `resources/read`) for the client `ctx` serves. A service of several
    /// members answers for the one that owns what the request names.
    fn upstream_of(&self, _ctx: &RequestContext, _request: &Request) -> Option<UpstreamName> {
        self.upstream().cloned()
    }

    /// Whether the 2026-07-28 rounds of input of `request` (a stateless
    /// caller's) belong to the server this service relays it to: the
    /// dispatcher then leaves its `inputResponses` and `requestState` in
    /// the request, and passes an input-required result on as it comes,
    /// instead of asking on the service's behalf.
    fn passes_input_through(&self, _request: &Request) -> bool {
        false
    }

    /// Whether the task `task_id` names is one this service relays to the
    /// server that created it: `tasks/get`, `tasks/update` and
    /// `tasks/cancel` of it then go to [`serve`](Self::serve) instead of
    /// the server's own tasks.
    fn owns_task(&self, _task_id: &str) -> bool {
        false
    }

    /// Hears what a session set that the dispatcher answers and records
    /// itself — `logging/setLevel`, `resources/subscribe`,
    /// `resources/unsubscribe` — after it recorded it; a service that
    /// relays to other servers passes it on. Most have nothing to do.
    async fn client_setting(
        &self,
        _ctx: &RequestContext,
        _request: &Request,
    ) -> Result<(), ErrorData> {
        Ok(())
    }
}

/// The kinds of request a service serves besides tools, which every
/// server offers. The server's advertised capabilities derive from them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// `resources/list`, `resources/templates/list`, `resources/read`, and
    /// subscriptions.
    pub resources: bool,
    /// `prompts/list` and `prompts/get`.
    pub prompts: bool,
    /// `completion/complete`.
    pub completions: bool,
}

impl Capabilities {
    /// What either offers.
    pub fn union(self, other: Capabilities) -> Capabilities {
        Capabilities {
            resources: self.resources || other.resources,
            prompts: self.prompts || other.prompts,
            completions: self.completions || other.completions,
        }
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
    /// text it gave: a built-in tool's, or a relayed one's as its upstream
    /// gave it. Only tools report failure in a result.
    pub fn tool_error(&self) -> Option<Option<String>> {
        let first_text = |text: &str| text.chars().take(500).collect();
        match self {
            Answer::Tool(r) => (r.is_error == Some(true)).then(|| {
                r.content
                    .iter()
                    .find_map(|c| Some(first_text(&c.as_text()?.text)))
            }),
            Answer::Json(v) => (v.get("isError") == Some(&Value::Bool(true))).then(|| {
                v["content"].as_array().and_then(|content| {
                    content
                        .iter()
                        .find(|c| c["type"] == "text")
                        .and_then(|c| Some(first_text(c["text"].as_str()?)))
                })
            }),
        }
    }

    /// The JSON-RPC response that carries this result.
    pub fn response_bytes(&self, id: &Id) -> Vec<u8> {
        match self {
            Answer::Json(v) => jsonrpc::result_bytes(id, v),
            Answer::Tool(r) => jsonrpc::result_bytes(id, r),
        }
    }
}
