//! The live session event stream at `/api/mcp/ws/sessions` (the seed's
//! path), for dashboards and `watch`.
//!
//! Admin auth: the admin token as a bearer header, or — since browsers
//! cannot set headers on WebSockets — as a `bearer.<token>` value in
//! `Sec-WebSocket-Protocol`, next to `sessiongate.v1`, the protocol the
//! server then selects. On connect a `snapshot` (the health report and the
//! first page of sessions), then `{type, session, timestamp}` events from
//! the lifecycle (`session_created`, `session_updated` — at most one per
//! session per activity flush, `session_disconnected`, `session_reconnected`)
//! `client_activity` for stateless 2026-07-28 clients (at most one per
//! client per second), `health_update` snapshots when the figures
//! change, at most every 5 s, and the gateway's upstream events
//! (`upstream_restarted`, `upstream_down`, `upstream_up`, with the event's
//! fields and the upstream's report). The snapshot carries every
//! upstream's report too, so a subscriber resynchronized after a lag has
//! them again.
//!
//! One fan-out task ([`LiveHub`]) turns each lifecycle event into JSON once,
//! gathers messages for up to 20 ms and broadcasts them as one frame, so 500
//! subscribers cost one serialization per event and at most 50 socket writes
//! a second each. Each subscriber reads that broadcast through its own
//! bounded queue and writes whatever has queued up in one flush: a slow one
//! falls behind without slowing anything, and is sent `lagged` and a fresh
//! snapshot. Every message is still its own WebSocket message, compressed
//! (once per batch, for all) for subscribers that negotiated
//! permessage-deflate, as browsers do ([`socket`]).

mod socket;

use std::sync::{Arc, Once, OnceLock};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sessiongate_core::lifecycle::LifecycleEvent;
use sessiongate_core::store::SessionQuery;
use sessiongate_core::upstream::UpstreamEvent;
use sessiongate_core::SessionId;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::auth::{bearer, token_matches};
use crate::error::ApiError;
use crate::health::health_report;
use crate::tasks::TaskSummary;
use crate::upstreams;
use crate::ApiState;
use socket::{Handshake, Socket};

/// The subprotocol a browser offers next to its `bearer.<token>`.
pub const PROTOCOL: &str = "sessiongate.v1";
const HEALTH_EVERY: Duration = Duration::from_secs(5);
const PING_EVERY: Duration = Duration::from_secs(20);
const SNAPSHOT_SESSIONS: u32 = 50;
/// Frames a subscriber may fall behind by before it is resynchronized: a
/// frame holds up to 20 ms of events, so at a steady flow this is over a
/// second behind, and a burst of up to 16,384 messages.
const QUEUE: usize = 64;
/// Messages written to one socket per flush, at most, and gathered into one
/// frame by the fan-out, at most.
const BATCH: usize = 256;
/// What a subscriber may send: control frames and little else.
const SUBSCRIBER_READ_BUFFER: usize = 4 * 1024;
const SUBSCRIBER_MAX_MESSAGE: usize = 64 * 1024;
/// How long the fan-out gathers messages before broadcasting them.
const COALESCE: Duration = Duration::from_millis(20);

/// What the fan-out broadcasts to subscribers.
#[derive(Debug, Clone)]
enum Frame {
    /// Messages gathered over up to 20 ms.
    Messages(Arc<Batch>),
    /// The fan-out itself fell behind the lifecycle: everyone resyncs.
    Lagged(u64),
}

/// One broadcast's messages, each serialized once for all subscribers and
/// compressed once for all that take permessage-deflate.
#[derive(Debug)]
struct Batch {
    texts: Vec<Utf8Bytes>,
    deflated: OnceLock<Option<Vec<Bytes>>>,
}

impl Batch {
    /// The batch as one subscriber's WebSocket messages.
    fn messages(&self, deflate: bool) -> Vec<Message> {
        let deflated = deflate
            .then(|| self.deflated.get_or_init(|| socket::deflate(&self.texts)))
            .and_then(Option::as_ref);
        match deflated {
            Some(payloads) => payloads.iter().cloned().map(socket::compressed).collect(),
            None => self.texts.iter().cloned().map(Message::Text).collect(),
        }
    }
}

/// The fan-out from the session lifecycle to every live-stream subscriber.
/// It starts with the first subscriber and then runs for the server's life,
/// idle while nobody listens.
pub struct LiveHub {
    frames: broadcast::Sender<Frame>,
    started: Once,
}

impl Default for LiveHub {
    fn default() -> Self {
        LiveHub {
            frames: broadcast::channel(QUEUE).0,
            started: Once::new(),
        }
    }
}

impl std::fmt::Debug for LiveHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveHub")
            .field("subscribers", &self.frames.receiver_count())
            .finish()
    }
}

impl LiveHub {
    fn subscribe(&self, state: &ApiState) -> broadcast::Receiver<Frame> {
        let frames = self.frames.subscribe();
        self.started.call_once(|| {
            // Observe now, not in the task, so no event falls between this
            // subscriber's snapshot and the fan-out's start.
            let events = state.manager.observe();
            let upstream_events = state.upstreams.as_ref().map(|m| m.subscribe());
            tokio::spawn(fan_out(state.clone(), events, upstream_events));
        });
        frames
    }
}

