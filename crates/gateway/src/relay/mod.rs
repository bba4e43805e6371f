//! The relay: one configured upstream served as a [`Service`], so its tools,
//! prompts and resources join the gateway's catalog and calls to them reach
//! it.
//!
//! Each client session gets its own upstream session (per-session mode), or
//! all share one (shared mode); a 2026-07-28 client, which has no session,
//! gets one keyed by its principal and client identity (`clientInfo` name
//! and version) — the correlation key SEP-2567 leaves open — pooled and let
//! go when idle. An upstream session is opened lazily on first use with the
//! client's own `clientInfo` and capabilities, and the `initialize` sent is
//! stored as an [`UpstreamMapping`](sessiongate_core::upstream::UpstreamMapping), so after the gateway restarts a session
//! goes on with the same parameters.
//!
//! During a call, what the upstream sends on its own is relayed to the
//! client's request: progress (under a token of the gateway's, so a shared
//! child's progress never reaches the wrong client), log messages, and its
//! requests for sampling, elicitation and roots. stdio does not say which
//! request those belong to; they go to the latest request in flight on that
//! upstream session. `ping` is answered by the gateway itself.
//!
//! Healing: when an upstream session is gone (its child exited, an HTTP
//! upstream forgot it), the next use opens a new one from the stored
//! parameters and restores the log level and subscriptions; the call in
//! flight is sent again only when that is safe — it never reached the
//! upstream, or the tool is annotated read-only or idempotent — and
//! otherwise fails with an error saying the upstream restarted during the
//! call. Crashes in a row back off (`health`).
//!
//! An upstream that speaks 2026-07-28 (Streamable HTTP, found by
//! `server/discover` at the probe) serves 2026-07-28 clients without an
//! upstream session, their rounds of input and tasks its own; if it speaks
//! nothing else, sessionful clients too (`direct`).
//!
//! Here: the service, routing and healing; in `session` an upstream
//! session's opening, handshake and mapping; in `direct` requests without
//! one; in `exchange` a call in flight and the messages relayed around it;
//! in `catalog` the listing and naming.

mod catalog;
mod direct;
mod exchange;
mod health;
mod session;

pub use catalog::{Naming, NamingRule, Reserved};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;
use rmcp::model::{ErrorCode, ErrorData};
use serde_json::{json, Value};
use sessiongate_core::ids::SessionId;
use sessiongate_core::store::UpstreamMappingStore;
use sessiongate_core::upstream::{UpstreamEvent, UpstreamName, UpstreamReport};
use sessiongate_core::SharedClock;
use sessiongate_mcp::context::{stateless_client, Caller};
use sessiongate_mcp::peers::Peers;
use sessiongate_mcp::service::{Catalog, ListKind};
use sessiongate_mcp::{Answer, Capabilities, LiveCatalog, RequestContext, Service};
use tokio::sync::broadcast;

use crate::link::{Connector, Link, LinkError, OutboundId};
use direct::Discovery;
use exchange::{CallError, Route};
use health::Health;
use session::{Conn, Slot};

/// Revisions the gateway speaks to upstreams, newest first.
const UPSTREAM_REVISIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// Notifications for one request in flight that may wait for its client
/// before more are dropped (see [`exchange::Route`]).
const RELAYED_QUEUED: usize = 1024;

/// Settings of one upstream the relay needs beyond its connector.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    pub naming: NamingRule,
    /// `stdio`, `streamable-http` or `sse`, for reports.
    pub transport: &'static str,
    /// `per-session` or `shared` for stdio.
    pub mode: Option<&'static str>,
    pub shared: bool,
    pub max_processes: usize,
    pub start_timeout: Duration,
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// How long a stateless client's pooled upstream session is kept idle.
    pub pool_idle: Duration,
    /// Binds the ids of relayed tasks to their owners (see
    /// [`GatewayOptions::task_key`](crate::GatewayOptions)).
    pub task_key: sessiongate_mcp::StateKey,
}

