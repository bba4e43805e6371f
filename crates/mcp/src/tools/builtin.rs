//! The built-in tools: `echo`, `health_check`, `session_info`, `list_sessions`.

use async_trait::async_trait;
use rmcp::model::{CallToolResult, ErrorData, JsonObject, Tool};
use serde_json::{json, Value};
use sessiongate_core::store::SessionQuery;

use super::{json_result, schema, string_arg, text_result};
use crate::context::RequestContext;
use crate::server::{McpServer, ToolHandler};

/// Adds the built-in tools to a server.
pub fn with_builtin_tools(server: McpServer) -> McpServer {
    server
        .with_tool(Echo)
        .with_tool(HealthCheck)
        .with_tool(SessionInfo)
        .with_tool(ListSessions)
}

fn internal(e: impl std::fmt::Display) -> ErrorData {
    ErrorData::internal_error(e.to_string(), None)
}

struct Echo;

#[async_trait]
impl ToolHandler for Echo {
    fn tool(&self) -> Tool {
        Tool::new(
            "echo",
            "Returns its `text` argument unchanged: a connectivity check.",
            schema(json!({
                "type": "object",
                "properties": { "text": { "type": "string", "description": "Text to echo back" } },
                "required": ["text"],
            })),
        )
    }

    async fn call(
        &self,
        _: &RequestContext,
        args: JsonObject,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(text_result(string_arg(&args, "text")?))
    }
}

struct HealthCheck;

#[async_trait]
impl ToolHandler for HealthCheck {
    fn tool(&self) -> Tool {
        Tool::new(
            "health_check",
            "The server's session health: status counts, idle ages, 24 h connection figures.",
            schema(json!({ "type": "object", "properties": {} })),
        )
    }

    async fn call(&self, ctx: &RequestContext, _: JsonObject) -> Result<CallToolResult, ErrorData> {
        let health = ctx.manager.health().await.map_err(internal)?;
        let mut value = serde_json::to_value(health).map_err(internal)?;
        value["status"] = json!("healthy");
        Ok(json_result(value))
    }
}

struct SessionInfo;

#[async_trait]
impl ToolHandler for SessionInfo {
    fn tool(&self) -> Tool {
        Tool::new(
            "session_info",
            "The calling session's own record (for 2026-07-28 clients, what the server knows of the client).",
            schema(json!({ "type": "object", "properties": {} })),
        )
    }

    async fn call(&self, ctx: &RequestContext, _: JsonObject) -> Result<CallToolResult, ErrorData> {
        let value = match ctx.session() {
            Some(session) => serde_json::to_value(session.record()).map_err(internal)?,
            None => {
                let mut v = serde_json::to_value(ctx.identity()).map_err(internal)?;
                v["stateless"] = Value::Bool(true);
                v
            }
        };
        Ok(json_result(value))
    }
}

struct ListSessions;

#[async_trait]
impl ToolHandler for ListSessions {
    fn tool(&self) -> Tool {
        Tool::new(
            "list_sessions",
            "Recent sessions of the caller's principal, newest first.",
            schema(json!({
                "type": "object",
                "properties": {
                    "status": { "type": "string", "enum": ["active", "disconnected"] },
                    "limit": { "type": "integer", "minimum": 1, "maximum": 100, "default": 20 },
                },
            })),
        )
    }

    async fn call(
        &self,
        ctx: &RequestContext,
        args: JsonObject,
    ) -> Result<CallToolResult, ErrorData> {
        let status = match args.get("status") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.parse().map_err(|_| {
                ErrorData::invalid_params("status must be \"active\" or \"disconnected\"", None)
            })?),
            Some(_) => return Err(ErrorData::invalid_params("status must be a string", None)),
        };
        let limit = match args.get("limit") {
            None | Some(Value::Null) => 20,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| ErrorData::invalid_params("limit must be 1..100", None))?
                as u32,
        };
        let principal = ctx.identity().principal.clone();
        // The store filters by status; the principal filter keeps one user's
        // sessions out of another's view.
        let page = ctx
            .manager
            .list(&SessionQuery {
                status,
                client_type: None,
                limit: 500,
                offset: 0,
            })
            .await
            .map_err(internal)?;
        let sessions: Vec<Value> = page
            .sessions
            .into_iter()
            .filter(|s| s.client.principal == principal)
            .take(limit as usize)
            .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
            .collect();
        Ok(json_result(
            json!({ "sessions": sessions, "count": sessions.len() }),
        ))
    }
}
