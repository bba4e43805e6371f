//! Upstreams that speak 2026-07-28: learned at the probe (`server/discover`
//! over Streamable HTTP), and served without an upstream session. Each
//! request goes on its own on one sessionless link, so nothing is pooled
//! and nothing needs healing.
//!
//! - A 2026-07-28 client's request goes as it came: its own `_meta`
//!   (revision, `clientInfo`, client capabilities, log level — per request,
//!   as that revision has them), its `inputResponses` and `requestState`,
//!   names un-prefixed; the upstream's result comes back as it is, an
//!   `InputRequiredResult` included (its keys, its state) and a task
//!   handle, whose id is prefixed as names are so that `tasks/*` find
//!   their way back to this upstream; unprefixed when the names are (then
//!   every relayed task id is the upstream's: the built-ins make no
//!   tasks). After a restart too: the naming is decided again from the
//!   catalog before the gateway serves.
//! - A sessionful client's request, to an upstream that speaks only
//!   2026-07-28, goes with `_meta` built from the session's `initialize`;
//!   an input-required result is asked of the client on its session (each
//!   input request as the request its method names, over the request's
//!   stream) and the request sent again with the answers and the state,
//!   until the upstream answers.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rmcp::model::ErrorData;
use serde_json::{json, Map, Value};
use sessiongate_mcp::context::Caller;
use sessiongate_mcp::listen::MAX_RESOURCE_SUBSCRIPTIONS;
use sessiongate_mcp::protocol::{
    META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_LOG_LEVEL, META_PROTOCOL_VERSION,
    META_SERVER_INFO,
};
use sessiongate_mcp::service::{Catalog, Watched};
use sessiongate_mcp::{Answer, InputRequest, RequestContext};
use tokio::sync::watch;

use super::catalog;
use super::exchange::{pump, Backlog, CallError};
use super::session::Conn;
use super::Upstream;
use crate::link::LinkError;

/// The revision requests go in without an upstream session.
pub(super) const STATELESS_REVISION: &str = "2026-07-28";

/// Rounds of input one sessionful client's request may take before the
/// gateway gives up on an upstream that keeps asking.
const MAX_ROUNDS: usize = 16;

/// What asking `server/discover` found.
pub(super) enum Discovery {
    /// The upstream speaks 2026-07-28.
    Speaks(Discovered),
    /// It does not (or cannot be asked: only Streamable HTTP can).
    DoesNot,
    /// It did not answer within the start timeout: it is down, and asking
    /// again another way would only wait as long again.
    Silent,
}

/// What `server/discover` told of the upstream.
pub(super) struct Discovered {
    /// Whether it speaks a revision the gateway opens sessions with too.
    pub sessionful: bool,
    /// Its capabilities, as an `initialize` result would give them.
    pub capabilities: Value,
}

/// The `_meta` of the gateway's own requests (discovery, the catalog):
/// every capability a client may have, as the sessionful probe declares.
pub(super) fn own_meta() -> Value {
    json!({
        META_PROTOCOL_VERSION: STATELESS_REVISION,
        META_CLIENT_INFO: { "name": "sessiongate", "version": env!("CARGO_PKG_VERSION") },
        META_CLIENT_CAPABILITIES: { "sampling": {}, "elicitation": {}, "roots": {} },
    })
}

/// The `_meta` a sessionful client's request carries upstream: what its
/// session's `initialize` declared, and every log message (the gateway
/// filters them by the session's level).
fn session_meta(ctx: &RequestContext) -> Value {
    let identity = ctx.identity();
    json!({
        META_PROTOCOL_VERSION: STATELESS_REVISION,
        META_CLIENT_INFO: {
            "name": identity.client_name.as_deref().unwrap_or("unknown"),
            "version": identity.client_version.as_deref().unwrap_or("0"),
        },
        META_CLIENT_CAPABILITIES: identity.client_capabilities,
        META_LOG_LEVEL: "debug",
    })
}

