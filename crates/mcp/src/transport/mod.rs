//! MCP Streamable HTTP at `/mcp`: POST, GET and DELETE, for both protocol
//! generations side by side.
//!
//! Each request's facts are read once into an `Inbound` (after the
//! Origin/Host guard) and passed along. A POST is classified once (`post`):
//! `initialize` opens a session (`initialize`); a request whose `_meta` or
//! `MCP-Protocol-Version` names a stateless revision is served without one
//! (`stateless`); anything else must carry a live `Mcp-Session-Id`
//! (`sessionful`). `run` runs the handler: the answer is plain JSON unless
//! the handler talks to the client while it runs, in which case it becomes
//! an SSE stream; `finish` writes the answer and accounts for the request.
//! A stateless `subscriptions/listen` opens a long-lived stream of change
//! notifications (`listen`). GET opens or resumes a session's stream
//! (`get`), DELETE ends the session (`delete`), and a change of the catalog
//! reaches the sessions' standalone streams and the listen streams
//! (`announce`).

mod announce;
mod delete;
mod finish;
mod get;
mod inbound;
mod initialize;
mod listen;
mod post;
mod responses;
mod run;
mod sessionful;
mod state;
mod stateless;

use axum::response::Response;
use axum::routing::post as on_post;
use axum::Router;

use inbound::Inbound;
pub use state::{McpState, TransportConfig};

/// The `/mcp` route: one handler per verb, and for any other verb the
/// same 405 the handlers give, after the same guard.
pub fn router(state: McpState) -> Router {
    let verbs = on_post(post::post)
        .get(get::get)
        .delete(delete::delete)
        // Not GET's: axum would answer HEAD with the GET handler.
        .head(not_allowed)
        .fallback(not_allowed);
    Router::new().route("/mcp", verbs).with_state(state)
}

/// Reading the [`Inbound`] checks the guard; a refusal is the answer.
async fn not_allowed(_: Inbound) -> Response {
    responses::method_not_allowed("GET, POST, DELETE")
}
