//! Protocol revisions and the rules that tell the two generations apart.
//!
//! Sessionful revisions (2025-03-26 .. 2025-11-25) open a session with
//! `initialize`; the stateless revision 2026-07-28 carries protocol version,
//! client info and capabilities in every request's `_meta`.

use axum::http::HeaderName;
use rmcp::model::{ErrorCode, ErrorData};
use serde_json::{json, Value};

// Header names as `HeaderName`s: a lookup by `&str` parses and hashes the
// name anew on every request.
pub const HEADER_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
pub const HEADER_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
pub const HEADER_METHOD: HeaderName = HeaderName::from_static("mcp-method");
pub const HEADER_NAME: HeaderName = HeaderName::from_static("mcp-name");
/// sessiongate's own: a session's reconnect token, in responses that issue
/// one and in requests that reclaim a timed-out session in place.
pub const HEADER_RECONNECT_TOKEN: HeaderName = HeaderName::from_static("mcp-reconnect-token");
pub const HEADER_LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
pub const META_RECONNECT_TOKEN: &str = "io.sessiongate/reconnectToken";
pub const META_RECONNECT_EXPIRES_AT: &str = "io.sessiongate/reconnectTokenExpiresAt";

/// Revisions served with sessions, oldest first.
pub const SESSIONFUL: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];

/// Revisions served without sessions.
pub const STATELESS: [&str; 1] = ["2026-07-28"];

/// Every supported revision, newest first, as `server/discover` and
/// version errors list them.
pub fn supported_versions() -> Vec<String> {
    STATELESS
        .iter()
        .chain(SESSIONFUL.iter().rev())
        .map(|v| v.to_string())
        .collect()
}

pub fn is_sessionful(version: &str) -> bool {
    SESSIONFUL.contains(&version)
}

pub fn is_stateless(version: &str) -> bool {
    STATELESS.contains(&version)
}

/// The revision an `initialize` settles on: the requested one if it has
/// sessions, else the newest that does.
pub fn negotiate(requested: Option<&str>) -> &'static str {
    SESSIONFUL
        .iter()
        .find(|v| Some(**v) == requested)
        .unwrap_or(&SESSIONFUL[SESSIONFUL.len() - 1])
}

/// Batches exist only in 2025-03-26.
pub fn allows_batches(version: &str) -> bool {
    version == SESSIONFUL[0]
}

/// The version assumed when a sessionful request names none.
pub const DEFAULT_SESSIONFUL: &str = SESSIONFUL[0];

/// MissingRequiredClientCapability (-32021): the request needs
/// `required`, client capabilities the client did not declare, which the
/// error's `requiredCapabilities` names (on 2026-07-28's HTTP, a 400).
pub fn missing_client_capability(message: String, required: Value) -> ErrorData {
    ErrorData::new(
        ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY,
        message,
        Some(json!({ "requiredCapabilities": required })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_prefers_the_request_else_newest_sessionful() {
        assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate(Some("2026-07-28")), "2025-11-25");
        assert_eq!(negotiate(Some("1999-01-01")), "2025-11-25");
        assert_eq!(negotiate(None), "2025-11-25");
    }

    #[test]
    fn agrees_with_rmcp() {
        use rmcp::model::ProtocolVersion as V;
        let known = [
            V::V_2025_03_26,
            V::V_2025_06_18,
            V::V_2025_11_25,
            V::V_2026_07_28,
        ];
        for v in known {
            assert_eq!(v.has_initialize(), is_sessionful(v.as_str()), "{v}");
            assert_eq!(!v.has_initialize(), is_stateless(v.as_str()), "{v}");
        }
    }

    #[test]
    fn lists_every_revision_newest_first() {
        assert_eq!(
            supported_versions(),
            ["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"]
        );
    }
}