/// Which upstream session a request uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Session(SessionId),
    /// A 2026-07-28 client: principal and client identity.
    Client(Arc<str>),
    Shared,
    /// No upstream session: requests each on their own (2026-07-28).
    Direct,
}

/// One configured upstream, served as a [`Service`].
pub struct Upstream {
    name: UpstreamName,
    settings: UpstreamSettings,
    connector: Arc<dyn Connector>,
    store: Arc<dyn UpstreamMappingStore>,
    clock: SharedClock,
    catalog: LiveCatalog,
    /// How its names appear: decided by the rule when its catalog is first
    /// read (at once if the rule needs no catalog), then kept.
    naming: OnceLock<Naming>,
    /// Its names that the reserved names shadow, as last warned of.
    shadowed: std::sync::Mutex<Vec<String>>,
    /// The `capabilities` of the upstream's last `initialize` result.
    server: RwLock<Value>,
    capabilities: RwLock<Capabilities>,
    retry_safe: RwLock<HashMap<String, bool>>,
    slots: DashMap<Key, Arc<Slot>>,
    /// The sessionless link's slot, for an upstream that speaks 2026-07-28.
    direct: Arc<Slot>,
    /// What the last probe learned: whether the upstream speaks 2026-07-28,
    /// and whether it speaks a sessionful revision.
    stateless: AtomicBool,
    sessionful: AtomicBool,
    /// The requests in flight, by the gateway's id, for what the upstream
    /// sends about them.
    routes: DashMap<OutboundId, Route>,
    next_id: AtomicU64,
    /// Upstream sessions open (children running, for stdio); shared with
    /// each session's pump, which counts it down when its session ends.
    processes: Arc<AtomicUsize>,
    health: Health,
    events: broadcast::Sender<UpstreamEvent>,
    /// The client sessions' standalone streams, for what a session's
    /// upstream sends outside any request of the client's.
    peers: Peers,
    /// List-changed notifications not yet followed by a listing: a burst
    /// lists once at a time, and one during a listing lists again after it.
    relist_wanted: Arc<AtomicUsize>,
    /// The gateway stopped: nothing is started in the background any more.
    stopped: AtomicBool,
    /// The `subscriptions/listen` stream to an upstream that speaks
    /// 2026-07-28, once opened.
    listening: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
    this: Weak<Upstream>,
}

impl Upstream {
    pub fn new(
        name: UpstreamName,
        settings: UpstreamSettings,
        connector: Arc<dyn Connector>,
        store: Arc<dyn UpstreamMappingStore>,
        peers: Peers,
        clock: SharedClock,
        events: broadcast::Sender<UpstreamEvent>,
    ) -> Arc<Upstream> {
        let now = clock.now();
        let naming = settings
            .naming
            .fixed()
            .map(OnceLock::from)
            .unwrap_or_default();
        Arc::new_cyclic(|this| Upstream {
            name,
            peers,
            health: Health::new(settings.backoff, settings.max_backoff),
            settings,
            connector,
            store,
            clock,
            catalog: LiveCatalog::default(),
            naming,
            shadowed: std::sync::Mutex::new(Vec::new()),
            server: RwLock::new(Value::Null),
            capabilities: RwLock::new(Capabilities::default()),
            retry_safe: RwLock::new(HashMap::new()),
            slots: DashMap::new(),
            direct: Arc::new(Slot::new(Key::Direct, now)),
            stateless: AtomicBool::new(false),
            sessionful: AtomicBool::new(true),
            routes: DashMap::new(),
            next_id: AtomicU64::new(1),
            processes: Arc::new(AtomicUsize::new(0)),
            events,
            relist_wanted: Arc::default(),
            stopped: AtomicBool::new(false),
            listening: std::sync::Mutex::new(None),
            this: this.clone(),
        })
    }

    pub fn name(&self) -> &UpstreamName {
        &self.name
    }

