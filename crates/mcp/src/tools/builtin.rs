//! The built-in tools: `echo`, `health_check`, `session_info`,
//! `list_sessions`, and reconnection's `get_reconnect_token` and
//! `reconnect_session`.
//!
//! A session id is its holder's credential, so no tool shows another
//! client's session: reports name only the caller's own session, lists hold
//! only sessions of the caller's principal, and a session's own operations
//! act on the calling session, never on one named in the arguments (except
//! `reconnect_session`, which proves ownership with the session's token).

use async_trait::async_trait;
use rmcp::model::{CallToolResult, ErrorData, JsonObject, Tool};
use serde_json::{json, Value};
use sessiongate_core::lifecycle::ReconnectError;
use sessiongate_core::store::SessionQuery;
use sessiongate_core::{SessionId, SessionRecord};

use super::helpers::{json_result, schema, string_arg, text_result};
use crate::context::RequestContext;
use crate::server::{McpServer, ToolHandler};

/// Adds the built-in tools to a server.
pub fn with_builtin_tools(server: McpServer) -> McpServer {
    server
        .with_tool(Echo)
        .with_tool(HealthCheck)
        .with_tool(SessionInfo)
        .with_tool(ListSessions)
        .with_tool(GetReconnectToken)
        .with_tool(ReconnectSession)
}

/// A reconnect failure as a tool error the model can read.
fn reconnect_failed(e: ReconnectError) -> CallToolResult {
    let mut result = CallToolResult::error(vec![rmcp::model::ContentBlock::text(e.to_string())]);
    result.structured_content = Some(json!({ "success": false, "detail": e.to_string() }));
    result
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
            "Returns its `text` argument unchanged: a connectivity check. Given a progressToken, \
             it reports progress 1 of 1 first, which checks the streamed path too.",
            schema(json!({
                "type": "object",
                "properties": { "text": { "type": "string", "description": "Text to echo back" } },
                "required": ["text"],
            })),
        )
    }

    async fn call(
        &self,
        ctx: &RequestContext,
        args: JsonObject,
    ) -> Result<CallToolResult, ErrorData> {
        let text = string_arg(&args, "text")?;
        ctx.progress(1.0, Some(1.0), None).await;
        Ok(text_result(text))
    }
}

struct HealthCheck;

#[async_trait]
impl ToolHandler for HealthCheck {
    fn tool(&self) -> Tool {
        Tool::new(
            "health_check",
            "The server's session health: status counts, idle ages, 24 h connection figures, \
             and the calling session among the recently active ones.",
            schema(json!({ "type": "object", "properties": {} })),
        )
    }

    async fn call(&self, ctx: &RequestContext, _: JsonObject) -> Result<CallToolResult, ErrorData> {
        let mut health = ctx.manager.health().await.map_err(internal)?;
        // Other sessions are counted, never named.
        let own = ctx.session().map(|s| s.id());
        health.recent_activity.retain(|a| Some(a.session_id) == own);
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
            "The caller's sessions, newest first: those of its principal, or without one its \
             own session only.",
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
        let sessions: Vec<SessionRecord> = match &ctx.identity().principal {
            // Without a principal the caller is known as nothing but its own
            // session (if it has one): anonymous clients are strangers.
            None => ctx
                .session()
                .map(|s| s.record())
                .filter(|r| status.is_none_or(|s| r.status == s))
                .into_iter()
                .collect(),
            Some(principal) => {
                // The store filters by status; the principal filter keeps one
                // user's sessions out of another's view.
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
                page.sessions
                    .into_iter()
                    .filter(|s| s.client.principal.as_ref() == Some(principal))
                    .take(limit as usize)
                    .collect()
            }
        };
        let sessions: Vec<Value> = sessions
            .into_iter()
            .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
            .collect();
        Ok(json_result(
            json!({ "sessions": sessions, "count": sessions.len() }),
        ))
    }
}

struct GetReconnectToken;

#[async_trait]
impl ToolHandler for GetReconnectToken {
    fn tool(&self) -> Tool {
        Tool::new(
            "get_reconnect_token",
            "A fresh reconnect token for the calling session (the previous one stops working). \
             Keep it to reclaim this session after losing it, with reconnect_session or an \
             Mcp-Reconnect-Token header.",
            schema(json!({ "type": "object", "properties": {} })),
        )
    }

    async fn call(&self, ctx: &RequestContext, _: JsonObject) -> Result<CallToolResult, ErrorData> {
        let Some(session) = ctx.session() else {
            return Err(ErrorData::invalid_request(
                "2026-07-28 clients have no session to reconnect to",
                None,
            ));
        };
        match ctx.reclaim.issue_token(session.id()).await {
            Ok(token) => Ok(json_result(json!({
                "session_id": session.id(),
                "reconnect_token": token.token,
                "expires_in_minutes": ctx.reclaim.token_ttl().as_secs() / 60,
                "expires_at": token.expires_at(),
            }))),
            Err(e) => Ok(reconnect_failed(e)),
        }
    }
}

struct ReconnectSession;

#[async_trait]
impl ToolHandler for ReconnectSession {
    fn tool(&self) -> Tool {
        Tool::new(
            "reconnect_session",
            "Reclaims a session this client lost (timed out, or its id forgotten) with the \
             session's reconnect token. Returns the new token; the one used is spent.",
            schema(json!({
                "type": "object",
                "properties": {
                    "session_id": { "type": "string", "description": "The session to reclaim" },
                    "reconnect_token": { "type": "string", "description": "Its latest reconnect token" },
                },
                "required": ["session_id", "reconnect_token"],
            })),
        )
    }

    async fn call(
        &self,
        ctx: &RequestContext,
        args: JsonObject,
    ) -> Result<CallToolResult, ErrorData> {
        let id: SessionId = string_arg(&args, "session_id")?
            .parse()
            .map_err(|_| ErrorData::invalid_params("session_id is not a session id", None))?;
        let token = string_arg(&args, "reconnect_token")?;
        let identity = ctx.identity();
        match ctx
            .reclaim
            .reconnect(
                id,
                token,
                identity.principal.as_deref(),
                identity.remote_addr.as_deref(),
            )
            .await
        {
            Ok(r) => Ok(json_result(json!({
                "success": true,
                "session_id": id,
                "reconnect_count": r.reconnect_count,
                "reconnect_token": r.token.token,
                "expires_in_minutes": ctx.reclaim.token_ttl().as_secs() / 60,
            }))),
            Err(e) => Ok(reconnect_failed(e)),
        }
    }
}
