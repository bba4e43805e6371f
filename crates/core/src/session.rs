//! A session as recorded: who the client is, what it negotiated, and where it
//! is in its life.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::Timestamp;
use crate::ids::SessionId;
use crate::token::hash::TokenGrant;

/// Whether a session can still be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Active,
    Disconnected,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Active => "active",
            SessionStatus::Disconnected => "disconnected",
        }
    }
}

impl FromStr for SessionStatus {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(SessionStatus::Active),
            "disconnected" => Ok(SessionStatus::Disconnected),
            _ => Err(UnknownValue(s.to_string())),
        }
    }
}

impl fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectReason {
    /// The client sent `DELETE /mcp`.
    ClientDisconnect,
    /// No sign of life for the idle timeout.
    Timeout,
    /// An operator ended it through the management API or CLI.
    AdminTerminated,
    /// The server ended it while shutting down. sessiongate keeps sessions
    /// across restarts, so it writes this only for rows the reference system
    /// left behind; the value stays readable.
    ServerShutdown,
    /// The session failed on the server side.
    Error,
}

impl DisconnectReason {
    pub const ALL: [DisconnectReason; 5] = [
        DisconnectReason::ClientDisconnect,
        DisconnectReason::Timeout,
        DisconnectReason::AdminTerminated,
        DisconnectReason::ServerShutdown,
        DisconnectReason::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::ClientDisconnect => "client_disconnect",
            DisconnectReason::Timeout => "timeout",
            DisconnectReason::AdminTerminated => "admin_terminated",
            DisconnectReason::ServerShutdown => "server_shutdown",
            DisconnectReason::Error => "error",
        }
    }
}

impl FromStr for DisconnectReason {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DisconnectReason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            // The reference system wrote `error: <kind>`.
            .or_else(|| s.starts_with("error").then_some(DisconnectReason::Error))
            .ok_or_else(|| UnknownValue(s.to_string()))
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored value this version does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown value {0:?}")]
pub struct UnknownValue(pub String);

/// Who the client said it is, and what it negotiated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientIdentity {
    /// Product name detected from `client_name` (see [`crate::client_kind`]).
    pub client_type: String,
    pub client_name: Option<String>,
    pub client_version: Option<String>,
    /// `capabilities` from the client's `initialize`, as sent.
    pub client_capabilities: Value,
    pub protocol_version: String,
    /// The authenticated user, when the transport knows one.
    pub principal: Option<String>,
    pub remote_addr: Option<String>,
    pub user_agent: Option<String>,
}

/// One session's durable record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionRecord {
    pub session_id: SessionId,
    #[serde(flatten)]
    pub client: ClientIdentity,
    pub connected_at: Timestamp,
    pub last_activity: Timestamp,
    pub status: SessionStatus,
    pub disconnected_at: Option<Timestamp>,
    pub disconnect_reason: Option<DisconnectReason>,
    /// Seconds from connection to end; `null` while active.
    #[serde(serialize_with = "seconds")]
    pub total_duration: Option<Duration>,
    pub request_count: u64,
    /// Free-form: the raw `clientInfo` and anything the transport adds.
    pub metadata: Value,
    /// How many times the session was reclaimed with a reconnect token.
    pub reconnect_count: u64,
    /// The current reconnect token's hash and expiry; never serialized.
    #[serde(skip)]
    pub reconnect_token: Option<TokenGrant>,
}

fn seconds<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64((d.as_millis() as f64) / 1000.0),
        None => s.serialize_none(),
    }
}

impl SessionRecord {
    /// Seconds since the last sign of life, as of `now`.
    pub fn idle(&self, now: Timestamp) -> Duration {
        now.since(self.last_activity)
    }
}

/// The end of a session, as written to the store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionEnd {
    pub session_id: SessionId,
    pub at: Timestamp,
    pub reason: DisconnectReason,
    pub total_duration: Duration,
    pub last_activity: Timestamp,
    pub request_count: u64,
}

/// A live session's activity, flushed to the store behind the request path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActivityUpdate {
    pub session_id: SessionId,
    pub last_activity: Timestamp,
    pub request_count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_and_accept_reference_values() {
        for r in DisconnectReason::ALL {
            assert_eq!(r.as_str().parse::<DisconnectReason>().unwrap(), r);
        }
        assert_eq!(
            "error: ConnectionReset"
                .parse::<DisconnectReason>()
                .unwrap(),
            DisconnectReason::Error
        );
        assert!("bogus".parse::<DisconnectReason>().is_err());
    }
}