    fn next_id(&self) -> OutboundId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn emit(&self, event: UpstreamEvent) {
        // Nobody listening is fine: monitoring reads reports too.
        let _ = self.events.send(event);
    }

    /// Asks the upstream which revisions it speaks, then reads its catalog:
    /// on a session of the gateway's own (kept as the shared session in
    /// shared mode), or, from an upstream that speaks only 2026-07-28,
    /// without one. On failure the upstream is reported down and the error
    /// returned.
    pub async fn probe(&self) -> Result<(), String> {
        let discovered = self.discover().await;
        self.stateless.store(
            matches!(discovered, Discovery::Speaks(_)),
            Ordering::Release,
        );
        let listed = match discovered {
            Discovery::Speaks(found) if !found.sessionful => {
                self.sessionful.store(false, Ordering::Release);
                *self.server.write().unwrap_or_else(|e| e.into_inner()) = found.capabilities;
                self.probe_direct().await
            }
            Discovery::Silent => Err(self.start_failed(format!(
                "it did not answer server/discover within {:?}",
                self.settings.start_timeout
            ))),
            _ => {
                self.sessionful.store(true, Ordering::Release);
                self.probe_sessionful().await
            }
        };
        match &listed {
            Ok(()) => {
                self.health_up();
                if self.speaks_stateless() {
                    self.listen_for_changes();
                }
            }
            Err(e) => {
                tracing::error!(upstream = %self.name, "the upstream's catalog cannot be read: {}", e.message)
            }
        }
        listed.map_err(|e| e.message.to_string())
    }

    /// The catalog of an upstream that speaks only 2026-07-28.
    async fn probe_direct(&self) -> Result<(), ErrorData> {
        let listing = async {
            let conn = self.direct().await?;
            self.relist(&conn.link, true)
                .await
                .map_err(|e| self.link_error(e))
        };
        match tokio::time::timeout(self.settings.start_timeout, listing).await {
            Ok(listed) => listed,
            Err(_) => Err(self.start_failed(format!(
                "it did not list its catalog within {:?}",
                self.settings.start_timeout
            ))),
        }
    }

    /// The catalog, read on an upstream session of the gateway's own.
    async fn probe_sessionful(&self) -> Result<(), ErrorData> {
        // Every capability a client may have: servers that offer some tools
        // only to clients able to answer them (elicitation, sampling, roots)
        // list them all, and each client's own session gets its own.
        let params = json!({
            "protocolVersion": UPSTREAM_REVISIONS[0],
            "capabilities": { "sampling": {}, "elicitation": {}, "roots": { "listChanged": true } },
            "clientInfo": { "name": "sessiongate", "version": env!("CARGO_PKG_VERSION") },
        });
        let slot = match self.settings.shared {
            true => self.slot(Key::Shared),
            false => Arc::new(Slot::new(Key::Shared, self.clock.now())),
        };
        {
            let mut state = slot.state();
            state.loaded = true;
            state.initialize_params.get_or_insert(params);
        }
        // Bounded as a start is: a server hanging on its lists must not
        // hold the gateway's start for a request timeout.
        let listing = async {
            let conn = self.connect(&slot).await?;
            self.relist(&conn.link, false)
                .await
                .map_err(|e| self.link_error(e))
        };
        let listed = match tokio::time::timeout(self.settings.start_timeout, listing).await {
            Ok(listed) => listed,
            Err(_) => Err(self.start_failed(format!(
                "it did not list its catalog within {:?}",
                self.settings.start_timeout
            ))),
        };
        if !self.settings.shared {
            slot.close().await;
        }
        listed
    }

    /// [`probe`](Self::probe) again and again, backing off, until it works.
    /// Stops once the gateway has stopped.
    pub async fn probe_until_up(self: Arc<Self>) {
        let mut wait = self.settings.backoff;
        loop {
            tokio::time::sleep(wait).await;
            if self.stopped.load(Ordering::Acquire) || self.probe().await.is_ok() {
                return;
            }
            wait = (wait * 2).min(self.settings.max_backoff);
        }
    }

