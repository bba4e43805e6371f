//! A call in flight and what the upstream sends about it: the gateway's
//! progress token, the messages relayed to the client's request (progress,
//! log messages, the upstream's sampling, elicitation and roots requests),
//! the backlog count that puts them ahead of the answer, the cancellation
//! of a call whose handler is dropped, and the pump that reads each
//! upstream session's own messages.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use rmcp::model::{ErrorCode, ErrorData};
use serde_json::{json, Value};
use sessiongate_core::upstream::UpstreamName;
use sessiongate_mcp::context::Caller;
use sessiongate_mcp::service::{ListKind, ResourceUpdate};
use sessiongate_mcp::{InputRequest, RequestContext};
use tokio::sync::{mpsc, oneshot, Notify};

use super::session::{Conn, Slot};
use super::{Key, Upstream, RELAYED_QUEUED};
use crate::link::{Incoming, IncomingRx, Link, LinkError, OutboundId, RpcError};

/// What the upstream sent that belongs to a request in flight.
pub(super) enum Relayed {
    Notification {
        method: String,
        params: Value,
    },
    Request {
        id: Value,
        method: String,
        params: Value,
        /// Resolves when the upstream takes the request back
        /// (`notifications/cancelled`) or can no longer be answered.
        withdrawn: oneshot::Receiver<()>,
    },
    /// The upstream ended the request's stream for the client to poll.
    StreamClosed,
}

/// The way from the pump to one request in flight. Unbounded, so that a
/// call whose client reads slowly never holds up the pump, and with it
/// the other calls on the same upstream session (a shared child, the
/// sessionless link); past [`RELAYED_QUEUED`] waiting messages the call's
/// notifications (progress, log messages) are dropped, while the
/// upstream's requests to the client always pass.
#[derive(Clone)]
pub(super) struct Route {
    tx: mpsc::UnboundedSender<Relayed>,
    state: Arc<RouteState>,
}

#[derive(Default)]
struct RouteState {
    queued: AtomicUsize,
    dropped: AtomicBool,
}

/// The call's end of a [`Route`].
struct RouteRx {
    rx: mpsc::UnboundedReceiver<Relayed>,
    state: Arc<RouteState>,
}

fn route() -> (Route, RouteRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = Arc::new(RouteState::default());
    (
        Route {
            tx,
            state: state.clone(),
        },
        RouteRx { rx, state },
    )
}

impl Route {
    /// Queues `message` for the call; `Err` with it when the call is over.
    /// A notification past the limit is dropped (`Ok`), with a warning
    /// the first time.
    fn send(&self, upstream: &UpstreamName, message: Relayed) -> Result<(), Relayed> {
        if let Relayed::Notification { method, .. } = &message {
            if self.state.queued.load(Ordering::Acquire) >= RELAYED_QUEUED {
                if !self.state.dropped.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        upstream = %upstream,
                        "a call's client is not reading what the upstream sends: {method} and \
                         later notifications past {RELAYED_QUEUED} waiting are dropped"
                    );
                }
                return Ok(());
            }
        }
        self.state.queued.fetch_add(1, Ordering::AcqRel);
        self.tx.send(message).map_err(|e| {
            self.state.queued.fetch_sub(1, Ordering::AcqRel);
            e.0
        })
    }
}

impl RouteRx {
    async fn recv(&mut self) -> Option<Relayed> {
        let message = self.rx.recv().await;
        self.taken(message)
    }

    fn try_recv(&mut self) -> Option<Relayed> {
        let message = self.rx.try_recv().ok();
        self.taken(message)
    }

    fn taken(&self, message: Option<Relayed>) -> Option<Relayed> {
        if message.is_some() {
            self.state.queued.fetch_sub(1, Ordering::AcqRel);
        }
        message
    }
}

/// Why a relayed call did not answer.
pub(super) enum CallError {
    Link(LinkError),
    /// The client's side ended it (a 2026-07-28 request that needs input).
    Client(ErrorData),
}

