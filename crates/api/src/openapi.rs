//! The OpenAPI 3.1 document of the management API, served at
//! `/api/openapi.json`.
//!
//! Owns the document's assembly: paths from the handlers' `#[utoipa::path]`,
//! the schema mirrors of [`schema`](crate::schema), and the `admin_token`
//! bearer security scheme.

use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;
use crate::schema::{
    AgeDistributionSchema, ClientSchema, ConnectionHealthSchema, DisconnectReasonSchema,
    DisconnectStatsSchema, RecentActivitySchema, RequestLogSchema, RequestStatusSchema,
    SessionSchema, SessionStatusSchema, StatusBreakdownSchema, UpstreamReportSchema,
    UpstreamStatusSchema,
};
use crate::{analytics, health, reconnect, sessions, tasks, upstreams};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sessiongate management API",
        description = "Sessions, their health and the stateless clients of a sessiongate MCP server. \
                       Everything under /api/mcp needs the admin token as a bearer token, except \
                       reconnecting, whose credential is the session's reconnect token.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        health::service_health,
        sessions::list_sessions,
        sessions::show_session,
        sessions::terminate_session,
        health::session_health,
        sessions::disconnected_sessions,
        sessions::list_clients,
        tasks::list_tasks,
        tasks::show_task,
        upstreams::list_upstreams,
        analytics::analytics,
        analytics::usage_summary,
        analytics::timeline,
        reconnect::issue_token,
        reconnect::reconnect,
        openapi_json,
    ),
    components(schemas(
        ErrorBody,
        SessionSchema,
        RequestLogSchema,
        SessionStatusSchema,
        DisconnectReasonSchema,
        RequestStatusSchema,
        StatusBreakdownSchema,
        AgeDistributionSchema,
        ConnectionHealthSchema,
        RecentActivitySchema,
        DisconnectStatsSchema,
        ClientSchema,
        UpstreamReportSchema,
        UpstreamStatusSchema,
    )),
    modifiers(&AdminTokenScheme),
    tags(
        (name = "health", description = "Liveness, public"),
        (name = "sessions", description = "Sessionful MCP sessions (admin)"),
        (name = "clients", description = "Stateless 2026-07-28 clients (admin)"),
        (name = "tasks", description = "Tasks of the tasks extension, every client's (admin)"),
        (name = "upstreams", description = "The upstream MCP servers the gateway relays to (admin)"),
        (name = "analytics", description = "Request and session figures over time, aggregated in the database (admin)"),
        (name = "reconnection", description = "Reconnect tokens: issued to admins, redeemed by clients"),
        (name = "meta", description = "This document, public"),
    )
)]
pub struct ApiDoc;

struct AdminTokenScheme;

impl Modify for AdminTokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin token: from the config, or generated on first start into \
                         <data_dir>/admin-token and printed in the startup banner",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document, with this crate's version.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// The document as JSON, built once.
pub fn openapi_json_text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serializes")
    })
}

/// This document. Public.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
pub async fn openapi_json() -> Response {
    ([(CONTENT_TYPE, "application/json")], openapi_json_text()).into_response()
}