    /// Lists the catalog over `link`, as the upstream names things; over
    /// the sessionless link, each request says who asks.
    async fn list(
        &self,
        link: &Arc<dyn Link>,
        sessionless: bool,
    ) -> Result<catalog::Listed, LinkError> {
        let server = self
            .server
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let next_id = || self.next_id();
        let meta = sessionless.then(direct::own_meta);
        catalog::list(link.as_ref(), &next_id, &server, meta.as_ref()).await
    }

    /// Lists the catalog over `link` and publishes it.
    async fn relist(&self, link: &Arc<dyn Link>, sessionless: bool) -> Result<(), LinkError> {
        let mut listed = self.list(link, sessionless).await?;
        let server = self
            .server
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let naming = self.naming.get_or_init(|| self.decide(&listed));
        if *naming == Naming::Bare {
            self.warn_shadowed(self.settings.naming.taken(&listed));
        }
        listed.rename(naming);
        *self.capabilities.write().unwrap_or_else(|e| e.into_inner()) =
            catalog::capabilities(&server);
        *self.retry_safe.write().unwrap_or_else(|e| e.into_inner()) = listed.retry_safe;
        let resources_changed = {
            let before = self.catalog.current();
            catalog::resource_uris(&before) != catalog::resource_uris(&listed.catalog)
        };
        self.catalog.set(listed.catalog);
        if resources_changed && self.speaks_stateless() {
            self.listen_anew();
        }
        Ok(())
    }

    /// The naming the rule gives the upstream's first catalog read.
    fn decide(&self, listed: &catalog::Listed) -> Naming {
        let naming = self.settings.naming.decide(listed);
        if let Naming::Prefixed(prefix) = &naming {
            let taken = self.settings.naming.taken(listed);
            if !taken.is_empty() {
                tracing::info!(
                    upstream = %self.name,
                    "the upstream's names are prefixed `{prefix}`: a built-in is named {} too",
                    taken.join(", ")
                );
            }
        }
        naming
    }

    /// Warns of the upstream's names that the reserved names shadow, once
    /// each time that set changes: a bare upstream whose list gained a
    /// reserved name after its naming was decided keeps its naming, and the
    /// built-in keeps the name.
    fn warn_shadowed(&self, taken: Vec<String>) {
        let mut shadowed = self.shadowed.lock().unwrap_or_else(|e| e.into_inner());
        if *shadowed == taken {
            return;
        }
        if !taken.is_empty() {
            tracing::warn!(
                upstream = %self.name,
                "the upstream's {} cannot be called: a built-in of the same name keeps it",
                taken.join(", ")
            );
        }
        *shadowed = taken;
    }

    /// How the upstream's names appear; `None` until its catalog was read
    /// when that decides it (and then nothing of it is listed to call).
    fn naming(&self) -> Option<&Naming> {
        self.naming.get()
    }

    /// What `ctx`'s client is offered: its own upstream session's lists
    /// once they changed, else the catalog.
    fn offered(&self, ctx: &RequestContext) -> Arc<Catalog> {
        self.catalog_for(ctx)
            .unwrap_or_else(|| self.catalog.current())
    }

    fn speaks_stateless(&self) -> bool {
        self.stateless.load(Ordering::Acquire)
    }

    fn speaks_sessionful(&self) -> bool {
        self.sessionful.load(Ordering::Acquire)
    }

