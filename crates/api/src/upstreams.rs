//! The gateway's upstream MCP servers, for operators:
//! `GET /api/mcp/upstreams` (each configured upstream with its status and
//! figures, in configuration order) and the JSON the live stream carries
//! for their lifecycle events. Everything is read from the
//! [`UpstreamMonitor`](sessiongate_core::upstream::UpstreamMonitor) the
//! gateway implements; a server without upstreams lists none.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use sessiongate_core::upstream::{UpstreamEvent, UpstreamReport};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::schema::UpstreamReportSchema;
use crate::ApiState;

/// `GET /api/mcp/upstreams`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpstreamList {
    /// Every configured upstream, in configuration order; empty when the
    /// server has none.
    #[schema(value_type = Vec<UpstreamReportSchema>)]
    pub upstreams: Vec<UpstreamReport>,
}

/// The upstream MCP servers the gateway relays to, with their health.
#[utoipa::path(
    get,
    path = "/api/mcp/upstreams",
    tag = "upstreams",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Every configured upstream", body = UpstreamList),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub async fn list_upstreams(State(state): State<ApiState>) -> Result<Json<UpstreamList>, ApiError> {
    Ok(Json(UpstreamList {
        upstreams: reports(&state),
    }))
}

/// Every upstream's report; none without a gateway.
pub(crate) fn reports(state: &ApiState) -> Vec<UpstreamReport> {
    state
        .upstreams
        .as_ref()
        .map(|monitor| monitor.reports())
        .unwrap_or_default()
}

/// An upstream event as a live-stream message: `{"type": "upstream_down",
/// ...the event's fields, "report": the upstream's report now}`, so a
/// display updates its row without asking.
pub(crate) fn event_message(state: &ApiState, event: &UpstreamEvent) -> Value {
    let name = match event {
        UpstreamEvent::UpstreamRestarted { upstream, .. }
        | UpstreamEvent::UpstreamDown { upstream, .. }
        | UpstreamEvent::UpstreamUp { upstream, .. } => upstream,
    };
    let report = reports(state).into_iter().find(|r| &r.name == name);
    let mut message = serde_json::to_value(event).unwrap_or_else(|_| json!({}));
    if let Some(fields) = message.as_object_mut() {
        if let Some(kind) = fields.remove("event") {
            fields.insert("type".into(), kind);
        }
        fields.insert("report".into(), json!(report));
    }
    message
}