impl Upstream {
    /// Sends one request on `conn` and relays what the upstream sends about
    /// it until it answers.
    pub(super) async fn call(
        &self,
        slot: &Arc<Slot>,
        conn: &Arc<Conn>,
        ctx: &RequestContext,
        method: &str,
        params: &Value,
        asks: &mut u32,
    ) -> Result<Value, CallError> {
        let id = self.next_id();
        let params = match ctx.progress_token {
            // The gateway's own token: the client's could collide with
            // another client's on a shared upstream session.
            Some(_) => {
                let mut params = params.clone();
                if !params["_meta"].is_object() {
                    params["_meta"] = json!({});
                }
                params["_meta"]["progressToken"] = json!(id);
                Cow::Owned(params)
            }
            None => Cow::Borrowed(params),
        };
        let (tx, mut relayed) = route();
        self.routes.insert(id, tx);
        slot.in_flight().push(id);
        let mut guard = InFlight {
            upstream: self,
            slot,
            link: conn.link.clone(),
            id,
            answered: false,
        };
        let mirrored = match slot.key {
            Key::Direct => self.mirrored(method, &params),
            _ => Vec::new(),
        };
        let request = conn
            .link
            .request_mirrored(id, method, Some(&*params), &mirrored);
        tokio::pin!(request);
        let mut answered_meanwhile = None;
        let outcome = loop {
            tokio::select! {
                outcome = &mut request => break outcome,
                Some(message) = relayed.recv() => {
                    // The request stays polled while this is relayed: over
                    // HTTP that is what reads the upstream's response
                    // stream, on which it may withdraw a question the
                    // client is being asked.
                    let back = self.relay_back(ctx, &conn.link, message, asks);
                    tokio::pin!(back);
                    loop {
                        tokio::select! {
                            done = &mut back => {
                                done.map_err(CallError::Client)?;
                                break;
                            }
                            outcome = &mut request, if answered_meanwhile.is_none() => {
                                answered_meanwhile = Some(outcome);
                            }
                        }
                    }
                    if let Some(outcome) = answered_meanwhile.take() {
                        break outcome;
                    }
                }
            }
        };
        // A request that timed out is still running upstream: the guard
        // cancels it.
        guard.answered = !matches!(outcome, Err(LinkError::Timeout(_)));
        // What the upstream sent before its answer (progress, log
        // messages) goes to the client before the answer does. The link
        // counted it before delivering the answer, so once the pump has
        // handled as many messages it is all here; until then (only when
        // the upstream session sent something, for this call or, when
        // shared, another's) this relays and waits.
        let sent = conn.backlog.sent();
        loop {
            let progressed = conn.backlog.progressed.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            if conn.backlog.caught_up(sent) {
                break;
            }
            tokio::select! {
                biased;
                Some(message) = relayed.recv() => {
                    self.relay_back(ctx, &conn.link, message, asks)
                        .await
                        .map_err(CallError::Client)?;
                }
                _ = progressed => {}
            }
        }
        while let Some(message) = relayed.try_recv() {
            self.relay_back(ctx, &conn.link, message, asks)
                .await
                .map_err(CallError::Client)?;
        }
        outcome.map_err(CallError::Link)
    }

