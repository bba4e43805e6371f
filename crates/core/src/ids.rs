//! Identifiers. A session id is 128 bits from the operating system's CSPRNG,
//! written as 32 lowercase hex digits on the wire and in the store; logs
//! above debug level write only its [`ShortId`].

use std::fmt;
use std::str::FromStr;

use rand::TryRngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The id of an MCP session, as carried in `Mcp-Session-Id`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u128);

impl SessionId {
    /// A fresh id from the OS CSPRNG: unguessable, so holding one is the
    /// capability to use the session.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .expect("the operating system's random number generator failed");
        SessionId(u128::from_be_bytes(bytes))
    }

    /// The id's first 8 hex digits, for logs: enough to tell sessions
    /// apart, too few to use one (the full id is the session's credential).
    pub fn short(self) -> ShortId {
        ShortId((self.0 >> 96) as u32)
    }
}

/// The first 8 hex digits of a [`SessionId`], as logs write it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ShortId(u32);

impl fmt::Display for ShortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Debug for ShortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShortId({self})")
    }
}

/// A string that is not 32 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("a session id is 32 hexadecimal digits")]
pub struct InvalidSessionId;

impl FromStr for SessionId {
    type Err = InvalidSessionId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidSessionId);
        }
        u128::from_str_radix(s, 16)
            .map(SessionId)
            .map_err(|_| InvalidSessionId)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every logged request writes its session id: `{:032x}` on a u128
        // cost ten times this.
        let mut digits = [0u8; 32];
        hex::encode_to_slice(self.0.to_be_bytes(), &mut digits).map_err(|_| fmt::Error)?;
        f.pad(std::str::from_utf8(&digits).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

impl Serialize for SessionId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_malformed() {
        let id = SessionId::generate();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(text.parse::<SessionId>().unwrap(), id);
        assert_eq!(
            SessionId(0xABC).to_string(),
            "00000000000000000000000000000abc"
        );
        for bad in [
            "",
            "xyz",
            "0123",
            &"g".repeat(32),
            &"0".repeat(33),
            "+0000000000000000000000000000000",
        ] {
            assert!(bad.parse::<SessionId>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn short_form_is_the_first_eight_digits() {
        let id = SessionId::generate();
        assert_eq!(id.short().to_string(), id.to_string()[..8]);
        assert_eq!(SessionId(0xABC).short().to_string(), "00000000");
    }

    #[test]
    fn ids_differ() {
        assert_ne!(SessionId::generate(), SessionId::generate());
    }
}
