//! What a sessionful client asks in `initialize`: read, checked and
//! negotiated here; the dispatcher builds the result, and the transport
//! creates the session and sets its headers.

use rmcp::model::ErrorData;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use sessiongate_core::session::ClientIdentity;

use crate::client_info::{self, ClientInfo, Origin};
use crate::protocol;

/// `initialize`'s params as sent; `clientInfo` and `capabilities` stay raw
/// until their size is checked.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InitializeParams {
    protocol_version: Option<String>,
    #[serde(default)]
    capabilities: Option<Box<RawValue>>,
    client_info: Option<Box<RawValue>>,
}

/// An `initialize` read and negotiated.
pub(crate) struct Handshake {
    /// The revision the session speaks.
    pub version: &'static str,
    info: Option<ClientInfo>,
    capabilities: Value,
    /// The revision the client asked for, as sent.
    requested: Option<String>,
}

impl InitializeParams {
    pub(crate) fn read(params: Option<&RawValue>) -> Result<Self, ErrorData> {
        serde_json::from_str(params.map(RawValue::get).unwrap_or("{}"))
            .map_err(|e| ErrorData::invalid_params(format!("Invalid params: {e}"), None))
    }

    /// The client metadata as sent, each with the name a refusal gives it.
    pub(crate) fn metadata(&self) -> [(&'static str, Option<&RawValue>); 2] {
        [
            ("params.capabilities", self.capabilities.as_deref()),
            ("params.clientInfo", self.client_info.as_deref()),
        ]
    }

    /// Checks what the client says about itself and settles the revision:
    /// the requested one if it has sessions, else the newest that does.
    pub(crate) fn negotiate(self) -> Result<Handshake, ErrorData> {
        let capabilities = match self.capabilities.as_deref().map(RawValue::get) {
            None | Some("null") => json!({}),
            Some(raw) if raw.starts_with('{') => serde_json::from_str(raw).unwrap_or_default(),
            Some(_) => {
                return Err(ErrorData::invalid_params(
                    "capabilities must be an object",
                    None,
                ))
            }
        };
        let info = match self.client_info.as_deref().map(RawValue::get) {
            None | Some("null") => None,
            Some(raw) => Some(serde_json::from_str(raw).map_err(|e| {
                ErrorData::invalid_params(format!("Invalid params: clientInfo: {e}"), None)
            })?),
        };
        Ok(Handshake {
            version: protocol::negotiate(self.protocol_version.as_deref()),
            info,
            capabilities,
            requested: self.protocol_version,
        })
    }
}

impl Handshake {
    /// The new session's identity, and the metadata kept with it.
    pub(crate) fn into_session(self, origin: Origin<'_>) -> (ClientIdentity, Value) {
        let metadata = json!({
            "clientInfo": self.info,
            "requestedProtocolVersion": self.requested,
        });
        let identity =
            client_info::identity(self.info.as_ref(), self.capabilities, self.version, origin);
        (identity, metadata)
    }
}