    /// Passes what the upstream sent during a call to the client.
    pub(super) async fn relay_back(
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
            // The client polls too: what follows reaches it when it resumes.
            Relayed::StreamClosed => ctx.close_stream(),
            Relayed::Request {
                id,
                method,
                params,
                withdrawn,
            } => {
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
                    (_, Caller::Session(_)) => tokio::select! {
                        outcome = ctx.request_client(&method, params) => outcome,
                        // Given up on, the client's request is cancelled
                        // (`Asked`); the upstream wants no answer.
                        _ = withdrawn => return Ok(()),
                    },
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
        // Without an upstream session (2026-07-28), the request's dropped
        // connection is its cancellation.
        if self.answered || self.link.is_closed() || self.slot.key == Key::Direct {
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

/// How long a request the upstream sends outside any client request waits
/// for the client's answer on its standalone stream.
const STREAM_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A notification's frame for a client stream.
fn notification(method: &str, params: &Value) -> bytes::Bytes {
    bytes::Bytes::from(sessiongate_mcp::jsonrpc::notification_bytes(
        method,
        Some(params),
    ))
}

/// How far an upstream session's pump has got through what its link sent.
pub(super) struct Backlog {
    /// Counted by the link as it sends ([`IncomingRx::sent`]).
    sent: Arc<AtomicU64>,
    handled: AtomicU64,
    /// The pump stopped: nothing more will be handled.
    ended: AtomicBool,
    /// Each message handled, and the end.
    progressed: Notify,
}

impl Backlog {
    pub(super) fn new(sent: Arc<AtomicU64>) -> Backlog {
        Backlog {
            sent,
            handled: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            progressed: Notify::new(),
        }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Acquire)
    }

    /// Whether the first `sent` messages were handled (handling is in
    /// order), or never will be.
    fn caught_up(&self, sent: u64) -> bool {
        self.handled.load(Ordering::Acquire) >= sent || self.ended.load(Ordering::Acquire)
    }

    fn handled_one(&self) {
        self.handled.fetch_add(1, Ordering::Release);
        self.progressed.notify_waiters();
    }

    fn end(&self) {
        self.ended.store(true, Ordering::Release);
        self.progressed.notify_waiters();
    }
}

/// Reads what one upstream session sends on its own until it ends: routes
/// it to the request it belongs to, answers `ping`, follows list changes
/// and resource updates, counting each message handled in `backlog`.
/// Counts the session out of `processes` at the end, if it was counted in.
pub(super) async fn pump(
    upstream: Weak<Upstream>,
    slot: Weak<Slot>,
    link: Weak<dyn Link>,
    mut incoming: IncomingRx,
    backlog: Arc<Backlog>,
    processes: Option<Arc<AtomicUsize>>,
) {
    // The upstream's requests to the client still unanswered, by id: what
    // tells their waiter when the upstream withdraws one.
    let mut withdrawals = HashMap::new();
    while let Some(message) = incoming.recv().await {
        let flow = handle(&upstream, &slot, &link, message, &mut withdrawals).await;
        backlog.handled_one();
        if flow.is_break() {
            break;
        }
    }
    backlog.end();
    if let Some(processes) = processes {
        processes.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Handles one message of the upstream's own; `Break` when the gateway or
/// the link is gone.
async fn handle(
    upstream: &Weak<Upstream>,
    slot: &Weak<Slot>,
    link: &Weak<dyn Link>,
    message: Incoming,
    withdrawals: &mut HashMap<String, oneshot::Sender<()>>,
) -> ControlFlow<()> {
    let Some(upstream) = upstream.upgrade() else {
        return ControlFlow::Break(());
    };
    let latest = || slot.upgrade().and_then(|s| s.latest());
    // The client session this upstream session serves alone, whose
    // standalone stream carries what relates to no request of its.
    let session = slot.upgrade().and_then(|s| match s.key {
        Key::Session(id) => Some(id),
        _ => None,
    });
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
                "notifications/cancelled" => {
                    let withdrawn = params
                        .get("requestId")
                        .and_then(|id| withdrawals.remove(&id.to_string()));
                    if let Some(withdrawn) = withdrawn {
                        let _ = withdrawn.send(());
                    }
                    None
                }
                "notifications/tools/list_changed"
                | "notifications/prompts/list_changed"
                | "notifications/resources/list_changed" => {
                    match (link.upgrade(), slot.upgrade()) {
                        // A client's own child (a session's, or a
                        // stateless client's pooled one) changed its
                        // lists: for that client alone. (An HTTP upstream
                        // is one server for every session: its changes are
                        // its catalog's.)
                        (Some(link), Some(slot))
                            if matches!(slot.key, Key::Session(_) | Key::Client(_))
                                && upstream.settings.transport == "stdio" =>
                        {
                            upstream.clone().relist_own(slot, link);
                        }
                        (Some(link), slot) => {
                            let sessionless = slot.is_some_and(|s| s.key == Key::Direct);
                            upstream.clone().relist_soon(link, sessionless);
                        }
                        (None, _) => {}
                    }
                    None
                }
                "notifications/resources/updated" => {
                    if let Some(uri) = params["uri"].as_str() {
                        match session.and_then(|id| upstream.peers.get(id)) {
                            // Its own upstream session's update is its
                            // client session's alone.
                            Some(peer) if peer.is_subscribed(uri) => {
                                peer.send_on_stream(notification(&method, &params));
                            }
                            None if session.is_none() => {
                                // Heard on the sessionless link (its listen
                                // stream), it is the listen streams' alone
                                // where each session's own upstream session
                                // tells it.
                                let direct = slot.upgrade().is_some_and(|s| s.key == Key::Direct);
                                upstream.catalog.announce_update(ResourceUpdate {
                                    uri: uri.into(),
                                    sessions: !(direct
                                        && upstream.sessions_have_own_upstream_session()),
                                })
                            }
                            _ => {}
                        }
                    }
                    None
                }
                _ => None,
            };
            let route = target.and_then(|id| upstream.routes.get(&id).map(|r| r.clone()));
            match route {
                Some(route) => {
                    let _ = route.send(&upstream.name, Relayed::Notification { method, params });
                }
                // A log message between requests (the upstream set its
                // level, so it is one the client asked for).
                None if method == "notifications/message" => {
                    if let Some(peer) = session.and_then(|id| upstream.peers.get(id)) {
                        peer.send_on_stream(notification(&method, &params));
                    }
                }
                None => {}
            }
        }
        Incoming::StreamClosed { related } => {
            if let Some(route) = upstream.routes.get(&related).map(|r| r.clone()) {
                let _ = route.send(&upstream.name, Relayed::StreamClosed);
            }
        }
        Incoming::Request {
            id,
            method,
            params,
            related,
        } => {
            let Some(link) = link.upgrade() else {
                return ControlFlow::Break(());
            };
            if method == "ping" {
                let _ = link.respond(id, Ok(json!({}))).await;
                return ControlFlow::Continue(());
            }
            let route = related
                .or_else(latest)
                .and_then(|r| upstream.routes.get(&r).map(|r| r.clone()));
            let params = params.unwrap_or(json!({}));
            let peer = session.and_then(|id| upstream.peers.get(id));
            let (withdraw, withdrawn) = oneshot::channel();
            withdrawals.retain(|_, w| !w.is_closed());
            withdrawals.insert(id.to_string(), withdraw);
            let unsent = match (route, peer) {
                (Some(route), _) => {
                    let request = Relayed::Request {
                        id: id.clone(),
                        method: method.clone(),
                        params,
                        withdrawn,
                    };
                    route
                        .send(&upstream.name, request)
                        .err()
                        .map(|_| (id, method))
                }
                // Asked between requests (roots after the handshake):
                // over the session's standalone stream.
                (None, Some(peer)) => {
                    let link = link.clone();
                    tokio::spawn(async move {
                        let outcome = tokio::select! {
                            outcome = peer.request_on_stream(&method, &params, STREAM_REQUEST_TIMEOUT) => outcome,
                            _ = withdrawn => return,
                        };
                        let outcome = outcome.map_err(|e| RpcError {
                            code: e.code.0,
                            message: e.message.to_string(),
                            data: e.data,
                        });
                        let _ = link.respond(id, outcome).await;
                    });
                    None
                }
                (None, None) => Some((id, method)),
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
    ControlFlow::Continue(())
}

impl Upstream {
    /// Lists a client's own upstream session's catalog in the background,
    /// once at a time (see [`rerun`]), as that client's alone, and tells
    /// the client which lists changed.
    pub(super) fn relist_own(self: Arc<Self>, slot: Arc<Slot>, link: Arc<dyn Link>) {
        let wanted = slot.relist_wanted.clone();
        rerun(&wanted, move || {
            let (this, slot, link) = (self.clone(), slot.clone(), link.clone());
            async move {
                let mut listed = match this.list(&link, false).await {
                    Ok(listed) => listed,
                    Err(e) => {
                        tracing::warn!(upstream = %this.name, "cannot list a client's changed catalog: {e}");
                        return;
                    }
                };
                if let Some(naming) = this.naming() {
                    listed.rename(naming);
                }
                let before = slot.listing().unwrap_or_else(|| this.catalog.current());
                let listing = Arc::new(listed.catalog);
                let changed = before.changes(&listing);
                slot.set_listing(Some(listing));
                this.announce(&slot, &changed);
            }
        });
    }

    /// Tells the client a slot serves alone that `lists` changed: a
    /// session on its stream, a stateless client on its listen streams.
    pub(super) fn announce(&self, slot: &Slot, lists: &[ListKind]) {
        match &slot.key {
            Key::Session(id) => {
                if let Some(peer) = self.peers.get(*id) {
                    for list in lists {
                        peer.send_on_stream(notification(list.notification(), &json!({})));
                    }
                }
            }
            Key::Client(client) => self.catalog.lists_changed_for(client, lists),
            Key::Shared | Key::Direct => {}
        }
    }

    /// Lists the catalog again in the background, once at a time (see
    /// [`rerun`]).
    pub(super) fn relist_soon(self: Arc<Self>, link: Arc<dyn Link>, sessionless: bool) {
        let wanted = self.relist_wanted.clone();
        rerun(&wanted, move || {
            let (this, link) = (self.clone(), link.clone());
            async move {
                if let Err(e) = this.relist(&link, sessionless).await {
                    tracing::warn!(upstream = %this.name, "cannot list the changed catalog: {e}");
                }
            }
        });
    }
}

/// Runs `run` in the background, one run at a time for `wanted`: asked
/// again while a run is under way, it runs once more after it, so the last
/// run starts after the last ask and what it reads is never older.
fn rerun<F, Fut>(wanted: &Arc<AtomicUsize>, run: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    if wanted.fetch_add(1, Ordering::AcqRel) > 0 {
        return;
    }
    let wanted = wanted.clone();
    tokio::spawn(async move {
        loop {
            let asked = wanted.load(Ordering::Acquire);
            run().await;
            let done = wanted.compare_exchange(asked, 0, Ordering::AcqRel, Ordering::Acquire);
            if done.is_ok() {
                return;
            }
        }
    });
}