    fn slot(&self, key: Key) -> Arc<Slot> {
        self.slots
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Slot::new(key, self.clock.now())))
            .clone()
    }

    fn key(&self, ctx: &RequestContext) -> Key {
        if self.settings.shared {
            return Key::Shared;
        }
        match &ctx.caller {
            Caller::Session(session) => Key::Session(session.id()),
            Caller::Client { key, identity } => Key::Client(stateless_client(key, identity)),
        }
    }

    fn link_error(&self, error: LinkError) -> ErrorData {
        match error {
            LinkError::Rpc(e) => ErrorData::new(ErrorCode(e.code), e.message, e.data),
            other => ErrorData::internal_error(format!("upstream {}: {other}", self.name), None),
        }
    }

    /// The request as the upstream names things, or why it is not one for
    /// this upstream.
    fn inward(
        &self,
        ctx: &RequestContext,
        request: &sessiongate_mcp::Request,
    ) -> Result<Value, ErrorData> {
        let mut params = match &request.raw {
            Some(raw) => serde_json::from_str::<Value>(raw.get())
                .map_err(|e| ErrorData::invalid_params(format!("invalid params: {e}"), None))?,
            None => json!({}),
        };
        let rename = |params: &mut Value, at: &str, unknown: &str| -> Result<(), ErrorData> {
            let name = params
                .pointer(at)
                .and_then(Value::as_str)
                .ok_or_else(|| ErrorData::invalid_params(format!("{at} is missing"), None))?;
            let Some(inner) = self.naming().and_then(|n| n.inward(name)) else {
                return Err(ErrorData::invalid_params(
                    format!("{unknown}: {name}"),
                    None,
                ));
            };
            let inner = Value::from(inner);
            if let Some(slot) = params.pointer_mut(at) {
                *slot = inner;
            }
            Ok(())
        };
        match request.method.as_str() {
            "tools/call" => rename(&mut params, "/name", "Unknown tool")?,
            "prompts/get" => rename(&mut params, "/name", "Unknown prompt")?,
            "completion/complete" => {
                if params.pointer("/ref/type") == Some(&json!("ref/prompt")) {
                    rename(&mut params, "/ref/name", "Unknown prompt")?;
                }
            }
            "tasks/get" | "tasks/update" | "tasks/cancel" => rename(
                &mut params,
                "/taskId",
                "Failed to retrieve task: Task not found",
            )?,
            "resources/read" => {
                let uri = params["uri"].as_str().unwrap_or_default();
                if !catalog::owns_uri(&self.offered(ctx), uri) {
                    return Err(ErrorData::new(
                        ErrorCode::RESOURCE_NOT_FOUND,
                        format!("Resource not found: {uri}"),
                        Some(json!({ "uri": uri })),
                    ));
                }
            }
            method => {
                return Err(ErrorData::new(
                    ErrorCode::METHOD_NOT_FOUND,
                    format!("Method not found: {method}"),
                    None,
                ))
            }
        }
        Ok(params)
    }

    /// Whether calling again after the upstream restarted is harmless.
    fn retry_safe(&self, method: &str, params: &Value) -> bool {
        match method {
            "tools/call" => params["name"].as_str().is_some_and(|name| {
                self.retry_safe
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(name)
                    .copied()
                    .unwrap_or(false)
            }),
            // Reading a resource or a prompt, and completing, change nothing.
            _ => true,
        }
    }

    async fn relay(
        &self,
        ctx: &RequestContext,
        request: sessiongate_mcp::Request,
    ) -> Result<Answer, ErrorData> {
        if self.goes_direct(ctx) {
            return self.relay_direct(ctx, request).await;
        }
        let mut params = self.inward(ctx, &request)?;
        if let Some(object) = params.as_object_mut() {
            // On an upstream session, a 2026-07-28 retry's members are the
            // gateway's to read, and the client is the session's.
            object.remove("inputResponses");
            object.remove("requestState");
            if let Some(Value::Object(meta)) = object.get_mut("_meta") {
                meta.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
                meta.remove("progressToken");
            }
        }
        let method = request.method.as_str();
        let slot = self.slot(self.key(ctx));
        slot.touch(self.clock.now());
        self.prepare(&slot, ctx).await;
        let mut asks = 0;
        let mut retried = false;
        loop {
            let conn = self.connect(&slot).await?;
            match self
                .call(&slot, &conn, ctx, method, &params, &mut asks)
                .await
            {
                Ok(result) => {
                    self.answered(&conn);
                    return Ok(Answer::Json(result));
                }
                Err(CallError::Client(e)) => return Err(e),
                Err(CallError::Link(LinkError::Rpc(e))) => {
                    self.answered(&conn);
                    return Err(self.link_error(LinkError::Rpc(e)));
                }
                Err(CallError::Link(LinkError::Gone { reason, delivered })) => {
                    if slot.discard(&conn).await {
                        self.lost(&conn, reason.clone());
                    }
                    if !retried && (!delivered || self.retry_safe(method, &params)) {
                        retried = true;
                        asks = 0;
                        continue;
                    }
                    return Err(ErrorData::internal_error(
                        format!(
                            "upstream {} restarted during the call, which was not retried as it \
                             may have had effects: {reason}",
                            self.name
                        ),
                        None,
                    ));
                }
                Err(CallError::Link(other)) => return Err(self.link_error(other)),
            }
        }
    }

    /// Records an upstream session lost; reports the upstream down when
    /// that makes it so.
    fn lost(&self, conn: &Conn, reason: String) {
        let at = self.clock.now();
        if conn.answered.load(Ordering::Relaxed) {
            self.health.lost_healthy(reason, at);
        } else if self.health.failed(reason.clone(), at) {
            self.emit(UpstreamEvent::UpstreamDown {
                upstream: self.name.clone(),
                error: reason,
                at,
            });
        }
    }

    /// It answers: reported up if it was not.
    fn health_up(&self) {
        if self.health.answered() {
            self.emit(UpstreamEvent::UpstreamUp {
                upstream: self.name.clone(),
                at: self.clock.now(),
            });
        }
    }

    /// `conn` answered a request.
    fn answered(&self, conn: &Conn) {
        conn.answered.store(true, Ordering::Relaxed);
        self.health_up();
    }

    /// Lets go of a client session's upstream session (its mappings are the
    /// gateway's to delete).
    pub(crate) fn end_session(&self, session_id: SessionId) {
        if let Some((_, slot)) = self.slots.remove(&Key::Session(session_id)) {
            tokio::spawn(async move { slot.close().await });
        }
    }

    /// Lets go of stateless clients' upstream sessions idle for longer than
    /// the pool keeps them.
    pub(crate) fn expire_idle(&self) {
        let (idle, now) = (self.settings.pool_idle, self.clock.now());
        self.slots.retain(|key, slot| {
            let expired = matches!(key, Key::Client(_))
                && slot.in_flight().is_empty()
                && slot.idle_at(now) >= idle;
            if expired {
                // What its child had changed for the client goes with it.
                if slot.set_listing(None) {
                    self.announce(
                        slot,
                        &[ListKind::Tools, ListKind::Prompts, ListKind::Resources],
                    );
                }
                let slot = slot.clone();
                tokio::spawn(async move { slot.close().await });
            }
            !expired
        });
    }

    pub(crate) fn pool_idle(&self) -> Duration {
        self.settings.pool_idle
    }

    pub(crate) fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Ends every upstream session (the gateway stops).
    pub(crate) async fn close_all(&self) {
        self.stopped.store(true, Ordering::Release);
        if let Some(listening) = self
            .listening
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            listening.abort();
        }
        let slots: Vec<_> = self.slots.iter().map(|e| e.value().clone()).collect();
        self.slots.clear();
        for slot in slots {
            slot.close().await;
        }
    }

    pub(crate) fn report(&self) -> UpstreamReport {
        let (p50_ms, p99_ms) = self.health.percentiles();
        let last_error = self.health.last_error();
        UpstreamReport {
            name: self.name.clone(),
            transport: self.settings.transport,
            mode: self.settings.mode,
            status: self.health.status(),
            processes: self.processes.load(Ordering::Relaxed) as u64,
            restarts: self.health.restarts.load(Ordering::Relaxed),
            last_error_at: last_error.as_ref().map(|(_, at)| *at),
            last_error: last_error.map(|(e, _)| e),
            sessions_mapped: self
                .slots
                .iter()
                .filter(|e| !matches!(e.key(), Key::Shared))
                .count() as u64,
            requests: self.health.requests.load(Ordering::Relaxed),
            errors: self.health.errors.load(Ordering::Relaxed),
            p50_ms,
            p99_ms,
        }
    }
}

