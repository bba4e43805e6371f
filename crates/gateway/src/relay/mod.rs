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
//! stored as an [`UpstreamMapping`], so after the gateway restarts a session
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
//! call. Crashes in a row back off ([`health`]).

mod catalog;
mod health;

pub use catalog::Naming;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;
use rmcp::model::{ErrorCode, ErrorData};
use serde_json::{json, Value};
use sessiongate_core::ids::SessionId;
use sessiongate_core::store::UpstreamMappingStore;
use sessiongate_core::upstream::{
    UpstreamEvent, UpstreamMapping, UpstreamName, UpstreamReport, UpstreamStatus,
};
use sessiongate_core::{SharedClock, Timestamp};
use sessiongate_mcp::context::Caller;
use sessiongate_mcp::{Answer, Capabilities, InputRequest, LiveCatalog, RequestContext, Service};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::link::{Connector, Incoming, Link, LinkError, OutboundId, RpcError};
use health::Health;

/// Revisions the gateway speaks to upstreams, newest first.
const UPSTREAM_REVISIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// Messages for one request in flight that may queue before the upstream
/// waits.
const RELAYED_QUEUED: usize = 64;

/// Settings of one upstream the relay needs beyond its connector.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    pub naming: Naming,
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
}

/// Which upstream session a request uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Session(SessionId),
    /// A 2026-07-28 client: principal and client identity.
    Client(Arc<str>),
    Shared,
}

/// One configured upstream, served as a [`Service`].
pub struct Upstream {
    name: UpstreamName,
    settings: UpstreamSettings,
    connector: Arc<dyn Connector>,
    store: Arc<dyn UpstreamMappingStore>,
    clock: SharedClock,
    catalog: LiveCatalog,
    /// The `capabilities` of the upstream's last `initialize` result.
    server: RwLock<Value>,
    capabilities: RwLock<Capabilities>,
    retry_safe: RwLock<HashMap<String, bool>>,
    slots: DashMap<Key, Arc<Slot>>,
    /// The requests in flight, by the gateway's id, for what the upstream
    /// sends about them.
    routes: DashMap<OutboundId, mpsc::Sender<Relayed>>,
    next_id: AtomicU64,
    /// Upstream sessions open (children running, for stdio); shared with
    /// each session's pump, which counts it down when its session ends.
    processes: Arc<AtomicUsize>,
    health: Health,
    events: broadcast::Sender<UpstreamEvent>,
    /// List-changed notifications not yet followed by a listing: a burst
    /// lists once at a time, and one during a listing lists again after it.
    relist_wanted: AtomicUsize,
    this: Weak<Upstream>,
}

/// One upstream session's place: its link once opened, and what must be
/// restored on a new one.
struct Slot {
    key: Key,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    state: Mutex<SlotState>,
    /// Requests in flight on it, oldest first.
    in_flight: Mutex<Vec<OutboundId>>,
    /// By the lifecycle's clock, for the pool's idle expiry.
    last_used: Mutex<Timestamp>,
}

#[derive(Default)]
struct SlotState {
    /// Whether the stored mapping was looked for (restored sessions).
    loaded: bool,
    /// Whether an upstream session was held before: the next is a restart.
    had_session: bool,
    initialize_params: Option<Value>,
    resume: Option<String>,
    protocol_version: Option<String>,
    log_level: Option<String>,
    subscriptions: Vec<String>,
}

/// An open upstream session.
struct Conn {
    link: Arc<dyn Link>,
    /// Whether it answered a request: losing one that did is no sign of a
    /// crash loop.
    answered: AtomicBool,
    /// Asks its pump to answer once it has handled every message the
    /// upstream sent so far (see [`Upstream::call`]).
    /// Unbounded, so a call never waits to ask while the pump waits for it
    /// to take a message: one entry per call in flight at most.
    flush: mpsc::UnboundedSender<oneshot::Sender<()>>,
}