impl Upstream {
    /// Asks the upstream which revisions it speaks. The sessionless link
    /// opened to ask is kept only for an upstream that speaks 2026-07-28.
    pub(super) async fn discover(&self) -> Discovery {
        if self.settings.transport != "streamable-http" {
            return Discovery::DoesNot;
        }
        let asking = async {
            let conn = self.direct().await.ok()?;
            let params = json!({ "_meta": own_meta() });
            let result = conn
                .link
                .request(self.next_id(), "server/discover", Some(&params))
                .await
                .ok()?;
            let versions: Vec<&str> = result["supportedVersions"]
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .collect();
            versions.contains(&STATELESS_REVISION).then(|| Discovered {
                sessionful: super::UPSTREAM_REVISIONS
                    .iter()
                    .any(|v| versions.contains(v)),
                capabilities: result.get("capabilities").cloned().unwrap_or(json!({})),
            })
        };
        let found = match tokio::time::timeout(self.settings.start_timeout, asking).await {
            Ok(Some(found)) => return Discovery::Speaks(found),
            Ok(None) => Discovery::DoesNot,
            Err(_) => Discovery::Silent,
        };
        let conn = self.direct.conn.lock().await.take();
        if let Some(conn) = conn {
            conn.link.close().await;
        }
        found
    }

    /// The sessionless link every 2026-07-28 request goes on, opened on
    /// first use.
    pub(super) async fn direct(&self) -> Result<Arc<Conn>, ErrorData> {
        let mut current = self.direct.conn.lock().await;
        if let Some(conn) = current.as_ref() {
            return Ok(conn.clone());
        }
        let opened = self
            .connector
            .open(None)
            .await
            .map_err(|e| self.start_failed(e.to_string()))?;
        let backlog = Arc::new(Backlog::new(opened.incoming.sent()));
        tokio::spawn(pump(
            self.this.clone(),
            Arc::downgrade(&self.direct),
            Arc::downgrade(&opened.link),
            opened.incoming,
            backlog.clone(),
            None,
        ));
        let conn = Arc::new(Conn {
            link: opened.link,
            backlog,
            answered: Default::default(),
        });
        *current = Some(conn.clone());
        Ok(conn)
    }

    /// Keeps a `subscriptions/listen` stream open to the upstream for its
    /// list changes, which re-read the catalog (the pump follows them), and
    /// for the updates of the resources it lists or clients are subscribed
    /// to (one of its templates'), which go to those clients: requests
    /// without a session hear of no change otherwise. Once; until the
    /// gateway stops, or for good if the upstream offers no such stream.
    pub(super) fn listen_for_changes(&self) {
        let mut listening = self.listening.lock().unwrap_or_else(|e| e.into_inner());
        if listening.is_some() || self.stopped.load(Ordering::Acquire) {
            return;
        }
        *listening = Some(tokio::spawn(listen(self.this.clone())).abort_handle());
    }

    /// Opens the `subscriptions/listen` stream anew, if one is open: the
    /// resources the upstream lists changed, and with them the updates to
    /// ask for.
    pub(super) fn listen_anew(&self) {
        let open = self
            .listening
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(open) = open {
            open.abort();
            self.listen_for_changes();
        }
    }

    /// Whether `ctx`'s requests go without an upstream session: a
    /// 2026-07-28 client's to an upstream that speaks it, and every
    /// client's to one that speaks nothing else.
    pub(super) fn goes_direct(&self, ctx: &RequestContext) -> bool {
        self.speaks_stateless() && (ctx.is_stateless() || !self.speaks_sessionful())
    }

    /// Whether each client session has an upstream session of its own,
    /// which gets what it sets (log level, subscriptions) and tells it of
    /// its resources' updates: not in shared mode, nor with an upstream
    /// that speaks only 2026-07-28.
    pub(super) fn sessions_have_own_upstream_session(&self) -> bool {
        !self.settings.shared && (self.speaks_sessionful() || !self.speaks_stateless())
    }