#[async_trait]
impl Service for Upstream {
    fn catalog(&self) -> &LiveCatalog {
        &self.catalog
    }

    /// A client's own child (a session's, or a stateless client's pooled
    /// one) may change its lists for that client alone (see
    /// [`Upstream::relist_own`]).
    fn catalog_for(&self, ctx: &RequestContext) -> Option<Arc<Catalog>> {
        if self.settings.shared || self.goes_direct(ctx) {
            return None;
        }
        self.slots.get(&self.key(ctx))?.listing()
    }

    fn upstream(&self) -> Option<&UpstreamName> {
        Some(&self.name)
    }

    fn capabilities(&self) -> Capabilities {
        *self.capabilities.read().unwrap_or_else(|e| e.into_inner())
    }

    /// An upstream that speaks 2026-07-28 asks for its input itself.
    fn passes_input_through(&self, _request: &sessiongate_mcp::Request) -> bool {
        self.speaks_stateless()
    }

    fn owns_task(&self, task_id: &str) -> bool {
        self.owns(task_id)
    }

    /// Keeps the log level and subscriptions to restore on a new upstream
    /// session, and passes them to the open one. A log level waits for the
    /// session's first call if none is open; a subscription opens one, as
    /// only an open session can announce updates.
    async fn client_setting(
        &self,
        ctx: &RequestContext,
        request: &sessiongate_mcp::Request,
    ) -> Result<(), ErrorData> {
        // Without an upstream session there is nothing to set: log
        // messages come with every request and the gateway filters them.
        if ctx.is_stateless() || !self.sessions_have_own_upstream_session() {
            return Ok(());
        }
        let params = match &request.raw {
            Some(raw) => serde_json::from_str::<Value>(raw.get()).unwrap_or(json!({})),
            None => json!({}),
        };
        let slot = self.slot(self.key(ctx));
        self.prepare(&slot, ctx).await;
        let open = match request.method.as_str() {
            "logging/setLevel" => {
                slot.state().log_level = params["level"].as_str().map(str::to_string);
                slot.conn.lock().await.clone()
            }
            method => {
                let Some(uri) = params["uri"].as_str() else {
                    return Ok(());
                };
                if !catalog::owns_uri(&self.offered(ctx), uri) {
                    return Ok(());
                }
                {
                    let mut state = slot.state();
                    state.subscriptions.retain(|s| s != uri);
                    if method == "resources/subscribe" {
                        state.subscriptions.push(uri.to_string());
                    }
                }
                Some(self.connect(&slot).await?)
            }
        };
        let Some(conn) = open.filter(|c| !c.link.is_closed()) else {
            return Ok(());
        };
        self.save_mapping(&slot, &conn.link).await;
        let passed = conn
            .link
            .request(self.next_id(), &request.method, Some(&params))
            .await;
        match (passed, request.method.as_str()) {
            (Ok(_), _) => Ok(()),
            // The gateway filters log messages by the level itself: an
            // upstream without logging does not fail the client's request.
            (Err(e), "logging/setLevel") => {
                tracing::debug!(upstream = %self.name, "the upstream refused the log level: {e}");
                Ok(())
            }
            (Err(e), _) => Err(self.link_error(e)),
        }
    }

    async fn serve(
        &self,
        ctx: &RequestContext,
        request: sessiongate_mcp::Request,
    ) -> Result<Answer, ErrorData> {
        let started = Instant::now();
        let answer = self.relay(ctx, request).await;
        self.health.record(started.elapsed(), answer.is_err());
        answer
    }
}