impl Slot {
    fn new(key: Key, now: Timestamp) -> Slot {
        Slot {
            key,
            conn: tokio::sync::Mutex::new(None),
            state: Mutex::new(SlotState::default()),
            in_flight: Mutex::new(Vec::new()),
            last_used: Mutex::new(now),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, Vec<OutboundId>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The request in flight that the upstream's unrelated messages go to.
    fn latest(&self) -> Option<OutboundId> {
        self.in_flight().last().copied()
    }

    fn touch(&self, now: Timestamp) {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }

    fn idle_at(&self, now: Timestamp) -> Duration {
        now.since(*self.last_used.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Forgets `conn` if it is still the slot's, so the next use opens a
    /// new upstream session. Returns whether it was: of the requests a lost
    /// session fails, one reports the loss.
    async fn discard(&self, conn: &Arc<Conn>) -> bool {
        let mut current = self.conn.lock().await;
        let current_one = current.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn));
        if current_one {
            current.take();
            self.state().had_session = true;
        }
        drop(current);
        conn.link.close().await;
        current_one
    }

    /// Ends the upstream session, if one is open.
    async fn close(&self) {
        let conn = self.conn.lock().await.take();
        if let Some(conn) = conn {
            conn.link.close().await;
        }
    }
}

/// What the upstream sent that belongs to a request in flight.
enum Relayed {
    Notification {
        method: String,
        params: Value,
    },
    Request {
        id: Value,
        method: String,
        params: Value,
    },
}

/// Why a relayed call did not answer.
enum CallError {
    Link(LinkError),
    /// The client's side ended it (a 2026-07-28 request that needs input).
    Client(ErrorData),
}

impl Upstream {
    pub fn new(
        name: UpstreamName,
        settings: UpstreamSettings,
        connector: Arc<dyn Connector>,
        store: Arc<dyn UpstreamMappingStore>,
        clock: SharedClock,
        events: broadcast::Sender<UpstreamEvent>,
    ) -> Arc<Upstream> {
        Arc::new_cyclic(|this| Upstream {
            name,
            health: Health::new(settings.backoff, settings.max_backoff),
            settings,
            connector,
            store,
            clock,
            catalog: LiveCatalog::default(),
            server: RwLock::new(Value::Null),
            capabilities: RwLock::new(Capabilities::default()),
            retry_safe: RwLock::new(HashMap::new()),
            slots: DashMap::new(),
            routes: DashMap::new(),
            next_id: AtomicU64::new(1),
            processes: Arc::new(AtomicUsize::new(0)),
            events,
            relist_wanted: AtomicUsize::new(0),
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

    /// Reads the upstream's catalog on a session of the gateway's own
    /// (kept as the shared session in shared mode). On failure the upstream
    /// is reported down and the error returned.
    pub async fn probe(&self) -> Result<(), String> {
        let params = json!({
            "protocolVersion": UPSTREAM_REVISIONS[0],
            "capabilities": {},
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
        let listed = async {
            let conn = self.connect(&slot).await?;
            self.relist(&conn.link)
                .await
                .map_err(|e| self.link_error(e))
        }
        .await;
        if !self.settings.shared {
            slot.close().await;
        }
        match &listed {
            Ok(()) => self.health_up(),
            Err(e) => {
                tracing::error!(upstream = %self.name, "the upstream's catalog cannot be read: {}", e.message)
            }
        }
        listed.map_err(|e| e.message.to_string())
    }

    /// [`probe`](Self::probe) again and again, backing off, until it works.
    pub async fn probe_until_up(self: Arc<Self>) {
        let mut wait = self.settings.backoff;
        loop {
            tokio::time::sleep(wait).await;
            if self.probe().await.is_ok() {
                return;
            }
            wait = (wait * 2).min(self.settings.max_backoff);
        }
    }

    /// Lists the catalog over `link` and publishes it.
    async fn relist(&self, link: &Arc<dyn Link>) -> Result<(), LinkError> {
        let server = self
            .server
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let next_id = || self.next_id();
        let listed = catalog::list(link.as_ref(), &next_id, &server, &self.settings.naming).await?;
        *self.capabilities.write().unwrap_or_else(|e| e.into_inner()) =
            catalog::capabilities(&server);
        *self.retry_safe.write().unwrap_or_else(|e| e.into_inner()) = listed.retry_safe;
        self.catalog.set(listed.catalog);
        Ok(())
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
            Caller::Client { key, identity } => {
                Key::Client(format!("{}|{key}", identity.principal.as_deref().unwrap_or("")).into())
            }
        }
    }

    /// The `initialize` params sent for the client `ctx` serves: its own
    /// `clientInfo` and capabilities.
    fn initialize_params(ctx: &RequestContext) -> Value {
        let identity = ctx.identity();
        json!({
            "protocolVersion": UPSTREAM_REVISIONS[0],
            "capabilities": identity.client_capabilities,
            "clientInfo": {
                "name": identity.client_name.as_deref().unwrap_or("unknown"),
                "version": identity.client_version.as_deref().unwrap_or("0"),
            },
        })
    }

    /// Makes sure the slot knows how to initialize its upstream session:
    /// from the store for a session restored after a restart, else from
    /// the client.
    async fn prepare(&self, slot: &Slot, ctx: &RequestContext) {
        if slot.state().initialize_params.is_some() {
            return;
        }
        let stored = match &slot.key {
            Key::Session(id) if !slot.state().loaded => {
                match self.store.upstream_mapping(*id, &self.name).await {
                    Ok(found) => found,
                    Err(e) => {
                        tracing::warn!(upstream = %self.name, "cannot read a session's upstream mapping: {e}");
                        None
                    }
                }
            }
            _ => None,
        };
        let mut state = slot.state();
        state.loaded = true;
        if state.initialize_params.is_some() {
            return;
        }
        match stored {
            Some(mapping) => {
                state.initialize_params = Some(mapping.initialize_params);
                state.resume = mapping.upstream_session_id;
                state.protocol_version = Some(mapping.protocol_version);
                state.log_level = mapping.log_level;
                state.subscriptions = mapping.subscriptions;
                state.had_session = true;
            }
            None => state.initialize_params = Some(Self::initialize_params(ctx)),
        }
    }

    /// The slot's upstream session, opened (or opened again) if it has none
    /// that is alive.
    async fn connect(&self, slot: &Arc<Slot>) -> Result<Arc<Conn>, ErrorData> {
        let mut current = slot.conn.lock().await;
        if let Some(conn) = current.as_ref() {
            if !conn.link.is_closed() {
                return Ok(conn.clone());
            }
        }
        if let Some(dead) = current.take() {
            // Lost between calls: a failure like one during a call.
            let reason = dead
                .link
                .closed_reason()
                .unwrap_or_else(|| format!("upstream {}'s session ended between calls", self.name));
            dead.link.close().await;
            slot.state().had_session = true;
            self.lost(&dead, reason);
        }
        if let Err(backing_off) = self.health.may_start() {
            return Err(ErrorData::internal_error(
                format!(
                    "upstream {} is down: it failed {} times in a row; the next try is in {:.1}s. \
                     Last error: {}",
                    self.name,
                    backing_off.failures,
                    backing_off.wait.as_secs_f64(),
                    backing_off.last_error
                ),
                None,
            ));
        }
        let (params, resume, stored_version, log_level, subscriptions, restart) = {
            let mut state = slot.state();
            (
                state.initialize_params.clone().unwrap_or_else(|| json!({})),
                state.resume.take(),
                state.protocol_version.clone(),
                state.log_level.clone(),
                state.subscriptions.clone(),
                state.had_session,
            )
        };
        let limit = self.settings.max_processes;
        if self
            .processes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_err()
        {
            return Err(ErrorData::internal_error(
                format!(
                    "upstream {} already runs {limit} processes, its max_processes; \
                     end a session or raise the limit",
                    self.name
                ),
                None,
            ));
        }
        let opened = match self.connector.open(resume.as_deref()).await {
            Ok(opened) => opened,
            Err(e) => {
                self.processes.fetch_sub(1, Ordering::AcqRel);
                return Err(self.start_failed(e.to_string()));
            }
        };
        let link = opened.link;
        let (flush, flushes) = mpsc::unbounded_channel();
        tokio::spawn(pump(
            self.this.clone(),
            Arc::downgrade(slot),
            Arc::downgrade(&link),
            opened.incoming,
            flushes,
            self.processes.clone(),
        ));
        let resumed = match (&resume, stored_version) {
            (Some(_), Some(version)) => {
                link.set_protocol_version(&version);
                Some(version)
            }
            _ => None,
        };
        let version = match resumed {
            Some(version) => version,
            None => match self.handshake(&link, &params).await {
                Ok(version) => version,
                Err(e) => {
                    link.close().await;
                    return Err(self.start_failed(e.to_string()));
                }
            },
        };
        if resume.is_none() {
            self.restore(&link, log_level.as_deref(), &subscriptions)
                .await;
        }
        slot.state().protocol_version = Some(version.clone());
        if restart && resume.is_none() {
            self.health.restarts.fetch_add(1, Ordering::Relaxed);
            self.emit(UpstreamEvent::UpstreamRestarted {
                upstream: self.name.clone(),
                session_id: match slot.key {
                    Key::Session(id) => Some(id),
                    _ => None,
                },
                reason: self
                    .health
                    .last_error()
                    .map_or_else(|| "the gateway restarted".to_string(), |(e, _)| e),
                at: self.clock.now(),
            });
        }
        if resume.is_none() {
            self.save_mapping(slot, &link).await;
        }
        let conn = Arc::new(Conn {
            link,
            flush,
            answered: AtomicBool::new(false),
        });
        *current = Some(conn.clone());
        Ok(conn)
    }

    /// Stores what a session's upstream session was opened with and what
    /// the client set on it, so it can be opened the same way again.
    async fn save_mapping(&self, slot: &Slot, link: &Arc<dyn Link>) {
        let Key::Session(session_id) = slot.key else {
            return;
        };
        let mapping = {
            let state = slot.state();
            let (Some(params), Some(version)) = (&state.initialize_params, &state.protocol_version)
            else {
                return;
            };
            UpstreamMapping {
                session_id,
                upstream: self.name.clone(),
                upstream_session_id: link.session_id(),
                protocol_version: version.clone(),
                initialize_params: params.clone(),
                log_level: state.log_level.clone(),
                subscriptions: state.subscriptions.clone(),
                updated_at: self.clock.now(),
            }
        };
        if let Err(e) = self.store.save_upstream_mapping(&mapping).await {
            tracing::warn!(upstream = %self.name, "cannot store a session's upstream mapping: {e}");
        }
    }

    /// `initialize`, then `notifications/initialized`; the revision agreed.
    async fn handshake(&self, link: &Arc<dyn Link>, params: &Value) -> Result<String, LinkError> {
        let exchange = async {
            let result = link
                .request(self.next_id(), "initialize", Some(params))
                .await?;
            let version = result["protocolVersion"].as_str().unwrap_or_default();
            if !UPSTREAM_REVISIONS.contains(&version) {
                return Err(LinkError::Transport {
                    reason: format!(
                        "upstream {} answered initialize with protocol version {version:?}, \
                         which the gateway does not speak",
                        self.name
                    ),
                    delivered: true,
                });
            }
            let version = version.to_string();
            link.set_protocol_version(&version);
            *self.server.write().unwrap_or_else(|e| e.into_inner()) =
                result.get("capabilities").cloned().unwrap_or(json!({}));
            link.notify("notifications/initialized", None).await?;
            Ok(version)
        };
        match tokio::time::timeout(self.settings.start_timeout, exchange).await {
            Ok(agreed) => agreed,
            Err(_) => Err(LinkError::Timeout(self.settings.start_timeout)),
        }
    }

    /// Sets again on a new upstream session what the client had set.
    async fn restore(
        &self,
        link: &Arc<dyn Link>,
        log_level: Option<&str>,
        subscriptions: &[String],
    ) {
        if let Some(level) = log_level {
            let params = json!({ "level": level });
            if let Err(e) = link
                .request(self.next_id(), "logging/setLevel", Some(&params))
                .await
            {
                tracing::warn!(upstream = %self.name, "cannot restore the log level: {e}");
            }
        }
        for uri in subscriptions {
            let params = json!({ "uri": uri });
            if let Err(e) = link
                .request(self.next_id(), "resources/subscribe", Some(&params))
                .await
            {
                tracing::warn!(upstream = %self.name, uri, "cannot restore a subscription: {e}");
            }
        }
    }

    /// Records a failure to start an upstream session; the client's error.
    fn start_failed(&self, error: String) -> ErrorData {
        tracing::warn!(upstream = %self.name, "cannot start an upstream session: {error}");
        let at = self.clock.now();
        if self.health.failed(error.clone(), at) {
            self.emit(UpstreamEvent::UpstreamDown {
                upstream: self.name.clone(),
                error: error.clone(),
                at,
            });
        }
        ErrorData::internal_error(
            format!("upstream {} cannot be started: {error}", self.name),
            None,
        )
    }

    fn link_error(&self, error: LinkError) -> ErrorData {
        match error {
            LinkError::Rpc(e) => ErrorData::new(ErrorCode(e.code), e.message, e.data),
            other => ErrorData::internal_error(format!("upstream {}: {other}", self.name), None),
        }
    }

    /// The request as the upstream names things, or why it is not one for
    /// this upstream.
    fn inward(&self, request: &sessiongate_mcp::Request) -> Result<Value, ErrorData> {
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
            let Some(inner) = self.settings.naming.inward(name) else {
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
            "resources/read" => {
                let uri = params["uri"].as_str().unwrap_or_default();
                if !catalog::owns_uri(&self.catalog.current(), uri) {
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
        if let Some(object) = params.as_object_mut() {
            // A 2026-07-28 retry's members are the gateway's to read.
            object.remove("inputResponses");
            object.remove("requestState");
            if let Some(Value::Object(meta)) = object.get_mut("_meta") {
                meta.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
                meta.remove("progressToken");
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
        let params = self.inward(&request)?;
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

    /// Sends one request on `conn` and relays what the upstream sends about
    /// it until it answers.
    async fn call(
        &self,
        slot: &Arc<Slot>,
        conn: &Arc<Conn>,
        ctx: &RequestContext,
        method: &str,
        params: &Value,
        asks: &mut u32,
    ) -> Result<Value, CallError> {
        let id = self.next_id();
        let mut params = params.clone();
        if ctx.progress_token.is_some() {
            // The gateway's own token: the client's could collide with
            // another client's on a shared upstream session.
            if !params["_meta"].is_object() {
                params["_meta"] = json!({});
            }
            params["_meta"]["progressToken"] = json!(id);
        }
        let (tx, mut relayed) = mpsc::channel(RELAYED_QUEUED);
        self.routes.insert(id, tx);
        slot.in_flight().push(id);
        let mut guard = InFlight {
            upstream: self,
            slot,
            link: conn.link.clone(),
            id,
            answered: false,
        };
        let request = conn.link.request(id, method, Some(&params));
        tokio::pin!(request);
        let outcome = loop {
            tokio::select! {
                outcome = &mut request => break outcome,
                Some(message) = relayed.recv() => {
                    self.relay_back(ctx, &conn.link, message, asks)
                        .await
                        .map_err(CallError::Client)?;
                }
            }
        };
        // A request that timed out is still running upstream: the guard
        // cancels it.
        guard.answered = !matches!(outcome, Err(LinkError::Timeout(_)));
        // What the upstream sent before its answer (progress, log
        // messages) may still be on its way through the pump: it goes to
        // the client before the answer does.
        let (flushed_tx, mut flushed) = oneshot::channel();
        if conn.flush.send(flushed_tx).is_ok() {
            loop {
                tokio::select! {
                    biased;
                    Some(message) = relayed.recv() => {
                        self.relay_back(ctx, &conn.link, message, asks)
                            .await
                            .map_err(CallError::Client)?;
                    }
                    _ = &mut flushed => break,
                }
            }
        }
        while let Ok(message) = relayed.try_recv() {
            self.relay_back(ctx, &conn.link, message, asks)
                .await
                .map_err(CallError::Client)?;
        }
        outcome.map_err(CallError::Link)
    }

    /// Passes what the upstream sent during a call to the client.
    async fn relay_back(
        &self,
        ctx: &RequestContext,
        link: &Arc<dyn Link>,
        message: Relayed,
        asks: &mut u32,
    ) -> Result<(), ErrorData> {
        match message {
            Relayed::Notification { method, mut params } => match method.as_str() {
                "notifications/progress" => {
                    if let Some(token) = &ctx.progress_token {
                        params["progressToken"] = token.clone();
                        ctx.notify(&method, params).await;
                    }
                }
                "notifications/message" => {
                    let level = params["level"].as_str().unwrap_or("info").to_string();
                    let logger = params["logger"].as_str().map(str::to_string);
                    let data = params
                        .get_mut("data")
                        .map(Value::take)
                        .unwrap_or(Value::Null);
                    ctx.log(&level, logger.as_deref(), data).await;
                }
                _ => {}
            },
            Relayed::Request { id, method, params } => {
                let input = match method.as_str() {
                    "elicitation/create" => Some(InputRequest::elicit(params.clone())),
                    "sampling/createMessage" => Some(InputRequest::sample(params.clone())),
                    "roots/list" => Some(InputRequest::list_roots()),
                    _ => None,
                };
                let outcome = match (input, &ctx.caller) {
                    // The upstream hears the client cannot, as the client
                    // would have told it.
                    (Some(input), _) if !ctx.can_ask(&input) => Err(ErrorData::new(
                        ErrorCode::INVALID_REQUEST,
                        format!(
                            "the client did not declare the {} capability",
                            input.kind().capability()
                        ),
                        None,
                    )),
                    (_, Caller::Session(_)) => ctx.request_client(&method, params).await,
                    (Some(input), Caller::Client { .. }) => {
                        // The upstream asks again in the same order when
                        // the call is sent again on the retry; an ask not
                        // yet answered ends the handler (input-required).
                        *asks += 1;
                        let key = format!("{}-{asks}", self.name);
                        Ok(ctx.ask(&key, input).await?)
                    }
                    (None, Caller::Client { .. }) => Err(ErrorData::new(
                        ErrorCode::METHOD_NOT_FOUND,
                        format!("Method not found: {method}"),
                        None,
                    )),
                };
                let outcome = outcome.map_err(|e| RpcError {
                    code: e.code.0,
                    message: e.message.to_string(),
                    data: e.data,
                });
                if let Err(e) = link.respond(id, outcome).await {
                    tracing::debug!(upstream = %self.name, "cannot answer the upstream's request: {e}");
                }
            }
        }
        Ok(())
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
        let slots: Vec<_> = self.slots.iter().map(|e| e.value().clone()).collect();
        self.slots.clear();
        for slot in slots {
            slot.close().await;
        }
    }

    pub(crate) fn report(&self) -> UpstreamReport {
        let (p50_ms, p99_ms) = self.health.percentiles();
        let last_error = self.health.last_error();
        let status = match self.health.status() {
            // Nothing was ever read from it.
            UpstreamStatus::Up if self.server.read().map(|s| s.is_null()).unwrap_or(true) => {
                UpstreamStatus::Down
            }
            status => status,
        };
        UpstreamReport {
            name: self.name.clone(),
            transport: self.settings.transport,
            mode: self.settings.mode,
            status,
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

    fn capabilities(&self) -> Capabilities {
        *self.capabilities.read().unwrap_or_else(|e| e.into_inner())
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
        if ctx.is_stateless() || self.settings.shared {
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
                if !catalog::owns_uri(&self.catalog.current(), uri) {
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

/// A request in flight upstream. Dropped before its answer (the client
/// went away, or its handler was cancelled), it tells the upstream to stop
/// with `notifications/cancelled`.
struct InFlight<'a> {
    upstream: &'a Upstream,
    slot: &'a Slot,
    link: Arc<dyn Link>,
    id: OutboundId,
    answered: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.upstream.routes.remove(&self.id);
        self.slot.in_flight().retain(|&id| id != self.id);
        if self.answered || self.link.is_closed() {
            return;
        }
        let (link, id) = (self.link.clone(), self.id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let params = json!({ "requestId": id, "reason": "the client's request ended" });
                let _ = link.notify("notifications/cancelled", Some(&params)).await;
            });
        }
    }
}

/// Reads what one upstream session sends on its own until it ends: routes
/// it to the request it belongs to, answers `ping`, follows list changes
/// and resource updates. A flush is answered once every message queued
/// before it was handled: a link queues what the upstream sent before a
/// response ahead of delivering the response. Counts the session out of
/// `processes` at the end.
async fn pump(
    upstream: Weak<Upstream>,
    slot: Weak<Slot>,
    link: Weak<dyn Link>,
    mut incoming: mpsc::Receiver<Incoming>,
    mut flushes: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    processes: Arc<AtomicUsize>,
) {
    loop {
        let message = tokio::select! {
            biased;
            message = incoming.recv() => match message {
                Some(message) => message,
                None => break,
            },
            Some(flushed) = flushes.recv() => {
                let _ = flushed.send(());
                continue;
            }
        };
        let Some(upstream) = upstream.upgrade() else {
            break;
        };
        let latest = || slot.upgrade().and_then(|s| s.latest());
        match message {
            Incoming::Notification {
                method,
                params,
                related,
            } => {
                let params = params.unwrap_or(json!({}));
                let target = match method.as_str() {
                    "notifications/progress" => params["progressToken"].as_u64(),
                    "notifications/message" => related.or_else(latest),
                    "notifications/tools/list_changed"
                    | "notifications/prompts/list_changed"
                    | "notifications/resources/list_changed" => {
                        if let Some(link) = link.upgrade() {
                            upstream.clone().relist_soon(link);
                        }
                        None
                    }
                    "notifications/resources/updated" => {
                        if let Some(uri) = params["uri"].as_str() {
                            upstream.catalog.resource_updated(uri);
                        }
                        None
                    }
                    _ => None,
                };
                let route = target.and_then(|id| upstream.routes.get(&id).map(|r| r.clone()));
                if let Some(route) = route {
                    let _ = route.send(Relayed::Notification { method, params }).await;
                }
            }
            Incoming::Request {
                id,
                method,
                params,
                related,
            } => {
                let Some(link) = link.upgrade() else {
                    break;
                };
                if method == "ping" {
                    let _ = link.respond(id, Ok(json!({}))).await;
                    continue;
                }
                let route = related
                    .or_else(latest)
                    .and_then(|r| upstream.routes.get(&r).map(|r| r.clone()));
                let params = params.unwrap_or(json!({}));
                let unsent = match route {
                    Some(route) => route
                        .send(Relayed::Request { id, method, params })
                        .await
                        .err()
                        .map(|e| match e.0 {
                            Relayed::Request { id, method, .. } => (id, method),
                            Relayed::Notification { method, .. } => (Value::Null, method),
                        }),
                    None => Some((id, method)),
                };
                if let Some((id, method)) = unsent {
                    let refusal = RpcError {
                        code: -32603,
                        message: format!(
                            "no client request is in flight on this session to carry {method}"
                        ),
                        data: None,
                    };
                    let _ = link.respond(id, Err(refusal)).await;
                }
            }
        }
    }
    processes.fetch_sub(1, Ordering::AcqRel);
}

impl Upstream {
    /// Lists the catalog again in the background, once at a time.
    fn relist_soon(self: Arc<Self>, link: Arc<dyn Link>) {
        if self.relist_wanted.fetch_add(1, Ordering::AcqRel) > 0 {
            return;
        }
        tokio::spawn(async move {
            loop {
                let wanted = self.relist_wanted.load(Ordering::Acquire);
                if let Err(e) = self.relist(&link).await {
                    tracing::warn!(upstream = %self.name, "cannot list the changed catalog: {e}");
                }
                let done = self.relist_wanted.compare_exchange(
                    wanted,
                    0,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                if done.is_ok() {
                    return;
                }
            }
        });
    }
}
