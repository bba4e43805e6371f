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
//! client per second), and `health_update` snapshots when the figures
//! change, at most every 5 s. Each subscriber reads the lifecycle's broadcast on its own: a slow
//! one falls behind without slowing anything, and is sent `lagged` and a
//! fresh snapshot.

use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use sessiongate_core::lifecycle::LifecycleEvent;
use sessiongate_core::store::SessionQuery;
use sessiongate_core::SessionId;
use tokio::sync::broadcast::error::RecvError;

use crate::auth::{bearer, token_matches};
use crate::error::ApiError;
use crate::sessions::health_report;
use crate::ApiState;

/// The subprotocol a browser offers next to its `bearer.<token>`.
pub const PROTOCOL: &str = "sessiongate.v1";
const HEALTH_EVERY: Duration = Duration::from_secs(5);
const PING_EVERY: Duration = Duration::from_secs(20);
const SNAPSHOT_SESSIONS: u32 = 50;

/// `GET /api/mcp/ws/sessions`: upgrades an authenticated request.
pub async fn ws_sessions(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let offered: Vec<&str> = headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
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
    let ws = if offered.contains(&PROTOCOL) {
        ws.protocols([PROTOCOL])
    } else {
        ws
    };
    ws.on_upgrade(move |socket| serve(socket, state))
}

async fn send(socket: &mut WebSocket, value: &Value) -> bool {
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
        "timestamp": state.manager.now(),
    }))
}

fn session_event(state: &ApiState, kind: &str, id: SessionId) -> Option<Value> {
    let record = state.manager.active(id)?.record();
    Some(json!({"type": kind, "session": record, "timestamp": state.manager.now()}))
}

/// The messages one lifecycle event becomes: one per session of an
/// activity flush, at most one otherwise.
fn event_messages(state: &ApiState, event: LifecycleEvent) -> Vec<Value> {
    match event {
        LifecycleEvent::Created(id) => session_event(state, "session_created", id)
            .into_iter()
            .collect(),
        LifecycleEvent::Updated(ids) => ids
            .iter()
            .filter_map(|id| session_event(state, "session_updated", *id))
            .collect(),
        LifecycleEvent::Reconnected(id, _) => session_event(state, "session_reconnected", id)
            .into_iter()
            .collect(),
        LifecycleEvent::ClientActive(key) => state
            .manager
            .client(&key)
            .map(|client| {
                json!({"type": "client_activity", "client": client, "timestamp": state.manager.now()})
            })
            .into_iter()
            .collect(),
        LifecycleEvent::Ended(record) => vec![json!({
            "type": "session_disconnected",
            "session": record,
            "reason": record.disconnect_reason,
            "timestamp": state.manager.now(),
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

async fn serve(mut socket: WebSocket, state: ApiState) {
    let _counted = Subscribed::new();
    // Subscribe before the snapshot, so nothing falls in between.
    let mut events = state.manager.observe();
    let Ok(first) = snapshot(&state).await else {
        return;
    };
    if !send(&mut socket, &first).await {
        return;
    }
    let mut last_health = first["health"].clone();
    let mut health_tick = tokio::time::interval(HEALTH_EVERY);
    health_tick.reset();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.reset();
    loop {
        let out = tokio::select! {
            event = events.recv() => match event {
                Ok(event) => event_messages(&state, event),
                Err(RecvError::Lagged(missed)) => {
                    metrics::counter!("sessiongate_websocket_lagged_total").increment(1);
                    if !send(&mut socket, &json!({"type": "lagged", "missed": missed})).await {
                        return;
                    }
                    match snapshot(&state).await {
                        Ok(s) => vec![s],
                        Err(_) => return,
                    }
                }
                Err(RecvError::Closed) => return,
            },
            _ = health_tick.tick() => {
                let Ok(health) = health_report(&state).await else { return };
                let health = serde_json::to_value(health).unwrap_or(Value::Null);
                // The timestamp always moves; only the figures count as a change.
                let changed = ["status_breakdown", "age_distribution", "connection_health"]
                    .iter()
                    .any(|k| health[k] != last_health[k]);
                if changed {
                    last_health = health.clone();
                    vec![json!({"type": "health_update", "data": health})]
                } else {
                    Vec::new()
                }
            }
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
                Vec::new()
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => Vec::new(),
            },
        };
        for message in &out {
            if !send(&mut socket, message).await {
                return;
            }
        }
    }
}