/// The next upstream event; never, without a gateway.
async fn next_upstream_event(
    events: &mut Option<broadcast::Receiver<UpstreamEvent>>,
) -> Result<UpstreamEvent, RecvError> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

async fn fan_out(
    state: ApiState,
    mut events: broadcast::Receiver<LifecycleEvent>,
    mut upstream_events: Option<broadcast::Receiver<UpstreamEvent>>,
) {
    let frames = state.live.frames.clone();
    let mut last_health = Value::Null;
    let mut health_tick = tokio::time::interval(HEALTH_EVERY);
    health_tick.reset();
    // Messages gathered for up to COALESCE, then broadcast as one frame: at
    // a thousand events a second each subscriber writes fifty times, not a
    // thousand.
    let mut pending: Vec<Utf8Bytes> = Vec::new();
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        let flush_at = due.unwrap_or_else(|| tokio::time::Instant::now() + HEALTH_EVERY);
        tokio::select! {
            event = events.recv() => match event {
                Ok(_) if frames.receiver_count() == 0 => {}
                Ok(event) => {
                    let now = state.manager.now();
                    pending.extend(event_messages(&state, event).into_iter().map(|mut m| {
                        m["timestamp"] = json!(now);
                        Utf8Bytes::from(m.to_string())
                    }));
                    if !pending.is_empty() && due.is_none() {
                        due = Some(tokio::time::Instant::now() + COALESCE);
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    pending.clear();
                    due = None;
                    let _ = frames.send(Frame::Lagged(missed));
                }
                Err(RecvError::Closed) => return,
            },
            event = next_upstream_event(&mut upstream_events) => match event {
                Ok(_) if frames.receiver_count() == 0 => {}
                Ok(event) => {
                    let mut m = upstreams::event_message(&state, &event);
                    m["timestamp"] = json!(state.manager.now());
                    pending.push(Utf8Bytes::from(m.to_string()));
                    due.get_or_insert_with(|| tokio::time::Instant::now() + COALESCE);
                }
                // Subscribers resync from a snapshot, which has every
                // upstream's report.
                Err(RecvError::Lagged(missed)) => {
                    pending.clear();
                    due = None;
                    let _ = frames.send(Frame::Lagged(missed));
                }
                // The gateway is gone; sessions go on.
                Err(RecvError::Closed) => upstream_events = None,
            },
            _ = tokio::time::sleep_until(flush_at), if due.is_some() => {}
            _ = health_tick.tick() => {
                if frames.receiver_count() == 0 {
                    continue;
                }
                let Ok(health) = health_report(&state).await else { continue };
                let health = serde_json::to_value(health).unwrap_or(Value::Null);
                // The timestamp always moves; only the figures count as a change.
                let changed = ["status_breakdown", "age_distribution", "connection_health"]
                    .iter()
                    .any(|k| health[k] != last_health[k]);
                if changed {
                    pending.push(Utf8Bytes::from(
                        json!({"type": "health_update", "data": &health}).to_string(),
                    ));
                    last_health = health;
                    due.get_or_insert_with(tokio::time::Instant::now);
                }
            }
        }
        let now = tokio::time::Instant::now();
        if due.is_some_and(|d| d <= now) || pending.len() >= BATCH {
            due = None;
            if !pending.is_empty() {
                let _ = frames.send(Frame::Messages(Arc::new(Batch {
                    texts: std::mem::take(&mut pending),
                    deflated: OnceLock::new(),
                })));
            }
        }
    }
}

/// `GET /api/mcp/ws/sessions`: upgrades an authenticated request.
pub async fn ws_sessions(State(state): State<ApiState>, mut request: Request) -> Response {
    let handshake = match Handshake::read(&mut request) {
        Ok(handshake) => handshake,
        Err(e) => return e.into_response(),
    };
    let headers = request.headers();
    let offered: Vec<&str> = socket::header_list(headers, SEC_WEBSOCKET_PROTOCOL).collect();
    let by_header = headers
        .get(AUTHORIZATION)
        .and_then(|v| bearer(v.as_bytes()))
        .is_some_and(|t| token_matches(&state.admin_token, t));
    let by_protocol = offered.iter().any(|p| {
        p.strip_prefix("bearer.")
            .is_some_and(|t| token_matches(&state.admin_token, t))
    });
    if !(by_header || by_protocol) {
        let presented =
            headers.contains_key(AUTHORIZATION) || offered.iter().any(|p| p.starts_with("bearer."));
        return if presented {
            ApiError::InvalidToken
        } else {
            ApiError::MissingToken
        }
        .into_response();
    }
    let protocol = offered.contains(&PROTOCOL).then_some(PROTOCOL);
    // Subscribers send nothing but control frames. tungstenite zeroes its
    // whole read buffer (128 KiB by default) before every read, and the
    // serve loop polls for input after each write: at 500 subscribers that
    // zeroing alone took a fifth of the server's CPU.
    let config = WebSocketConfig::default()
        .read_buffer_size(SUBSCRIBER_READ_BUFFER)
        .max_message_size(Some(SUBSCRIBER_MAX_MESSAGE));
    handshake.accept(protocol, config, move |socket, deflate| {
        serve(socket, deflate, state)
    })
}