    /// Serves a request without an upstream session (see the module).
    pub(super) async fn relay_direct(
        &self,
        ctx: &RequestContext,
        request: sessiongate_mcp::Request,
    ) -> Result<Answer, ErrorData> {
        let mut params = self.inward(ctx, &request)?;
        let method = request.method.as_str();
        if matches!(method, "tasks/get" | "tasks/update" | "tasks/cancel") {
            self.task_inward(ctx, &mut params)?;
        }
        let conn = self.direct().await?;
        if ctx.is_stateless() {
            let mut result = self.send_direct(&conn, ctx, method, &params).await?;
            self.task_outward(ctx, &mut result);
            return Ok(Answer::Json(result));
        }
        // A sessionful client's: the session's `_meta`, and its rounds of
        // input asked on its stream.
        if let Some(object) = params.as_object_mut() {
            // Only the gateway's own retries carry these.
            object.remove("inputResponses");
            object.remove("requestState");
            let mut meta = match object.remove("_meta") {
                Some(Value::Object(meta)) => meta,
                _ => Map::new(),
            };
            if let Value::Object(session) = session_meta(ctx) {
                meta.extend(session);
            }
            object.insert("_meta".into(), Value::Object(meta));
        }
        for _ in 0..MAX_ROUNDS {
            let mut result = self.send_direct(&conn, ctx, method, &params).await?;
            self.task_outward(ctx, &mut result);
            if result["resultType"] != "input_required" {
                // Who answered is the gateway, as the session's initialize said.
                if let Some(object) = result.as_object_mut() {
                    if let Some(Value::Object(meta)) = object.get_mut("_meta") {
                        meta.remove(META_SERVER_INFO);
                        if meta.is_empty() {
                            object.remove("_meta");
                        }
                    }
                }
                return Ok(Answer::Json(result));
            }
            let asked = result["inputRequests"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let mut asks = Vec::with_capacity(asked.len());
            for (key, asking) in &asked {
                let params = asking.get("params").cloned().unwrap_or(json!({}));
                let input = match asking["method"].as_str() {
                    Some("elicitation/create") => InputRequest::elicit(params),
                    Some("sampling/createMessage") => InputRequest::sample(params),
                    Some("roots/list") => InputRequest::list_roots(),
                    other => {
                        return Err(ErrorData::internal_error(
                            format!(
                                "upstream {} asked for input the gateway cannot ask a session \
                                 for: {}",
                                self.name,
                                other.unwrap_or("(no method)")
                            ),
                            None,
                        ))
                    }
                };
                asks.push((key.as_str(), input));
            }
            let answers = ctx.ask_all(asks).await?;
            let responses: Map<String, Value> = asked.keys().cloned().zip(answers).collect();
            params["inputResponses"] = Value::Object(responses);
            match result.get("requestState") {
                Some(state) => params["requestState"] = state.clone(),
                None => {
                    if let Some(object) = params.as_object_mut() {
                        object.remove("requestState");
                    }
                }
            }
        }
        Err(ErrorData::internal_error(
            format!(
                "upstream {} asked for input {MAX_ROUNDS} times over and never answered",
                self.name
            ),
            None,
        ))
    }

    /// One request on the sessionless link, with what the upstream sends
    /// about it relayed to the client; its health reported.
    async fn send_direct(
        &self,
        conn: &Arc<Conn>,
        ctx: &RequestContext,
        method: &str,
        params: &Value,
    ) -> Result<Value, ErrorData> {
        let mut asks = 0;
        match self
            .call(&self.direct, conn, ctx, method, params, &mut asks)
            .await
        {
            Ok(result) => {
                self.answered(conn);
                Ok(result)
            }
            Err(CallError::Client(e)) => Err(e),
            Err(CallError::Link(LinkError::Rpc(e))) => {
                self.answered(conn);
                Err(self.link_error(LinkError::Rpc(e)))
            }
            // Slow is not down.
            Err(CallError::Link(e @ LinkError::Timeout(_))) => Err(self.link_error(e)),
            Err(CallError::Link(e)) => {
                let error = format!("upstream {}: {e}", self.name);
                if self.health.failed(error.clone(), self.clock.now()) {
                    self.emit(sessiongate_core::upstream::UpstreamEvent::UpstreamDown {
                        upstream: self.name.clone(),
                        error: error.clone(),
                        at: self.clock.now(),
                    });
                }
                Err(ErrorData::internal_error(error, None))
            }
        }
    }

    /// Whether `task_id` (as a client names it) is one of this upstream's
    /// tasks: with names prefixed, it carries the prefix; with names bare,
    /// every task the gateway relays is its; none before its naming is
    /// decided.
    pub(super) fn owns(&self, task_id: &str) -> bool {
        self.speaks_stateless() && self.naming().is_some_and(|n| n.inward(task_id).is_some())
    }

    /// A task handle or a task's state, with the task's id as clients
    /// name it: named like a tool, and tagged with its owner. The upstream
    /// sees every client as the gateway, so the tag is what keeps one
    /// client from another's task.
    fn task_outward(&self, ctx: &RequestContext, result: &mut Value) {
        let id = result.get("taskId").and_then(Value::as_str);
        if let (Some(id), Some(naming)) = (id, self.naming()) {
            let tag = self
                .settings
                .task_key
                .tag(&[&task_owner(ctx), self.name.as_str(), id]);
            result["taskId"] = Value::from(format!("{}.{tag}", naming.outward(id)));
        }
    }

    /// The upstream's id of the task a `tasks/*` request names (already
    /// un-prefixed), if its tag says the caller owns it; anyone else is
    /// answered as for a task that does not exist.
    fn task_inward(&self, ctx: &RequestContext, params: &mut Value) -> Result<(), ErrorData> {
        let declared = match &ctx.caller {
            Caller::Client { identity, .. } => identity.client_capabilities["extensions"]
                [rmcp::model::TASKS_EXTENSION_ID]
                .is_object(),
            Caller::Session(_) => false,
        };
        if !declared {
            // The upstream refuses a client without the extension (-32021)
            // before it looks for any task.
            return Ok(());
        }
        let unknown = || ErrorData::invalid_params("Failed to retrieve task: Task not found", None);
        let tagged = params["taskId"].as_str().ok_or_else(unknown)?;
        let (id, tag) = tagged.rsplit_once('.').ok_or_else(unknown)?;
        let owner = task_owner(ctx);
        if !self
            .settings
            .task_key
            .verify_tag(&[&owner, self.name.as_str(), id], tag)
        {
            return Err(unknown());
        }
        params["taskId"] = Value::from(id);
        Ok(())
    }

    /// The `Mcp-Param-*` headers a `tools/call` (the upstream's name in
    /// `params`) mirrors: each argument its tool's `inputSchema` marks
    /// with `x-mcp-header`, as the client's own request had to.
    pub(super) fn mirrored(&self, method: &str, params: &Value) -> Vec<(String, String)> {
        let mut mirrored = Vec::new();
        let Some(name) = params["name"].as_str().filter(|_| method == "tools/call") else {
            return mirrored;
        };
        let Some(naming) = self.naming() else {
            return mirrored;
        };
        let outward = naming.outward(name);
        let catalog = self.catalog.current();
        if let Some(tool) = catalog.tools.iter().find(|t| t.name == outward) {
            let schema = Value::Object((*tool.input_schema).clone());
            mirror(&schema, params.get("arguments"), &mut mirrored);
        }
        mirrored
    }
}

/// Collects the `x-mcp-header` arguments of `schema` (through
/// `properties` alone) that `arguments` gives, as header name and text.
fn mirror(schema: &Value, arguments: Option<&Value>, out: &mut Vec<(String, String)>) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (key, property) in properties {
        let value = arguments.and_then(|a| a.get(key)).filter(|v| !v.is_null());
        if let (Some(header), Some(value)) = (property["x-mcp-header"].as_str(), value) {
            let text = match value {
                Value::String(s) => Some(s.clone()),
                Value::Bool(_) | Value::Number(_) => Some(value.to_string()),
                _ => None,
            };
            if let Some(text) = text {
                out.push((header.to_string(), text));
            }
        }
        mirror(property, value, out);
    }
}

