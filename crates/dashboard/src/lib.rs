//! The web dashboard: one page, its script and its stylesheet, embedded in
//! the binary so it works offline and needs no CDN. It owns nothing but
//! presentation: everything it shows comes from the management API
//! (`/api/mcp/...`) and its live stream, with the admin token the operator
//! types in.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");
const ICON: &str = include_str!("../assets/favicon.svg");

// Everything is same-origin; the live stream is a WebSocket to this host.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self' ws: wss:; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The dashboard's routes: the page at `/` and `/mcp/dashboard`, its assets
/// under `/dashboard/`, and its icon at `/favicon.svg` and `/favicon.ico`
/// (where browsers look when a page names none).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/mcp/dashboard", get(index))
        .route("/dashboard/app.js", get(script))
        .route("/dashboard/app.css", get(style))
        .route("/favicon.svg", get(icon))
        .route("/favicon.ico", get(icon))
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

async fn icon() -> Response {
    // An SVG under the .ico name too: every current browser sniffs it.
    asset("image/svg+xml", ICON)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Assets change with the binary; revalidating is cheap.
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
        ],
        body,
    )
        .into_response()
}