async fn send(socket: &mut Socket, value: &Value) -> bool {
    let text = Utf8Bytes::from(value.to_string());
    socket.send(Message::Text(text)).await.is_ok()
}

async fn snapshot(state: &ApiState) -> Result<Value, ApiError> {
    let health = health_report(state).await?;
    let page = state
        .manager
        .list(&SessionQuery {
            limit: SNAPSHOT_SESSIONS,
            ..Default::default()
        })
        .await?;
    Ok(json!({
        "type": "snapshot",
        "health": health,
        "sessions": page.sessions,
        "total": page.total,
        "upstreams": upstreams::reports(state),
        "timestamp": state.manager.now(),
    }))
}

fn session_event(state: &ApiState, kind: &str, id: SessionId) -> Option<Value> {
    let record = state.manager.active(id)?.record();
    Some(json!({"type": kind, "session": record}))
}

/// The messages one lifecycle event becomes: one per session of an
/// activity flush, at most one otherwise.
fn event_messages(state: &ApiState, event: LifecycleEvent) -> Vec<Value> {
    match event {
        LifecycleEvent::Created(record) => {
            vec![json!({"type": "session_created", "session": record})]
        }
        LifecycleEvent::Updated(ids) => ids
            .iter()
            .filter_map(|id| session_event(state, "session_updated", *id))
            .collect(),
        LifecycleEvent::Reconnected(id, _) => session_event(state, "session_reconnected", id)
            .into_iter()
            .collect(),
        LifecycleEvent::ClientActive(key) => state
            .stateless
            .get(&key)
            .map(|client| json!({"type": "client_activity", "client": client}))
            .into_iter()
            .collect(),
        LifecycleEvent::Ended(record) => vec![json!({
            "type": "session_disconnected",
            "session": record,
            "reason": record.disconnect_reason,
        })],
        LifecycleEvent::TaskCreated(record) => vec![json!({
            "type": "task_created",
            "task": TaskSummary::from(&*record),
        })],
        LifecycleEvent::TaskChanged(view) => vec![json!({
            "type": "task_status_changed",
            "task_id": view.record.task_id,
            "status": view.record.status,
            "status_message": view.record.status_message,
            "updated_at": view.record.updated_at,
        })],
    }
}

/// Counts a subscriber in the metrics while it lives.
struct Subscribed;

impl Subscribed {
    fn new() -> Self {
        metrics::gauge!("sessiongate_websocket_subscribers").increment(1.0);
        Subscribed
    }
}

impl Drop for Subscribed {
    fn drop(&mut self) {
        metrics::gauge!("sessiongate_websocket_subscribers").decrement(1.0);
    }
}

async fn serve(mut socket: Socket, deflate: bool, state: ApiState) {
    let _counted = Subscribed::new();
    // Subscribe before the snapshot, so nothing falls in between.
    let mut frames = state.live.subscribe(&state);
    let Ok(first) = snapshot(&state).await else {
        return;
    };
    if !send(&mut socket, &first).await {
        return;
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.reset();
    loop {
        let mut lagged = None;
        let mut out: Vec<Arc<Batch>> = Vec::new();
        let mut queued = 0;
        tokio::select! {
            frame = frames.recv() => {
                let mut next = frame.map_err(|e| match e {
                    RecvError::Lagged(n) => TryRecvError::Lagged(n),
                    RecvError::Closed => TryRecvError::Closed,
                });
                // Whatever else has queued up goes out in the same write.
                loop {
                    match next {
                        Ok(Frame::Messages(batch)) => {
                            queued += batch.texts.len();
                            out.push(batch);
                        }
                        Ok(Frame::Lagged(n)) | Err(TryRecvError::Lagged(n)) => {
                            lagged = Some(n);
                            break;
                        }
                        Err(TryRecvError::Closed) => return,
                        Err(TryRecvError::Empty) => break,
                    }
                    if queued >= BATCH {
                        break;
                    }
                    next = frames.try_recv();
                }
            }
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            incoming = socket.next() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
        if !out.is_empty() {
            for message in out.iter().flat_map(|batch| batch.messages(deflate)) {
                if socket.feed(message).await.is_err() {
                    return;
                }
            }
            if socket.flush().await.is_err() {
                return;
            }
        }
        if let Some(missed) = lagged {
            metrics::counter!("sessiongate_websocket_lagged_total").increment(1);
            // The queue is stale: start over from a fresh snapshot.
            frames = frames.resubscribe();
            let Ok(fresh) = snapshot(&state).await else {
                return;
            };
            if !send(&mut socket, &json!({"type": "lagged", "missed": missed})).await
                || !send(&mut socket, &fresh).await
            {
                return;
            }
        }
    }
}