/// The resources whose updates to ask `catalog`'s upstream for: those
/// clients are subscribed to that it serves, then those it lists.
fn resources_to_hear(catalog: &Arc<Catalog>, watched: &Watched) -> Vec<String> {
    let mut uris: Vec<String> = watched
        .keys()
        .filter(|uri| catalog::owns_uri(catalog, uri) && catalog.resource(uri).is_none())
        .map(|uri| uri.to_string())
        .collect();
    uris.extend(
        catalog::resource_uris(catalog)
            .into_iter()
            .map(str::to_string),
    );
    uris
}

/// Resolves once the clients' subscriptions change which resources
/// `catalog`'s upstream is to be asked for; never if it stays `asked`.
async fn hear_other_resources(
    watched: &mut watch::Receiver<Watched>,
    catalog: &Arc<Catalog>,
    asked: &[String],
) {
    loop {
        if watched.changed().await.is_err() {
            return std::future::pending().await;
        }
        if resources_to_hear(catalog, &watched.borrow_and_update()) != asked {
            return;
        }
    }
}

/// What a `subscriptions/listen` stream asks for: the list changes, and
/// the updates of the resources `uris` (the first
/// [`MAX_RESOURCE_SUBSCRIPTIONS`]).
fn change_filter(uris: &[String]) -> Value {
    let mut notifications = json!({
        "toolsListChanged": true,
        "promptsListChanged": true,
        "resourcesListChanged": true,
    });
    if !uris.is_empty() {
        let uris = &uris[..uris.len().min(MAX_RESOURCE_SUBSCRIPTIONS)];
        notifications["resourceSubscriptions"] = json!(uris);
    }
    json!({ "_meta": own_meta(), "notifications": notifications })
}

