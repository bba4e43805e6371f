//! The checks every request to `/mcp` passes before any MCP processing:
//! headers of a sane size (431 otherwise), and protection against DNS
//! rebinding — an `Origin` or `Host` that is not allowed gets 403.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// Which origins and hosts may reach the endpoint. Loopback is always allowed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OriginPolicy {
    /// Extra allowed origins, e.g. `https://app.example.com`; `*` allows all.
    pub allowed_origins: Vec<String>,
    /// Extra allowed `Host` names (without port); `*` allows all.
    pub allowed_hosts: Vec<String>,
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The host part of `host[:port]` or `[v6]:port`.
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

impl OriginPolicy {
    pub fn origin_allowed(&self, origin: &str) -> bool {
        if self
            .allowed_origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
        {
            return true;
        }
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false;
        };
        matches!(scheme, "http" | "https") && is_loopback_host(host_of(authority))
    }

    pub fn host_allowed(&self, host_header: &str) -> bool {
        let host = host_of(host_header);
        is_loopback_host(host)
            || self
                .allowed_hosts
                .iter()
                .any(|h| h == "*" || h.eq_ignore_ascii_case(host))
    }
}

fn forbidden(why: String) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "error": { "code": -32600, "message": why },
    });
    (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
}

/// Headers beyond this total size are refused: MCP needs a few hundred bytes.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The response that refuses a request, or `None` to let it through.
pub fn check(policy: &OriginPolicy, headers: &HeaderMap) -> Option<Response> {
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Some(
            (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("request headers exceed {MAX_HEADER_BYTES} bytes"),
            )
                .into_response(),
        );
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !policy.origin_allowed(origin) {
            return Some(forbidden(format!(
                "Forbidden: origin {origin:?} is not allowed (add it to allowed_origins)"
            )));
        }
    }
    if let Some(host) = headers.get(header::HOST) {
        let host = host.to_str().unwrap_or("");
        if !policy.host_allowed(host) {
            return Some(forbidden(format!(
                "Forbidden: host {host:?} is not allowed (add it to allowed_hosts)"
            )));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_allowed_and_others_are_not() {
        let p = OriginPolicy::default();
        for ok in [
            "http://localhost:3000",
            "http://127.0.0.1",
            "https://[::1]:8443",
        ] {
            assert!(p.origin_allowed(ok), "{ok}");
        }
        for bad in [
            "http://evil.example",
            "null",
            "http://localhost.evil.example",
            "file://localhost",
        ] {
            assert!(!p.origin_allowed(bad), "{bad}");
        }
        assert!(p.host_allowed("127.0.0.1:8051"));
        assert!(p.host_allowed("localhost"));
        assert!(p.host_allowed("[::1]:8051"));
        assert!(!p.host_allowed("evil.example:8051"));
    }

    #[test]
    fn configured_entries_extend_the_policy() {
        let p = OriginPolicy {
            allowed_origins: vec!["https://app.example.com".into()],
            allowed_hosts: vec!["gateway.internal".into()],
        };
        assert!(p.origin_allowed("https://app.example.com"));
        assert!(p.host_allowed("gateway.internal:8051"));
        assert!(!p.host_allowed("other.internal"));
    }
}
