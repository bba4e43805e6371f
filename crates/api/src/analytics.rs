//! The analytics routes: `GET /api/mcp/analytics` and
//! `GET /api/mcp/usage/summary` in the reference system's shapes, and
//! `GET /api/mcp/sessions/timeline` for the dashboard's time charts. The
//! reports are assembled by the [`ApiState::analytics`] service from
//! aggregates the store computes; this module only validates the query.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use sessiongate_core::analytics::{AnalyticsReport, Timeline, UsageSummary};
use utoipa::IntoParams;

use crate::error::{ApiError, ErrorBody, Params};
use crate::ApiState;

/// The longest period of the analytics reports, in days.
pub const MAX_DAYS: u32 = 90;
/// The longest timeline, in hours (a week).
pub const MAX_HOURS: u32 = 168;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsParams {
    /// UTC days covered, ending today: 1 to 90 (default 7).
    #[param(minimum = 1, maximum = 90)]
    pub days: Option<u32>,
    /// Also compare with the period just before (default false).
    pub compare: Option<bool>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineParams {
    /// Hours covered, ending now: 1 to 168 (default 1). Buckets are a
    /// minute long for an hour, 15 minutes for a day.
    #[param(minimum = 1, maximum = 168)]
    pub hours: Option<u32>,
}

fn within(name: &str, value: u32, max: u32) -> Result<u32, ApiError> {
    if (1..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::BadRequest(format!(
            "{name} must be between 1 and {max}, got {value}"
        )))
    }
}

/// Request trends by day and hour, outcomes, response times by tool with
/// percentiles, and optionally a comparison with the previous period.
#[utoipa::path(
    get,
    path = "/api/mcp/analytics",
    tag = "analytics",
    params(AnalyticsParams),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The analytics report (see docs/api.md)", body = Object),
        (status = 400, description = "Malformed or out-of-range query", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 503, description = "Session store unavailable", body = ErrorBody),
    )
)]
pub async fn analytics(
    State(state): State<ApiState>,
    Params(params): Params<AnalyticsParams>,
) -> Result<Json<AnalyticsReport>, ApiError> {
    let days = within("days", params.days.unwrap_or(7), MAX_DAYS)?;
    let mut report = state
        .analytics
        .report(days, params.compare.unwrap_or(false))
        .await?;
    for t in &mut report.response_times.by_tool {
        t.unknown = !(state.known_tool)(&t.tool);
    }
    Ok(Json(report))
}

/// Requests in all and by tool over a period.
#[utoipa::path(
    get,
    path = "/api/mcp/usage/summary",
    tag = "analytics",
    params(AnalyticsParams),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Usage by tool (see docs/api.md)", body = Object),
        (status = 400, description = "Malformed or out-of-range query", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 503, description = "Session store unavailable", body = ErrorBody),
    )
)]
pub async fn usage_summary(
    State(state): State<ApiState>,
    Params(params): Params<AnalyticsParams>,
) -> Result<Json<UsageSummary>, ApiError> {
    let days = within("days", params.days.unwrap_or(7), MAX_DAYS)?;
    let mut summary = state.analytics.usage(days).await?;
    for (tool, usage) in &mut summary.by_tool {
        usage.unknown = !(state.known_tool)(tool);
    }
    Ok(Json(summary))
}

/// Active sessions, arrivals, ends and requests per time bucket.
#[utoipa::path(
    get,
    path = "/api/mcp/sessions/timeline",
    tag = "analytics",
    params(TimelineParams),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The timeline (see docs/api.md)", body = Object),
        (status = 400, description = "Malformed or out-of-range query", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 503, description = "Session store unavailable", body = ErrorBody),
    )
)]
pub async fn timeline(
    State(state): State<ApiState>,
    Params(params): Params<TimelineParams>,
) -> Result<Json<Timeline>, ApiError> {
    let hours = within("hours", params.hours.unwrap_or(1), MAX_HOURS)?;
    let timeline = state.analytics.timeline(hours).await?;
    Ok(Json(timeline))
}