/// The first wait before listening again after a stream failed; doubled
/// each time in a row, up to the last.
const LISTEN_BACKOFF: Duration = Duration::from_millis(100);
const LISTEN_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Listens on the sessionless link for as long as the upstream is there,
/// listening again when a stream ends (the request timeout ends each).
async fn listen(upstream: Weak<Upstream>) {
    let Some(mut watched) = upstream.upgrade().map(|u| u.catalog.watched_resources()) else {
        return;
    };
    let mut wait = LISTEN_BACKOFF;
    loop {
        let Some((link, id, catalog, asked)) = (match upstream.upgrade() {
            Some(u) => {
                let catalog = u.catalog.current();
                let asked = resources_to_hear(&catalog, &watched.borrow_and_update());
                u.direct()
                    .await
                    .ok()
                    .map(|c| (c.link.clone(), u.next_id(), catalog, asked))
            }
            None => return,
        }) else {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(LISTEN_BACKOFF_MAX);
            continue;
        };
        let started = Instant::now();
        let filter = change_filter(&asked);
        let listening = link.request(id, "subscriptions/listen", Some(&filter));
        let outcome = tokio::select! {
            outcome = listening => outcome,
            () = hear_other_resources(&mut watched, &catalog, &asked) => {
                wait = LISTEN_BACKOFF;
                continue;
            }
        };
        match outcome {
            Err(LinkError::Rpc(e)) if e.code == -32601 => {
                tracing::debug!("the upstream offers no subscriptions/listen stream");
                return;
            }
            Err(LinkError::Timeout(_)) => wait = LISTEN_BACKOFF,
            outcome => {
                if let Err(e) = outcome {
                    tracing::debug!(error = %e, "the upstream's subscriptions/listen stream ended");
                }
                if started.elapsed() > LISTEN_BACKOFF_MAX {
                    wait = LISTEN_BACKOFF;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(LISTEN_BACKOFF_MAX);
            }
        }
    }
}

/// Who owns a task a request creates, as the built-in tasks reckon it: the
/// principal, else the stateless client's key; a session, for one.
fn task_owner(ctx: &RequestContext) -> String {
    match &ctx.caller {
        Caller::Client { key, identity } => match &identity.principal {
            Some(principal) => format!("principal:{principal}"),
            None => format!("client:{key}"),
        },
        Caller::Session(session) => format!("session:{}", session.id()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_marked_x_mcp_header_are_mirrored_as_given() {
        let schema = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "count": {"type": "integer", "x-mcp-header": "Count"},
            "absent": {"type": "string", "x-mcp-header": "Absent"},
            "plain": {"type": "string"},
            "nested": {"type": "object", "properties": {
                "flag": {"type": "boolean", "x-mcp-header": "Flag"},
            }},
        }});
        let arguments = json!({"region": "eu-west", "count": 3, "plain": "x",
            "absent": null, "nested": {"flag": true}});
        let mut mirrored = Vec::new();
        mirror(&schema, Some(&arguments), &mut mirrored);
        mirrored.sort();
        let expected = [("Count", "3"), ("Flag", "true"), ("Region", "eu-west")];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(mirrored, expected);
    }
}
