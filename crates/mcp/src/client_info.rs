//! What a client says about itself — `clientInfo` and its capabilities —
//! and the [`ClientIdentity`] made of it. Sessionful clients announce it
//! once in `initialize`, stateless ones in every request's `_meta`; both
//! build their identity here.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sessiongate_core::client_kind::detect_client_type;
use sessiongate_core::session::ClientIdentity;

/// `clientInfo` as a client sends it.
#[derive(Deserialize, Serialize, Clone, Default)]
pub(crate) struct ClientInfo {
    pub name: Option<String>,
    pub version: Option<String>,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, Value>,
}

/// Where a request came from, as the transport saw it.
#[derive(Clone, Copy)]
pub(crate) struct Origin<'a> {
    pub remote: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
}

/// The identity of a client that announced `info` and `capabilities` and
/// speaks `protocol_version`.
pub(crate) fn identity(
    info: Option<&ClientInfo>,
    capabilities: Value,
    protocol_version: &str,
    origin: Origin<'_>,
) -> ClientIdentity {
    let name = info.and_then(|i| i.name.clone());
    ClientIdentity {
        client_type: detect_client_type(name.as_deref()),
        client_name: name,
        client_version: info.and_then(|i| i.version.clone()),
        client_capabilities: capabilities,
        protocol_version: protocol_version.to_string(),
        principal: None,
        remote_addr: origin.remote.map(|ip| ip.to_string()),
        user_agent: origin.user_agent.map(str::to_string),
    }
}
